"""A1111's `ui-config.json` (`--ui-config-file`, default `<data-dir>/ui-config.json`): the defaults of the
page's inputs, which the user may edit.

Keys are `<tab id>/<label>/<field>` (a button without a label: its text), `customscript/<script file>/
<tab id>/<label>/<field>` for the controls a script's `ui()` returned, and `<tab id>/Tabs@<elem_id>/
selected` for a tab set with an id; fields: `value` (sliders, numbers, checkboxes, textboxes, radios,
dropdowns), `minimum`/`maximum`/`step` (sliders) and `visible`. Every tab is read but Settings and
Extensions, extensions' tabs included. A value in the file replaces the component's default when the
page is built (a radio or dropdown value that is not one of its choices is ignored, as in A1111); a
component the file does not have yet is added with its default, and the file is written when that
changed something, unless the file could not be read (it is then left alone, and a notice says why).
"Reload UI" and a restart build the page again, so an edited file applies then. Settings > Defaults
(ui_defaults.py) writes the page's current values into it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gradio as gr

from modules.sumi.util.atomic import write_json_atomic

log = logging.getLogger(__name__)

_VALUE_TYPES = (gr.Slider, gr.Radio, gr.Checkbox, gr.Textbox, gr.Number, gr.Dropdown)
_VISIBLE_TYPES = (*_VALUE_TYPES, gr.Button)


def _choices(component: Any) -> list[Any]:
    # Gradio 4+ keeps (label, value) pairs; a saved value is the value
    return [
        c[1] if isinstance(c, (tuple, list)) and len(c) == 2 else c
        for c in getattr(component, "choices", []) or []
    ]


class UiConfig:
    """The file's values, applied to the components as they are added, and the defaults found."""

    def __init__(self, path: Path, notice: Callable[[str], None] = log.warning) -> None:
        self.path = path
        self.settings: dict[str, Any] = {}
        self.error_loading = False
        self.components: dict[str, Any] = {}  # "<key>/value" -> component, for the value fields
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise ValueError("not a JSON object")
            self.settings = loaded
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            self.error_loading = True
            notice(
                f"Could not read the UI defaults in {path} ({exc}); the built-in defaults are used and the file is left as it is"
            )
        self.from_file = dict(self.settings)

    def add_component(self, path: str, component: Any) -> None:
        """Apply the file's fields of `component` (labelled `path`) and record the ones it lacks."""
        source = getattr(component, "custom_script_source", None)
        prefix = f"customscript/{source}/" if source else ""
        if getattr(component, "do_not_save_to_config", False):
            return
        if isinstance(component, _VISIBLE_TYPES) and component.visible is True:
            self._field(prefix + path, component, "visible", lambda v: isinstance(v, bool))
        if isinstance(component, gr.Slider):
            self._field(prefix + path, component, "value", _is_number)
            for field in ("minimum", "maximum", "step"):
                self._field(prefix + path, component, field, _is_number)
        elif isinstance(component, (gr.Radio, gr.Dropdown)):
            self._field(prefix + path, component, "value", lambda v: _valid_choice(component, v))
        elif isinstance(component, (gr.Checkbox, gr.Textbox, gr.Number)):
            self._field(prefix + path, component, "value", _valid_for(component))
        elif isinstance(component, gr.Tabs):
            self._field(prefix + path, component, "selected", lambda v: _valid_tab(component, v))

    def _field(self, path: str, component: Any, field: str, valid: Callable[[Any], bool]) -> None:
        key = f"{path}/{field}"
        if callable(getattr(component, field, None)):  # a value computed on each page load: not a default
            return
        saved = self.settings.get(key)
        if saved is None:
            default = getattr(component, field, None)
            if default is None and isinstance(component, gr.Textbox) and field == "value":
                default = ""  # an empty Textbox keeps None; A1111's file has ""
            self.settings[key] = _plain(default)
        elif valid(saved):
            if isinstance(component, gr.Textbox) and field == "value":
                saved = str(saved)
            elif isinstance(component, gr.Number) and field == "value":
                saved = float(saved) if not isinstance(saved, int) else saved
            setattr(component, field, saved)
        if field in ("value", "selected") and key not in self.components:
            self.components[key] = component

    def add_block(self, block: Any, path: str) -> None:
        """Every labelled input inside `block` (A1111's `add_block`), keyed under `path`."""
        if isinstance(block, gr.Tabs) and block.elem_id:
            self.add_component(f"{path}/Tabs@{block.elem_id}", block)
        children = getattr(block, "children", None)
        if children is not None and not isinstance(block, gr.components.Component):
            for child in children:
                self.add_block(child, path)
            return
        label = getattr(block, "label", None)
        if label:
            self.add_component(f"{path}/{label}", block)
        elif isinstance(block, gr.Button) and block.value:
            self.add_component(f"{path}/{block.value}", block)

    def dump_defaults(self) -> bool:
        """Write the file when the page added defaults to it (never over a file that could not be read)."""
        if self.settings == self.from_file or (self.error_loading and self.path.exists()):
            return False
        try:
            write_json_atomic(self.path, self.settings)
        except OSError as exc:
            log.warning("Could not write the UI defaults to %s: %s", self.path, exc)
            return False
        return True


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid_for(component: Any) -> Callable[[Any], bool]:
    if isinstance(component, gr.Checkbox):
        return lambda v: isinstance(v, bool)
    if isinstance(component, gr.Number):
        return _is_number
    return lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool)


def _valid_choice(component: Any, value: Any) -> bool:
    choices = _choices(component)
    if getattr(component, "multiselect", False):
        return isinstance(value, list) and all(v in choices for v in value)
    return value in choices or bool(getattr(component, "allow_custom_value", False))


def _valid_tab(tabs: Any, value: Any) -> bool:
    items = [c for c in getattr(tabs, "children", []) if isinstance(c, gr.Tab)]
    if isinstance(value, str):
        return value in [t.id for t in items]
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(items)


def apply_to_tabs(config: UiConfig, tabs: Iterable[tuple[Any, str]], top_tabs: Any) -> None:
    """Track each (tab block, tab id) as A1111 does, then the top tab set (`webui/Tabs@tabs`)."""
    for block, tab_id in tabs:
        config.add_block(block, tab_id)
    config.add_component(f"webui/Tabs@{top_tabs.elem_id}", top_tabs)
