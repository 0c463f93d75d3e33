"""A1111's `modules.sd_vae` over Sumi's VAE registry and model manager.

`vae_dict` (file name -> path), `loaded_vae_file`, `base_vae` and `vae_path` are computed on access
from the running App. `reload_vae_weights()` applies the VAE settings again; with `vae_file` it puts
that file into the active model until the next generation applies the settings (as in A1111).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from modules import shared

unspecified = object()


@dataclass(frozen=True)
class VaeResolution:
    vae: str | None = None
    source: str | None = None
    resolved: bool = True

    def tuple(self) -> tuple[str | None, str | None]:
        return self.vae, self.source


def get_filename(filepath: str) -> str:
    return os.path.basename(filepath)


def refresh_vae_list() -> None:
    """Rescan the VAE folders (and `*.vae.*` files beside the checkpoints)."""
    shared.app().vaes.refresh()


def find_vae_near_checkpoint(checkpoint_file: str) -> str | None:
    near = shared.app().vaes.find_near_checkpoint(checkpoint_file)
    return str(near) if near else None


def resolve_vae(checkpoint_file: str) -> VaeResolution:
    """The VAE the settings pick for a checkpoint file (None: the checkpoint's own)."""
    app = shared.app()
    info = next((i for i in app.checkpoints.list() if i.filename == str(checkpoint_file)), None)
    path = app.vaes.resolve(
        info, app.options.sd_vae, bool(app.options.sd_vae_overrides_per_model_preferences)
    )
    return VaeResolution(str(path) if path else None, "settings" if path else None)


def load_vae_dict(filename: str, map_location: Any = "cpu") -> dict:
    """A VAE file's weights (diffusers names), read safely."""
    from modules.sumi.engine.vae_loading import load_vae_file

    app = shared.app()
    state = load_vae_file(filename, allow_unsafe_pickle=bool(app.args.disable_safe_unpickle))
    if str(map_location) != "cpu":
        state = {k: v.to(map_location) for k, v in state.items()}
    return state


def reload_vae_weights(sd_model: Any = None, vae_file: Any = unspecified) -> Any:
    """Apply the VAE settings to the active model, or load `vae_file` (None: the checkpoint's own VAE)."""
    models = shared.app().models
    if vae_file is unspecified:
        models.get()
    else:
        models.load_vae(vae_file)
    return sd_model


def load_vae(model: Any, vae_file: str | None = None, vae_source: str = "") -> None:
    reload_vae_weights(model, vae_file)


def clear_loaded_vae() -> None:
    """A1111 forgets which VAE it loaded; Sumi always knows, so this does nothing."""


def _loaded_vae_file(app: Any) -> str | None:
    active = app.models.active
    return str(active.vae_path) if active is not None and active.vae_path else None


def _base_vae(app: Any) -> dict | None:
    """The checkpoint's own VAE weights while another VAE is loaded (A1111's `base_vae`), else None."""
    active = app.models.active
    return active.baked_vae if active is not None and active.vae_path else None


def __getattr__(name: str) -> Any:
    resolvers = {
        "vae_dict": lambda a: {name: str(path) for name, path in a.vaes.files().items()},
        "vae_path": lambda a: str(a.paths.vae_dirs[0]),
        "loaded_vae_file": _loaded_vae_file,
        "base_vae": _base_vae,
        "checkpoint_info": lambda a: a.models.active.checkpoint if a.models.active else None,
        "checkpoints_loaded": lambda a: {},
        "vae_ignore_keys": lambda a: {"model_ema.decay", "model_ema.num_updates"},
    }
    if name in resolvers:
        return resolvers[name](shared.app())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
