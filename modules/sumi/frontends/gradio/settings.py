"""The Settings tab: every option of `app.options`, grouped by section, and an "Apply settings" button.

As in A1111 each option is edited by the component its `OptionInfo` names (a hint string such as
"slider", or a gradio class from an extension) and carries the elem_id `setting_<key>`. The values come
from `app.options` each time the page loads, so a reload shows what `config.json` holds; Apply sends
only the values that changed through `app.settings.set`, which checks, applies and saves them.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import gradio as gr

from modules.sumi.frontends.gradio import results
from modules.sumi.frontends.gradio.settings_actions import (
    SEARCH_JS,
    create_actions_and_sysinfo,
    wire_reload_ui,
)
from modules.sumi.frontends.gradio.startup_profile import create_startup_profile
from modules.sumi.frontends.gradio.ui_defaults import DefaultsSection, create_defaults_section
from modules.sumi.services.settings.secrets import is_secret_name, redacted_options

if TYPE_CHECKING:
    from modules.sumi.app import App
    from modules.sumi.services.settings.options import OptionInfo, Section

log = logging.getLogger(__name__)

OTHER: Section = ("other", "Other")
# Shown elsewhere on the page with the same elem_id (the quicksettings row).
SKIPPED_KEYS = frozenset({"sd_model_checkpoint"})
COMPONENTS: dict[str, type[gr.components.Component]] = {
    "checkbox": gr.Checkbox,
    "slider": gr.Slider,
    "number": gr.Number,
    "radio": gr.Radio,
    "dropdown": gr.Dropdown,
    "textbox": gr.Textbox,
    "color": gr.ColorPicker,  # A1111's FormColorPicker settings (the grid colours)
}
_TAG = re.compile(r"</?[A-Za-z][^>]*>")  # a tag, as HTML reads one: "<" then a letter or "/"


# -- pure helpers -------------------------------------------------------------------------------------
def group_by_section(
    labels: dict[str, OptionInfo], skip: frozenset[str] = SKIPPED_KEYS
) -> list[tuple[Section, list[str]]]:
    """(section, keys) in the order sections first appear; options without a section go to "Other", last.
    Sections whose id is None (A1111's hidden options) are left out."""
    groups: dict[Section, list[str]] = {}
    for key, info in labels.items():
        if info.section and info.section[0] is None:  # A1111: "hidden options" are not shown
            continue
        if key not in skip:
            # extensions may give a list or an (id, title, category) triple: keep (id, title)
            section = cast("Section", tuple(info.section[:2])) if info.section else OTHER
            groups.setdefault(section, []).append(key)
    other = groups.pop(OTHER, None)
    return [*groups.items(), *([(OTHER, other)] if other else [])]


def component_kind(info: OptionInfo) -> str:
    """The hint string ("checkbox", "slider", ...; "html"; "custom" for a gradio class), else one from the default."""
    if isinstance(info.component, str):
        return info.component if info.component in COMPONENTS or info.component == "html" else "textbox"
    if info.component is not None:
        return "custom"
    return kind_for_value(info.default)


def kind_for_value(default: Any) -> str:
    if isinstance(default, bool):
        return "checkbox"
    if isinstance(default, (int, float)):
        return "number"
    return "textbox"


def choices_for(app: App, key: str, info: OptionInfo, value: Any = None) -> list[Any] | None:
    """The list a dropdown/radio offers: VAE and checkpoint names are read now; the current value is kept."""
    if key == "sd_vae":
        choices = list(app.vaes.names())
    elif key == "sd_model_checkpoint":
        choices = list(app.checkpoints.titles())
    else:
        choices = info.resolved_component_args().get("choices")
        if choices is None:
            return None
        choices = list(choices)
    if isinstance(value, str) and value and value not in _choice_values(choices):
        choices.append(value)  # e.g. a VAE file that was removed: show it rather than lose it
    return choices


def _choice_values(choices: list[Any]) -> list[Any]:
    return [c[1] if isinstance(c, (tuple, list)) and len(c) == 2 else c for c in choices]


def plain_text(fragment: str) -> str:
    """An option's HTML comment (`<span class='info'>(...)</span>`) as the plain text gradio's `info` shows."""
    return html.unescape(_TAG.sub("", fragment or "")).strip()


def coerce_value(info: OptionInfo, value: Any) -> Any:
    """The browser's value in the option's type: sliders send 3.0 for an int option; an empty number is an error."""
    default = info.default
    if value is None and default is not None:
        raise ValueError("a value is required")
    if isinstance(default, bool) or isinstance(value, bool):
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, int) and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expects a whole number, got {value!r}")
        return int(value)
    return value


def changed_values(app: App, keys: list[str], submitted: list[Any]) -> dict[str, Any]:
    """The submitted values that differ from the current ones (ValueError names the first bad one)."""
    current = shown_values(app)  # a secret sent back masked is unchanged
    changed: dict[str, Any] = {}
    for key, raw in zip(keys, submitted, strict=True):
        try:
            value = coerce_value(app.options.data_labels[key], raw)
        except ValueError as exc:
            raise ValueError(f"Setting {key!r}: {exc}") from exc
        old = current.get(key)
        if value != old or type(value) is not type(old):
            changed[key] = value
    return changed


def shown_values(app: App) -> dict[str, Any]:
    """The settings as the page may see them: secrets (API keys, tokens, passwords) masked."""
    return redacted_options(app.options.as_dict())


def result_text(changed: list[str]) -> str:
    """A1111's result line: "2 settings changed: a, b." / "0 settings changed."."""
    return f"{len(changed)} settings changed{': ' if changed else ''}{', '.join(changed)}."


# -- handlers -----------------------------------------------------------------------------------------
def apply_settings(app: App, keys: list[str], *submitted: Any) -> str:
    """Apply settings: checks, applies and saves the changed values; any failure is shown, never raised."""
    try:
        changed = changed_values(app, keys, list(submitted))
        if changed:
            app.settings.set(changed)
    except Exception as exc:
        return results.error_html(results.error_message(exc))
    return html.escape(result_text(list(changed)))


def current_values(app: App, keys: list[str]) -> list[dict[str, Any]]:
    """On page load: the stored value of each field (and fresh choices for dropdowns and radios)."""
    values = shown_values(app)
    updates = []
    for key in keys:
        info = app.options.data_labels[key]
        update: dict[str, Any] = {"value": values.get(key, info.default)}
        if component_kind(info) in ("dropdown", "radio"):
            update["choices"] = choices_for(app, key, info, update["value"])
        updates.append(gr.update(**update))
    return updates


# -- layout -------------------------------------------------------------------------------------------
@dataclass
class SettingsTab:
    keys: list[str]
    components: list[gr.components.Component]
    submit: gr.Button
    result: gr.HTML
    defaults: DefaultsSection | None = None  # wired once the other tabs' inputs are known


def _component_args(app: App, key: str, info: OptionInfo, kind: str, value: Any) -> dict[str, Any]:
    args = info.resolved_component_args()
    if kind in ("dropdown", "radio"):
        args["choices"] = choices_for(app, key, info, value)
    info_text = plain_text(info.comment_after)
    if info_text and kind != "custom":
        args.setdefault("info", info_text)
    if kind == "textbox" and is_secret_name(key):
        args.setdefault("type", "password")
    return {"label": info.label or key, "value": value, "elem_id": f"setting_{key}", **args}


def make_component(app: App, key: str, info: OptionInfo) -> gr.components.Component:
    """The field for one option; options an extension describes badly fall back to a plain field."""
    kind = component_kind(info)
    value = shown_values(app).get(key, info.default)
    cls = info.component if kind == "custom" else COMPONENTS[kind]
    try:
        return cls(**_component_args(app, key, info, kind, value))
    except (TypeError, ValueError):
        log.exception("Setting %s: could not build its %s; showing a plain field", key, kind)
        fallback = COMPONENTS[kind_for_value(info.default)]
        return fallback(label=info.label or key, value=value, elem_id=f"setting_{key}")


def _section(app: App, section: Section, keys: list[str], tab: SettingsTab) -> None:
    with gr.Accordion(
        section[1], open=True, elem_id=f"settings_{section[0]}", elem_classes=["settings-section"]
    ):
        for key in keys:
            info = app.options.data_labels[key]
            if component_kind(info) == "html":
                gr.HTML(str(info.default), elem_id=f"setting_{key}", js_on_load=None)
                continue
            tab.keys.append(key)
            tab.components.append(make_component(app, key, info))


def hidden_keys(app: App) -> frozenset[str]:
    """With --hide-ui-dir-config the folder and file-name settings are not shown (A1111); they cannot be
    changed either (the settings service refuses them)."""
    if not getattr(app.args, "hide_ui_dir_config", False):
        return frozenset()
    return frozenset(key for key in app.options.data_labels if app.settings.is_dir_config(key))


def create_settings_tab(app: App, demo: gr.Blocks) -> SettingsTab:
    """Lay out the tab (call inside a `gr.Tab`) and wire Apply and the page-load refresh of the values."""
    with gr.Row(elem_id="settings_top_row"):
        submit = gr.Button("Apply settings", elem_id="settings_submit", variant="primary")
        reload_ui = gr.Button("Reload UI", elem_id="settings_restart_gradio", variant="primary")
    search = gr.Textbox(
        label="Search", elem_id="settings_search", placeholder="Find a setting by its name or label"
    )
    result = gr.HTML("", elem_id="settings_result", js_on_load=None)
    tab = SettingsTab([], [], submit, result)
    for section, keys in group_by_section(app.options.data_labels, SKIPPED_KEYS | hidden_keys(app)):
        _section(app, section, keys, tab)
    tab.defaults = create_defaults_section()
    create_actions_and_sysinfo(app, result)
    create_startup_profile(app)
    _wire(app, tab, demo)
    wire_reload_ui(app, reload_ui, result)
    search.change(None, inputs=search, js=SEARCH_JS, api_visibility="undocumented")
    return tab


def _wire(app: App, tab: SettingsTab, demo: gr.Blocks) -> None:
    tab.submit.click(
        partial(apply_settings, app, list(tab.keys)),
        inputs=tab.components,
        outputs=tab.result,
        show_progress="minimal",
        concurrency_id="sumi_checkpoint",
        api_visibility="undocumented",
    )
    demo.load(
        partial(current_values, app, list(tab.keys)),
        outputs=tab.components,
        show_progress="hidden",
        api_visibility="undocumented",
    )
