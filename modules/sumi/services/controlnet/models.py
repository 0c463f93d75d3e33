"""ControlNet model files in `models/ControlNet` (and sd-webui-controlnet's folder): names, lookup, cache.

Names are sd-webui-controlnet's: `"<stem> [<8-hex legacy hash>]"`. A unit's `model` is matched as the
extension does: the full name, else the stem (any case), else the shortest stem containing the text.
Loaded models stay in a small RAM cache (opt `control_net_model_cache_size`, default 2).
`family_of` tells which model family a file is for without loading it (safetensors: the header's keys
and shapes), so the UI can offer only the ControlNets that fit the loaded checkpoint.
`lend(name, loaded)` makes a ControlNet that lives in memory (one being trained) usable by a job's units
as `"<name> [training]"` while the block runs; it is never listed or cached.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from modules.sumi.engine.controlnet.models import (
    LoadedControlNet,
    check_compatible,
    detect_controlnet_family,
    load_controlnet,
)
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import release_residents
from modules.sumi.engine.files import flat_parts, read_state_dict
from modules.sumi.engine.model import SDModel
from modules.sumi.services.models.checkpoints import HiddenRule, natural_sort_key, walk_files
from modules.sumi.services.models.hashing import legacy_model_hash
from modules.sumi.util.cache import FileCache

CONTROLNET_EXTENSIONS = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")
DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
NONE = "None"
LENT_TAG = "training"  # in place of the hash in a lent ControlNet's name


@dataclass
class ControlNetFile:
    path: Path  # a file, or a diffusers folder (config.json + diffusion_pytorch_model.*)
    lent: LoadedControlNet | None = field(default=None, compare=False)  # in memory: no file behind it

    @property
    def stem(self) -> str:
        if self.lent is not None:
            return self.path.name
        return self.path.stem if self.path.is_file() else self.path.name

    @cached_property
    def short_hash(self) -> str:
        target = self.path if self.path.is_file() else _diffusers_weights(self.path)
        try:
            return legacy_model_hash(target) if target is not None else "00000000"
        except OSError:
            return "00000000"

    @property
    def name(self) -> str:
        return f"{self.stem} [{LENT_TAG if self.lent is not None else self.short_hash}]"


def _diffusers_weights(folder: Path) -> Path | None:
    return next((folder / n for n in DIFFUSERS_WEIGHTS if (folder / n).is_file()), None)


class ControlNetModels:
    """Listing, lookup and a small cache of loaded ControlNets."""

    def __init__(
        self,
        folders: Iterable[Path],
        cache_size: Callable[[], int] = lambda: 2,
        allow_unsafe_pickle: bool = False,
        include_hidden: HiddenRule = True,
    ) -> None:
        self.folders = [Path(f) for f in folders]
        self.include_hidden = include_hidden
        self.cache_size = cache_size
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._lock = threading.Lock()
        self._files: list[ControlNetFile] = []
        self._cache: FileCache[LoadedControlNet] = FileCache(lambda: max(0, int(self.cache_size())))
        self._families: FileCache[str | None] = FileCache()
        self._lent: dict[str, ControlNetFile] = {}
        self.refresh()

    def refresh(self) -> list[ControlNetFile]:
        found: dict[str, ControlNetFile] = {}
        for folder in self.folders:
            for item in _scan(folder, self.include_hidden):
                found.setdefault(str(item.resolve()), ControlNetFile(item))
        files = sorted(found.values(), key=lambda f: natural_sort_key(f.stem))
        with self._lock:
            self._files = files
        return files

    def list(self) -> list[ControlNetFile]:
        with self._lock:
            return list(self._files)

    def names(self) -> list[str]:
        return [NONE] + [f.name for f in self.list()]

    def find(self, name: str | None) -> ControlNetFile | None:
        """The extension's lookup; None for "None"/empty, InvalidRequestError when nothing matches."""
        if not name or name == NONE:
            return None
        wanted = name.strip()
        with self._lock:
            lent = self._lent.get(wanted)
        if lent is not None:
            return lent
        files = self.list()
        stem_wanted = wanted.rsplit(" [", 1)[0].lower() if wanted.endswith("]") else wanted.lower()
        for rule in (
            lambda f: f.name == wanted,
            lambda f: f.stem.lower() == stem_wanted,
        ):
            match = next((f for f in files if rule(f)), None)
            if match is not None:
                return match
        containing = [f for f in files if stem_wanted in f.stem.lower()]
        if containing:
            return min(containing, key=lambda f: len(f.stem))
        raise InvalidRequestError(
            f"ControlNet model not found: {name!r} (put it in models/ControlNet, then refresh)"
        )

    def names_for_family(self, family: str | None) -> list[str]:
        """`names()` limited to the ControlNets for `family` (all when None); files whose family cannot
        be read stay listed, so choosing one gives the loader's clear message."""
        if family is None:
            return self.names()
        return [NONE] + [f.name for f in self.list() if self.family_of(f) in (family, None)]

    def family_of(self, file: ControlNetFile) -> str | None:
        """The family ("SD1", "SD2", "SDXL") a ControlNet is for; None when that cannot be read.

        Safetensors: from the header's keys and shapes only (no tensor is read). Pickles: loaded once
        (memory-mapped when the format allows). Diffusers folders: their weights file, the same way.
        Cached per file version.
        """
        weights = file.path if file.path.is_file() else _diffusers_weights(file.path)
        if weights is None:
            return None
        try:
            return self._families.get(weights, lambda: _read_family(weights, self.allow_unsafe_pickle))
        except OSError:
            return None

    def load(self, file: ControlNetFile, sd: SDModel) -> LoadedControlNet:
        """The model on the SD model's device and dtype, checked against its family; cached."""
        if file.lent is not None:
            check_compatible(file.lent, sd.family, int(sd.unet.config["cross_attention_dim"]))
            return file.lent

        # Under --medvram/--lowvram the ControlNet waits in RAM and visits the GPU only while it runs.
        device = torch.device("cpu") if sd.offloaded else sd.device

        def load_fresh() -> LoadedControlNet:
            release_residents(sd)  # a "diff" ControlNet adds the UNet's weights: never a job's LoRA deltas
            return load_controlnet(
                file.path,
                dtype=sd.dtype,
                device=device,
                allow_unsafe_pickle=self.allow_unsafe_pickle,
                base_unet=sd.unet,
                expected_family=sd.family,
            )

        loaded = self._cache.get(
            file.path,
            load_fresh,
            str(device),
            sd.dtype,
            id(sd.unet),
        )
        check_compatible(loaded, sd.family, int(sd.unet.config["cross_attention_dim"]))
        return loaded

    def clear_cache(self) -> None:
        self._cache.clear()

    @contextlib.contextmanager
    def lend(self, name: str, loaded: LoadedControlNet) -> Iterator[str]:
        """Make `loaded` (a ControlNet in memory, on the model's device and dtype) usable by units while
        the block runs, under the name yielded (`"<name> [training]"`); never listed, cached or saved."""
        file = ControlNetFile(Path(name), lent=loaded)
        with self._lock:
            self._lent[file.name] = file
        try:
            yield file.name
        finally:
            with self._lock:
                self._lent.pop(file.name, None)


def _read_family(path: Path, allow_unsafe_pickle: bool) -> str | None:
    try:
        shapes = _header_shapes(path) if path.suffix.lower() == ".safetensors" else None
        state_dict = shapes if shapes is not None else _pickle_tensors(path, allow_unsafe_pickle)
        return detect_controlnet_family(state_dict, str(path))
    except Exception:  # unreadable, truncated or not a ControlNet: the loader says why when it is chosen
        return None


def _header_shapes(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file as an empty "meta" tensor of its shape (header only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}  # noqa: SIM118


def _pickle_tensors(path: Path, allow_unsafe_pickle: bool) -> dict[str, torch.Tensor]:
    """A pickle's tensors: memory-mapped (nothing read but the index) when the file is a zip archive
    of plain weights, else through the safe loader."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy format or objects the plain loader refuses: the full safe path decides
        return read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        return {}
    data = flat_parts(data)  # IP-Adapter .bin: {"image_proj": {...}, "ip_adapter": {...}}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def _scan(folder: Path, include_hidden: HiddenRule = True) -> list[Path]:
    """Model files and diffusers model folders under `folder` (recursively)."""
    items: list[Path] = []
    diffusers_dirs: set[Path] = set()
    for path in walk_files(folder, CONTROLNET_EXTENSIONS, include_hidden):
        if path.name in DIFFUSERS_WEIGHTS and (path.parent / "config.json").is_file():
            diffusers_dirs.add(path.parent)
        else:
            items.append(path)
    return items + sorted(diffusers_dirs)


__all__ = ["ControlNetFile", "ControlNetModels", "NONE"]
