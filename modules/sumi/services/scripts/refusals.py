"""Clear refusals for the A1111 internals an extension cannot use in Sumi: its LDM/SGM model code (`ldm`,
`sgm`), k-diffusion with A1111's wrappers (`k_diffusion`), and the `modules.sd_*` modules that only
exist to patch them (`sd_hijack_clip`, `sd_samplers_kdiffusion`, ...).

An extension importing one gets a `ModuleNotFoundError` that names the extension, what it imported and
what is missing, instead of a bare "No module named 'ldm'" (or a failure deep inside k-diffusion's own
imports). Only imports written in an extension's files are refused: Sumi and the libraries it uses
(diffusers probes `k_diffusion` with `importlib.util.find_spec`) see the normal import system.
`patch_refusal` is the message for an A1111 patch target (`sd_hijack_unet.th.cat`, `CondFunc`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType, ModuleType

from modules.sumi.services.scripts import extension_imports

# Frames that only pass an import on: this module, and the `__import__` extension files get (Gradio 3 layer).
_MACHINERY = frozenset({__file__, extension_imports.__file__})

PORT_HINT = (
    "Sumi runs diffusers models with its own sampling loop; the extension needs a port to Sumi's hooks"
)

TOP_LEVEL = {
    "ldm": "A1111's LDM model code (ldm.*, from stable-diffusion-stability-ai)",
    "sgm": "A1111's SDXL model code (sgm.*, from generative-models)",
    "k_diffusion": "k-diffusion with A1111's model wrappers",
}
A1111_MODULES = {
    "modules.sd_hijack_clip": "A1111's CLIP text-encoder hijack",
    "modules.sd_hijack_open_clip": "A1111's OpenCLIP text-encoder hijack",
    "modules.sd_hijack_optimizations": "A1111's LDM attention replacements",
    "modules.sd_hijack_xlmr": "A1111's XLM-R text-encoder hijack",
    "modules.sd_hijack_ip2p": "A1111's instruct-pix2pix LDM hijack",
    "modules.sd_unet": "A1111's UNet replacement API (sd_unet.SdUnet)",
    "modules.sd_samplers_timesteps": "A1111's DDIM/PLMS/UniPC sampler wrappers",
    "modules.sd_samplers_timesteps_impl": "A1111's DDIM/PLMS/UniPC implementations",
    "modules.sd_samplers_extra": "A1111's extra k-diffusion samplers",
    "modules.sd_models_config": "A1111's LDM model configs",
    "modules.sd_models_xl": "A1111's SDXL (sgm) model glue",
}


def extension_of(filename: str, roots: Sequence[Path]) -> str | None:
    """The extension folder name a source file belongs to: under one of `roots` (the extensions folders),
    or, before there are roots (no App yet), the folder after an `extensions` path part."""
    path = Path(filename)
    if roots:
        return _under(path, roots)
    parts = path.parts
    for i, part in enumerate(parts[:-2]):
        if part in ("extensions", "extensions-builtin"):
            return parts[i + 1]
    return None


def _under(path: Path, roots: Iterable[Path]) -> str | None:
    for root in roots:
        try:
            parts = path.resolve().relative_to(Path(root).resolve()).parts
        except (ValueError, OSError):
            continue
        if len(parts) > 1:
            return parts[0]
    return None


def importing_file(frame: FrameType | None) -> str | None:
    """The file of the first frame outside the import machinery and this module: the call's author."""
    return _author(frame)[0]


def _author(frame: FrameType | None) -> tuple[str | None, bool]:
    """(the author's file, whether the machinery it went through is an import statement or
    `import_module`: `importlib.util.find_spec` probes only look and must not be refused)."""
    importing = False
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith("<frozen") or "importlib" in Path(name).parts or name in _MACHINERY):
            return name, importing
        importing = importing or frame.f_code.co_name == "_find_and_load"
        frame = frame.f_back
    return None, importing


def calling_extension(frame: FrameType | None, roots: Sequence[Path]) -> str | None:
    """The extension whose code made the call that `frame` (a facade's caller) belongs to, if any."""
    source = importing_file(frame)
    return extension_of(source, roots) if source else None


def refusal(extension: str, what: str, missing: str) -> str:
    return f"extension '{extension}' imports {what}: {missing} is not part of Sumi. {PORT_HINT}."


def patch_refusal(extension: str | None, target: str) -> str:
    """The message for an A1111 patch target that cannot work (named by an extension's code)."""
    who = f"extension '{extension}'" if extension else "an extension"
    return f"{who} patches {target}, which Sumi does not call: {PORT_HINT}."


class RefusingFinder(importlib.abc.MetaPathFinder):
    """First on `sys.meta_path`; answers only imports of the refused names written in extension files."""

    def __init__(self, roots: Callable[[], Sequence[Path]]) -> None:
        self.roots = roots

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        missing = TOP_LEVEL.get(top) or A1111_MODULES.get(fullname)
        if missing is None:
            return None
        if fullname in A1111_MODULES and importlib.machinery.PathFinder.find_spec(fullname, path) is not None:
            return None  # Sumi provides it after all
        source, importing = _author(sys._getframe(1))
        extension = extension_of(source, self.roots()) if source and importing else None
        if extension is None:
            return None
        # `from modules import sd_unet` drops a ModuleNotFoundError named after the submodule for a
        # plain "cannot import name": leave the name off so this message is what the extension sees
        name = fullname if top in TOP_LEVEL else None
        raise ModuleNotFoundError(refusal(extension, fullname, missing), name=name)


def install(roots: Callable[[], Sequence[Path]]) -> RefusingFinder:
    """Put the finder first on `sys.meta_path` (once per process; later calls update its roots)."""
    for finder in sys.meta_path:
        if isinstance(finder, RefusingFinder):
            finder.roots = roots
            return finder
    finder = RefusingFinder(roots)
    sys.meta_path.insert(0, finder)
    return finder
