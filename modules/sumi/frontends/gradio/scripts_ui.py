"""Scripts in the txt2img tab, laid out as A1111 does, and A1111's component callbacks.

Under the ControlNet accordion (`txt2img_script_container`): each always-on script's controls (its
`ui(False)`, in a `gr.Group` when `create_group`), then the "Script" dropdown (`script_list`, "None"
plus the selectable scripts' titles) and each selectable script's controls, of which only the chosen
one is shown. `ScriptRunner.create_inputs` is handed a `build` that calls `script.ui` inside this
layout, so the runner's inputs are these components: Generate sends `[dropdown] + inputs[1:]`, which
is A1111's `script_args` layout.

`ComponentHooks` calls A1111's `on_before_component` / `on_after_component` callbacks and each
script's `before_component` / `after_component` (and its `on_before_component(elem_id=...)`
registrations) for the components Sumi creates through `hooks.make(...)`: the callbacks run where
the component is placed, so components they create land beside it, as in A1111. Components that a
script's `ui()` creates itself get the after-callbacks once `ui()` returns (Sumi does not patch
gradio's constructors). A callback that raises is recorded like any extension error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio.context import Context

from modules.sumi.frontends.gradio import results
from modules.sumi.frontends.gradio.event_guard import drop_broken_events_since, event_ids
from modules.sumi.services.scripts.base import OnComponent

if TYPE_CHECKING:
    from modules.sumi.app import App
    from modules.sumi.services.scripts.callbacks import CallbackRegistry
    from modules.sumi.services.scripts.runner import ScriptRunner

log = logging.getLogger(__name__)
QUICK = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}


# -- component callbacks --------------------------------------------------------------------------------
@contextmanager
def outside_the_page() -> Iterator[None]:
    """Components made here are not placed anywhere until their `.render()`, as components A1111 made
    outside any Blocks: A1111 makes script instances before it opens a tab's Blocks, and some scripts make
    their controls in the constructor (or when `is_img2img` is set) and `.render()` them in `ui()`.
    Made inside the page instead, they would be on it already and that `.render()` would fail."""
    block, root = Context.block, Context.root_block
    Context.block = Context.root_block = None
    try:
        yield
    finally:
        Context.block, Context.root_block = block, root


class ComponentHooks:
    """A1111's before/after component callbacks around the components Sumi creates."""

    def __init__(self, callbacks: CallbackRegistry | None, runner: ScriptRunner | None) -> None:
        self.callbacks = callbacks
        self.runner = runner

    def make(self, cls: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`cls(*args, **kwargs)` placed here, with the before-callbacks first and the after-callbacks last."""
        component = cls(*args, render=False, **kwargs)
        self.before(component, **kwargs)
        component.render()
        self.after(component, **kwargs)
        return component

    def before(self, component: Any, **kwargs: Any) -> None:
        self._call("before_component", "on_before_component_elem_id", component, kwargs)

    def after(self, component: Any, **kwargs: Any) -> None:
        self._call("after_component", "on_after_component_elem_id", component, kwargs)

    def _call(self, category: str, by_elem_id: str, component: Any, kwargs: dict[str, Any]) -> None:
        if self.callbacks is not None and self.callbacks.has(category):
            self.callbacks.call(category, component, **kwargs)
        runner = self.runner
        if runner is None:
            return
        elem_id = kwargs.get("elem_id")
        for script in runner.scripts:
            for wanted, callback in getattr(script, by_elem_id, None) or []:
                if elem_id is not None and wanted == elem_id:
                    _safe(runner, script, category, callback, OnComponent(component=component))
            _safe(runner, script, category, getattr(script, category), component, **kwargs)

    def after_created(self, components: Sequence[Any]) -> None:
        """The after-callbacks for components made without `make` (inside a script's `ui()`)."""
        for component in components:
            self.after(component, **_component_kwargs(component))


def _safe(
    runner: ScriptRunner, script: Any, where: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # an extension's bug must not stop the page from building
        runner.errors.report(getattr(script, "filename", None) or repr(script), where, exc)


def _component_kwargs(component: Any) -> dict[str, Any]:
    kwargs = {"elem_id": getattr(component, "elem_id", None)}
    for name in ("label", "value"):
        if getattr(component, name, None) is not None:
            kwargs[name] = getattr(component, name)
    return kwargs


def _new_components(before: set[int]) -> list[Any]:
    """Components rendered into the page since `before` (block ids), in creation order."""
    from gradio.context import get_blocks_context

    context = get_blocks_context()
    if context is None:
        return []
    return [
        block
        for block_id, block in list(context.blocks.items())
        if block_id not in before and isinstance(block, gr.components.Component)
    ]


def _block_ids() -> set[int]:
    from gradio.context import get_blocks_context

    context = get_blocks_context()
    return set(context.blocks) if context is not None else set()


# -- the scripts area ------------------------------------------------------------------------------------
@dataclass
class ScriptsUI:
    runner: ScriptRunner
    dropdown: gr.Dropdown
    groups: list[Any] = field(default_factory=list)  # one per selectable script (None: no group)

    @property
    def inputs(self) -> list[Any]:
        """Generate's script inputs: the dropdown, then every script's controls (A1111's script_args)."""
        return [self.dropdown, *self.runner.inputs[1:]]


def script_dropdown(runner: ScriptRunner, tab: str = "txt2img") -> gr.Dropdown:
    return gr.Dropdown(
        ["None", *runner.titles],
        value="None",
        type="index",
        label="Script",
        elem_id="script_list" if tab == "txt2img" else f"{tab}_script_list",  # ids are unique on the page
        elem_classes=[f"{tab}_script_list"],
    )


def _valid_controls(runner: ScriptRunner, script: Any, controls: Any) -> list[Any]:
    """The components `ui()` returned; anything else is reported and left out."""
    if controls is None:
        return []
    items = list(controls) if isinstance(controls, (list, tuple)) else [controls]
    good = [c for c in items if isinstance(c, gr.components.Component)]
    if len(good) != len(items):
        bad = ", ".join(type(c).__name__ for c in items if not isinstance(c, gr.components.Component))
        runner.errors.report(
            script.filename or "script", "ui", TypeError(f"ui() must return gradio components, got {bad}")
        )
    return good


def _script_ui(runner: ScriptRunner, hooks: ComponentHooks, script: Any) -> list[Any]:
    """Call `script.ui(False)` here; a failure is recorded and shown in place of the controls."""
    before, events_before = _block_ids(), event_ids()
    try:
        controls = _valid_controls(runner, script, script.ui(runner.is_img2img))
    except Exception as exc:  # an extension's bug must not stop the page from building
        drop_broken_events_since(events_before)  # an event it left half-made would stop the whole page
        script.ui_failed = True  # its API args still reach it (ScriptArgs.passthrough)
        runner.errors.report(script.filename or "script", "ui", exc)
        gr.HTML(results.error_html(f"{_title(script)}: ui() failed: {exc}"), js_on_load=None)
        return []
    hooks.after_created(_new_components(before))
    for control in controls:  # ui-config.json keys them as customscript/<file>/... (A1111)
        control.custom_script_source = os.path.basename(script.filename or "script")
    return controls


def _title(script: Any) -> str:
    try:
        return str(script.title())
    except Exception:
        return str(script.filename)


def create_scripts(app: App, hooks: ComponentHooks, tab: str = "txt2img") -> ScriptsUI:
    """Lay out every script's controls (call inside the settings column) and mark the inputs ready."""
    runner = app.scripts.img2img if tab == "img2img" else app.scripts.txt2img
    area = ScriptsUI(runner, None)  # type: ignore[arg-type]  # the dropdown comes after the always-on scripts

    def build(script: Any) -> list[Any]:
        if not script.alwayson and area.dropdown is None:
            area.dropdown = script_dropdown(runner, tab)
        controls = _grouped_script_ui(runner, hooks, script)
        if not script.alwayson:
            area.groups.append(script.group)
        return controls

    with gr.Column(elem_id=f"{tab}_script_container"):
        runner.create_inputs(build)
        if area.dropdown is None:
            area.dropdown = script_dropdown(runner, tab)
    app.scripts.ready[runner.tabname] = True
    _wire_dropdown(area)
    return area


def _grouped_script_ui(runner: ScriptRunner, hooks: ComponentHooks, script: Any) -> list[Any]:
    """A script's controls here, in a `gr.Group` (its `script.group`, shown for always-on scripts) when
    `create_group`."""
    if not script.create_group:
        script.group = None
        return _script_ui(runner, hooks, script)
    with gr.Group(visible=script.alwayson) as group:
        controls = _script_ui(runner, hooks, script)
    if not group.children:  # e.g. an always-on script without controls: no empty box
        group.visible = False
    script.group = group
    return controls


def _wire_dropdown(area: ScriptsUI) -> None:
    groups = [g for g in area.groups if g is not None]
    if groups:
        area.dropdown.change(
            partial(select_script, [g is not None for g in area.groups]),
            inputs=area.dropdown,
            outputs=groups,
            **QUICK,
        )


class SectionedScriptsUI:
    """A1111's ScriptRunner UI calls for a runner an extension made for its own tab (mov2mov rebuilds an
    img2img tab with `ScriptRunner()`, `initialize_scripts(is_img2img=True)`, `prepare_ui()`,
    `setup_ui_for_section(category)` for each of `ordered_ui_categories()`, then `setup_ui()`).

    `section(name)` makes, where it is called, the controls of the always-on scripts whose `section` is
    `name` (None: those without one); `finish()` makes the rest of the always-on scripts, the "Script"
    dropdown and the selectable scripts' controls (each shown when chosen), and returns A1111's inputs:
    `[dropdown, *controls]`. The controls are laid out in `script_args` in the runner's script order,
    as Sumi's own tabs lay theirs out, so a job given `scripts_img2img` and this tab's values
    (`p.scripts = scripts_img2img; p.script_args = args`, as mov2mov does) gives every script its own."""

    def __init__(self, runner: ScriptRunner, callbacks: CallbackRegistry | None) -> None:
        self.runner = runner
        self.hooks = ComponentHooks(callbacks, runner)
        self.built: dict[int, list[Any]] = {}

    def section(self, name: str | None, scripts: Sequence[Any] | None = None) -> None:
        for script in self.runner.alwayson_scripts if scripts is None else scripts:
            if (script.alwayson and getattr(script, "section", None) != name) or id(script) in self.built:
                continue
            self.built[id(script)] = _grouped_script_ui(self.runner, self.hooks, script)

    def finish(self) -> list[Any]:
        runner = self.runner
        self.section(None)
        area = ScriptsUI(runner, script_dropdown(runner, runner.tabname))
        for script in runner.selectable_scripts:
            if id(script) not in self.built:
                self.built[id(script)] = _grouped_script_ui(runner, self.hooks, script)
            area.groups.append(script.group)
        runner.create_inputs(lambda script: self.built.get(id(script), []))
        _wire_dropdown(area)
        return area.inputs


def select_script(has_group: list[bool], index: Any) -> list[Any]:
    """Show the chosen selectable script's controls (dropdown index: 0 = None, k = k-th script)."""
    chosen = int(index or 0)
    return [gr.update(visible=i + 1 == chosen) for i, has in enumerate(has_group) if has]


def script_args(values: Sequence[Any]) -> list[Any]:
    """`script_args` from Generate's script inputs: the dropdown index (None -> 0), then the controls."""
    if not values:
        return [0]
    return [int(values[0] or 0), *values[1:]]
