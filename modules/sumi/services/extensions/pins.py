"""The versions Sumi keeps its core packages at while extensions install theirs (pip constraints).

Each of `PROTECTED_PACKAGES` that is installed is pinned to its installed version. torchvision is
always pinned, installed or not, to the release built for the running torch
(`modules.sumi.util.torch_companions`), so an extension asking for a plain `torchvision` gets that
build or a pip error, never the latest PyPI wheel (a CUDA build that does not load next to a CPU
torch) and never one that pulls in another torch. Without a torch, or for a torch no torchvision is
known for, torchvision cannot be installed (`torchvision<0`).
"""

from __future__ import annotations

from packaging.utils import canonicalize_name

from modules.sumi.util.torch_companions import torchvision_for_torch
from modules.sumi.util.version import installed_version

PROTECTED_PACKAGES = (
    "torch", "torchvision", "torchaudio", "xformers", "numpy", "diffusers", "transformers",
    "gradio", "gradio_client", "fastapi", "pydantic", "safetensors",
)  # fmt: skip
NO_RELEASE = "<0"  # a specifier no version satisfies


def core_pins() -> dict[str, str]:
    """Canonical package name -> specifier Sumi keeps it at ("==5.24.0", "==0.28.0+cpu", "<0")."""
    pins: dict[str, str] = {}
    for name in PROTECTED_PACKAGES:
        version = installed_version(name)
        if version is not None:
            pins[canonicalize_name(name)] = f"=={version}"
    torch_version = installed_version("torch")
    vision = torchvision_for_torch(torch_version) if torch_version else None
    pins["torchvision"] = f"=={vision}" if vision else NO_RELEASE
    return pins


def constraint_lines(pins: dict[str, str] | None = None) -> list[str]:
    """pip constraints file lines for `pins` (default `core_pins()`)."""
    return [f"{name}{spec}" for name, spec in (core_pins() if pins is None else pins).items()]
