"""A1111's `modules.modelloader`: finding model files in folders. Sumi never downloads anything on its
own (DESIGN.md), so `load_file_from_url` raises an error naming the file to fetch by hand."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from modules.sumi.util.unsupported import NotSupportedInSumi


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
    """A1111 fills `shared.sd_upscalers` here; Sumi has no upscaler models, so nothing changes."""
