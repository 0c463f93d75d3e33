"""A1111's `modules.modelloader`: finding model files in folders. Sumi never downloads anything on its
own (DESIGN.md), so `load_file_from_url` raises an error naming the file to fetch by hand."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from modules.sumi.util.unsupported import NotSupportedInSumi

log = logging.getLogger(__name__)


def load_file_from_url(
    url: str,
    *,
    model_dir: str,
    progress: bool = True,
    file_name: str | None = None,
    hash_prefix: str | None = None,
) -> str:
    """The path of `file_name` (default: the URL's file name) in `model_dir` if it is there; else an
    error saying where to put it. Sumi does not download."""
    file_name = file_name or os.path.basename(urlparse(url).path)
    path = os.path.abspath(os.path.join(model_dir, file_name))
    if os.path.exists(path):
        return path
    raise NotSupportedInSumi(f"Sumi does not download models: download {url} yourself and save it as {path}")


def load_models(
    model_path: str,
    model_url: str | None = None,
    command_path: str | None = None,
    ext_filter: list[str] | None = None,
    download_name: str | None = None,
    ext_blacklist: list[str] | None = None,
    hash_prefix: str | None = None,
) -> list[str]:
    """Model files under `model_path` (and `command_path`) with one of `ext_filter`'s extensions; a
    `model_url` is never downloaded."""
    found: list[str] = []
    for place in (model_path, command_path):
        if not place or not os.path.isdir(place):
            continue
        for root, _dirs, files in os.walk(place, followlinks=True):
            for name in sorted(files):
                full = os.path.join(root, name)
                if ext_filter and not any(name.lower().endswith(e.lower()) for e in ext_filter):
                    continue
                if ext_blacklist and any(name.lower().endswith(e.lower()) for e in ext_blacklist):
                    continue
                if full not in found:
                    found.append(full)
    return found


def friendly_name(file: str) -> str:
    if file.startswith("http"):
        file = urlparse(file).path
    return os.path.splitext(os.path.basename(file))[0]


def load_upscalers() -> None:
    """A1111 rebuilds `shared.sd_upscalers` here: rescan the upscaler folders (the list is live)."""
    from modules import shared

    shared.app().upscalers.refresh()


def load_spandrel_model(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    prefer_half: bool = False,
    dtype: str | torch.dtype | None = None,
    expected_architecture: str | None = None,
) -> Any:
    """A1111 1.8+: a spandrel ModelDescriptor for `path` on `device`, in eval mode; half precision when
    asked for and the architecture supports it. Pickles are read with weights_only (unless Sumi was
    started with --disable-safe-unpickle). A different architecture than `expected_architecture` is
    logged, as in A1111."""
    from modules import shared
    from modules.sumi.services.upscalers.loaded import load_descriptor

    app = shared.running_app()
    unsafe = bool(getattr(app.args, "disable_safe_unpickle", False)) if app is not None else False
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    descriptor = load_descriptor(
        Path(path),
        device=torch.device(device) if device is not None else torch.device("cpu"),
        prefer_half=prefer_half,
        allow_unsafe_pickle=unsafe,
        dtype=torch_dtype,
    )
    arch = descriptor.architecture
    if expected_architecture and expected_architecture not in (arch.name, arch.id):
        log.warning("Model %r is not a %r model (got %r)", os.fspath(path), expected_architecture, arch.name)
    if prefer_half and not descriptor.supports_half:
        log.info("Model %s does not support half precision, ignoring --half", os.fspath(path))
    return descriptor
