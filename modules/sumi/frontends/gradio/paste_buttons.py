"""A1111's "Send to ..." buttons: tabs register their fields, extensions register buttons, and once the
page is built every button whose target tab registered its fields is wired.

A tab registers its controls with `add_paste_fields(tabname, init_img, [(component, infotext key or
function), ...])`; an extension registers a button with `register(ParamBinding(...))` (A1111's
`register_paste_params_button`). `connect(...)` wires them all once the page is built. A button aimed
at a tab that registered no fields does nothing. `modules.infotext_utils` exposes this registry under
A1111's module-level names (`paste_fields`, `registered_param_bindings`, ...).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from modules.sumi.services.jobs import infotext
from modules.sumi.util.b64images import decode_base64_image

# (component, infotext key or a function of the parsed infotext)
PasteField = tuple[Any, Any]


@dataclass
class ParamBinding:
    paste_button: Any
    tabname: str
    source_text_component: Any = None
    source_image_component: Any = None
    source_tabname: str | None = None
    override_settings_component: Any = None
    paste_field_names: list[str] = field(default_factory=list)


@dataclass
class PasteButtons:
    """The page's registered paste fields (per tab) and the buttons waiting to be wired."""

    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    bindings: list[ParamBinding] = field(default_factory=list)

    def reset(self) -> None:
        """Forget registered fields and buttons (before a page is built). The containers stay the
        same objects: A1111's module-level names point at them."""
        self.fields.clear()
        self.bindings.clear()

    def add_paste_fields(
        self, tabname: str, init_img: Any, fields: list | None, override_settings_component: Any = None
    ) -> None:
        self.fields[tabname] = {
            "init_img": init_img,
            "fields": list(fields) if fields else [],
            "override_settings_component": override_settings_component,
        }

    def register(self, binding: ParamBinding) -> None:
        self.bindings.append(binding)

    def connect(self, parse: Callable[[str], dict[str, Any]], readable_roots: Sequence[Path]) -> None:
        """Wire every registered button whose target tab registered its fields; the others stay inert.
        `parse(infotext)` gives the parameters a text button pastes; images come only from `readable_roots`."""
        for binding in self.bindings:
            target = self.fields.get(binding.tabname)
            if target is None:
                continue
            self._connect_image(binding, target, readable_roots)
            if binding.source_text_component is not None and target["fields"]:
                connect_paste(binding.paste_button, target["fields"], binding.source_text_component, parse)
            self._connect_copy_from_tab(binding, target["fields"])
            binding.paste_button.click(fn=None, js=_switch_tab_js(binding.tabname))
        self.bindings.clear()

    @staticmethod
    def _connect_image(binding: ParamBinding, target: dict[str, Any], roots: Sequence[Path]) -> None:
        if binding.source_image_component is None or target["init_img"] is None:
            return
        fields = target["fields"]
        width = next((c for c, key in fields if key == "Size-1"), None)
        height = next((c for c, key in fields if key == "Size-2"), None)
        outputs = [target["init_img"], *(c for c in (width, height) if c is not None)]

        def send(x: Any) -> Any:
            sent = send_image_and_dimensions(x, roots)
            return sent if len(outputs) == 3 else sent[0]

        binding.paste_button.click(
            fn=send, inputs=[binding.source_image_component], outputs=outputs, show_progress="hidden"
        )

    def _connect_copy_from_tab(self, binding: ParamBinding, fields: list) -> None:
        source = self.fields.get(binding.source_tabname or "")
        if source is None or not fields:
            return
        names = {"Prompt", "Negative prompt", "Steps", "Face restoration", *binding.paste_field_names}
        pairs = [(s, d) for s, sk in source["fields"] for d, dk in fields if sk == dk and sk in names]
        if pairs:
            binding.paste_button.click(
                fn=lambda *x: x,
                inputs=[s for s, _ in pairs],
                outputs=[d for _, d in pairs],
                show_progress="hidden",
            )


def parse_infotext(text: str, options: Any) -> dict[str, Any]:
    """An infotext as A1111's dict of strings, without the fields of opt `infotext_skip_pasting`."""
    skip_fields = list(getattr(options, "infotext_skip_pasting", []) or []) if options is not None else []
    return infotext.parse_infotext(text or "", skip_fields=skip_fields)


def announcing_parser(options: Any, callbacks: Any) -> Callable[[str], dict[str, Any]]:
    """What a paste button does with its text: parse it (`parse_infotext`), then run the
    `on_infotext_pasted` callbacks, which may change the parameters."""

    def parse(text: str) -> dict[str, Any]:
        params = parse_infotext(text, options)
        if callbacks is not None:
            callbacks.call("infotext_pasted", text, params)
        return params

    return parse


def connect_paste(button: Any, fields: list, input_comp: Any, parse: Callable[[str], dict[str, Any]]) -> None:
    """Clicking `button` parses the infotext in `input_comp` into `fields` ((component, key or function), ...)."""

    def paste_func(prompt: str | None) -> list[Any]:
        params = parse(prompt or "")
        return [field_value(component, key, params) for component, key in fields]

    outputs = [component for component, _ in fields]
    button.click(fn=paste_func, inputs=[input_comp], outputs=outputs, show_progress="hidden")


def field_value(component: Any, key: Any, params: dict[str, Any]) -> Any:
    """The value `component` gets for infotext `key` (or `key(params)`); `gr.skip()` leaves it as it is."""
    value: Any = key(params) if callable(key) else params.get(key)
    if value is None:
        return gr.skip()
    if isinstance(value, dict) and "__type__" in value:  # already an update
        return value
    current = getattr(component, "value", None)
    if isinstance(current, list):  # multiselect dropdowns take lists only
        return value if isinstance(value, list) else gr.skip()
    try:  # values that do not convert (a dict that is no update, "abc" for a number) are skipped
        if isinstance(current, bool):
            return value not in ("False", "false", False)
        if isinstance(current, (int, float)) and not isinstance(value, (int, float)):
            return float(value)  # pyright: ignore[reportArgumentType]
        return type(current)(value) if current is not None else value  # pyright: ignore[reportArgumentType]
    except (TypeError, ValueError):
        return gr.skip()


def readable_roots(outputs_dir: Path | None) -> list[Path]:
    """Where an image a button sends may be read from: Gradio's upload folders and the outputs."""
    roots = [Path(tempfile.gettempdir()).resolve()]
    if os.environ.get("GRADIO_TEMP_DIR"):
        roots.append(Path(os.environ["GRADIO_TEMP_DIR"]).resolve())
    if outputs_dir is not None:
        roots.append(Path(outputs_dir).resolve())
    return roots


def image_from_url_text(filedata: Any, roots: Sequence[Path]) -> Image.Image | None:
    """An image from what a Gallery/Image sends: a PIL image, a file (dict or path) Gradio saved, or a
    `data:image/...;base64,` URL. Files outside `roots` are refused."""
    if filedata is None:
        return None
    if isinstance(filedata, Image.Image):
        return filedata
    if isinstance(filedata, (list, tuple)):
        return image_from_url_text(filedata[0], roots) if filedata else None
    if isinstance(filedata, dict):
        if filedata.get("image") is not None:  # a Gallery item {"image": FileData, "caption": ...}
            return image_from_url_text(filedata["image"], roots)
        filedata = filedata.get("path") or filedata.get("name") or filedata.get("url")
    text = str(filedata)
    if text.startswith("data:image/"):
        return decode_base64_image(text)
    path = Path(text).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise ValueError(f"refusing to read {path}: not a file the browser sent or an output image")
    image = Image.open(path)
    image.load()
    return image


def send_image_and_dimensions(x: Any, roots: Sequence[Path]) -> tuple[Any, Any, Any]:
    image = x if isinstance(x, Image.Image) else image_from_url_text(x, roots)
    if image is None:
        return gr.skip(), gr.skip(), gr.skip()
    return image, image.width, image.height


def _switch_tab_js(tabname: str) -> str:
    """Select the target tab: A1111's `switch_to_<tab>()` if a script defines it, else its tab button."""
    label = re.sub(r"\W", "_", tabname)
    return (
        f"() => {{ if (typeof switch_to_{label} === 'function') {{ switch_to_{label}(); return; }}"
        " const b = [...document.querySelectorAll('#tabs button[role=tab]')]"
        f".find(e => e.textContent.trim() === '{label}'); if (b) b.click(); }}"
    )


# The page's registry. Module-level because A1111's API is: extensions register buttons through
# `modules.infotext_utils` while their tabs are built, before any page object exists to hold them.
REGISTRY = PasteButtons()
