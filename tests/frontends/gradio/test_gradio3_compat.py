"""The Gradio 3 compatibility layer extensions import as `gradio`: each mapping of docs/gradio3-compat.md,
and an A1111-style extension written with many Gradio 3 idioms whose UI builds and whose values reach
its script in a job (also when its `ui()` failed), named in the notices when it breaks."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any, cast

import gradio as gr
import numpy as np
import pytest
from gradio.data_classes import FileData
from PIL import Image

from modules.sumi.frontends.gradio.gradio3_compat import compat_gradio
from modules.sumi.services.scripts.extension_imports import EXTENSION_GLOBAL, ExtensionImports
from tests.app_support import post_txt2img
from tests.fixtures.files import write_files
from tests.fixtures.gradio3_extension import GR3_EXTENSION

g = compat_gradio()
COMPAT_LOG = "modules.sumi.frontends.gradio.gradio3_compat"


def _config(demo: gr.Blocks, component: Any) -> dict:
    return next(c for c in _page(demo)["components"] if c["id"] == component._id)


def _page(demo: gr.Blocks) -> dict[str, Any]:
    """The page config the browser gets (an untyped dict for the assertions)."""
    return dict(demo.config or {})


def _dependencies(demo: gr.Blocks) -> list[dict[str, Any]]:
    return list(_page(demo)["dependencies"])


def _as_extension(name: str, source: str) -> dict:
    """Run `source` as code of extension `name` (its module globals name the extension)."""
    namespace = {"g": g, EXTENSION_GLOBAL: name}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - test code
    return namespace


# -- classes -------------------------------------------------------------------------------------------------
def test_box_is_a_group_and_variable_is_state():
    with gr.Blocks() as demo:
        with g.Box(elem_id="box") as box:
            g.Textbox()
        state = g.Variable(value=3)
    assert isinstance(box, gr.Group) and _config(demo, box)["type"] == "group"
    assert isinstance(state, gr.State) and state.value == 3


def test_inputs_and_outputs_classes_take_gradio3_arguments():
    with gr.Blocks():
        slider = g.inputs.Slider(minimum=64, maximum=2048, step=8, default=512, label="Max")
        text = g.inputs.Textbox(lines=2, default="hi", optional=True)
        out = g.outputs.Image(type="pil", label="Result")
    assert isinstance(slider, gr.Slider) and slider.value == 512 and slider.step == 8
    assert text.value == "hi" and text.lines == 2
    assert isinstance(out, gr.Image) and out.type == "pil"


def test_components_namespace_has_gradio3_names_and_real_components_pass_isinstance():
    assert g.components.IOComponent is gr.components.Component
    assert g.components.FormComponent is gr.components.FormComponent
    real_slider = gr.Slider(render=False)  # made by Sumi's own UI
    assert isinstance(real_slider, g.components.Slider) and isinstance(real_slider, g.Slider)
    assert not isinstance(gr.Button(render=False), g.Slider)
    assert issubclass(gr.Slider, g.Slider)


def test_files_tabs_and_tabitem_exist_and_file_type_file_gives_paths():
    with gr.Blocks() as demo, g.Tabs(elem_id="tabs") as tabs, g.TabItem("One", id="one") as one:
        files = g.Files(label="Files")
        single = g.File(type="file")
    assert isinstance(tabs, gr.Tabs) and isinstance(one, gr.Tab) and one.label == "One"
    assert isinstance(files, gr.File) and files.file_count == "multiple"
    assert single.type == "filepath" and _config(demo, single)["type"] == "file"


def test_gradio3_positional_order_is_kept():
    with gr.Blocks():
        text = g.Textbox("value", 4, 6, "type here", "Label")
        button = g.Button("Go", "primary")
    assert (text.value, text.lines, text.max_lines, text.placeholder, text.label) == (
        "value",
        4,
        6,
        "type here",
        "Label",
    )
    assert button.variant == "primary"


def test_layout_arguments_row_variant_float_column_scale_and_interactive():
    with (
        gr.Blocks() as demo,
        g.Row(variant="compact", interactive=True) as row,
        g.Column(scale=0.5) as small,
        g.Column(scale=2.4, min_width=100) as big,
    ):
        pass
    assert _config(demo, row)["props"]["variant"] == "compact"
    assert small.scale == 1 and big.scale == 2 and big.min_width == 100


# -- arguments -------------------------------------------------------------------------------------------------
def test_image_source_becomes_sources_and_mirror_webcam_webcam_options():
    with gr.Blocks():
        upload = g.Image(source="upload", type="pil", shape=(512, 512), tool="editor")
        webcam = g.Image(source="webcam", mirror_webcam=False)
    assert isinstance(upload, gr.Image) and upload.sources == ["upload"] and upload.type == "pil"
    assert webcam.sources == ["webcam"] and webcam.webcam_options.mirror is False


def _png(tmp_path: Path, name: str, image: Image.Image) -> FileData:
    path = tmp_path / name
    image.save(path)
    return FileData(path=str(path))


def _editor_payload(tmp_path: Path):
    from gradio.components.image_editor import EditorData

    background = Image.new("RGB", (8, 6), (10, 20, 30))
    layer = Image.new("RGBA", (8, 6), (0, 0, 0, 0))
    layer.putpixel((2, 3), (255, 0, 0, 255))
    composite = background.copy()
    composite.putpixel((2, 3), (255, 0, 0))
    return EditorData(
        background=_png(tmp_path, "bg.png", background),
        layers=[_png(tmp_path, "layer.png", layer)],
        composite=_png(tmp_path, "composite.png", composite),
    )


def test_sketch_tool_gives_an_editor_whose_value_is_gradio3s_image_and_mask(tmp_path):
    with gr.Blocks() as demo:
        sketch = g.Image(source="upload", tool="sketch", type="pil", brush_radius=12, brush_color="#ff0000")
    assert isinstance(sketch, gr.ImageEditor) and _config(demo, sketch)["type"] == "imageeditor"
    sketch = cast(Any, sketch)  # the compat editor: Gradio 3's value, not the typed EditorValue
    assert sketch.brush.default_size == 12 and sketch.brush.colors == ["#ff0000"]
    value = sketch.preprocess(_editor_payload(tmp_path))
    assert set(value) == {"image", "mask"}
    assert value["image"].size == (8, 6) and value["image"].getpixel((0, 0)) == (10, 20, 30)
    mask = np.asarray(value["mask"])
    assert mask[3, 2].tolist() == [255, 255, 255] and int(mask.sum()) == 255 * 3
    from gradio.components.image_editor import EditorData

    assert sketch.preprocess(EditorData(background=None, layers=[], composite=None)) is None  # empty canvas


def test_color_sketch_tool_gives_the_drawn_image(tmp_path):
    with gr.Blocks():
        canvas = g.Image(source="upload", tool="color-sketch", type="numpy")
    value = canvas.preprocess(_editor_payload(tmp_path))
    assert isinstance(value, np.ndarray) and value[3, 2].tolist()[:3] == [255, 0, 0]


def test_dropdown_value_outside_its_choices_is_kept():
    with gr.Blocks():
        later = g.Dropdown(["a", "b"], value="filled-in-later", label="Preset")
        index = g.Dropdown(["a", "b"], value="a", type="index")
    assert later.allow_custom_value is True
    assert later.preprocess("filled-in-later") == "filled-in-later"
    assert index.allow_custom_value is False
    assert index.preprocess("b") == 1 and index.preprocess("gone") is None


def test_radio_value_outside_its_choices_is_passed_through():
    with gr.Blocks():
        mode = g.Radio(["Matrix", "Mask"], value="Prompt", label="Divide mode")
        index = g.Radio(["a", "b"], value="a", type="index")
    assert mode.preprocess("Prompt") == "Prompt" and mode.preprocess("Mask") == "Mask"
    assert index.preprocess("b") == 1 and index.preprocess("gone") is None


def test_checkbox_group_takes_gradio_3_values_and_passes_what_the_page_sends():
    # regional-prompter: gr.CheckboxGroup(value=False, choices=OPTIONLIST); Generate failed "not in the choices"
    with gr.Blocks():
        options = g.CheckboxGroup(value=False, label="Options", choices=["a", "b"], interactive=True)
        one = g.CheckboxGroup(["a", "b"], value="a")
        index = g.CheckboxGroup(["a", "b"], value=["b"], type="index")
    assert (options.value, one.value, index.value) == ([], ["a"], ["b"])
    assert options.preprocess(False) == [] and options.preprocess(["a", "later"]) == ["a", "later"]
    assert index.preprocess(["b", "gone"]) == [1]
    assert g.CheckboxGroup.update(value=False)["value"] == []


def test_a_hidden_label_takes_a_plain_value_as_an_input():
    # A1111's `dummy_component = gr.Label(visible=False)`: a page function puts the task id there
    with gr.Blocks():
        dummy = g.Label(visible=False)
    payload = dummy.data_model.model_validate("task(abc)", context={"validate_meta": True})
    assert (
        dummy.preprocess(payload) == "task(abc)" and dummy.preprocess(dummy.data_model.model_validate(2)) == 2
    )
    assert dummy.data_model.model_validate({"label": "cat", "confidences": None}).label == "cat"


def test_a_slider_with_an_empty_range_is_made_as_in_gradio3():
    # mov2mov's frame slider: `maximum=0, minimum=0` until a video is loaded (Gradio 6 refuses it)
    with gr.Blocks() as demo:
        frame = g.Slider(label="Frame number", step=1, maximum=0, minimum=0)
    assert (frame.minimum, frame.maximum, frame.value) == (0, 0, 0)
    assert _config(demo, frame)["props"]["maximum"] == 0


def test_gradio3_blocks_gives_sumis_components_gradio3_events():
    from modules.sumi.frontends.gradio.gradio3_compat import gradio3_blocks

    with gr.Blocks() as demo:
        with gradio3_blocks():
            button = gr.Button("Go", elem_id="made_by_sumi")
            box = gr.Textbox()
        button.click(lambda x: x, _js="submit", inputs=[box], outputs=[box], show_progress=False)
        gr.on([box.change], lambda x: x, inputs=[box], outputs=[box])
    assert isinstance(button, gr.Button) and type(button).__name__ == "Button"
    dep = _dependencies(demo)[0]
    assert dep["js"] == "submit" and dep["show_progress"] == "hidden"
    assert _config(demo, button)["props"]["elem_id"] == "made_by_sumi"


def test_hidden_label_input_takes_a_task_id_as_gradio3():
    """A1111 extensions' Generate buttons (Deforum) take a hidden `gr.Label` first, which their page script
    fills with the task id: the function gets that text, as in Gradio 3."""
    with gr.Blocks() as demo:
        dummy = g.Label(visible=False)
        prompt = g.Textbox("a cat")
        out = g.Textbox()
        g.Button("Generate").click(lambda task, p: f"{task}: {p}", inputs=[dummy, prompt], outputs=[out])
    fn = demo.fns[0]

    assert asyncio.run(demo.preprocess_data(fn, ["task(abc123)", "a cat"], state=None)) == [
        "task(abc123)",
        "a cat",
    ]
    assert dummy.preprocess(dummy.data_model.model_validate(7)) == 7
    assert dummy.preprocess(dummy.data_model.model_validate({"label": "cat", "confidences": None})) == "cat"


# -- .style() and .update() ------------------------------------------------------------------------------------
def test_style_sets_what_still_exists_and_ignores_the_rest():
    with gr.Blocks() as demo:
        gallery = g.Gallery(label="Regions").style(grid=(4, 4, 4, 8), height="auto", rounded=False)
        image = g.Image().style(height=480, width=320)
        button = g.Button("Go").style(full_width=True, size="sm")
        text = g.Textbox().style(container=False, show_copy_button=True)
        with g.Row().style(equal_height=True, mobile_collapse=False) as row:
            pass
    assert gallery.columns == 8 and gallery.height == "auto"
    assert (image.height, image.width) == (480, 320)
    assert button.scale == 1 and button.size == "sm"
    assert text.container is False
    assert _config(demo, row)["props"]["equal_height"] is True


def test_update_classmethods_give_updates_with_the_class_mapping():
    assert g.Textbox.update(value="x", visible=False) == {
        "__type__": "update",
        "value": "x",
        "visible": False,
    }
    assert g.Row.update(visible=True) == {"__type__": "update", "visible": True}
    update = g.Dropdown.update(choices=["a"], value="z")
    assert update["choices"] == ["a"] and update["allow_custom_value"] is True
    assert g.Image.update(source="webcam")["sources"] == ["webcam"]
    with gr.Blocks():
        button = g.Button("b")
    assert button.update(interactive=False) == {"__type__": "update", "interactive": False}


# -- events ------------------------------------------------------------------------------------------------------
def test_js_on_events_then_and_load_become_js_with_gradio6_arguments():
    with gr.Blocks() as demo:
        text = g.Textbox()
        button = g.Button()
        dep = button.click(
            None,
            _js="switch_to_txt2img",
            inputs=[text],
            outputs=[text],
            show_progress=False,
            status_tracker=None,
        )
        dep.then(lambda x: x, _js="(x) => x", inputs=[text], outputs=[text], api_name=False)
        text.change(lambda x: x, inputs=text, outputs=text, _js="(x) => x.trim()")
    deps = _dependencies(demo)
    assert [d["js"] for d in deps][:3] == ["switch_to_txt2img", "(x) => x", "(x) => x.trim()"]
    assert deps[0]["show_progress"] == "hidden"
    assert deps[1]["api_visibility"] == "private"


def test_blocks_load_takes_js_and_gradio3_blocks_arguments():
    with g.Blocks(analytics_enabled=False, css=".x {}", theme="default") as demo:
        g.Markdown("hi")
        demo.load(None, _js="() => 1")
    assert isinstance(demo, gr.Blocks)
    assert _dependencies(demo)[-1]["js"] == "() => 1"


# -- unknown arguments and subclasses ----------------------------------------------------------------------------
def test_unknown_arguments_are_dropped_with_one_warning_naming_the_extension(caplog):
    source = """
with g.Blocks():
    for _ in range(3):
        g.Slider(1, 9, value=2, tooltip="quiet", frobnicate=True, label="S")
    g.Button("x", tooltip="quiet too")
"""
    with caplog.at_level(logging.WARNING, logger=COMPAT_LOG):
        _as_extension("sd-webui-unknown-args", source)
    lines = [r.getMessage() for r in caplog.records if r.name == COMPAT_LOG]
    assert lines == [
        f"Extension sd-webui-unknown-args: gradio Slider() does not take frobnicate= in Gradio {gr.__version__}; dropped"
    ]


def test_an_extension_subclass_renders_as_its_gradio_component_without_a_stub_file(tmp_path):
    module_path = tmp_path / "my_widgets_for_compat_test.py"
    module_path.write_text(
        "import gradio as gr\n"
        "class ToolButton(gr.Button, gr.components.FormComponent):\n"
        "    def __init__(self, **kwargs):\n"
        "        super().__init__(variant='tool', **kwargs)\n"
    )
    spec = importlib.util.spec_from_file_location("my_widgets_for_compat_test", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    imports = ExtensionImports()  # as the script loader prepares an extension's module
    imports.alias("gradio", compat_gradio)
    imports.prepare(module, "sd-webui-widgets")
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        with gr.Blocks() as demo:
            button = module.ToolButton(value="🔄", elem_id="refresh")
    finally:
        del sys.modules[spec.name]
    config = _config(demo, button)
    assert config["type"] == "button" and config["props"]["value"] == "🔄"
    assert config["props"]["variant"] == "tool"
    assert not list(tmp_path.glob("*.pyi"))


def test_sumis_own_gradio_is_the_real_one():
    import gradio

    assert not hasattr(gradio, "Box") and not hasattr(gradio.Textbox, "style")
    assert g.__name__ == "gradio" and g.__version__ == gradio.__version__
    assert g.routes is importlib.import_module("gradio.routes")  # everything else is the real module's


# -- an A1111-style extension written for Gradio 3 -------------------------------------------------------------------
BODY = {"steps": 1, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler", "prompt": "a fox"}


@pytest.fixture(scope="module")
def gr3_app(make_module_app, tmp_path_factory):
    root = tmp_path_factory.mktemp("gr3")
    write_files(root / "data" / "extensions" / "sd-webui-gr3-ext", GR3_EXTENSION)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger(COMPAT_LOG).addHandler(handler)
    try:
        app = make_module_app(root / "data", "--skip-install", "--nowebui")  # the page: built once below
        from modules.sumi.frontends.gradio import build_ui

        demo = build_ui(app)
    finally:
        logging.getLogger(COMPAT_LOG).removeHandler(handler)
    return app, demo, [r.getMessage() for r in records]


@pytest.fixture(scope="module")
def gr3_client(gr3_app):
    from tests.app_support import local_client
    from webui import build_server

    return local_client(build_server(gr3_app[0]))


def test_the_gradio3_extension_ui_builds_in_the_page(gr3_app):
    app, demo, _ = gr3_app
    components = _page(demo)["components"]
    by_label = {c["props"].get("label"): c for c in components if c["props"].get("label")}
    assert by_label["gr3 size"]["props"]["value"] == 256
    assert by_label["Preset"]["props"]["allow_custom_value"] is True
    sketch = next(c for c in components if c["props"].get("elem_id") == "gr3_sketch")
    assert sketch["type"] == "imageeditor"
    assert any(c["props"].get("elem_id") == "gr3_tab_text" for c in components)  # its on_ui_tabs tab
    js = [d["js"] for d in _dependencies(demo)]
    assert "() => []" in js and "(x) => x" in js and "() => console.log('gr3 tab')" in js
    assert not [e for e in app.scripts.errors.items if "gr3ext" in e.script and e.where == "import"]


def test_the_unknown_argument_is_one_warning_naming_the_extension(gr3_app):
    _, _, lines = gr3_app
    wobble = [line for line in lines if "wobble" in line]
    assert len(wobble) == 1 and wobble[0].startswith("Extension sd-webui-gr3-ext: gradio Textbox()")
    assert not [line for line in lines if "tooltip" in line]


def test_the_extension_values_reach_its_script_and_a_failed_ui_still_gets_its_api_args(gr3_client):
    alwayson = {
        "Gradio 3 extension": {"args": [True, 128, "landscape", "hello", None]},
        "Gradio 3 failing ui": {"args": [7, "x"]},
    }
    infotext = json.loads(post_txt2img(gr3_client, {**BODY, "alwayson_scripts": alwayson})["info"])[
        "infotexts"
    ][0]
    assert "gr3: 128/landscape/hello/True" in infotext
    assert 'failing ui got: "7,x"' in infotext


def test_the_ui_defaults_reach_the_script_when_the_request_gives_only_enable(gr3_client):
    body = post_txt2img(gr3_client, {**BODY, "alwayson_scripts": {"Gradio 3 extension": {"args": [True]}}})
    infotext = json.loads(body["info"])["infotexts"][0]
    assert "gr3: 256/portrait/note/True" in infotext
    assert "failing ui got" not in infotext  # no args given: none passed


def test_failures_while_scripts_are_created_or_their_ui_built_are_notices_naming_the_extension(gr3_app):
    app, _, _ = gr3_app
    notices = [n for n in app.notices if "sd-webui-gr3-ext" in n]
    assert any("gr3ext.py failed in __init__(): no init for you" in n for n in notices)
    assert any("gr3ext.py failed in ui(): ui exploded" in n for n in notices)
    assert len([n for n in notices if "ui exploded" in n]) == 1  # both tabs build it: one notice


def test_every_class_renders_as_its_gradio_component():
    from modules.sumi.frontends.gradio.gradio3_compat import COMPONENTS

    checked = 0
    for name in COMPONENTS:
        real_class = getattr(gr, name)
        if issubclass(real_class, gr.Blocks):
            continue
        try:
            real = real_class(render=False)
        except Exception:  # needs arguments (e.g. Dataset): not comparable without them
            continue
        compat = getattr(g, name)(render=False)
        assert compat.get_block_name() == real.get_block_name(), name  # e.g. Tab is "tabitem"
        checked += 1
    assert checked > 40


def test_app_started_sees_gradio3_dependencies_and_fns_and_events_added_in_it_reach_the_page():
    from modules.sumi.frontends.gradio.gradio3_compat import blocks_view

    with gr.Blocks() as page:
        prompt, button, out = gr.Textbox(), gr.Button(elem_id="gen"), gr.Textbox()
        button.click(lambda p: p, inputs=[prompt], outputs=[out])
    root = blocks_view(page)  # what an extension's on_app_started(demo, app) gets
    assert isinstance(root, gr.Blocks) and root.children is page.children
    deps = [d for d in root.dependencies if d["trigger"] == "click" and button._id in d["targets"]]
    assert [(d["inputs"], d["outputs"]) for d in deps] == [([prompt._id], [out._id])]
    fn = next(fn for fn in root.fns if [c._id for c in fn.inputs] == deps[0]["inputs"])  # agent-scheduler
    with root:
        extra = gr.Button()
        extra.click(lambda p: p, inputs=fn.inputs, outputs=[out])
    assert len(page.fns) == 2 and extra._id in {t for d in root.dependencies for t in d["targets"]}


def test_a1111_ui_components_take_gradio3_event_arguments():
    from modules.ui_components import ToolButton

    with gr.Blocks() as demo:
        save, out = ToolButton("💾"), gr.Textbox()
        save.click(fn=lambda: "x", _js="() => []", outputs=[out], show_progress=False)  # agent-scheduler's
    config = next(iter(demo.fns.values())).get_config()
    assert (config["js"], config["show_progress"]) == ("() => []", "hidden")


def test_an_invisible_component_is_drawn_hidden_as_gradio3_did():
    # images-browser reads `#image_browser_swipe input` of a `gr.Checkbox(visible=False)` when the page loads
    with gr.Blocks() as demo:
        box = g.Checkbox(False, elem_id="image_browser_swipe", visible=False)
        with g.Row(visible=False) as row:
            g.Textbox()
        with g.Tab("Hidden tab", visible=False) as tab:
            g.Textbox()
        shown = g.Button("b")
    assert _config(demo, box)["props"]["visible"] == "hidden"
    assert _config(demo, row)["props"]["visible"] == "hidden"
    assert _config(demo, tab)["props"]["visible"] is False  # a Gradio 3 tab hidden so has no button
    assert _config(demo, shown)["props"]["visible"] is True


def test_an_extensions_tabs_wrap_their_buttons_as_in_gradio3():
    # Gradio 6 would hide the buttons that do not fit in a "..." menu, where page scripts do not find them
    with gr.Blocks() as demo, g.Tabs(elem_id="ext_tabs") as tabs, g.Tab("One"):
        g.Textbox()
    assert _config(demo, tabs)["props"]["overflow_behavior"] == "wrap"
