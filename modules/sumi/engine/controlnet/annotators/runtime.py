"""Where annotator networks run and how their weights are kept between uses.

A preprocessor that needs a network gets an `AnnotatorFiles`: the weight files found in the annotator
folder, the device to run on, and the cache that keeps loaded networks. Networks are keyed by file,
its modification time and device, so replacing a file loads the new one; the least recently used
networks beyond the cache's capacity are dropped (sd-webui-controlnet keeps each annotator loaded once
used; here the capacity is a setting).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

import torch

from modules.sumi.engine.controlnet.image_fit import PreprocessorError
from modules.sumi.engine.errors import ModelLoadError, UnsafeFileError

NetworkT = TypeVar("NetworkT", bound=torch.nn.Module)
NetworkLoader = Callable[[Path, bool], torch.nn.Module]  # (file, allow_unsafe_pickle) -> network on the CPU
DEFAULT_CAPACITY = 2


class NetworkCache:
    """Loaded annotator networks, the `capacity()` most recently used kept."""

    def __init__(self, capacity: Callable[[], int] = lambda: DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._networks: OrderedDict[tuple[str, int, str, str], torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, device: torch.device, loader: NetworkLoader, allow_unsafe_pickle: bool):
        key = (str(path), path.stat().st_mtime_ns, str(device), f"{loader.__module__}.{loader.__qualname__}")
        with self._lock:
            network = self._networks.pop(key, None)
            if network is None:
                network = loader(path, allow_unsafe_pickle).to(device).eval().requires_grad_(False)
            self._networks[key] = network
            while len(self._networks) > max(1, self._capacity()):
                self._networks.popitem(last=False)
            return network

    def __len__(self) -> int:
        return len(self._networks)


SHARED_CACHE = NetworkCache()


@dataclass(frozen=True)
class AnnotatorRuntime:
    """How a job runs annotator networks: on which device, with which cache, and whether pickles that
    need more than tensors may load (`--disable-safe-unpickle`)."""

    device: torch.device = torch.device("cpu")
    cache: NetworkCache = field(default=SHARED_CACHE)
    allow_unsafe_pickle: bool = False


@dataclass(frozen=True)
class AnnotatorFiles:
    """A preprocessor's weight files as found, and the runtime that loads them."""

    label: str
    paths: tuple[Path, ...]
    runtime: AnnotatorRuntime

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    def network(self, loader: Callable[[Path, bool], NetworkT], index: int = 0) -> NetworkT:
        """The network in file `index`, loaded once; a file that is not that network is a clear error."""
        path = self.paths[index]
        try:
            network = self.runtime.cache.get(path, self.device, loader, self.runtime.allow_unsafe_pickle)
            return cast(NetworkT, network)
        except (ModelLoadError, UnsafeFileError) as exc:
            raise PreprocessorError(f"Preprocessor '{self.label}' cannot use {path.name}: {exc}") from exc
