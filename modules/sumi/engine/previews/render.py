"""One live preview: latents to a picture by the chosen method (A1111's `show_progress_type`).

`PreviewNetworks` keeps the Approx NN and TAESD networks loaded from the folder it is given (A1111's
`models/VAE-approx`), one per file, reloaded when the file changes. A method whose file is missing or
unusable falls back to "Approx cheap"; `on_problem` is told once per file and reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.previews import approx_nn, taesd
from modules.sumi.engine.previews.cheap import cheap_approximation
from modules.sumi.engine.previews.full import full_decode

log = logging.getLogger(__name__)

FULL, APPROX_NN, APPROX_CHEAP, TAESD = "Full", "Approx NN", "Approx cheap", "TAESD"
METHODS = (FULL, APPROX_NN, APPROX_CHEAP, TAESD)  # A1111's order in Settings
_NETWORKS = {APPROX_NN: approx_nn, TAESD: taesd}


class PreviewNetworks:
    """The Approx NN / TAESD networks from `folder`, loaded on first use and kept (thread-safe)."""

    def __init__(
        self,
        folder: Path,
        *,
        allow_unsafe_pickle: bool = False,
        on_problem: Callable[[str], None] = lambda text: None,
        quiet_when_missing: Collection[str] = (),
    ) -> None:
        """`quiet_when_missing`: methods whose missing file is only logged, not told to `on_problem`
        (the default method on a fresh install, which has no preview files)."""
        self.folder = folder
        self.quiet_when_missing = frozenset(quiet_when_missing)
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.on_problem = on_problem
        self._lock = threading.Lock()
        self._loaded: dict[tuple[Path, str, torch.dtype], tuple[float, nn.Module]] = {}
        self._reported: set[tuple[Path, str]] = set()

    def path(self, method: str, sdxl: bool) -> Path:
        return self.folder / _NETWORKS[method].file_name(sdxl)

    def get(self, method: str, sdxl: bool, device: torch.device, dtype: torch.dtype) -> nn.Module | None:
        """The network for `method` on `device` in `dtype`, or None (reported once) when its file is
        missing or cannot be used."""
        path = self.path(method, sdxl)
        with self._lock:
            try:
                stamp = path.stat().st_mtime
            except OSError:
                if method in self.quiet_when_missing:
                    self._log_once(path, _missing_text(method, path))
                else:
                    self._report(path, "missing", _missing_text(method, path))
                return None
            key = (path, str(device), dtype)
            cached = self._loaded.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            try:
                network = _NETWORKS[method].load(path, allow_unsafe_pickle=self.allow_unsafe_pickle)
            except ModelLoadError as exc:
                self._report(
                    path,
                    str(exc),
                    f'Live preview "{method}" cannot use {path}: {exc}; '
                    'showing "Approx cheap" previews instead.',
                )
                return None
            network = network.to(device=device, dtype=dtype)
            self._loaded[key] = (stamp, network)
            return network

    def _log_once(self, path: Path, text: str) -> None:
        if (path, "missing, logged") not in self._reported:
            self._reported.add((path, "missing, logged"))
            log.warning(text)

    def _report(self, path: Path, reason: str, text: str) -> None:
        if (path, reason) not in self._reported:
            self._reported.add((path, reason))
            self.on_problem(text)


def _missing_text(method: str, path: Path) -> str:
    source = "madebyollin/taesd" if method == TAESD else "AUTOMATIC1111's v1.0.0-pre release"
    return (
        f'Live preview "{method}" needs {path.name} (from {source}) in {path.parent}; Sumi does not '
        'download it. Showing "Approx cheap" previews until the file is there.'
    )


@torch.no_grad()
def preview_pixels(
    method: str, model: SDModel, latents: torch.Tensor, networks: PreviewNetworks | None
) -> torch.Tensor | None:
    """(B, 4, h, w) latents to (B, 3, H', W') pixels in [0, 1] (float32, CPU) by `method`; None when
    the latents cannot be previewed (not 4 channels, NaN). H' is h for Approx cheap, 2h for Approx NN,
    8h for TAESD and the image's own height for Full."""
    if latents.shape[1] != 4 or not torch.isfinite(latents).all():
        return None
    pixels = None
    if method == FULL:
        pixels = full_decode(model, latents)
    elif method in _NETWORKS and networks is not None:
        pixels = _network_pixels(method, model, latents, networks)
    if pixels is None:
        pixels = cheap_approximation(latents, model.is_sdxl)
    return (pixels.float() / 2 + 0.5).clamp(0, 1).cpu()


def _network_pixels(
    method: str, model: SDModel, latents: torch.Tensor, networks: PreviewNetworks
) -> torch.Tensor | None:
    device = latents.device
    dtype = model.dtype if device.type == "cuda" else torch.float32
    network = networks.get(method, model.is_sdxl, device, dtype)
    if network is None:
        return None
    out = network(latents.to(dtype))
    return out * 2 - 1 if method == TAESD else out  # TAESD gives [0, 1], the others [-1, 1]


def to_image(pixels: torch.Tensor) -> Image.Image:
    """The first of (B, 3, H, W) [0, 1] pixels as a PIL image."""
    array = (pixels[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)
