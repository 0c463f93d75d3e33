"""The `<hypernet:name:multiplier>` handler: A1111's hypernetworks as a service.

Files are parsed once and cached in RAM. Activation gives the job a `HypernetworkPatch` engine extension:
each batch's patch scope wraps the UNet's attention processors (the weights are never touched) and puts
the original processor objects back when the batch ends, so later images are bit-identical to images made
before.
"""

from __future__ import annotations

import logging
from typing import Any

from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.networks.extensions import HypernetworkPatch
from modules.sumi.engine.networks.hypernetwork import Hypernetwork, load_hypernetwork
from modules.sumi.services.models.hashing import sha256_file
from modules.sumi.services.networks.files import NetworkFileInfo, NetworkFileRegistry
from modules.sumi.services.networks.registry import (
    ExtraNetwork,
    ExtraNetworkParams,
    set_engine_extension,
    sumi_model,
)
from modules.sumi.util.cache import FileCache, file_key

log = logging.getLogger(__name__)
CACHE_SIZE = 16


def text_context_dim(model: SDModel) -> int:
    """The width of the text context the UNet's cross-attention reads (768 SD1, 1024 SD2, 2048 SDXL)."""
    dim = model.unet.config["cross_attention_dim"]
    return int(dim[0] if isinstance(dim, (list, tuple)) else dim)


class HypernetworkHandler(ExtraNetwork):
    def __init__(self, files: NetworkFileRegistry, *, allow_unsafe_pickle: bool = False) -> None:
        super().__init__("hypernet")
        self.files = files
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._parsed: FileCache[Hypernetwork] = FileCache(CACHE_SIZE)
        self._hashes: dict[tuple, str] = {}

    def activate(self, p: Any, params_list: list[ExtraNetworkParams]) -> None:
        set_engine_extension(p, self.name, None)
        model = sumi_model(getattr(p, "sd_model", None))
        if model is None:
            return
        active, hashes = [], []
        for params in params_list:
            found = self._spec(p, model, params)
            if found is not None:
                name, hn, multiplier, key = found
                active.append((hn, multiplier))
                hashes.append(f"{name}:{self._hash(key, hn)[:10]}")
        if active:
            set_engine_extension(p, self.name, HypernetworkPatch(active))
        if hashes:
            p.extra_generation_params["Hypernet hashes"] = ", ".join(hashes)

    def deactivate(self, p: Any) -> None:
        set_engine_extension(p, self.name, None)

    def _spec(
        self, p: Any, model: SDModel, params: ExtraNetworkParams
    ) -> tuple[str, Hypernetwork, float, tuple] | None:
        name = params.positional[0] if params.positional else ""
        info = self.files.find_or_refresh(name)
        if info is None:
            _warn(p, f"Hypernetwork not found: {name}")
            return None
        try:
            multiplier = float(params.positional[1]) if len(params.positional) > 1 else 1.0
            key, hn = self._load(info)
        except (ValueError, EngineError) as exc:
            _warn(p, f"Hypernetwork {name}: {exc}")
            return None
        dim = text_context_dim(model)
        if dim not in hn.layers:
            sizes = ", ".join(str(d) for d in hn.dims)
            _warn(
                p, f"Hypernetwork {name} was made for context sizes {sizes}; this model's is {dim}: ignored"
            )
            return None
        return name, hn, multiplier, key

    def _load(self, info: NetworkFileInfo) -> tuple[tuple, Hypernetwork]:
        """The parsed file and its version key (for the hash cache)."""
        key = file_key(info.path)
        hn = self._parsed.get(
            info.path, lambda: load_hypernetwork(info.path, allow_unsafe_pickle=self.allow_unsafe_pickle)
        )
        return key, hn

    def _hash(self, key: tuple, hn: Hypernetwork) -> str:
        if key not in self._hashes:
            self._hashes[key] = sha256_file(hn.path)
        return self._hashes[key]


def _warn(p: Any, message: str) -> None:
    if message not in p.warnings:
        p.warnings.append(message)
