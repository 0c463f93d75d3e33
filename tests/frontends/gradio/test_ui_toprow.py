"""A1111's `ui_toprow.Toprow` and the UI internals an extension rebuilds a generation tab from (mov2mov's
pattern), without a browser: a fake extension makes its own tab with a Toprow, its own `ScriptRunner`
(A1111's `initialize_scripts(is_img2img)`, `prepare_ui`, `setup_ui_for_section`, `setup_ui`),
`create_output_panel` and a Generate wired through `wrap_gradio_gpu_call`; the job runs on a real App
with the demo model. Also: a tab added from inside the making of img2img's tab (mov2mov's way)."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio.blocks import BlockContext

from modules.sumi.frontends.gradio import build_ui
from tests.fixtures.toprow_extension import write_fake_extension


@pytest.fixture(scope="module")
def built(tmp_path_factory, make_module_app):
    root = tmp_path_factory.mktemp("toprow")
    script = write_fake_extension(root / "fake-ext")
    app = make_module_app(root / "data", loaded=True)
    app.scripts.load([(script, script.parent.parent)])
    demo = build_ui(app)
    module = next(d.module for d in app.scripts.scripts_data if d.path == str(script))
    return SimpleNamespace(app=app, demo=demo, module=module)


def _by_elem_id(demo: gr.Blocks, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _handler(demo: gr.Blocks, component, event: str = "click"):
    return next(fn for fn in demo.fns.values() if (component._id, event) in fn.targets)


def test_toprow_has_a1111s_elements_in_the_extension_tab(built):
    ids = {getattr(b, "elem_id", None) for b in built.demo.blocks.values()}
    a1111 = [
        "toprow", "prompt_container", "prompt", "neg_prompt", "prompt_image", "actions_column", "generate_box",
        "generate", "interrupt", "skip", "interrupting", "tools", "paste", "clear_prompt", "interrogate",
        "deepbooru", "restore_progress", "token_counter", "token_button", "negative_token_counter",
        "negative_token_button", "styles", "style_apply",
    ]  # fmt: skip
    assert not [f"fake_{name}" for name in a1111 if f"fake_{name}" not in ids]
    prompt = _by_elem_id(built.demo, "fake_prompt")
    assert isinstance(prompt, gr.Textbox) and "prompt" in prompt.elem_classes
    interrupt = _by_elem_id(built.demo, "fake_interrupt")
    assert "generate-box-interrupt" in interrupt.elem_classes  # hidden until the page's submit shows it


def test_a_script_that_makes_its_controls_before_ui_places_them_in_the_extensions_tab_too(built):
    # A1111 makes script instances outside any Blocks, so controls made then are placed by `ui()` alone
    labels = [b for b in built.demo.blocks.values() if getattr(b, "label", None) == "Prebuilt"]
    assert len(labels) == 3  # txt2img, img2img and the extension's own tab
    assert not [e for e in built.app.scripts.errors.items if e.where == "ui"]


def test_interrupt_and_skip_reach_the_job_state(built):
    state = built.app.state
    state.reset_control()
    interrupt = _handler(built.demo, _by_elem_id(built.demo, "fake_interrupt"))
    assert 'showSubmitInterruptingPlaceholder("fake")' in interrupt.js
    interrupt.fn()
    assert state.interrupted
    state.reset_control()
    _handler(built.demo, _by_elem_id(built.demo, "fake_interrupting")).fn()
    assert state.interrupted
    state.reset_control()
    _handler(built.demo, _by_elem_id(built.demo, "fake_skip")).fn()
    assert state.skipped and not state.interrupted
    state.reset_control()


def test_token_counter_counts_the_prompt(built):
    counter = _handler(built.demo, _by_elem_id(built.demo, "fake_prompt"), "change")
    assert counter.fn("a red square") == "<span>3/75</span>"
    button = _handler(built.demo, _by_elem_id(built.demo, "fake_token_button"))
    assert button is counter  # A1111's hidden button asks for the same recount


def test_styles_dropdown_lists_sumis_styles(built):
    built.app.styles.save_style("Warm", "{prompt}, warm light", "cold")
    refresh = _handler(built.demo, _by_elem_id(built.demo, "refresh_fake_styles"))
    update, _ = refresh.fn([])
    assert "Warm" in [c if isinstance(c, str) else c[0] for c in update["choices"]]


def test_generate_runs_the_prompt_as_a_job_with_the_tabs_scripts(built):
    runner = built.module.runner
    dropdown, *controls = runner.inputs
    img2img = built.app.scripts.img2img  # the job's `p.scripts`: the same script_args layout
    assert dropdown.label == "Script" and controls[-1].label == "Suffix"
    assert [type(c) for c in controls] == [type(c) for c in img2img.inputs[1:]]
    assert [c.label for c in controls] == [c.label for c in img2img.inputs[1:]]
    generate = _handler(built.demo, _by_elem_id(built.demo, "fake_generate"))
    assert _handler(built.demo, _by_elem_id(built.demo, "fake_prompt"), "submit").fn.__name__ == "generate"
    args = [c.value for c in controls]
    record = next(i for i, c in enumerate(controls) if c.label == "Record")
    args[record] = True
    gallery, info, html, log = generate.fn(
        "task(toprow1)", 2, "a red square", "blurry", ["Warm"], 2, 0, *args
    )[:4]
    jobs = built.module.JOBS
    assert ("recorded", "a red square, warm light") in jobs  # the always-on script got its own value
    assert jobs[-1] == ("task(toprow1)", 2, "a red square, warm light", "blurry, cold")
    assert len(gallery) == 1 and '"prompt": "a red square, warm light"' in info
    assert "a red square, warm light" in html and "Negative prompt: blurry, cold" in html
    suffix = 1 + runner.selectable_scripts.index(runner.script("Suffix"))
    args[-1] = " at dusk"
    generate.fn("task(toprow2)", 2, "a cat", "", [], 2, suffix, *args)
    assert jobs[-1][2] == "a cat at dusk"


@contextlib.contextmanager
def _tab_beside_img2img():
    """mov2mov's way to add its tab: Gradio's BlockContext.__init__ patched; for the tab `tab_img2img`,
    its parent (the page's tab bar, already open) is entered and a tab is made there."""
    original = BlockContext.__init__

    def patched(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.elem_id == "tab_img2img":
            self.parent.__enter__()
            with gr.Tab("Beside", id="tab_beside", elem_id="tab_beside"):
                gr.Markdown("made beside img2img", elem_id="beside_text")
            self.parent.__exit__()

    BlockContext.__init__ = patched
    try:
        yield
    finally:
        BlockContext.__init__ = original


def test_a_tab_made_inside_img2img_s_tab_lands_next_to_it(make_app, tmp_path):
    app = make_app(tmp_path / "data", start=False)
    with _tab_beside_img2img():
        demo = build_ui(app)
    tabs = _by_elem_id(demo, "tabs")
    order = [t.elem_id for t in tabs.children]
    assert order.index("tab_beside") == order.index("tab_img2img") + 1
    assert tabs.parent is demo  # the page's own components after the tab bar are not inside it
    assert all(isinstance(t, gr.Tab) for t in tabs.children)
    demo.get_config_file()


def test_an_input_accordion_whose_init_an_extension_wrapped_keeps_its_props():
    # mov2mov replaces `InputAccordion.__init__` (and Gradio's component __init__) to rename repeated ids
    from modules.ui_components import InputAccordion

    original = InputAccordion.__init__

    def renaming(self, *args, **kwargs):
        kwargs["elem_id"] = kwargs["elem_id"] + "_1"
        original(self, *args, **kwargs)

    InputAccordion.__init__ = renaming
    try:
        with gr.Blocks() as demo, InputAccordion(True, label="Movie Editor", elem_id="editor") as accordion:
            gr.Checkbox(label="Enable")
        config = next(c for c in demo.config["components"] if c["id"] == accordion._id)["props"]
    finally:
        InputAccordion.__init__ = original
    assert (
        config["elem_id"] == "editor_1-checkbox" and config["value"] is True and config["visible"] == "hidden"
    )


def test_compact_toprow_places_its_parts_where_the_extension_asks(make_app, tmp_path):
    from modules.ui_toprow import Toprow

    make_app(tmp_path / "data", start=False)
    with gr.Blocks() as demo, gr.Row():
        toprow = Toprow(is_img2img=False, is_compact=True, id_part="cmp")  # opt compact_prompt_box
        with gr.Column(elem_id="cmp_settings"):
            toprow.create_inline_toprow_prompts()
        with gr.Column(elem_id="cmp_results"):
            toprow.create_inline_toprow_image()
    assert toprow.submit_box.parent is _by_elem_id(demo, "cmp_results")
    assert toprow.prompt.elem_id == "cmp_prompt" and _inside(toprow.prompt, _by_elem_id(demo, "cmp_settings"))
    assert _inside(_by_elem_id(demo, "cmp_styles"), _by_elem_id(demo, "cmp_settings"))
    demo.get_config_file()


def _inside(block, container) -> bool:
    while block is not None:
        if block is container:
            return True
        block = block.parent
    return False


def test_a_picture_dropped_on_the_prompt_gives_its_infotext():
    import io

    from PIL import Image, PngImagePlugin

    from modules.sumi.frontends.gradio.toprow import image_data

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red square\nSteps: 2, Seed: 1")
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG", pnginfo=info)
    assert image_data(png.getvalue()) == ("a red square\nSteps: 2, Seed: 1", None)
    assert image_data(b"just text") == ("just text", None)
    assert image_data(None)[1] is None
