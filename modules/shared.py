"""A1111's `modules.shared` for extensions: the one place that reads the running App.

`opts`, `cmd_opts`, `state` and `sd_model` resolve to the App's objects on access, so there is no
copy of state here to go stale. Sumi's own code receives what it needs explicitly instead.

`sd_model` is the A1111-shaped view of the active model (`modules.sd_models.ModelFacade`); reading
it loads the selected checkpoint when none is loaded, as A1111 does. Assigning `None` to it (which
extensions do to free VRAM) moves the model to the CPU until the next job.
"""

from __future__ import annotations

import logging
import os
import sys
import types
import weakref
from typing import TYPE_CHECKING, Any

from modules.interrogate import InterrogateModels
from modules.sumi.services.settings.options import OptionHTML, OptionInfo, options_section  # noqa: F401  (A1111 re-exports)

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)

_app: App | None = None


def set_app(app: App | None) -> None:
    """Called once by webui.py (and by tests) to make the App visible to extensions."""
    global _app
    _app = app


def app() -> App:
    if _app is None:
        raise RuntimeError("Sumi's App is not running (modules.shared.set_app was not called)")
    return _app


def running_app() -> App | None:
    """The App, or None before webui.py has made one (for facades that have a fallback)."""
    return _app


# -- A1111 helpers and constants ----------------------------------------------------------------------

batch_cond_uncond = True  # A1111: always True since 1.6
parallel_processing_allowed = True
interrogator = InterrogateModels("interrogate")  # A1111's object; captions come from the App's service
latent_upscale_default_mode = "Latent"
latent_upscale_modes = {
    "Latent": {"mode": "bilinear", "antialias": False},
    "Latent (antialiased)": {"mode": "bilinear", "antialias": True},
    "Latent (bicubic)": {"mode": "bicubic", "antialias": False},
    "Latent (bicubic antialiased)": {"mode": "bicubic", "antialias": True},
    "Latent (nearest)": {"mode": "nearest", "antialias": False},
    "Latent (nearest-exact)": {"mode": "nearest-exact", "antialias": False},
}
progress_print_out = sys.stdout


class TotalTQDM:
    """A1111's console progress bar over a whole job; Sumi shows progress in the UI, so these do nothing."""

    def reset(self) -> None: ...

    def update(self) -> None: ...

    def updateTotal(self, new_total: int) -> None: ...  # noqa: N802 (A1111's name)

    def clear(self) -> None: ...


total_tqdm = TotalTQDM()


def listfiles(dirname: str) -> list[str]:
    """A1111's `shared.listfiles`: the visible files of a folder, sorted, as full paths."""
    names = sorted(os.listdir(dirname), key=str.lower)
    return [os.path.join(dirname, name) for name in names if not name.startswith(".")]


def walk_files(path: str, allowed_extensions: list[str] | None = None):
    """A1111's `shared.walk_files`: every file under `path` (recursively), optionally by extension."""
    if not os.path.exists(path):
        return
    extensions = {e.lower() for e in allowed_extensions} if allowed_extensions is not None else None
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs.sort()
        for filename in sorted(files):
            if extensions is not None and os.path.splitext(filename)[1].lower() not in extensions:
                continue
            yield os.path.join(root, filename)


def list_checkpoint_tiles(use_short: bool = False) -> list[str]:
    from modules import sd_models

    return sd_models.checkpoint_tiles(use_short)


def refresh_checkpoints() -> None:
    from modules import sd_models

    sd_models.list_models()


def reload_hypernetworks() -> None:
    app().hypernetworks.refresh()


def _hypernetworks(a: App) -> dict[str, str]:
    """A1111's `shared.hypernetworks`: name -> file path."""
    return {info.name: str(info.path) for info in a.hypernetworks.list()}


def _sd_model(a: App) -> Any:
    from modules import sd_models

    return sd_models.model_data.get_sd_model()


def _xformers_available(a: App) -> bool:
    from modules.sumi.engine.devices import xformers_available

    return xformers_available()


def _state_class(a: App) -> type:
    from modules.sumi.services.jobs.state import JobState

    return JobState


def __getattr__(name: str) -> Any:
    resolvers = {
        "opts": lambda a: a.options,
        "cmd_opts": lambda a: a.args,
        "state": lambda a: a.state,
        "device": lambda a: a.devices.device,
        "prompt_styles": lambda a: a.styles,
        "options_templates": lambda a: a.options.data_labels,
        "hypernetworks": _hypernetworks,
        "hide_dirs": lambda a: {"visible": not getattr(a.args, "hide_ui_dir_config", False)},
        "config_filename": lambda a: str(a.paths.config_file),
        "styles_filename": lambda a: str(a.paths.styles_file),
        "data_path": lambda a: str(a.paths.data_dir),
        "models_path": lambda a: str(a.paths.models_dir),
        "script_path": lambda a: str(a.paths.repo_root),
        "demo": lambda a: getattr(a, "demo", None),
        "xformers_available": _xformers_available,
        "State": _state_class,
        "log": lambda a: logging.getLogger("sd"),
        "face_restorers": _face_restorers,
        "mem_mon": _mem_mon,
    }
    if name == "sd_upscalers":  # also before the App runs: the built-in ones
        from modules import upscaler

        return upscaler.sd_upscalers()
    if name in resolvers:
        return resolvers[name](app())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_mem_mons: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _mem_mon(a: App) -> Any:
    """A1111's VRAM monitor of the App's device (one per App; disabled without CUDA)."""
    monitor = _mem_mons.get(a)
    if monitor is None:
        from modules.memmon import MemUsageMonitor

        monitor = _mem_mons[a] = MemUsageMonitor("MemMon", a.devices.device, a.options)
    return monitor


def _face_restorers(a: App) -> list:
    """The GFPGAN / CodeFormer restorers installed now, one live list (extensions may append)."""
    from modules import face_restoration_utils

    return face_restoration_utils.live_restorers(a.faces.names())


class _SharedModule(types.ModuleType):
    """Gives the module a settable `sd_model`, as A1111's `shared` has."""

    @property
    def sd_model(self) -> Any:
        return _sd_model(app())

    @sd_model.setter
    def sd_model(self, value: Any) -> None:
        if value is None:  # A1111 extensions drop the model this way to free VRAM
            from modules import sd_models

            sd_models.unload_model_weights()
        else:
            log.warning("shared.sd_model = %r ignored: Sumi chooses the model from the settings", value)


sys.modules[__name__].__class__ = _SharedModule

# A1111 imports these while loading `shared`; extensions reach them as `modules.shared_items` after a
# bare `import modules` (adetailer).
from modules import shared_items  # noqa: E402, F401

# A1111's built-in Lora extension modules import by their top-level names (`import networks`, `lora`,
# `network`): their folder (paths.extensions_builtin_dir/Lora) goes on sys.path, after installed packages.
_BUILTIN_LORA = os.path.join(os.path.dirname(__file__), "sumi", "extensions_builtin", "Lora")
if _BUILTIN_LORA not in sys.path:
    sys.path.append(_BUILTIN_LORA)

# An extension importing A1111's model internals (ldm, sgm, k_diffusion, modules.sd_hijack_clip, ...) gets
# an error naming it and what is missing (services/scripts/refusals.py).
from modules.sumi.services.scripts import refusals as _refusals  # noqa: E402


def _extension_roots() -> list[Any]:
    app = running_app()
    return [] if app is None else [app.paths.extensions_dir, app.paths.extensions_builtin_dir]


_refusals.install(_extension_roots)
