"""Try real A1111 extensions, unchanged, against Sumi as a new user would (not CI: needs their sources).

    python tools/try_extensions.py [--mirror-root /work/.mirror] [--only NAME ...] [--update-docs]

For each (repo, commit) of tools/extensions_to_try.json the sources come from a local mirror (a bare or
working git repository at `<mirror-root>/<owner>+<name>/repo`, or `<source-dir>/<name>`), are cloned into
`extensions/` of a fresh data folder and checked out at the pinned commit; no network is used. Then ONE
Sumi server (`webui.py --api`, the tiny demo model) starts with all of them, from a separate virtual
environment that sees the installed packages (`--system-site-packages`, kept in `--venv` so installs are
reused by the next run), so whatever an install.py installs lands there and never in the real
environment. install.py's pip reaches the configured package index as a user's would; with
`--offline-installs` it may not (`PIP_NO_INDEX=1`; the machine's find-links still apply). An extension
that stops Sumi from starting is named, left out, and the others are tried again.

Recorded per extension (tools/extension_checks.py holds the per-extension parts):
  start    Sumi started with it (and its core packages were unchanged afterwards)
  install  its install.py outcome (from the server log), "-" when it has none
  load     no import/ui/callback error naming it in the log, no page error from its scripts
  ui       its tab / accordion / element is visible in Chromium
  core     one scripted check of what the extension is for, through the page or the API
Sumi's own txt2img (API and page) is checked with everything loaded; an extension that fails with the
others is tried again alone (one more server) to tell interference from its own failure.

Output: JSON (`--json`, default <work>/results.json), a markdown table on stdout, and with
`--update-docs` the "Tried for real" section of docs/extensions.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tools import extension_checks as checks  # noqa: E402

LIST_FILE = Path(__file__).with_name("extensions_to_try.json")
DOCS_FILE = REPO / "docs" / "extensions.md"
DOCS_BEGIN = "<!-- tried-for-real:begin -->"
DOCS_END = "<!-- tried-for-real:end -->"
START_TIMEOUT_S = 900.0  # the first run installs every requirement into the venv
CORE_PACKAGES = (
    "torch",
    "transformers",
    "diffusers",
    "gradio",
    "fastapi",
    "pydantic",
    "numpy",
    "safetensors",
)
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) ")


@dataclass
class Entry:
    name: str
    repo: str
    commit: str
    category: str
    broken_on_a1111: str | None = None  # how it fails on A1111 1.10 itself, with the upstream report
    gradio3_only: str | None = None  # why it cannot run on a Gradio 4+ WebUI at all, with the evidence
    pinned: str | None = None  # why the pin is an older commit than the repository's newest


@dataclass
class Result:
    name: str
    repo: str
    commit: str
    category: str
    cloned: bool = False
    install: str = "-"  # "-", "ok", "failed"
    load: bool | None = None
    ui: bool | None = None
    core: bool | None = None
    alone: dict[str, Any] | None = None  # the result when tried alone, for one that failed with the others
    details: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    not_tried_here: str | None = None  # why this run cannot try it fairly (network, files the mirror lacks)

    @property
    def works(self) -> bool:
        return bool(self.cloned and self.load and self.ui is not False and self.core is not False)


# -- sources --------------------------------------------------------------------------------------------------


def load_list(path: Path, only: Sequence[str]) -> list[Entry]:
    entries = [Entry(**e) for e in json.loads(path.read_text())["extensions"]]
    if only:
        unknown = set(only) - {e.name for e in entries}
        if unknown:
            raise SystemExit(f"--only: not in {path.name}: {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e.name in only]
    return entries


def source_of(entry: Entry, mirror_root: Path | None, source_dir: Path | None) -> Path | None:
    """A local git repository holding the extension's commit, or None."""
    owner, name = entry.repo.split("/")
    candidates = []
    if source_dir is not None:
        candidates += [source_dir / name, source_dir / f"{owner}+{name}"]
    if mirror_root is not None:
        candidates += [mirror_root / f"{owner}+{name}" / "repo", mirror_root / f"{owner}+{name}"]
    for path in candidates:
        if (path / ".git").exists() or (path / "HEAD").is_file():
            return path
    return None


def clone(entry: Entry, source: Path, extensions_dir: Path) -> tuple[Path, list[str]]:
    """`git clone` from the local source, checked out at the pinned commit, origin set to GitHub; the
    folder and the files the source lacks (mirror snapshots leave out files of 4 MiB and more: those
    paths are left out of the checkout, and the report names them)."""
    target = extensions_dir / entry.repo.split("/")[1]
    git = ["git", "-c", "protocol.file.allow=always", "-c", "advice.detachedHead=false"]
    subprocess.run([*git, "clone", "-q", "--no-checkout", str(source), str(target)], check=True)
    missing = missing_blobs(target, entry.commit)
    if missing:
        patterns = ["/*"] + ["!/" + glob_escape(path) for path in missing]
        subprocess.run(
            [*git, "-C", str(target), "sparse-checkout", "set", "--no-cone", *patterns], check=True
        )
    # git warns of every missing blob while it writes the index; the checkout itself succeeds
    subprocess.run([*git, "-C", str(target), "checkout", "-q", entry.commit], check=True, capture_output=True)
    for path in missing:  # the folders stay, as in a full checkout (install.py files list them)
        (target / path).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "-C", str(target), "remote", "set-url", "origin", f"https://github.com/{entry.repo}"],
        check=True,
    )
    return target, missing


def missing_blobs(repo: Path, commit: str) -> list[str]:
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "-z", commit], capture_output=True, check=True
    ).stdout.decode(errors="surrogateescape")
    blobs = {}
    for item in filter(None, listing.split("\0")):
        meta, path = item.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob":
            blobs[sha] = blobs.get(sha, []) + [path]
    check = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch-check"],
        input="\n".join(blobs).encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(
        p for line in check.splitlines() if line.endswith(" missing") for p in blobs[line.split()[0]]
    )


def glob_escape(path: str) -> str:
    return re.sub(r"([*?\[\]\\!#])", r"\\\1", path)


# -- the server -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_venv(path: Path) -> Path:
    """A virtual environment over the installed packages, without its own pip (`python -m pip` runs the
    installed pip, which then installs into this environment)."""
    if not (path / "bin" / "python").exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)], check=True
        )
    return path / "bin" / "python"


def core_versions(python: Path) -> dict[str, str | None]:
    code = (
        "import importlib.metadata as m, json\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        f"print(json.dumps({{n: v(n) for n in {list(CORE_PACKAGES)!r}}}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@dataclass
class Server:
    python: Path
    data_dir: Path
    log_path: Path
    online_installs: bool
    skip_install: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        env = dict(os.environ, PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False")
        if not self.online_installs:
            env["PIP_NO_INDEX"] = "1"
        command = [str(self.python), str(self.data_dir / "webui.py"), "--api", "--port", str(self.port)]
        command += ["--skip-install"] if self.skip_install else []
        started = time.monotonic()
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=self.data_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        while time.monotonic() - started < START_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"Sumi exited with code {self.process.returncode} at start")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/internal/ping", timeout=2).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.3)
        raise RuntimeError(f"Sumi did not answer within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(AttributeError):
            self._log.close()

    def log_records(self) -> list[tuple[str, str]]:
        """The server log as (level, text) records; a record runs until the next timestamped line."""
        records: list[tuple[str, str]] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = LOG_RECORD.match(line)
            if match:
                records.append((match.group(1), line))
            elif records:
                records[-1] = (records[-1][0], records[-1][1] + "\n" + line)
            else:
                records.append(("OUTPUT", line))
        return records


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- one round: a data folder, a server, a browser --------------------------------------------------------------


def copy_sumi(target: Path) -> Path:
    """The current Sumi tree (tracked and new files, not ignored ones) copied to `target`: a fresh install
    whose own folders (extensions/, models/, outputs/, config.json) are the user's, as after `git clone`.
    Extensions are cloned into its extensions/ and it runs from there, as A1111 users run theirs (several
    extensions assume the web UI's folder is the working directory and holds extensions/)."""
    listing = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def prepare_data_dir(root: Path, entries: list[Entry], sources: dict[str, Path]) -> dict[str, Path]:
    extensions = root / "extensions"
    extensions.mkdir(parents=True, exist_ok=True)
    dirs = {}
    for entry in entries:
        if entry.name in sources:
            dirs[entry.name], missing = clone(entry, sources[entry.name], extensions)
            if missing:
                MISSING[entry.name] = missing
            checks.prepare(entry.name, dirs[entry.name], root)
    return dirs


MISSING: dict[str, list[str]] = {}  # per extension: files its mirror snapshot lacks


def mentions(text: str, ext_dir: Path) -> bool:
    """Whether a log record or page error is about the extension in `ext_dir`."""
    name = ext_dir.name
    return f"extensions/{name}/" in text or f"extension {name}" in text or f"{name}:" in text


def judge_log(results: dict[str, Result], dirs: dict[str, Path], server: Server) -> None:
    """install.py outcome and load errors per extension, from the server's log."""
    for level, text in server.log_records():
        if level not in ("WARNING", "ERROR", "CRITICAL"):
            continue
        for name, ext_dir in dirs.items():
            # the record's own line and its traceback's file lines (print()s of other extensions can follow)
            own = "\n".join(
                line for i, line in enumerate(text.splitlines()) if i == 0 or line.startswith("  File ")
            )
            if not mentions(own, ext_dir):
                continue
            result = results[name]
            first = text.splitlines()[0][24:]
            if "install.py" in text and level == "ERROR":
                result.install = "failed"
                result.details.append("install.py: " + last_error_line(text))
            elif level in ("ERROR", "CRITICAL") or "failed" in text:
                result.load = False
                result.details.append(
                    "log: " + first[:300] + (" / " + last_error_line(text) if "\n" in text else "")
                )
    for name, ext_dir in dirs.items():
        if (ext_dir / "install.py").is_file() and results[name].install == "-":
            results[name].install = "ok"


def culprit(log_tail: str, dirs: dict[str, Path]) -> str | None:
    """The extension whose file is named last in the traceback that stopped the server."""
    last, where = None, -1
    for name, ext_dir in dirs.items():
        position = log_tail.rfind(f"extensions/{ext_dir.name}/")
        if position > where:
            last, where = name, position
    return last


def last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line) or "Error:" in line:
            return line[:300]
    return lines[-1][:300] if lines else ""


def run_round(
    entries: list[Entry],
    sources: dict[str, Path],
    work: Path,
    python: Path,
    args: argparse.Namespace,
    label: str,
) -> tuple[dict[str, Result], dict[str, Any]]:
    """One data folder with `entries` installed, one server, every check; the results and Sumi's own."""
    from playwright.sync_api import sync_playwright

    root = work / label
    shutil.rmtree(root, ignore_errors=True)
    results = {e.name: Result(e.name, e.repo, e.commit, e.category) for e in entries}
    for e in entries:
        if e.pinned:
            results[e.name].details.append(f"pinned: {e.pinned}")
    dirs = prepare_data_dir(copy_sumi(root / "sumi"), entries, sources)
    for name in dirs:
        results[name].cloned = True
    # a round that tries one extension alone skips install.py: the combined round ran it into the same venv
    server = Server(python, root / "sumi", root / "server.log", not args.offline_installs, label != "all")
    sumi: dict[str, Any] = {"started": False}
    before = core_versions(python)
    try:
        started = time.monotonic()
        server.start()
        sumi.update(started=True, start_s=round(time.monotonic() - started, 1))
    except RuntimeError as exc:
        server.stop()
        sumi["error"] = f"{exc}: {last_error_line(tail(server.log_path, 60))}"
        if server.process is not None and (server.process.returncode or 0) > 0:
            sumi["culprit"] = culprit(tail(server.log_path, 200), dirs)  # it exited: who stopped it
        return results, sumi
    try:
        ctx = checks.Context(server.url, root / "sumi", dirs)
        sumi["txt2img_api"] = checks.sumi_txt2img(ctx)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                headless=True,
            )
            try:
                ctx.open_browser(browser)
                sumi["page_loads"] = ctx._page is not None
                if ctx._page is None:
                    sumi["page_problem"] = ctx.page_problem
                sumi["txt2img_page"] = checks.sumi_generate_in_page(ctx)
                late = [e for e in entries if e.name in checks.LATE]
                for entry in [e for e in entries if e.name not in checks.LATE] + late:
                    if entry.name in dirs:
                        run_checks(ctx, results[entry.name])
                sumi["page_errors_unattributed"] = ctx.unattributed_page_errors()
            finally:
                browser.close()
        judge_log(results, dirs, server)
        for result in results.values():
            if result.load is None and result.cloned:
                result.load = True
        sumi["after_checks_txt2img_api"] = checks.sumi_txt2img(ctx)
    finally:
        server.stop()
    after = core_versions(python)
    sumi["core_packages_changed"] = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    return results, sumi


def run_checks(ctx: checks.Context, result: Result) -> None:
    for kind in ("ui", "core"):
        try:
            ok, detail = checks.run(kind, result.name, ctx)
        except checks.PageUnavailable as exc:
            ok, detail = False, str(exc)
        except Exception as exc:  # a check that cannot finish is a failure of that item, with its reason
            ok, detail = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            if os.environ.get("TRY_EXTENSIONS_DEBUG"):
                traceback.print_exc()
        setattr(result, kind, ok)
        if detail:
            result.details.append(f"{kind}: {detail}")
    for error in ctx.page_errors_of(result.name):
        result.load = False
        result.details.append(f"page error: {error[:300]}")


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# -- causes ------------------------------------------------------------------------------------------------------

CAUSES = [  # (regex over the details, cause); first match wins per detail line
    (
        r"No module named '(ldm|sgm|k_diffusion)|sd_hijack|sd_samplers_cfg_denoiser|CFGDenoiser|"
        r"create_sampler|model_wrap_cfg|networks\.|No module named '(networks|lora|network)'",
        "denoiser internals",
    ),
    (
        r"gr\.Box|has no attribute '(Box|inputs|outputs|update|style)'|unexpected keyword argument|\.style\(|"
        r"_js|gradio|Gradio|not in the list of choices|not a valid choice",
        "Gradio 3 API",
    ),
    (r"/file=|404", "/file= route"),
    (r"No module named|ModuleNotFoundError|pip|install", "missing dependency (offline install)"),
    (
        r"DOMContentLoaded|onUiLoaded|is not defined|is not a function|Cannot read properties",
        "page contract (JS)",
    ),
    (r"Processed|ui_config|ui-config|localization", "A1111 details"),
]


NETWORK_FAILURE = re.compile(
    r"NameResolutionError|Failed to resolve|Temporary failure in name resolution|Max retries exceeded|"
    r"urlopen error|Network is unreachable|ConnectionError: HTTPSConnectionPool"
)


def why_not_tried_here(result: Result, missing: list[str]) -> str | None:
    """Why a failure says nothing about Sumi: the extension reached for the network (this run has none;
    A1111 offline fails the same way), or for a file the local mirror snapshot left out (a full clone
    has it). None when it was tried fairly."""
    if result.works:
        return None
    for line in result.details:
        if NETWORK_FAILURE.search(line):
            return "needs the network at start (this run is offline; so would A1111 be)"
        for path in missing:
            if path in line:
                return f"the local mirror lacks {path} (a clone from GitHub has it)"
    return None


def judge_causes(results: dict[str, Result], entries: list[Entry]) -> None:
    """Each result's causes, and whether its failure says anything about Sumi (`not_tried_here`)."""
    for entry in entries:
        result = results[entry.name]
        result.causes = classify(result)
        result.not_tried_here = why_not_tried_here(result, MISSING.get(result.name, []))
        if entry.broken_on_a1111 and not result.works and result.not_tried_here is None:
            result.not_tried_here = f"fails on A1111 1.10 too: {entry.broken_on_a1111}"
        if entry.gradio3_only and not result.works and result.not_tried_here is None:
            result.not_tried_here = f"made for Gradio 3 only: {entry.gradio3_only}"


def classify(result: Result) -> list[str]:
    causes = []
    for line in result.details:
        for pattern, cause in CAUSES:
            if re.search(pattern, line):
                causes.append(cause)
                break
        else:
            if not line.startswith(("ui: ok", "core: ok")):
                causes.append("other")
    return sorted(set(causes))


# -- report --------------------------------------------------------------------------------------------------------


def mark(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[value]


def markdown(results: list[Result], sumi: dict[str, Any], when: str, sumi_commit: str, offline: bool) -> str:
    working = sum(r.works for r in results)
    tried = [r for r in results if r.not_tried_here is None]
    untried = [r.name for r in results if r.not_tried_here is not None]
    installs = "installs offline" if offline else "installs from the package index"
    share = f" ({100 * working / len(tried):.0f} %)" if tried else ""
    lines = [
        f"Run {when} on Sumi `{sumi_commit}` by `python tools/try_extensions.py` (one server with all of "
        f"them, demo model, {installs}): **{working} of the {len(tried)} tried work unchanged**{share} "
        "(load, show their UI, do their job; n/a = needs a download or hardware this run cannot have)"
        + (f"; not tried fairly here: {', '.join(untried)} (see their notes)." if untried else "."),
        "",
        "| extension | commit | cat. | install.py | loads | UI | core function | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        notes = "; ".join(d.replace("|", "\\|") for d in r.details)[:400]
        if r.alone is not None:
            notes = f"alone: {'works' if r.alone.get('works') else 'same failure'}; " + notes
        if r.not_tried_here is not None:
            notes = f"**not tried fairly here: {r.not_tried_here}**; " + notes
        lines.append(
            f"| [{r.name}](https://github.com/{r.repo}) | `{r.commit[:7]}` | {r.category} | {r.install} | "
            f"{mark(r.load)} | {mark(r.ui)} | {mark(r.core)} | {notes} |"
        )
    lines += [
        "",
        f"Sumi with all of them: started in {sumi.get('start_s')} s, txt2img through the API "
        f"{'works' if sumi.get('txt2img_api') else '**fails**'}, in the page "
        f"{'works' if sumi.get('txt2img_page') else '**fails**'}, core packages "
        f"{'unchanged' if not sumi.get('core_packages_changed') else '**changed**: ' + str(sumi['core_packages_changed'])}.",
    ]
    if sumi.get("stopped_by"):
        lines.append(
            f"Stopped Sumi from starting (left out, the others tried again): {', '.join(sumi['stopped_by'])}."
        )
    if sumi.get("page_broken_by"):
        lines.append(
            f"The page never loaded with all of them; it did without: {', '.join(sumi['page_broken_by'])}."
        )
    if sumi.get("page_problem"):
        lines.append(f"Page: {sumi['page_problem']}.")
    return "\n".join(lines) + "\n"


def update_docs(table: str) -> None:
    text = DOCS_FILE.read_text()
    block = f"{DOCS_BEGIN}\n{table}{DOCS_END}"
    if DOCS_BEGIN in text and DOCS_END in text:
        text = text[: text.index(DOCS_BEGIN)] + block + text[text.index(DOCS_END) + len(DOCS_END) :]
    else:
        text = text.rstrip("\n") + "\n\n## Tried for real\n\n" + block + "\n"
    DOCS_FILE.write_text(text)


# -- main ----------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--list", type=Path, default=LIST_FILE, help="the (repo, commit) list")
    parser.add_argument(
        "--mirror-root", type=Path, default=Path(os.environ.get("SUMI_MIRROR", "/work/.mirror"))
    )
    parser.add_argument("--source-dir", type=Path, help="a folder of git clones named after the repos")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sumi-try-extensions",
        help="work folder: data folders and server logs of the last run",
    )
    parser.add_argument("--only", nargs="*", default=[], help="only these extensions (names from the list)")
    parser.add_argument("--json", type=Path, help="write the results here (default <work>/results.json)")
    parser.add_argument(
        "--update-docs", action="store_true", help="rewrite 'Tried for real' in docs/extensions.md"
    )
    parser.add_argument(
        "--offline-installs", action="store_true", help="install.py's pip may not reach its package index"
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path.home() / ".cache" / "sumi-try-extensions" / "venv",
        help="the throw-away environment Sumi runs in (kept between runs: installs are reused)",
    )
    parser.add_argument("--no-alone", action="store_true", help="do not retry failures alone")
    parser.add_argument(
        "--alone-budget",
        type=float,
        default=600.0,
        help="seconds since the start after which no more extensions are retried alone",
    )
    return parser.parse_args(argv)


def retry_without_page_breakers(
    active: list[Entry],
    results: dict[str, Result],
    sumi: dict[str, Any],
    sources: dict[str, Path],
    work: Path,
    python: Path,
    args: argparse.Namespace,
) -> tuple[dict[str, Result], dict[str, Any]]:
    """The page never became usable. Suspects: extensions whose Python part failed to load while their
    page scripts still ran (such scripts wait for UI that is not there). The round is run again without
    them; when the page loads then, they are named as what broke it and the others' results come from
    that round."""
    extensions = work / "all" / "sumi" / "extensions"
    suspects = [
        e.name
        for e in active
        if results[e.name].load is False and any((extensions / e.repo.split("/")[1]).glob("javascript/*.js"))
    ]
    if not suspects:
        return results, sumi
    shutil.rmtree(work / "page-broken", ignore_errors=True)
    (work / "all").rename(work / "page-broken")
    rest = [e for e in active if e.name not in suspects]
    again, sumi_again = run_round(rest, sources, work, python, args, "all")
    if not sumi_again.get("page_loads"):
        return results, {**sumi, "page_suspects_not_confirmed": suspects}
    for name in suspects:
        results[name].details.insert(
            0,
            "the page never loaded with it (its Python part had failed, its page scripts ran); it loads without it",
        )
    return {**results, **again}, {**sumi_again, "page_broken_by": suspects}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    begun = time.monotonic()
    entries = load_list(args.list, args.only)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    sources, results_missing = {}, []
    for entry in entries:
        source = source_of(entry, args.mirror_root, args.source_dir)
        if source is None:
            results_missing.append(entry.name)
        else:
            sources[entry.name] = source
    python = make_venv(args.venv or work / "venv")
    checks.SERVER_PYTHON = python  # a check that prepares files with the extension's own packages
    base_before = {n: _version(n) for n in CORE_PACKAGES}
    active, stoppers = list(entries), {}
    while True:  # an extension that stops Sumi from starting is named, left out, and the rest tried again
        results, sumi = run_round(active, sources, work, python, args, "all")
        name = sumi.get("culprit")
        if sumi["started"] or name is None or name in stoppers:
            break
        stoppers[name] = sumi["error"]
        active = [e for e in active if e.name != name]
        shutil.rmtree(work / f"stopped-by-{name}", ignore_errors=True)
        (work / "all").rename(work / f"stopped-by-{name}")  # its log stays for reading
    if sumi["started"] and not sumi.get("page_loads"):
        results, sumi = retry_without_page_breakers(active, results, sumi, sources, work, python, args)
    for entry in entries:
        if entry.name in stoppers:
            result = results[entry.name] = Result(entry.name, entry.repo, entry.commit, entry.category, True)
            result.load = False
            result.details.append(f"stopped Sumi from starting: {stoppers[entry.name]}")
    sumi["stopped_by"] = sorted(stoppers)
    if not args.no_alone:
        for entry in entries:
            result = results[entry.name]
            if not result.cloned or result.works or not sumi.get("started") or entry.name in stoppers:
                continue
            if time.monotonic() - begun > args.alone_budget:
                sumi["alone_skipped"] = sumi.get("alone_skipped", []) + [entry.name]
                continue
            alone, _ = run_round([entry], sources, work, python, args, f"alone-{entry.name}")
            other = alone[entry.name]
            result.alone = {"works": other.works, "load": other.load, "ui": other.ui, "core": other.core}
            result.alone["details"] = other.details
            if other.works:
                result.details.append("works alone: interference from another extension")
    judge_causes(results, entries)
    sumi["base_environment_changed"] = {
        n: [v, _version(n)] for n, v in base_before.items() if v != _version(n)
    }
    sumi["total_s"] = round(time.monotonic() - begun, 1)
    ordered = [results[e.name] for e in entries]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    table = markdown(
        ordered, sumi, time.strftime("%Y-%m-%d", time.gmtime()), commit.stdout.strip(), args.offline_installs
    )
    print(table)
    report = {"sumi": sumi, "extensions": [asdict(r) | {"works": r.works} for r in ordered]}
    json_path = args.json or work / "results.json"
    json_path.write_text(json.dumps(report, indent=1))
    print(f"JSON: {json_path}  ({sumi['total_s']} s)")
    if args.update_docs:
        update_docs(table)
    return 0


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
