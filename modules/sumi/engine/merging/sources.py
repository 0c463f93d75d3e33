"""A checkpoint's tensors read one at a time: a .safetensors file stays memory-mapped and each tensor
is read when asked for, so a merge holds about one model (its output) in RAM, not three. A .ckpt/.pt
file (weights-only unpickling) has to be read whole."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import SAFETENSORS_SUFFIXES, read_safetensors_metadata, read_state_dict


class CheckpointTensors(Mapping[str, Tensor]):
    """The tensors of one checkpoint file by key (a Mapping: `key in`, `[key]`, `keys()`); `shape(key)`
    without reading the tensor. Close it (or use `with`) to release the file."""

    def __init__(self, path: str | Path, *, allow_unsafe_pickle: bool = False) -> None:
        self.path = Path(path)
        self._handle: Any = None
        self._tensors: dict[str, Tensor] | None = None
        if self.path.suffix.lower() in SAFETENSORS_SUFFIXES:
            self.metadata = read_safetensors_metadata(self.path)
            from safetensors import safe_open

            try:
                self._handle = safe_open(str(self.path), framework="pt", device="cpu")
            except Exception as exc:  # a truncated or foreign file
                raise ModelLoadError(f"{self.path}: not a valid .safetensors file ({exc})") from exc
            self._keys = list(self._handle.keys())
        else:
            self.metadata = {}
            self._tensors = read_state_dict(self.path, allow_unsafe_pickle=allow_unsafe_pickle)
            self._keys = list(self._tensors)
        self._key_set = set(self._keys)

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._key_set:
            raise KeyError(key)
        if self._tensors is not None:
            return self._tensors[key]
        return self._handle.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._key_set

    def shape(self, key: str) -> tuple[int, ...]:
        if self._tensors is not None:
            return tuple(self._tensors[key].shape)
        return tuple(self._handle.get_slice(key).get_shape())

    def close(self) -> None:
        self._handle = None
        self._tensors = None

    def __enter__(self) -> CheckpointTensors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
