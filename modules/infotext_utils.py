"""A1111's `modules.infotext_utils` (old name `modules.generation_parameters_copypaste`).

Parsing is Sumi's (`modules.sumi.services.jobs.infotext`): `parse_generation_parameters(text)` gives
A1111's dict of strings (`Prompt`, `Negative prompt`, `Steps`, `Size-1`, ..., with A1111's defaults)
and calls no callbacks. The "Send to ..." registry is the web UI's
(`modules.sumi.frontends.gradio.paste_buttons`); `paste_fields` and `registered_param_bindings` are
its containers, so what extensions register here is what the page wires.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from modules import shared
from modules.sumi.frontends.gradio import paste_buttons
from modules.sumi.frontends.gradio.paste_buttons import REGISTRY, ParamBinding, field_value
from modules.sumi.services.jobs.infotext import quote, unquote

__all__ = [
    "ParamBinding",
    "add_paste_fields",
    "bind_buttons",
    "connect_paste",
    "connect_paste_params_buttons",
    "create_buttons",
    "create_override_settings_dict",
    "field_value",
    "get_override_settings",
    "image_from_url_text",
    "infotext_to_setting_name_mapping",
    "parse_generation_parameters",
    "paste_fields",
    "quote",
    "register_paste_params_button",
    "registered_param_bindings",
    "reset",
    "send_image_and_dimensions",
    "unquote",
]

paste_fields: dict[str, dict[str, Any]] = REGISTRY.fields
registered_param_bindings: list[ParamBinding] = REGISTRY.bindings
infotext_to_setting_name_mapping: list[tuple[str, str]] = []  # Sumi's options carry their own `infotext`


def _options() -> Any:
    app = shared.running_app()
    return app.options if app is not None else None


def _outputs_dir() -> Any:
    app = shared.running_app()
    return app.paths.outputs_dir if app is not None else None


def reset() -> None:
    """Forget registered fields and buttons (the UI calls this before building a page)."""
    REGISTRY.reset()


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict[str, Any]:
    """An infotext as A1111's dict of strings; `skip_fields` default to opt `infotext_skip_pasting`."""
    if skip_fields is None:
        return paste_buttons.parse_infotext(x, _options())
    return paste_buttons.infotext.parse_infotext(x or "", skip_fields=skip_fields)


def add_paste_fields(
    tabname: str, init_img: Any, fields: list | None, override_settings_component: Any = None
) -> None:
    REGISTRY.add_paste_fields(tabname, init_img, fields, override_settings_component)


def create_buttons(tabs_list: list[str]) -> dict[str, gr.Button]:
    return {tab: gr.Button(f"Send to {tab}", elem_id=f"{tab}_tab") for tab in tabs_list}


def bind_buttons(buttons: dict[str, Any], send_image: Any, send_generate_info: Any) -> None:
    """Old API: `send_generate_info` is a component holding an infotext, or a tab name to copy from."""
    for tabname, button in buttons.items():
        is_component = isinstance(send_generate_info, gr.components.Component)
        register_paste_params_button(
            ParamBinding(
                paste_button=button,
                tabname=tabname,
                source_text_component=send_generate_info if is_component else None,
                source_image_component=send_image,
                source_tabname=send_generate_info if isinstance(send_generate_info, str) else None,
            )
        )


def register_paste_params_button(binding: ParamBinding) -> None:
    REGISTRY.register(binding)


def image_from_url_text(filedata: Any) -> Image.Image | None:
    """An image from what a Gallery/Image sends; files outside Gradio's upload folder and the outputs are
    refused."""
    return paste_buttons.image_from_url_text(filedata, paste_buttons.readable_roots(_outputs_dir()))


def send_image_and_dimensions(x: Any) -> tuple[Any, Any, Any]:
    return paste_buttons.send_image_and_dimensions(x, paste_buttons.readable_roots(_outputs_dir()))


def create_override_settings_dict(text_pairs: list[str]) -> dict[str, Any]:
    """`["Clip skip: 2", ...]` -> `{"CLIP_stop_at_last_layers": 2}` for the options that have an infotext label."""
    params = {}
    for pair in text_pairs or []:
        key, _, value = pair.partition(":")
        params[key.strip()] = value.strip()
    opts = shared.app().options
    res = {}
    for key, info in opts.data_labels.items():
        if info.infotext and info.infotext in params:
            res[key] = opts.cast_value(key, params[info.infotext])
    return res


def get_override_settings(params: dict[str, Any], *, skip_fields: list[str] | None = None) -> list[tuple]:
    """(infotext key, setting key, value) for each setting the infotext names with a different value."""
    opts = shared.app().options
    res = []
    for key, info in opts.data_labels.items():
        label = info.infotext
        if not label or label not in params or label in (skip_fields or []) or key == "sd_model_checkpoint":
            continue
        value = opts.cast_value(key, params[label])
        if value != getattr(opts, key):
            res.append((label, key, value))
    return res


def _parse_and_announce(text: str) -> dict[str, Any]:
    """What a paste button does with its text: parse it, then the `on_infotext_pasted` callbacks."""
    app = shared.running_app()
    return paste_buttons.announcing_parser(_options(), app.callbacks if app else None)(text)


def connect_paste(
    button: Any, fields: list, input_comp: Any, override_settings_component: Any, tabname: str
) -> None:
    """Clicking `button` parses the infotext in `input_comp` into `fields` ((component, key or function), ...)."""
    paste_buttons.connect_paste(button, fields, input_comp, _parse_and_announce)


def connect_paste_params_buttons() -> None:
    """Wire every registered button whose target tab registered its fields; the others stay inert."""
    REGISTRY.connect(_parse_and_announce, paste_buttons.readable_roots(_outputs_dir()))
