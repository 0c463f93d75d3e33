"""Prompt styles: named prompt/negative-prompt snippets kept in A1111's `styles.csv` files.

`StyleDatabase` keeps A1111's names and meanings (`styles`, `reload`, `apply_styles_to_prompt`,
`apply_negative_styles_to_prompt`, `extract_styles_from_prompt`, `save_styles`) so extensions that
use `shared.prompt_styles` keep working. A file is `name,prompt,negative_prompt` (old `name,text` files
are read too), UTF-8 with or without a BOM, and is written back in the same layout: a BOM, that
header, minimal quoting, CRLF line ends, a `.bak` copy of the previous file. Extra columns and rows
whose name starts with `#` are not kept, as in A1111.

Unlike A1111, a file that cannot be read is reported in `warnings` and never overwritten, writes are
atomic, and saving a style rewrites only the file that holds it.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from modules.sumi.util.atomic import write_atomic

log = logging.getLogger(__name__)

FIELDS = ("name", "prompt", "negative_prompt")
PROMPT_TOKEN = "{prompt}"


class PromptStyle(NamedTuple):
    """One style (A1111's tuple: `name, prompt, negative_prompt, path`)."""

    name: str
    prompt: str | None
    negative_prompt: str | None
    path: str | None = None


class StyleFileError(OSError):
    """A styles file that cannot be written (or that Sumi refuses to overwrite)."""


# -- applying and extracting (A1111 semantics) ---------------------------------------------------------
def merge_prompts(style_prompt: str | None, prompt: str) -> str:
    """`{prompt}` in the style is replaced by the prompt; otherwise `prompt, style`, empty parts dropped."""
    style_prompt = style_prompt or ""
    if PROMPT_TOKEN in style_prompt:
        return style_prompt.replace(PROMPT_TOKEN, prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles_to_prompt(prompt: str, styles: Iterable[str | None]) -> str:
    """Apply style texts in order, each to the result of the previous one."""
    for style in styles:
        prompt = merge_prompts(style, prompt)
    return prompt


def extract_style_text_from_prompt(style_text: str | None, prompt: str) -> tuple[bool, str]:
    """Undo `merge_prompts`: (True, prompt without the style) if the style's text is found, else (False, prompt)."""
    if not style_text:
        return True, prompt
    stripped_prompt = prompt.strip()
    stripped_style = style_text.strip()
    if PROMPT_TOKEN in stripped_style:
        left, _, right = stripped_style.partition(PROMPT_TOKEN)
        fits = len(left) + len(right) <= len(stripped_prompt)
        if fits and stripped_prompt.startswith(left) and stripped_prompt.endswith(right):
            return True, stripped_prompt[len(left) : len(stripped_prompt) - len(right)]
    elif stripped_prompt.endswith(stripped_style):
        rest = stripped_prompt[: len(stripped_prompt) - len(stripped_style)]
        return True, rest[:-2] if rest.endswith(", ") else rest
    return False, prompt


def extract_original_prompts(style: PromptStyle, prompt: str, negative_prompt: str) -> tuple[bool, str, str]:
    """(True, prompt, negative) with the style's text removed from both, if both hold it."""
    if not style.prompt and not style.negative_prompt:
        return False, prompt, negative_prompt
    matched, new_prompt = extract_style_text_from_prompt(style.prompt, prompt)
    if not matched:
        return False, prompt, negative_prompt
    matched, new_negative = extract_style_text_from_prompt(style.negative_prompt, negative_prompt)
    if not matched:
        return False, prompt, negative_prompt
    return True, new_prompt, new_negative


# -- files -------------------------------------------------------------------------------------------
def expand_style_paths(patterns: Sequence[str | Path]) -> tuple[Path, list[Path]]:
    """(default save target, every styles file) for `--styles-file` entries, with A1111's rules.

    A `*` or `?` in the file part makes an entry a glob (the folder part is taken literally). The
    default target is the first entry, or for a glob its first match, else `styles.csv` beside it.
    """
    files: list[Path] = []
    default: Path | None = None
    for pattern in patterns:
        path = Path(os.path.abspath(Path(pattern).expanduser()))
        if "*" in path.name or "?" in path.name:
            matches = sorted(p for p in path.parent.glob(path.name) if p.is_file())
            if default is None:
                default = matches[0] if matches else path.parent / "styles.csv"
                files.append(default)
            files.extend(matches)
        else:
            default = default or path
            files.append(path)
    if default is None:
        raise ValueError("no styles file given")
    return default, list(dict.fromkeys(files))


def read_styles_csv(path: Path) -> list[PromptStyle]:
    """The styles of one file; raises ValueError (with the reason) for a file that is not a styles CSV."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, skipinitialspace=True)
            if reader.fieldnames is None:
                return []  # an empty file
            if "name" not in reader.fieldnames:
                raise ValueError(
                    f"the first line must be a header with a 'name' column, not {reader.fieldnames}"
                )
            text_column = "prompt" if "prompt" in reader.fieldnames else "text"
            styles = []
            for row in reader:
                name = row.get("name") or ""
                if not name or name.startswith("#"):
                    continue
                prompt = row.get(text_column) or ""
                styles.append(PromptStyle(name, prompt, row.get("negative_prompt") or "", str(path)))
            return styles
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise ValueError(f"it is not valid CSV ({exc})") from exc


def _csv_field(value: str) -> str:
    """Minimal CSV quoting, plus quotes for a leading space (which A1111's reader would skip)."""
    if any(c in value for c in ',"\r\n') or value[:1].isspace():
        return '"' + value.replace('"', '""') + '"'
    return value


def styles_csv_text(styles: Iterable[PromptStyle]) -> str:
    lines = [",".join(FIELDS)]
    for style in styles:
        values = (style.name, style.prompt or "", style.negative_prompt or "")
        lines.append(",".join(_csv_field(v) for v in values))
    return "".join(line + "\r\n" for line in lines)


def write_styles_csv(path: Path, styles: Iterable[PromptStyle]) -> None:
    """Write atomically, keeping the previous file as `<name>.bak` (A1111 keeps one too)."""
    data = styles_csv_text(styles).encode("utf-8-sig")
    try:
        if path.is_file():
            shutil.copyfile(path, path.with_name(path.name + ".bak"))
        write_atomic(path, data)
    except OSError as exc:
        raise StyleFileError(f"Could not save styles to {path}: {exc}") from exc


# -- the database ----------------------------------------------------------------------------------
class StyleDatabase:
    """Every style from the styles files; later files override earlier ones with the same name."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [str(p) for p in paths]
        self.default_path, self.all_styles_files = expand_style_paths(self.paths)
        self.no_style = PromptStyle("None", "", "", None)
        self.styles: dict[str, PromptStyle] = {}
        self.warnings: list[str] = []
        self._unreadable: set[str] = set()
        self._loaded: dict[str, dict[str, PromptStyle]] = {}  # each file's own styles, in file order
        self._lock = threading.RLock()
        self.reload()

    # -- reading -------------------------------------------------------------------------------------
    def reload(self) -> list[str]:
        """Read every file again (globs are expanded again); returns this read's warnings."""
        with self._lock:
            self.default_path, self.all_styles_files = expand_style_paths(self.paths)
            styles: dict[str, PromptStyle] = {}
            loaded: dict[str, dict[str, PromptStyle]] = {}
            warnings, unreadable = [], set()
            for path in self.all_styles_files:
                if not path.is_file():
                    continue  # a missing file is an empty one; saving creates it
                try:
                    loaded[str(path)] = {style.name: style for style in read_styles_csv(path)}
                    styles.update(loaded[str(path)])
                except (ValueError, OSError) as exc:
                    unreadable.add(str(path))
                    warnings.append(f"Styles file {path} could not be read and is left untouched: {exc}")
            self.styles, self.warnings, self._unreadable, self._loaded = styles, warnings, unreadable, loaded
        for warning in warnings:
            log.warning(warning)
        return warnings

    def load_from_csv(self, path: str | Path) -> None:
        """Add the styles of one more file (A1111 name)."""
        with self._lock:
            for style in read_styles_csv(Path(path)):
                self.styles[style.name] = style

    def names(self) -> list[str]:
        return list(self.styles)

    def unknown(self, names: Iterable[str]) -> list[str]:
        """The names that are not styles (A1111 ignores them when applying)."""
        return [name for name in names if name not in self.styles]

    def get_style_prompts(self, styles: Iterable[str]) -> list[str | None]:
        return [self.styles.get(name, self.no_style).prompt for name in styles]

    def get_negative_style_prompts(self, styles: Iterable[str]) -> list[str | None]:
        return [self.styles.get(name, self.no_style).negative_prompt for name in styles]

    def apply_styles_to_prompt(self, prompt: str, styles: Iterable[str]) -> str:
        return apply_styles_to_prompt(prompt, self.get_style_prompts(styles))

    def apply_negative_styles_to_prompt(self, prompt: str, styles: Iterable[str]) -> str:
        return apply_styles_to_prompt(prompt, self.get_negative_style_prompts(styles))

    def extract_styles_from_prompt(self, prompt: str, negative_prompt: str) -> tuple[list[str], str, str]:
        """(style names, prompt, negative) with the text of every style found taken out (for paste)."""
        found: list[str] = []
        candidates = list(self.styles.values())
        while True:
            for style in candidates:
                matched, new_prompt, new_negative = extract_original_prompts(style, prompt, negative_prompt)
                if matched:
                    prompt, negative_prompt = new_prompt, new_negative
                    candidates.remove(style)
                    found.append(style.name)
                    break
            else:
                return list(reversed(found)), prompt, negative_prompt

    # -- writing -------------------------------------------------------------------------------------
    def save_style(self, name: str, prompt: str, negative_prompt: str) -> PromptStyle:
        """Add or replace a style and write its file (an existing style stays in its own file)."""
        name = name.strip()
        if not name:
            raise ValueError("A style needs a name")
        with self._lock:
            old = self.styles.get(name)
            style = PromptStyle(
                name, prompt or "", negative_prompt or "", old.path if old else str(self.default_path)
            )
            self.styles[name] = style
            try:
                self._write(Path(style.path or self.default_path))
            except Exception:
                if old is None:
                    del self.styles[name]
                else:
                    self.styles[name] = old
                raise
            return style

    def delete_style(self, name: str) -> None:
        with self._lock:
            old = self.styles.pop(name, None)
            if old is None:
                return
            try:
                self._write(Path(old.path or self.default_path))
            except Exception:
                self.styles[name] = old
                raise

    def save_styles(self, path: str | Path | None = None) -> None:
        """Write every styles file from memory (A1111 name; `path` is ignored, as in A1111)."""
        del path
        with self._lock:
            targets = {str(self.default_path)} | {s.path for s in self.styles.values() if s.path}
            for target in sorted(targets - self._unreadable):
                self._write(Path(target))

    def _write(self, path: Path) -> None:
        if str(path) in self._unreadable:
            raise StyleFileError(f"Styles file {path} could not be read, so Sumi will not overwrite it")
        for style in list(self.styles.values()):  # styles added by code without a file go to the default
            if not style.path:
                self.styles[style.name] = style._replace(path=str(self.default_path))
        key = str(path)
        own = {name: style for name, style in self.styles.items() if style.path == key}
        before = self._loaded.get(key, {})
        # a style hidden by a same-named one from a later file stays in this file (A1111 would drop it)
        hidden = {name: style for name, style in before.items() if name in self.styles and name not in own}
        order = [*before, *(name for name in own if name not in before)]
        rows = [own.get(name) or hidden[name] for name in order if name in own or name in hidden]
        write_styles_csv(path, rows)
        self._loaded[key] = {style.name: style for style in rows}
