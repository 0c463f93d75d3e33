"""A1111's `modules.sd_models` over Sumi's checkpoint registry and model manager.

Module names (`checkpoints_list`, `checkpoint_aliases`, `model_path`) are computed on access from
the running App, so they never go stale. Loading and unloading go through the App's job queue
(inline when called from inside a job), so they never race a generation.

`shared.sd_model` (and `model_data.sd_model`, and the argument of `on_model_loaded` callbacks) is a
`ModelFacade` (`modules.sumi.services.models.a1111_view`): A1111's metadata over Sumi's `SDModel`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modules import shared
from modules.sumi.services.models import checkpoints
from modules.sumi.services.models.a1111_view import ModelFacade, model_view
from modules.sumi.services.models.hashing import legacy_model_hash

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class CheckpointInfo(checkpoints.CheckpointInfo):
    """A1111's `CheckpointInfo(filename)`: named by its path relative to the checkpoint folder it is in.

    Unlike A1111, `hash` is the 10-hex sha256 short hash (same as `shorthash`); the old 8-hex hash
    is `legacy_hash`."""

    def __init__(self, filename: str | Path, name: str | None = None, **kwargs: Any) -> None:
        app = shared.running_app()
        if app is not None:
            kwargs.setdefault("hash_cache", app.checkpoints.hash_cache)
            kwargs.setdefault("no_hashing", app.checkpoints.no_hashing)
        if name is None:
            folders = app.checkpoints.ckpt_dirs if app is not None else []
            name = checkpoints._relative_name(Path(filename).resolve(), folders)
        super().__init__(filename, name, **kwargs)

    def register(self) -> None:
        """Add the file to the checkpoint list (it stays listed after a refresh)."""
        shared.app().checkpoints.add_file(self.filename)


class ModelData:
    """A1111's `sd_models.model_data`."""

    @property
    def sd_model(self) -> ModelFacade | None:
        return self.get_sd_model()

    @sd_model.setter
    def sd_model(self, value: Any) -> None:
        self.set_sd_model(value)

    @property
    def was_loaded_at_least_once(self) -> bool:
        return shared.app().models.active is not None

    def get_sd_model(self) -> ModelFacade | None:
        """The active model; loads the selected checkpoint first when none is (A1111). None if that fails."""
        app = shared.app()
        loaded = app.models.active
        if loaded is None:
            try:
                loaded = app.models.get()
            except Exception as exc:  # noqa: BLE001 (A1111 prints it and goes on without a model)
                log.error("sd_model: the selected checkpoint could not be loaded: %s", exc)
                return None
        return model_view(loaded)

    def set_sd_model(self, value: Any, already_loaded: bool = False) -> None:
        if value is None:
            unload_model_weights()


model_data = ModelData()


# -- checkpoints ----------------------------------------------------------------------------------


def checkpoint_tiles(use_short: bool = False) -> list[str]:
    """Checkpoint titles as the dropdown shows them (`name [hash]`, or `stem [hash]` with use_short)."""
    return [i.short_title if use_short else i.title for i in shared.app().checkpoints.list()]


def list_models() -> None:
    """Rescan the checkpoint folders."""
    shared.app().checkpoints.refresh()


def get_closet_checkpoint_match(search_string: str) -> checkpoints.CheckpointInfo | None:
    """A checkpoint by any alias A1111 accepts (title, name, stem, hashes), else by substring."""
    return shared.app().checkpoints.match(search_string)


def select_checkpoint() -> checkpoints.CheckpointInfo:
    """The checkpoint the settings select, or the first one; ModelLoadError when there is none."""
    return shared.app().models.selected_checkpoint()


def model_hash(filename: str) -> str:
    """A1111's old 8-hex hash of a file ("NOFILE" when it cannot be read)."""
    try:
        return legacy_model_hash(filename)
    except OSError:
        return "NOFILE"


def read_metadata_from_safetensors(filename: str) -> dict[str, Any]:
    """The header metadata; values that hold JSON objects are decoded, as A1111 does."""
    from modules.sumi.engine.files import read_safetensors_metadata

    metadata: dict[str, Any] = dict(read_safetensors_metadata(filename))
    for key, value in metadata.items():
        if isinstance(value, str) and value.startswith("{"):
            with contextlib.suppress(ValueError):
                metadata[key] = json.loads(value)
    return metadata


def read_state_dict(checkpoint_file: str, print_global_state: bool = False, map_location: Any = None) -> dict:
    """Every tensor of a model file, read safely (pickles only with --disable-safe-unpickle)."""
    from modules.sumi.engine.files import read_state_dict as read

    app = shared.running_app()
    unsafe = bool(getattr(app.args, "disable_safe_unpickle", False)) if app is not None else False
    state = read(checkpoint_file, allow_unsafe_pickle=unsafe)
    if map_location is not None and str(map_location) != "cpu":
        state = {k: v.to(map_location) for k, v in state.items()}
    return state


def reload_model_weights(sd_model: Any = None, info: Any = None, forced_reload: bool = False) -> ModelFacade:
    """Load `info` (default: the checkpoint the settings select) now and return it.

    Sumi keeps `opts.sd_model_checkpoint` equal to the loaded checkpoint (so the UI shows it), so
    later generations use this checkpoint too, until the setting changes."""
    return model_view(shared.app().models.load(info))


def load_model(checkpoint_info: Any = None, already_loaded_state_dict: Any = None) -> ModelFacade:
    """Load `checkpoint_info`; with `already_loaded_state_dict` (a single-file state dict, as a merge
    makes it), that model instead, listed as "<name> (in memory)" and active, with no file written."""
    if already_loaded_state_dict is None:
        return reload_model_weights(info=checkpoint_info)
    name = getattr(checkpoint_info, "name_for_extra", None) or "merged"
    return model_view(shared.app().models.try_state_dict(str(name), dict(already_loaded_state_dict)))


def unload_model_weights(sd_model: Any = None, info: Any = None) -> Any:
    """Move the model to the CPU to free VRAM (A1111 1.6+); the next generation moves it back."""
    shared.app().models.offload()
    return sd_model


def send_model_to_cpu(m: Any) -> None:
    unload_model_weights(m)


def send_model_to_device(m: Any) -> None:
    reload_model_weights(m)


def __getattr__(name: str) -> Any:
    def aliases(app: Any) -> dict[str, checkpoints.CheckpointInfo]:
        found: dict[str, checkpoints.CheckpointInfo] = {}
        for info in app.checkpoints.list():
            for alias in info.ids():
                found.setdefault(alias, info)
        return found

    resolvers = {
        "checkpoints_list": lambda a: {i.title: i for i in a.checkpoints.list()},
        "checkpoint_aliases": aliases,
        "checkpoint_alisases": aliases,  # A1111's misspelt old name
        "checkpoints_loaded": lambda a: {},  # A1111's state-dict cache; Sumi caches whole models
        "model_path": lambda a: str(a.paths.ckpt_dirs[0]),
    }
    if name in resolvers:
        return resolvers[name](shared.app())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
