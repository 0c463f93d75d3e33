"""Settings > Defaults (A1111's): make what the page's inputs hold now their defaults in `ui-config.json`.

"View changes" lists each input whose value on the page differs from the file's (path, old, new);
"Apply" writes those values into the file (read again first, so edits made meanwhile by hand are kept)
and says how many it wrote. The page is built with the file's values, so they show after "Reload UI".
Element ids as A1111's: `ui_defaults_view`, `ui_defaults_apply`, `ui_defaults_review`.

The inputs' values arrive as the page holds them (no preprocessing): a dropdown sends its choice, not
an index, and one input an extension broke cannot fail the whole comparison. An empty input (null) is no
change, and a width and height that show the loaded checkpoint's trained size are left out: the page
moved them there itself (native_size.py), the user did not.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import results
from modules.sumi.util.atomic import write_json_atomic

if TYPE_CHECKING:
    from modules.sumi.frontends.gradio.ui_config import UiConfig

_PLAIN = (str, int, float, bool, list, type(None))


@dataclass
class DefaultsSection:
    view: gr.Button
    apply: gr.Button
    review: gr.HTML


def create_defaults_section() -> DefaultsSection:
    """The section's buttons (call inside the Settings tab); `wire_defaults` connects them once the
    page's inputs are known."""
    with gr.Accordion(
        "Defaults", open=True, elem_id="settings_tab_defaults", elem_classes=["settings-section"]
    ):
        gr.Markdown(
            "Set the inputs of the other tabs as you want them when the page opens, then **View changes** "
            "and **Apply**: they are written to `ui-config.json` and used from the next **Reload UI**."
        )
        with gr.Row():
            view = gr.Button("View changes", elem_id="ui_defaults_view", variant="secondary")
            apply = gr.Button("Apply", elem_id="ui_defaults_apply", variant="primary")
        review = gr.HTML("", elem_id="ui_defaults_review", js_on_load=None)
    return DefaultsSection(view, apply, review)


@dataclass
class PageInputs:
    """The inputs the file tracks, by path, and which (width, height) pairs follow the checkpoint."""

    paths: list[str]
    size_pairs: list[tuple[int, int]]  # indexes into `paths`
    model_size: Callable[[], tuple[int, int] | None]

    def changes(self, saved: dict[str, Any], values: tuple[Any, ...]) -> list[tuple[str, Any, Any]]:
        """(path, value in the file, value on the page) for each input the user changed."""
        following = set()
        size = self.model_size()
        for w, h in self.size_pairs:
            if size is not None and (values[w], values[h]) == size:
                following |= {self.paths[w], self.paths[h]}
        return [c for c in changes(saved, self.paths, values) if c[0] not in following]


def changes(saved: dict[str, Any], paths: list[str], values: tuple[Any, ...]) -> list[tuple[str, Any, Any]]:
    """(path, value in the file, value on the page) for each input that differs."""
    found = []
    for path, value in zip(paths, values, strict=True):
        if value is None or not isinstance(value, _PLAIN):  # empty, or not a value the file can hold
            continue
        if saved.get(path) != value:
            found.append((path, saved.get(path), value))
    return found


def view_changes(config: UiConfig, page: PageInputs, *values: Any) -> str:
    found = page.changes(config.settings, values)
    if not found:
        return "<span>No changes</span>"
    rows = "".join(
        f"<tr><td>{html.escape(path)}</td><td>{_shown(old)}</td><td>{_shown(new)}</td></tr>"
        for path, old, new in found
    )
    return f"<table><thead><tr><th>Path</th><th>Old value</th><th>New value</th></tr></thead><tbody>{rows}</tbody></table>"


def apply_changes(config: UiConfig, page: PageInputs, *values: Any) -> str:
    try:
        current = _read(config)
        found = page.changes(current, values)
        for path, _old, new in found:
            current[path] = new
        if found:
            write_json_atomic(config.path, current)
    except (OSError, ValueError) as exc:
        return results.error_html(f"Could not write {config.path}: {exc}")
    config.settings.update({path: new for path, _old, new in found})
    return html.escape(f"Wrote {len(found)} changes.")


def _read(config: UiConfig) -> dict[str, Any]:
    """The file as it is now (a hand edit since the start is kept); one that cannot be read is not
    written over."""
    try:
        data = json.loads(config.path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return dict(config.settings)
    except (OSError, ValueError) as exc:
        raise ValueError(f"it cannot be read ({exc}); fix or remove it first") from exc
    if not isinstance(data, dict):
        raise ValueError("it is not a JSON object; fix or remove it first")
    return data


def _shown(value: Any) -> str:
    return html.escape(json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value)


def wire_defaults(
    section: DefaultsSection,
    config: UiConfig,
    size_pairs: Sequence[tuple[Any, Any]] = (),
    model_size: Callable[[], tuple[int, int] | None] = lambda: None,
) -> None:
    """Connect the buttons to every input the file tracks (values, not tab choices); `size_pairs` are
    the (width, height) sliders that follow the checkpoint's `model_size`."""
    tracked = [(path, c) for path, c in config.components.items() if isinstance(c, gr.components.Component)]
    index = {id(c): i for i, (_, c) in enumerate(tracked)}
    pairs = [(index[id(w)], index[id(h)]) for w, h in size_pairs if id(w) in index and id(h) in index]
    page = PageInputs([path for path, _ in tracked], pairs, model_size)
    inputs = [c for _, c in tracked]
    for button, action in ((section.view, view_changes), (section.apply, apply_changes)):
        button.click(
            partial(action, config, page),
            inputs=inputs,
            outputs=section.review,
            preprocess=False,
            show_progress="minimal",
            api_visibility="undocumented",
        )
