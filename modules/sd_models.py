"""A1111's `modules.sd_models` over Sumi's checkpoint registry and model manager.

Module names (`checkpoints_list`, `checkpoint_aliases`, `model_path`) are computed on access from
the running App, so they never go stale. Loading and unloading go through the App's job queue
(inline when called from inside a job), so they never race a generation.

`shared.sd_model` (and `model_data.sd_model`, and the argument of `on_model_loaded` callbacks) is a
`ModelFacade`: A1111's metadata (`sd_checkpoint_info`, `sd_model_hash`, `is_sdxl`, ...) over Sumi's
`SDModel`. Its LDM-named parts are stand-ins holding Sumi's diffusers/transformers modules:
`model.diffusion_model` is the diffusers UNet, `first_stage_model` the diffusers VAE,
`cond_stage_model` (and `conditioner` on SDXL) the CLIP text encoders. Moving them (`.to()`,
`.cpu()`) or reading their parameters works; code that expects LDM classes, block names or
forward signatures does not. A model moved off the GPU is moved back before the next job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from modules import checkpoints, shared
from modules.hashing import legacy_model_hash

if TYPE_CHECKING:
    from modules.model_manager import LoadedModel

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

    def calculate_shorthash(self) -> str | None:
        return self.calculate_hash()


# -- the model facade ---------------------------------------------------------------------------------


class _DiffusionWrapper(torch.nn.Module):
    """Stand-in for LDM's `DiffusionWrapper`: holds the diffusers UNet as `diffusion_model`."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.diffusion_model = unet


class _TextEncoders(torch.nn.ModuleList):
    """Stand-in for `cond_stage_model` / `conditioner`: the CLIP text encoders (SDXL: both).
    `transformer` and `tokenizer` are the first encoder's, as on A1111's SD1 `FrozenCLIPEmbedder`."""

    def __init__(self, specs: list[Any]) -> None:
        super().__init__([spec.model for spec in specs])
        object.__setattr__(self, "tokenizer", specs[0].tokenizer if specs else None)

    @property
    def transformer(self) -> torch.nn.Module:
        return self[0]

    @property
    def embedders(self) -> _TextEncoders:
        return self


class ModelFacade:
    """What A1111 extensions see as `shared.sd_model` (see the module docstring for what is real)."""

    cond_stage_key = "txt"
    is_sd3 = False
    is_ssd = False
    lowvram = False

    def __init__(self, loaded: LoadedModel) -> None:
        self._ref = weakref.ref(loaded)  # the facade lives as long as the model manager keeps the model
        sd = loaded.sd
        self._parts = torch.nn.Module()  # A1111's top-level layout, for parameters()/named_modules()
        self._parts.model = _DiffusionWrapper(sd.unet)
        self._parts.first_stage_model = sd.vae
        self._parts.cond_stage_model = _TextEncoders(sd.text_encoders)

    @property
    def _loaded(self) -> LoadedModel:
        loaded = self._ref()
        if loaded is None:
            raise RuntimeError("this sd_model was unloaded; read shared.sd_model again")
        return loaded

    @property
    def sumi_model(self) -> Any:
        """Sumi's own SDModel behind this view (what Sumi's services work with)."""
        return self._loaded.sd

    # metadata
    @property
    def sd_checkpoint_info(self) -> checkpoints.CheckpointInfo:
        return self._loaded.checkpoint

    @property
    def sd_model_checkpoint(self) -> str:
        return self._loaded.checkpoint.filename

    @property
    def sd_model_hash(self) -> str | None:
        return self._loaded.checkpoint.shorthash

    @property
    def is_sdxl(self) -> bool:
        return self._loaded.sd.family == "SDXL"

    @property
    def is_sd1(self) -> bool:
        return self._loaded.sd.family == "SD1"

    @property
    def is_sd2(self) -> bool:
        return self._loaded.sd.family == "SD2"

    @property
    def is_sdxl_inpaint(self) -> bool:
        return self.is_sdxl and self._loaded.sd.is_inpainting

    @property
    def parameterization(self) -> str:
        return "v" if self._loaded.sd.prediction_type == "v_prediction" else "eps"

    # stand-in parts
    @property
    def model(self) -> torch.nn.Module:
        return self._parts.model

    @property
    def first_stage_model(self) -> torch.nn.Module:
        return self._parts.first_stage_model

    @property
    def cond_stage_model(self) -> torch.nn.Module:
        return self._parts.cond_stage_model

    @property
    def conditioner(self) -> torch.nn.Module:
        if not self.is_sdxl:
            raise AttributeError("conditioner: only SDXL models have one (A1111)")
        return self._parts.cond_stage_model

    def parameters(self, recurse: bool = True):
        return self._parts.parameters(recurse)

    def named_modules(self, *args: Any, **kwargs: Any):
        return self._parts.named_modules(*args, **kwargs)

    def modules(self):
        return self._parts.modules()

    def state_dict(self, *args: Any, **kwargs: Any) -> dict:
        return self._parts.state_dict(*args, **kwargs)

    def to(self, *args: Any, **kwargs: Any) -> ModelFacade:
        """Move every part (`to(device)`, `to(dtype)`, `to(device, dtype)`), as `nn.Module.to`."""
        device = kwargs.get("device")
        dtype = kwargs.get("dtype")
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = arg
        self._loaded.sd.to(device if device is not None else self._loaded.sd.device, dtype)
        return self

    def cpu(self) -> ModelFacade:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> ModelFacade:
        return self.to(device if device is not None else "cuda")

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined above: Sumi's SDModel (unet, vae, text_encoders, family, ...).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._loaded.sd, name)

    def __repr__(self) -> str:
        return f"<sd_model {self._loaded.checkpoint.title} ({self._loaded.sd.family})>"


_views: dict[int, ModelFacade] = {}


def model_view(loaded: LoadedModel) -> ModelFacade:
    """The facade of a loaded model: the same object for as long as the model stays loaded."""
    view = _views.get(id(loaded))
    if view is None or view._ref() is not loaded:
        view = _views[id(loaded)] = ModelFacade(loaded)
        weakref.finalize(loaded, _views.pop, id(loaded), None)
    return view


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
                loaded = app.queue.call("load model", app.models.get)
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
    from modules.engine.loading import read_safetensors_metadata

    metadata: dict[str, Any] = dict(read_safetensors_metadata(filename))
    for key, value in metadata.items():
        if isinstance(value, str) and value.startswith("{"):
            with contextlib.suppress(ValueError):
                metadata[key] = json.loads(value)
    return metadata


def read_state_dict(checkpoint_file: str, print_global_state: bool = False, map_location: Any = None) -> dict:
    """Every tensor of a model file, read safely (pickles only with --disable-safe-unpickle)."""
    from modules.engine.loading import read_state_dict as read

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
    app = shared.app()
    loaded = app.queue.call("load model", lambda: app.models.load(info))
    return model_view(loaded)


def load_model(checkpoint_info: Any = None, already_loaded_state_dict: Any = None) -> ModelFacade:
    return reload_model_weights(info=checkpoint_info)


def unload_model_weights(sd_model: Any = None, info: Any = None) -> Any:
    """Move the model to the CPU to free VRAM (A1111 1.6+); the next generation moves it back."""
    app = shared.app()
    app.queue.call("unload model", app.models.offload)
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
