"""A1111's `modules.infotext_utils` (old name `modules.generation_parameters_copypaste`).

Parsing is Sumi's (`modules.infotext`): `parse_generation_parameters(text)` gives A1111's dict of
strings (`Prompt`, `Negative prompt`, `Steps`, `Size-1`, ..., with A1111's defaults) and calls no
callbacks. The "Send to ..." machinery is A1111's: a tab registers its controls with
`add_paste_fields(tabname, init_img, [(component, infotext key or function), ...])`, an extension
registers buttons with `register_paste_params_button(ParamBinding(...))` (or `create_buttons` +
`bind_buttons`), and `connect_paste_params_buttons()`, called once the whole page is built, wires
every button whose target tab registered its fields. A button aimed at a tab that did not register
its fields does nothing (Sumi's txt2img tab registers its fields only where the UI says so).
"""

from __future__ import annotations

import base64
import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from modules import infotext, shared
from modules.infotext import quote, unquote

__all__ = [
    "ParamBinding",
    "add_paste_fields",
    "bind_buttons",
    "connect_paste",
    "connect_paste_params_buttons",
    "create_buttons",
    "create_override_settings_dict",
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


@dataclass
class ParamBinding:
    paste_button: Any
    tabname: str
    source_text_component: Any = None
    source_image_component: Any = None
    source_tabname: str | None = None
    override_settings_component: Any = None
    paste_field_names: list[str] = field(default_factory=list)


paste_fields: dict[str, dict[str, Any]] = {}
registered_param_bindings: list[ParamBinding] = []
infotext_to_setting_name_mapping: list[tuple[str, str]] = []  # Sumi's options carry their own `infotext`


def reset() -> None:
    """Forget registered fields and buttons (the UI calls this before building a page)."""
    paste_fields.clear()
    registered_param_bindings.clear()


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict[str, Any]:
    """An infotext as A1111's dict of strings; `skip_fields` default to opt `infotext_skip_pasting`."""
    if skip_fields is None:
        app = shared.running_app()
        skip_fields = list(getattr(app.options, "infotext_skip_pasting", []) or []) if app else []
    return infotext.parse_infotext(x or "", skip_fields=skip_fields)


def add_paste_fields(
    tabname: str, init_img: Any, fields: list | None, override_settings_component: Any = None
) -> None:
    paste_fields[tabname] = {
        "init_img": init_img,
        "fields": list(fields) if fields else [],
        "override_settings_component": override_settings_component,
    }


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
    registered_param_bindings.append(binding)


def image_from_url_text(filedata: Any) -> Image.Image | None:
    """An image from what a Gallery/Image sends: a PIL image, a file (dict or path) Gradio saved, or a
    `data:image/...;base64,` URL. Files outside Gradio's upload folder and the outputs are refused."""
    if filedata is None:
        return None
    if isinstance(filedata, Image.Image):
        return filedata
    if isinstance(filedata, (list, tuple)):
        return image_from_url_text(filedata[0]) if filedata else None
    if isinstance(filedata, dict):
        if filedata.get("image") is not None:  # a Gallery item {"image": FileData, "caption": ...}
            return image_from_url_text(filedata["image"])
        filedata = filedata.get("path") or filedata.get("name") or filedata.get("url")
    text = str(filedata)
    if text.startswith("data:image/"):
        return Image.open(io.BytesIO(base64.b64decode(text.split(",", 1)[1])))
    path = Path(text).resolve()
    if not any(path.is_relative_to(root) for root in _readable_roots()):
        raise ValueError(f"refusing to read {path}: not a file the browser sent or an output image")
    image = Image.open(path)
    image.load()
    return image


def _readable_roots() -> list[Path]:
    roots = [Path(tempfile.gettempdir()).resolve()]
    if os.environ.get("GRADIO_TEMP_DIR"):
        roots.append(Path(os.environ["GRADIO_TEMP_DIR"]).resolve())
    app = shared.running_app()
    if app is not None:
        roots.append(app.paths.outputs_dir.resolve())
    return roots


def send_image_and_dimensions(x: Any) -> tuple[Any, Any, Any]:
    image = x if isinstance(x, Image.Image) else image_from_url_text(x)
    if image is None:
        return gr.skip(), gr.skip(), gr.skip()
    return image, image.width, image.height


def _send_image(x: Any) -> Any:
    return send_image_and_dimensions(x)[0]


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


def connect_paste(
    button: Any, fields: list, input_comp: Any, override_settings_component: Any, tabname: str
) -> None:
    """Clicking `button` parses the infotext in `input_comp` into `fields` ((component, key or function), ...)."""

    def paste_func(prompt: str | None) -> list[Any]:
        params = parse_generation_parameters(prompt or "")
        from modules import script_callbacks

        script_callbacks.infotext_pasted_callback(prompt or "", params)
        return [field_value(component, key, params) for component, key in fields]

    outputs = [component for component, _ in fields]
    button.click(fn=paste_func, inputs=[input_comp], outputs=outputs, show_progress="hidden")


def field_value(component: Any, key: Any, params: dict[str, Any]) -> Any:
    value = key(params) if callable(key) else params.get(key)
    if value is None:
        return gr.skip()
    if isinstance(value, dict) and "__type__" in value:  # already an update
        return value
    current = getattr(component, "value", None)
    if isinstance(current, list):  # multiselect dropdowns take lists only
        return value if isinstance(value, list) else gr.skip()
    try:
        if isinstance(current, bool):
            return value not in ("False", "false", False)
        if isinstance(current, (int, float)) and not isinstance(value, (int, float)):
            return float(value)
        return type(current)(value) if current is not None else value
    except (TypeError, ValueError):
        return gr.skip()


def connect_paste_params_buttons() -> None:
    """Wire every registered button whose target tab registered its fields; the others stay inert."""
    for binding in registered_param_bindings:
        target = paste_fields.get(binding.tabname)
        if target is None:
            continue
        fields = target["fields"]
        if binding.source_image_component is not None and target["init_img"] is not None:
            width = next((c for c, key in fields if key == "Size-1"), None)
            height = next((c for c, key in fields if key == "Size-2"), None)
            outputs = [target["init_img"], *(c for c in (width, height) if c is not None)]
            binding.paste_button.click(
                fn=send_image_and_dimensions if len(outputs) == 3 else _send_image,
                inputs=[binding.source_image_component],
                outputs=outputs,
                show_progress="hidden",
            )
        if binding.source_text_component is not None and fields:
            override = binding.override_settings_component or target["override_settings_component"]
            connect_paste(
                binding.paste_button, fields, binding.source_text_component, override, binding.tabname
            )
        source = paste_fields.get(binding.source_tabname or "")
        if source is not None and fields:
            names = {"Prompt", "Negative prompt", "Steps", "Face restoration", *binding.paste_field_names}
            pairs = [(s, d) for s, sk in source["fields"] for d, dk in fields if sk == dk and sk in names]
            if pairs:
                binding.paste_button.click(
                    fn=lambda *x: x,
                    inputs=[s for s, _ in pairs],
                    outputs=[d for _, d in pairs],
                    show_progress="hidden",
                )
        binding.paste_button.click(fn=None, js=_switch_tab_js(binding.tabname))
    registered_param_bindings.clear()


def _switch_tab_js(tabname: str) -> str:
    """Select the target tab: A1111's `switch_to_<tab>()` if a script defines it, else its tab button."""
    label = re.sub(r"\W", "_", tabname)
    return (
        f"() => {{ if (typeof switch_to_{label} === 'function') {{ switch_to_{label}(); return; }}"
        " const b = [...document.querySelectorAll('#tabs button[role=tab]')]"
        f".find(e => e.textContent.trim() === '{label}'); if (b) b.click(); }}"
    )
