"""Optional packages that are installed but broken are found at start and kept away from the rest.

An extension's install.py can leave an optional package that transformers and diffusers use when it
is there (torchvision, torchaudio) in a state where importing it fails: a CUDA torchvision next to a
CPU-only torch raises "operator torchvision::nms does not exist". transformers and diffusers only ask
whether the package is *installed* (`importlib.util.find_spec`) and later import it, so one bad
package stops Sumi from starting.

`guard_optional_packages()` imports each optional package that is installed (in this process, before
transformers and diffusers are imported: `webui.main` calls it first) and checks that its native
operators load. A package that fails is blocked the way Python documents for that
(`sys.modules[name] = None`): `find_spec` answers None, so transformers' and diffusers'
`is_torchvision_available()` say False, and `import torchvision` raises ModuleNotFoundError ("import of
torchvision halted") instead of crashing. The result is kept for the process; the App turns it into
start-up notices naming the package, its error and how to repair it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from modules.sumi.util.torch_companions import torchvision_for_torch
from modules.sumi.util.version import installed_version


def _torchvision_ops(module: object) -> None:
    """torchvision's compiled operators must be registered with this torch (CPU vs CUDA builds)."""
    import torch

    torch.ops.torchvision.nms  # noqa: B018  (raises when the operator library did not load)


# import name -> extra check after a successful import (None: importing is the check)
OPTIONAL_PACKAGES: dict[str, Callable[[object], None] | None] = {
    "torchvision": _torchvision_ops,
    "torchaudio": None,
}


@dataclass(frozen=True)
class BrokenPackage:
    name: str
    version: str
    error: str

    def message(self) -> str:
        return (
            f"The installed {self.name} {self.version} does not work with this torch ({self.error}); "
            f"Sumi started without it: transformers and diffusers run as if {self.name} were not installed. "
            f"{repair_hint(self.name)}"
        )


def repair_hint(name: str) -> str:
    """How to get a working build of `name` back (or remove it)."""
    torch_version = installed_version("torch") or ""
    command = _torchvision_install() if name == "torchvision" else None
    if command:
        return f"To repair: {command}, or pip uninstall torchvision."
    return f"To repair: reinstall {name} built for torch {torch_version or '(unknown)'}, or pip uninstall {name}."


def missing_package_hint(message: str) -> str:
    """For an extension script that stopped with "No module named 'torchvision'": A1111's install always
    has torchvision (its launcher installs it with torch), Sumi's does not, and a plain `pip install
    torchvision` may bring a build that does not load next to this torch: the command for the right one.
    "" for any other message."""
    if not message.startswith(("No module named 'torchvision'", "No module named 'torchvision.")):
        return ""
    command = _torchvision_install()
    if command is None:
        return (
            "torchvision comes with A1111's install, not with Sumi's: install the build made for this torch."
        )
    return f"torchvision comes with A1111's install, not with Sumi's; to install it: {command}."


def _torchvision_install() -> str | None:
    """`pip install torchvision==X` of the build made for the installed torch (from PyTorch's index for a
    build with a local label such as +cpu), with the torch named; None when no torch or none is known."""
    torch_version = installed_version("torch") or ""
    wanted = torchvision_for_torch(torch_version) if torch_version else None
    if not wanted:
        return None
    label = wanted.partition("+")[2]
    index = f" --index-url https://download.pytorch.org/whl/{label}" if label else ""
    return f"pip install torchvision=={wanted}{index} (the build made for torch {torch_version})"


def is_blocked(name: str) -> bool:
    """True when `name` was kept away (it stays out of `sys.modules` imports for this process)."""
    return name in sys.modules and sys.modules[name] is None


def block(name: str) -> None:
    """Forget whatever part of `name` was imported and make later imports of it fail cleanly."""
    for loaded in [n for n in sys.modules if n == name or n.startswith(name + ".")]:
        del sys.modules[loaded]
    sys.modules[name] = None  # type: ignore[assignment]


def probe(name: str, check: Callable[[object], None] | None = None) -> str | None:
    """Why the installed package `name` does not work ("RuntimeError: ..."), or None (works or absent)."""
    if is_blocked(name):
        return None
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        module = importlib.import_module(name)
        if check is not None:
            check(module)
    except Exception as exc:  # anything an import of a broken build raises
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(
            ": "
        )
    return None


_lock = threading.Lock()
_found: list[BrokenPackage] | None = None


def guard_optional_packages(
    packages: dict[str, Callable[[object], None] | None] | None = None,
) -> list[BrokenPackage]:
    """Probe each optional package once per process; block the broken ones; the broken ones."""
    global _found
    with _lock:
        if _found is not None and packages is None:
            return list(_found)
        broken = []
        for name, check in (packages or OPTIONAL_PACKAGES).items():
            error = probe(name, check)
            if error is None:
                continue
            broken.append(BrokenPackage(name, installed_version(name) or "(unknown version)", error))
            with contextlib.suppress(Exception):
                block(name)
        if packages is None:
            _found = broken
        return list(broken)
