"""Reading an annotator's weight file into its network, the same way for every annotator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from modules.sumi.engine.files import check_weights, load_weights, read_state_dict

NetworkT = TypeVar("NetworkT", bound=torch.nn.Module)


def load_network(
    path: Path,
    build: Callable[[], NetworkT],
    what: str,
    allow_unsafe_pickle: bool,
    strip: str = "",
    state: dict[str, torch.Tensor] | None = None,
) -> NetworkT:
    """The fp32 network `build()` makes, filled strictly from `path` (a `state_dict` wrapper and the
    prefix `strip` dropped; `state` when the caller has read the file already); ModelLoadError naming
    the keys when the file holds another network."""
    if state is None:
        state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    if strip:
        state = {key.removeprefix(strip): value for key, value in state.items()}
    check_weights(state, what, path)
    with torch.device("meta"):
        network = build()
    return load_weights(network, state, f"{what} annotator", path, torch.float32)
