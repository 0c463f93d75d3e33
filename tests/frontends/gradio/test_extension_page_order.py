"""The order A1111 builds its page in, which extensions rely on, and events an extension leaves half-made.

A1111 builds each mode's page (txt2img, img2img, Extras, PNG Info, Checkpoint Merger, Train) in its own
Blocks, then calls the `on_ui_tabs` callbacks, then places every page in its tab. Extensions catch the
prompt boxes in `on_after_component` and wire their own tabs' buttons to them; mov2mov adds its tab when
`tab_img2img` is made and builds its own script runner there, so neutral-prompt's "Apply to prompt"
(made when the runner sets `is_img2img`, wired in `ui()`) is wired to img2img's prompt from mov2mov's tab.
"""

from __future__ import annotations

import contextlib
import textwrap

import gradio as gr
import pytest
from gradio.blocks import BlockContext

import modules.scripts as a1111_scripts
from modules.sumi.frontends.gradio import build_ui

EXTENSION = """
import gradio as gr
from modules import script_callbacks, scripts

CAUGHT = {}


def on_after_component(component, **kwargs):
    if getattr(component, "elem_id", None) in ("txt2img_prompt", "img2img_prompt"):
        CAUGHT[component.elem_id] = component


script_callbacks.on_after_component(on_after_component)


class Formatter(scripts.Script):
    # neutral-prompt's pattern: controls made when the runner sets is_img2img, rendered and wired in ui()
    text = None

    @property
    def is_img2img(self):
        return self._is_img2img

    @is_img2img.setter
    def is_img2img(self, value):
        self._is_img2img = value
        if self.text is None:
            self.text = gr.Textbox(label="Formatter text")
            self.button = gr.Button("Apply formatter")

    def title(self):
        return "Formatter"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        prompt = CAUGHT.get("img2img_prompt" if is_img2img else "txt2img_prompt")
        with gr.Accordion("Formatter", open=False):
            self.text.render()
            self.button.render()
        self.button.click(fn=lambda a, b: f"{a} {b}", inputs=[prompt, self.text], outputs=[prompt])
        return [self.text]
"""


@pytest.fixture
def app(make_app, tmp_path):
    script = tmp_path / "formatter-ext" / "scripts" / "formatter.py"
    script.parent.mkdir(parents=True)
    script.write_text(textwrap.dedent(EXTENSION))
    app = make_app(tmp_path / "data", start=False)
    app.scripts.load([(script, script.parent.parent)])
    return app


def _by_elem_id(demo: gr.Blocks, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _events_of(demo: gr.Blocks, component) -> list:
    return [fn for fn in demo.fns.values() if any(target == component._id for target, _ in fn.targets)]


def _caught(app) -> dict:
    return next(d.module for d in app.scripts.scripts_data if d.path.endswith("formatter.py")).CAUGHT


@contextlib.contextmanager
def _movie_tab_made_with_img2img_s_tab():
    """mov2mov's way: Gradio's BlockContext.__init__ patched; when `tab_img2img` is made, the tab bar is
    entered and a tab with its own img2img script runner is built there."""
    original = BlockContext.__init__
    runners: list = []

    def patched(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.elem_id == "tab_img2img":
            runner = a1111_scripts.ScriptRunner()
            runners.append(runner)
            runner.initialize_scripts(is_img2img=True)
            self.parent.__enter__()
            with gr.Tab("Movie", id="movie", elem_id="tab_movie"):
                runner.prepare_ui()
                runner.setup_ui()
            self.parent.__exit__()

    BlockContext.__init__ = patched
    try:
        yield runners
    finally:
        BlockContext.__init__ = original


def test_on_ui_tabs_runs_after_the_mode_tabs_so_a_tab_can_wire_to_their_prompts(app):
    def tab():
        with gr.Blocks() as blocks:
            button = gr.Button("Send", elem_id="sender")
            button.click(lambda: "sent", outputs=[_caught(app)["txt2img_prompt"]])
        return [(blocks, "Sender", "sender_tab")]

    app.callbacks.add("ui_tabs", tab)
    demo = build_ui(app)
    (event,) = _events_of(demo, _by_elem_id(demo, "sender"))
    assert event.outputs == [_by_elem_id(demo, "txt2img_prompt")]
    assert not app.settings.extension_problems
    demo.get_config_file()


def test_a_tab_made_when_img2img_s_tab_is_made_wires_its_scripts_to_img2img_s_prompt(app):
    with _movie_tab_made_with_img2img_s_tab() as runners:
        demo = build_ui(app)
    tabs = [t.elem_id for t in _by_elem_id(demo, "tabs").children]
    assert tabs.index("tab_movie") == tabs.index("tab_img2img") + 1
    buttons = [b for b in demo.blocks.values() if isinstance(b, gr.Button) and b.value == "Apply formatter"]
    assert len(buttons) == 3  # txt2img, img2img and the movie tab each have their own
    prompts = {id(_by_elem_id(demo, "txt2img_prompt")), id(_by_elem_id(demo, "img2img_prompt"))}
    wired = [_events_of(demo, b)[0].outputs[0] for b in buttons]
    assert {id(w) for w in wired} == prompts and sum(w.elem_id == "img2img_prompt" for w in wired) == 2
    assert not [e for r in (app.scripts.txt2img, app.scripts.img2img, *runners) for e in r.errors.items]
    demo.get_config_file()


def test_a_script_whose_ui_fails_halfway_through_an_event_leaves_the_page_building(app):
    with _movie_tab_made_with_img2img_s_tab() as runners:
        # the script's img2img prompt is never caught: its click fails with its event half-made
        app.callbacks.add("after_component", lambda component, **kw: _caught(app).pop("img2img_prompt", None))
        demo = build_ui(app)
    assert all(None not in [*fn.inputs, *fn.outputs] for fn in demo.fns.values())
    errors = [e for r in runners for e in r.errors.items]
    assert errors and all(e.where == "ui" and e.script.endswith("formatter.py") for e in errors)
    assert not app.settings.extension_problems  # its failure is reported once, as the ui() error
    assert _by_elem_id(demo, "tab_movie") is not None
    demo.get_config_file()


def test_an_event_wired_to_nothing_is_left_off_the_page_and_named(app):
    def wire_to_nothing(component, **kwargs):
        if getattr(component, "elem_id", None) == "txt2img_prompt":
            with contextlib.suppress(AttributeError):  # the extension swallows its own error
                component.change(lambda text: text, inputs=[None], outputs=[component])

    app.callbacks.add("after_component", wire_to_nothing)
    demo = build_ui(app)
    assert all(None not in [*fn.inputs, *fn.outputs] for fn in demo.fns.values())
    problems = "\n".join(app.settings.extension_problems)
    assert "names something that is not a component" in problems and "test_extension_page_order" in problems
    demo.get_config_file()
