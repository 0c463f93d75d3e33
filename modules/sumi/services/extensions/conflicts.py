"""Extensions asking for other versions of Sumi's core packages: found, named, and reported.

Three places tell what an extension asks for:
* its `requirements.txt` (read when the extensions are listed; nothing is installed from it here),
* the arguments of `launch.run_pip(...)` in its install.py (a core requirement Sumi's version does not
  satisfy is taken out of the pip command before pip runs, so the rest still installs),
* pip's resolver output ("The conflict is caused by: ... depends on transformers<5"), for what a
  dependency of a dependency asks for.

install.py runs in a subprocess; `launch.run_pip` there appends what it found, one JSON object a line,
to the file named by `SUMI_PIP_REPORT` (set by `install.run_python_script`, with the extension's
name in `SUMI_EXTENSION`), which the App reads back after the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REPORT_ENV = "SUMI_PIP_REPORT"
EXTENSION_ENV = "SUMI_EXTENSION"
PIP_REQUIREMENT_COMMANDS = ("install", "download", "wheel")
# pip options that take a value (the value is not a requirement); -r/--requirement is handled apart
_VALUE_OPTIONS = frozenset(
    {
        "-c", "--constraint", "-e", "--editable", "-i", "--index-url", "--extra-index-url", "-f",
        "--find-links", "-t", "--target", "--prefix", "--root", "--platform", "--python-version",
        "--implementation", "--abi", "--src", "--upgrade-strategy", "--progress-bar", "--global-option",
        "--config-settings", "-C", "--no-binary", "--only-binary", "--trusted-host", "--cache-dir",
        "--log", "--proxy", "--timeout", "--retries", "--exists-action", "--cert", "--client-cert",
        "--report", "-d", "--dest", "--use-feature", "--use-deprecated", "--python",
        "--root-user-action", "--keyring-provider", "--log-file", "--build-option", "--install-option",
    }
)  # fmt: skip
_CAUSE_USER = re.compile(r"^The user requested (?!\(constraint\))(?P<req>.+)$")
_CAUSE_DEP = re.compile(r"^(?P<who>\S+ \S+) depends on (?P<req>.+)$")


@dataclass(frozen=True)
class Conflict:
    """`extension` asked for `asked` (found in `source`); Sumi keeps `package` at `kept`."""

    extension: str
    package: str
    asked: str
    kept: str
    source: str

    def message(self) -> str:
        who = f"Extension {self.extension}" if self.extension else "An extension"
        if self.kept.startswith("=="):
            return f"{who} asked for {self.asked} ({self.source}); Sumi keeps {self.package} {self.kept[2:]}"
        return f"{who} asked for {self.asked} ({self.source}); no {self.package} is known to work with Sumi's torch"

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Conflict | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{k: str(data[k]) for k in ("extension", "package", "asked", "kept", "source")})
        except KeyError:
            return None


def conflict_with(requirement: str, pins: dict[str, str]) -> tuple[str, str] | None:
    """(package, Sumi's pin) when `requirement` names a pinned package at a version Sumi does not keep."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None
    name = canonicalize_name(req.name)
    pin = pins.get(name)
    if pin is None:
        return None
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return None
    if not pin.startswith("=="):
        return (name, pin)  # nothing may be installed (no torchvision for this torch)
    if req.url:
        return (name, pin)  # a direct URL replaces the package whatever its version
    try:
        version = Version(pin[2:])
    except InvalidVersion:
        return None
    return None if req.specifier.contains(version, prereleases=True) else (name, pin)


def conflicts_in(
    requirements: Iterable[str], pins: dict[str, str], extension: str, source: str
) -> list[Conflict]:
    found = []
    for text in requirements:
        hit = conflict_with(text, pins)
        if hit is not None:
            found.append(Conflict(extension, hit[0], text.strip(), hit[1], source))
    return found


def requirement_lines(path: Path, _seen: frozenset[Path] = frozenset()) -> list[str]:
    """Requirement strings of a requirements file (comments, options and blank lines left out;
    `-r other.txt` followed)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines: list[str] = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        words = line.split()
        if words[0] in ("-r", "--requirement") and len(words) > 1:
            nested = (path.parent / words[1]).resolve()
            if nested not in _seen:
                lines += requirement_lines(nested, _seen | {path.resolve()})
            continue
        if not line.startswith("-"):
            lines.append(line)
    return lines


@dataclass
class PipArgs:
    """A pip command line split into its requirements and everything else (order kept)."""

    command: str
    words: list[str]
    requirement_positions: list[int]
    requirement_files: list[Path]

    @property
    def requirements(self) -> list[str]:
        return [_unquote(self.words[i]) for i in self.requirement_positions]

    def without(self, dropped: Iterable[str]) -> str:
        """The command with the requirements in `dropped` taken out, quoted for the shell again."""
        gone = set(dropped)
        drop = {i for i in self.requirement_positions if _unquote(self.words[i]) in gone}
        kept = [w for i, w in enumerate(self.words) if i not in drop]
        return shlex.join(kept) if os.name != "nt" else " ".join(kept)


def _unquote(word: str) -> str:
    """Windows keeps the quotes in `shlex.split(posix=False)` words."""
    return word[1:-1] if len(word) > 1 and word[0] == word[-1] and word[0] in "\"'" else word


def parse_pip_args(command: str, cwd: Path | None = None) -> PipArgs:
    """Split `run_pip`'s command ("install 'transformers<5' -r requirements.txt --upgrade")."""
    try:
        words = shlex.split(command, posix=os.name != "nt")
    except ValueError:
        words = command.split()
    positions: list[int] = []
    files: list[Path] = []
    if not words or words[0] not in PIP_REQUIREMENT_COMMANDS:
        return PipArgs(command, words, positions, files)
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-r", "--requirement") and i + 1 < len(words):
            files.append((cwd or Path.cwd()) / words[i + 1])
            i += 2
            continue
        if word.startswith("--requirement="):
            files.append((cwd or Path.cwd()) / word.split("=", 1)[1])
        elif word in _VALUE_OPTIONS:
            i += 2
            continue
        elif not word.startswith("-"):
            positions.append(i)
        i += 1
    return PipArgs(command, words, positions, files)


def conflicts_from_pip_output(output: str, pins: dict[str, str], extension: str) -> list[Conflict]:
    """What pip's resolver said conflicts with Sumi's constraints ("The conflict is caused by:" lines).

    A request Sumi's pin satisfies still conflicts when pip names the pin among the causes: the
    package index has no build of that version (PyPI has no `torchvision==0.28.0+cpu`)."""
    found: list[Conflict] = []
    for causes in _cause_blocks(output):
        constrained = set()
        for line in causes:
            if line.startswith("The user requested (constraint) "):
                with contextlib.suppress(InvalidRequirement):
                    constrained.add(canonicalize_name(Requirement(line.split(") ", 1)[1]).name))
        for line in causes:
            user, dep = _CAUSE_USER.match(line), _CAUSE_DEP.match(line)
            if user is None and dep is None:
                continue
            requirement = (user or dep)["req"].strip()  # type: ignore[index]
            requirement = re.sub(
                r";\s*extra\s*==\s*['\"][^'\"]*['\"]\s*$", "", requirement
            )  # an asked-for extra's
            source = f"pip: {dep['who']} needs it" if dep is not None else "pip: asked for directly"
            hits = conflicts_in([requirement], pins, extension, source)
            if not hits:
                with contextlib.suppress(InvalidRequirement):
                    name = canonicalize_name(Requirement(requirement).name)
                    if name in constrained and name in pins:
                        missing = f"pip: the package index has no {name} {pins[name].lstrip('=')}"
                        hits = [Conflict(extension, name, requirement, pins[name], missing)]
            found += hits
    return found


def _cause_blocks(output: str) -> list[list[str]]:
    """The stripped lines after each "The conflict is caused by:" up to the next blank line."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("The conflict is caused by"):
            current = []
            blocks.append(current)
        elif current is not None:
            if not line or line.startswith("To fix this"):
                current = None
            else:
                current.append(line)
    return blocks


def unique(conflicts: Iterable[Conflict]) -> list[Conflict]:
    """Each (extension, package, asked) once, first seen kept."""
    seen: dict[tuple[str, str, str], Conflict] = {}
    for c in conflicts:
        seen.setdefault((c.extension, c.package, c.asked.replace(" ", "")), c)
    return list(seen.values())


_in_process: list[Conflict] = []  # run_pip called by extension code inside Sumi's own process
_in_process_lock = threading.Lock()


def record(conflicts: Iterable[Conflict]) -> None:
    """Append to the report file of the running install.py (`SUMI_PIP_REPORT`); without one (an
    extension's script calling `launch.run_pip` inside Sumi) keep them for `recorded_in_process`,
    named after the extension folder the call came from."""
    items = list(conflicts)
    target = os.environ.get(REPORT_ENV)
    if not items:
        return
    if not target:
        caller = extension_of_caller()
        with _in_process_lock:
            _in_process.extend(replace(c, extension=c.extension or caller) for c in items)
        return
    with contextlib.suppress(OSError), open(target, "a", encoding="utf-8") as f:
        for c in items:
            f.write(json.dumps(c.to_json()) + "\n")


def recorded_in_process() -> list[Conflict]:
    with _in_process_lock:
        return list(_in_process)


def extension_of_caller() -> str:
    """The folder name under an `extensions`/`extensions-builtin` folder of the nearest calling frame."""
    frame = sys._getframe(1)
    while frame is not None:
        parts = Path(frame.f_code.co_filename).parts
        for i, part in enumerate(parts[:-2]):
            if part in ("extensions", "extensions-builtin"):
                return parts[i + 1]
        frame = frame.f_back
    return ""


def read_report(path: Path) -> list[Conflict]:
    """The conflicts an install.py run recorded (unreadable lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            c = Conflict.from_json(json.loads(line))
            if c is not None:
                found.append(c)
    return unique(found)
