"""A1111's `modules.script_callbacks`: extensions register module-level callbacks here.

Every `on_*` function adds to the running App's `CallbackRegistry` (modules/callbacks.py); the
`*_callback` functions are what Sumi calls. Parameter classes keep A1111's names and fields.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modules import shared
from modules.sumi.services.scripts.callbacks import (
    AfterCFGCallbackParams,
    CallbackRegistry,
    CFGDenoisedParams,
    CFGDenoiserParams,
    ExtraNoiseParams,
    ImageGridLoopParams,
    ImageSaveParams,
    UiTrainTabParams,
)


@dataclass
class BeforeTokenCounterParams:
    prompt: str
    steps: int
    styles: list
    is_positive: bool = True


def _registry() -> CallbackRegistry:
    return shared.app().callbacks


def _caller_file(depth: int = 2) -> str:
    """The file of the code that called into this module (A1111 files a callback under it)."""
    frame = sys._getframe(depth)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else ""


def _adder(category: str) -> Callable[..., None]:
    def add(callback: Callable[..., Any], *, name: str | None = None) -> None:
        _registry().add(category, callback, name, filename=_caller_file())

    add.__name__ = f"on_{category}"
    add.__doc__ = f"Register a `{category}` callback (A1111's script_callbacks.on_{category})."
    return add


on_app_started = _adder("app_started")
on_before_reload = _adder("before_reload")
on_model_loaded = _adder("model_loaded")
on_ui_tabs = _adder("ui_tabs")
on_ui_train_tabs = _adder("ui_train_tabs")
on_ui_settings = _adder("ui_settings")
on_before_image_saved = _adder("before_image_saved")
on_image_saved = _adder("image_saved")
on_extra_noise = _adder("extra_noise")
on_cfg_denoiser = _adder("cfg_denoiser")
on_cfg_denoised = _adder("cfg_denoised")
on_cfg_after_cfg = _adder("cfg_after_cfg")
on_image_grid = _adder("image_grid")
on_infotext_pasted = _adder("infotext_pasted")
on_script_unloaded = _adder("script_unloaded")
on_before_ui = _adder("before_ui")
on_list_optimizers = _adder("list_optimizers")
on_list_unets = _adder("list_unets")
on_before_token_counter = _adder("before_token_counter")
_on_before_component = _adder("before_component")
_on_after_component = _adder("after_component")


def on_before_component(callback: Callable[..., Any], *, name: str | None = None) -> None:
    """`callback(component, **kwargs)` before every UI component is created."""
    _on_before_component(callback, name=name)


def on_after_component(callback: Callable[..., Any], *, name: str | None = None) -> None:
    """`callback(component, **kwargs)` after every UI component is created (kwargs has elem_id)."""
    _on_after_component(callback, name=name)


def remove_current_script_callbacks() -> None:
    """Remove the callbacks registered by the calling file (as A1111: at import, or from a script's
    `process` to drop the callbacks an earlier job's `process` registered)."""
    registry = _registry()
    if registry.current_script:  # a script file being imported: what it registered
        registry.remove_script(registry.current_script)
    else:
        registry.remove_registered_by(_caller_file())


def remove_callbacks_for_function(callback: Callable[..., Any]) -> None:
    _registry().remove_function(callback)


def clear_callbacks() -> None:
    _registry().clear()


# -- invokers (Sumi calls these; extensions rarely do) --------------------------------------------


def app_started_callback(demo: Any, app: Any) -> None:
    _registry().call("app_started", demo, app)


def model_loaded_callback(sd_model: Any) -> None:
    _registry().call("model_loaded", sd_model)


def ui_tabs_callback() -> list:
    """Every extension's tabs, flattened: `[(blocks, title, elem_id), ...]`."""
    return [tab for tabs in _registry().call("ui_tabs") for tab in (tabs or [])]


def ui_settings_callback() -> None:
    _registry().call("ui_settings")


def before_image_saved_callback(params: ImageSaveParams) -> None:
    _registry().call("before_image_saved", params)


def image_saved_callback(params: ImageSaveParams) -> None:
    _registry().call("image_saved", params)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    _registry().call("cfg_denoiser", params)


def cfg_denoised_callback(params: CFGDenoisedParams) -> None:
    _registry().call("cfg_denoised", params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams) -> None:
    _registry().call("cfg_after_cfg", params)


def before_component_callback(component: Any, **kwargs: Any) -> None:
    _registry().call("before_component", component, **kwargs)


def after_component_callback(component: Any, **kwargs: Any) -> None:
    _registry().call("after_component", component, **kwargs)


def image_grid_callback(params: ImageGridLoopParams) -> None:
    _registry().call("image_grid", params)


def extra_noise_callback(params: ExtraNoiseParams) -> None:
    _registry().call("extra_noise", params)


def infotext_pasted_callback(infotext: str, params: dict) -> None:
    _registry().call("infotext_pasted", infotext, params)


def script_unloaded_callback() -> None:
    _registry().call("script_unloaded")


def before_ui_callback() -> None:
    _registry().call("before_ui")


__all__ = [
    "AfterCFGCallbackParams",
    "BeforeTokenCounterParams",
    "CFGDenoisedParams",
    "CFGDenoiserParams",
    "ExtraNoiseParams",
    "extra_noise_callback",
    "ImageGridLoopParams",
    "ImageSaveParams",
    "UiTrainTabParams",
    "after_component_callback",
    "app_started_callback",
    "before_component_callback",
    "before_image_saved_callback",
    "before_ui_callback",
    "cfg_after_cfg_callback",
    "cfg_denoised_callback",
    "cfg_denoiser_callback",
    "clear_callbacks",
    "image_grid_callback",
    "image_saved_callback",
    "infotext_pasted_callback",
    "model_loaded_callback",
    "on_after_component",
    "on_app_started",
    "on_before_component",
    "on_before_image_saved",
    "on_before_reload",
    "on_before_token_counter",
    "on_before_ui",
    "on_cfg_after_cfg",
    "on_cfg_denoised",
    "on_cfg_denoiser",
    "on_extra_noise",
    "on_image_grid",
    "on_image_saved",
    "on_infotext_pasted",
    "on_list_optimizers",
    "on_list_unets",
    "on_model_loaded",
    "on_script_unloaded",
    "on_ui_settings",
    "on_ui_tabs",
    "on_ui_train_tabs",
    "remove_callbacks_for_function",
    "remove_current_script_callbacks",
    "script_unloaded_callback",
    "ui_settings_callback",
    "ui_tabs_callback",
]
