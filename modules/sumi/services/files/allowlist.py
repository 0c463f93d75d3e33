"""Which files the page may read at `/file=PATH` (A1111's Gradio 3 file route), and nothing else.

A1111 served every file under its install folder plus `--gradio-allowed-path`; Sumi serves a list of
folders (`FileRoots.roots()`), read afresh for each request so a changed setting or an extension that
appends to `cmd_opts.gradio_allowed_path` at import counts at once:

| root | what | types |
| --- | --- | --- |
| extension | every enabled extension's folder (its `javascript/`, tag lists, localization JSON, ...) | any |
| assets | the app's `javascript/`, `html/` and `localizations/` folders, the data dir's `localizations/`, `user.css` and `user.js`, and `--localizations-dir` | any |
| outputs | `outputs/`, every `outdir_*` setting (relative ones under the data dir), `temp_dir`, Gradio's temp folder, the `tmp/` folder of the data dir, the app folder and the working folder (where tagcomplete writes `tagAutocompletePath.txt`) | images, text, JSON, media |
| allowed | each `--gradio-allowed-path` | images, text, JSON, media |
| previews | the model folders (checkpoints, VAE, Lora, LyCORIS, embeddings, hypernetworks, ControlNet) | preview images only |

Checks, in Gradio 3's order: a name with a dot-folder or dot-file part below its root, a blocked file
(settings, caches, logins, TLS keys, any `config.json`) or a folder is 403; a path whose real location
(links resolved) is in no root is 403; an allowed path that does not exist is 404. Relative paths are
looked up under the data dir first, then the app folder, then the working folder (A1111's base for
relative names, which extensions write to with `Path().absolute()`). Types outside the
"types" column are refused (previews) or sent as a download (outputs, allowed), so a page of HTML in an
outputs folder never runs as the app's own page.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREVIEW_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})  # A1111's preview types
# Served inline from outputs and allowed folders; anything else there comes as a download.
INLINE_SAFE_TYPES = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
        "text/plain", "text/csv", "application/json",
        "audio/mpeg", "audio/wav", "audio/x-wav", "audio/ogg", "video/mp4", "video/webm",
    }
)  # fmt: skip
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".md": "text/markdown",
    ".yaml": "text/plain",
    ".yml": "text/plain",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
}
BLOCKED_NAMES = frozenset({"config.json"})  # any folder: settings files may hold keys
BLOCKED_SUFFIXES = frozenset({".key", ".pem"})
ARG_FILES = ("ui_settings_file", "gradio_auth_path", "api_auth_path", "tls_keyfile", "tls_certfile")
OUTDIR_KEYS = (
    "outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples", "outdir_extras_samples",
    "outdir_grids", "outdir_txt2img_grids", "outdir_img2img_grids", "outdir_save", "outdir_init_images",
)  # fmt: skip
PREVIEW_ROOT_FIELDS = (
    "ckpt_dirs", "vae_dirs", "lora_dir", "lycoris_dir", "embeddings_dir", "hypernetwork_dir", "controlnet_dir",
)  # fmt: skip


@dataclass(frozen=True)
class Root:
    """A folder files may be served from. `kind`: extension, assets, outputs, allowed or previews."""

    path: Path
    kind: str

    @property
    def trusted(self) -> bool:
        """Code and assets the page runs (extensions', the app's): served with their own type."""
        return self.kind in ("extension", "assets")


@dataclass(frozen=True)
class Verdict:
    """What `/file=PATH` answers: `status` 200 with the file, else 400/403/404 with `reason`."""

    status: int
    reason: str = ""
    path: Path | None = None
    media_type: str = "application/octet-stream"
    download: bool = False  # sent as an attachment (a type that must not run as a page of the app)


def media_type(path: Path) -> str:
    """The Content-Type for a file, by its suffix (JavaScript as text/javascript, as browsers want)."""
    suffix = path.suffix.lower()
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _hidden_below(path: Path, root: Path) -> bool:
    """A part of `path` below `root` is a dotfile or dot-folder (`.git`, `.env`, ...)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return True
    return any(part.startswith(".") for part in parts)


class FileAllowList:
    """Decides `/file=` requests. `roots()` and `blocked()` are called per request (live settings);
    relative names are tried under each of `bases` in order."""

    def __init__(
        self,
        roots: Callable[[], Sequence[Root]],
        blocked: Callable[[], Iterable[Path]],
        bases: Sequence[Path],
    ) -> None:
        self._roots = roots
        self._blocked = blocked
        self.bases = [Path(b) for b in bases]

    def check(self, name: str) -> Verdict:
        if not name or "\0" in name:
            return Verdict(400, "Bad file name")
        text = name.replace("\\", "/")  # a Windows-style name means the same folders
        given = Path(text)
        candidates = [given] if given.is_absolute() else [base / given for base in self.bases]
        roots = [Root(_real(r.path), r.kind) for r in self._roots()]
        blocked = {_real(p) for p in self._blocked()}
        verdicts = [self._checked(Path(os.path.normpath(c)), roots, blocked) for c in candidates]
        for status in (200, 404):  # the first that exists, else the first allowed one, else refused
            for verdict in verdicts:
                if verdict.status == status:
                    return verdict if status == 200 else Verdict(404, f"File not found: {name}.")
        return Verdict(403, f"File not allowed: {name}.")

    def _checked(self, lexical: Path, roots: list[Root], blocked: set[Path]) -> Verdict:
        try:
            return self._check_one(lexical, roots, blocked)
        except (OSError, ValueError):  # a name the file system refuses (too long, ...): nothing there
            return Verdict(403 if not any(_inside(lexical, r.path) for r in roots) else 404)

    def _check_one(self, lexical: Path, roots: list[Root], blocked: set[Path]) -> Verdict:
        real = _real(lexical)
        root = next((r for r in roots if _inside(real, r.path)), None)
        if root is None:
            return Verdict(403)
        lexical_root = next((r.path for r in roots if _inside(lexical, r.path)), None)
        if _hidden_below(real, root.path) or (
            lexical_root is not None and _hidden_below(lexical, lexical_root)
        ):
            return Verdict(403)
        if real in blocked or real.name.lower() in BLOCKED_NAMES or real.suffix.lower() in BLOCKED_SUFFIXES:
            return Verdict(403)
        if real.is_dir():
            return Verdict(403)
        kind = media_type(real)
        if root.kind == "previews" and real.suffix.lower() not in PREVIEW_SUFFIXES:
            return Verdict(403)
        if not real.is_file():
            return Verdict(404)
        if not os.access(real, os.R_OK):  # unreadable to Sumi: not a file it may hand out
            return Verdict(403)
        download = not root.trusted and kind not in INLINE_SAFE_TYPES
        return Verdict(200, path=real, media_type=kind, download=download)


def gradio_temp_dir() -> Path:
    """Where Gradio keeps uploaded and shown files (`GRADIO_TEMP_DIR`, else <tmp>/gradio)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def app_roots(
    paths: Any,
    options: Any,
    args: Any,
    extensions: Callable[[], Iterable[Path]],
    cwd: Path | None = None,
    preview_dirs: Callable[[], Iterable[Path]] = tuple,
) -> list[Root]:
    """The roots of a running App: its `DataPaths`, settings (`Options`), flags and enabled extensions;
    `preview_dirs`: more folders of card previews (the extensions' extra networks pages name theirs)."""
    roots = [Root(Path(p), "extension") for p in extensions()]
    repo, data = Path(paths.repo_root), Path(paths.data_dir)
    assets = [repo / "javascript", repo / "html", repo / "localizations", data / "localizations"]
    assets += [data / "user.css", data / "user.js"]  # A1111 links the user's own page files by file=
    localizations_dir = getattr(args, "localizations_dir", None)
    if localizations_dir:
        assets.append(Path(localizations_dir).expanduser())
    roots += [Root(p, "assets") for p in assets]
    outputs = [Path(paths.outputs_dir)]
    for key in OUTDIR_KEYS:
        value = getattr(options, key, "") or ""
        if isinstance(value, str) and value.strip():
            outputs.append(paths.resolve(value))
    temp_dir = getattr(options, "temp_dir", "") or ""
    if isinstance(temp_dir, str) and temp_dir.strip():
        outputs.append(paths.resolve(temp_dir))
    outputs.append(gradio_temp_dir())
    outputs += [base / "tmp" for base in (data, repo, cwd or Path.cwd())]
    roots += [Root(p, "outputs") for p in outputs]
    # read live: extensions append to cmd_opts.gradio_allowed_path when they load (A1111 reads it at launch)
    roots += [
        Root(Path(str(p)).expanduser(), "allowed")
        for p in getattr(args, "gradio_allowed_path", None) or []
        if p
    ]
    for field in PREVIEW_ROOT_FIELDS:
        value = getattr(paths, field)
        for folder in value if isinstance(value, tuple) else (value,):
            roots.append(Root(Path(folder), "previews"))
    roots += [Root(Path(folder), "previews") for folder in preview_dirs()]
    return roots


def app_blocked(paths: Any, args: Any) -> list[Path]:
    """Files never served even inside a root: settings, caches, logins, TLS keys."""
    files = [paths.config_file, paths.ui_config_file, paths.cache_file, paths.params_file, paths.styles_file]
    files += [Path(str(v)).expanduser() for v in (getattr(args, a, None) for a in ARG_FILES) if v]
    return [Path(f) for f in files]


def allow_list(
    paths: Any,
    options: Any,
    args: Any,
    extension_dirs: Callable[[], Iterable[Path]],
    cwd: Path | None = None,
    kinds: frozenset[str] | None = None,
    preview_dirs: Callable[[], Iterable[Path]] = tuple,
) -> FileAllowList:
    """The `/file=` rules of a running App (relative names: the data dir, the app folder, then the
    working folder, `cwd` or the process's); with `kinds`, only the roots of those kinds."""
    here = Path(cwd) if cwd is not None else Path.cwd()
    bases = list(dict.fromkeys([Path(paths.data_dir), Path(paths.repo_root), here]))

    def roots() -> list[Root]:
        every = app_roots(paths, options, args, extension_dirs, here, preview_dirs)
        return every if kinds is None else [r for r in every if r.kind in kinds]

    return FileAllowList(
        roots,
        lambda: app_blocked(paths, args),
        bases,
    )


def web_path(path: Path | str, script_path: Path | str) -> str:
    """A1111's `webpath`: the `file=` URL (relative to the page) of a file to load in the page,
    relative to the app folder when inside it, else absolute, with its mtime as the query (a changed
    file is fetched again)."""
    real = Path(os.path.abspath(path))
    base = Path(os.path.abspath(script_path))
    name = real.relative_to(base).as_posix() if _inside(real, base) else real.as_posix()
    return f"file={name}?{os.path.getmtime(real)}"
