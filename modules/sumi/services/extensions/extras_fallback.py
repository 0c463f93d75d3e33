"""An install.py that failed only because an optional extra asks for another version of a core package.

sd-dynamic-prompts' install.py runs `pip install 'dynamicprompts[attentiongrabber,magicprompt]~=0.31.0'`
itself; the `magicprompt` extra wants `transformers<5`, Sumi keeps its transformers, and pip gives up on
the whole command, so the extension loses its core too. Here the same requirements are installed with
the extras pip named taken out (the extension works; the extra's feature is off), each left-out extra is
reported as a conflict, and install.py can then run again and find its packages in place.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modules.sumi.services.extensions.conflicts import Conflict, conflict_with

_UNSATISFIABLE_EXTRA = re.compile(
    r"Could not find a version that satisfies the requirement (?P<req>[^;\n]+); "
    r"extra == \"(?P<extra>[^\"]+)\" \(from (?P<parent>[^)\s]+)\)"
)
_CONFLICTING_EXTRA = re.compile(  # the resolver's "The conflict is caused by:" form
    r"^\s*(?P<parent>[^\s\[]+)(?:\[[^\]]*\])? \S+ depends on (?P<req>[^;\n]+); extra == \"(?P<extra>[^\"]+)\"",
    re.MULTILINE,
)
_FAILED_COMMAND = re.compile(r"Command '(\[.*\])' returned non-zero exit status")
_PIP_INSTALL = ("-m", "pip", "install")
MAX_ROUNDS = 3  # pip names one unsatisfiable extra per run


@dataclass(frozen=True)
class LeftOutExtra:
    package: str  # canonical name of the requirement that has the extra
    extra: str
    wants: str  # what the extra asks for ("transformers[torch]<5")


def left_out_extras(output: str, pins: dict[str, str]) -> list[LeftOutExtra]:
    """The extras pip could not satisfy because they ask for another version of a package Sumi keeps."""
    found = []
    matches = [*_UNSATISFIABLE_EXTRA.finditer(output), *_CONFLICTING_EXTRA.finditer(output)]
    for match in matches:
        if conflict_with(match["req"].strip(), pins) is None:
            continue
        parent = match["parent"].split("[", 1)[0]
        extra = LeftOutExtra(canonicalize_name(parent), match["extra"], match["req"].strip())
        if extra not in found:
            found.append(extra)
    return found


def failed_pip_requirements(output: str) -> list[str]:
    """The requirements of the `python -m pip install ...` command whose failure the output reports
    (subprocess's "Command '[...]' returned non-zero exit status"), or []."""
    for match in _FAILED_COMMAND.finditer(output):
        try:
            words = ast.literal_eval(match[1])
        except (ValueError, SyntaxError):
            continue
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            continue
        for start in range(len(words) - 2):
            if tuple(words[start : start + 3]) == _PIP_INSTALL:
                return [w for w in words[start + 3 :] if not w.startswith("-")]
    return []


def without_extras(requirements: list[str], dropped: list[LeftOutExtra]) -> list[str]:
    """`requirements` with the dropped extras taken out of the requirements that name them."""
    out = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            out.append(text)
            continue
        gone = {d.extra for d in dropped if d.package == canonicalize_name(req.name)}
        if gone & req.extras:
            req.extras = req.extras - gone
            text = str(req)
        out.append(text)
    return out


def install_without_conflicting_extras(
    output: str,
    pins: dict[str, str],
    extension: str,
    pip: Callable[[list[str]], subprocess.CompletedProcess],
) -> tuple[bool, list[Conflict], str]:
    """(installed, conflicts, pip's output): the failed command's requirements installed without the
    extras that conflict with Sumi's pins, by `pip(requirements)` (pip install under the constraints the
    install.py ran with). Not tried (False, [], "") when that is not why pip failed."""
    requirements = failed_pip_requirements(output)
    dropped = left_out_extras(output, pins)
    if not requirements or not dropped:
        return False, [], ""
    log = ""
    for _ in range(MAX_ROUNDS):
        result = pip(without_extras(requirements, dropped))
        log += (result.stdout or "") + (result.stderr or "")
        more = [d for d in left_out_extras(log, pins) if d not in dropped]
        if result.returncode == 0 or not more:
            break
        dropped += more
    conflicts = [_conflict(d, pins, extension) for d in dropped]
    return result.returncode == 0, conflicts, log


def _conflict(dropped: LeftOutExtra, pins: dict[str, str], extension: str) -> Conflict:
    package, kept = conflict_with(dropped.wants, pins) or (dropped.wants, "")
    asked = f"{dropped.wants} (extra '{dropped.extra}' of {dropped.package})"
    return Conflict(extension, package, asked, kept, "pip: the extra was left out, the rest installed")
