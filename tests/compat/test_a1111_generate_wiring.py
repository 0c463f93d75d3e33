"""A1111's Generate wiring as Gradio 3 code reads it (`demo.dependencies`, `demo.fns`), and replaying what
an extension bound to it recorded through `modules.txt2img.txt2img` / `modules.img2img.img2img`
(the fake extension: tests/fixtures/queue_extension.py, agent-scheduler's pattern; in Chromium:
tests/browser/test_a1111_generate_browser.py)."""

from __future__ import annotations

import json

import gradio as gr
import pytest
from PIL import Image

from modules.sumi.frontends.gradio import a1111_generate as ag
from modules.sumi.frontends.gradio import img2img as i2i
from modules.sumi.frontends.gradio import txt2img as t2i
from tests.app_support import local_client
from tests.fixtures.files import write_files
from tests.fixtures.queue_extension import EXT, QUEUE_EXTENSION, extension_module


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("a1111-generate")
    write_files(data / "extensions" / EXT, {"scripts/fake_queue.py": QUEUE_EXTENSION})
    app = make_module_app(data, "--skip-install", loaded=True)
    import webui

    local_client(webui.build_server(app))
    return app


def _payload(component):
    """What the page sends for `component` left as it is, as the event handler receives it."""
    if isinstance(component, gr.State):
        return component.value
    if isinstance(component, (gr.Image, gr.ImageEditor, gr.File)):
        return None  # nothing uploaded
    return component.preprocess(component.postprocess(component.value))


def _click(app, tab, changes):
    """The values the fake extension's button sends (its `fn.inputs` as the page has them, `changes` by
    elem_id or component), with `submit`'s task id, recorded as the extension records them."""
    dependency, fn = extension_module(app).BOUND[tab]
    values = []
    for component in fn.inputs:
        key = getattr(component, "elem_id", None)
        if component in changes:
            values.append(changes[component])
        elif key in changes:
            values.append(changes[key])
        else:
            values.append(_payload(component))
    values[0] = "task(fakequeue1)"  # what submit() puts there
    return dependency, values


def test_the_generate_click_reads_as_a1111s(app):
    assert not [e for e in app.callbacks.errors if e.category == "app_started"]
    module = extension_module(app)
    dependency, fn = module.BOUND["txt2img"]
    generate = next(c for c in app.demo.blocks.values() if getattr(c, "elem_id", None) == "txt2img_generate")
    assert dependency["targets"] == [generate._id] and dependency["js"] == "submit"
    names = [getattr(c, "elem_id", None) for c in fn.inputs]
    assert names[1:4] == ["txt2img_prompt", "txt2img_neg_prompt", "txt2img_styles"]
    assert names[7:9] == ["txt2img_height", "txt2img_width"]  # A1111's order: height first
    labels = [getattr(c, "label", None) for c in fn.inputs]
    # supermerger takes the scripts' inputs as those after the input labelled "Override settings"
    assert labels.index("Override settings") == len(ag.TXT2IMG_ARGS)
    scripts_end = 1 + len(ag.TXT2IMG_ARGS) + len(app.scripts.txt2img.inputs)
    marker = fn.inputs[scripts_end]  # then ControlNet's inputs and the tab's other values
    assert isinstance(marker, gr.State) and marker.value == ag.MARKER
    assert [c.elem_id for c in fn.inputs[-len(ag.TXT2IMG_TAIL) :][:3]] == [
        "txt2img_sampling",
        "txt2img_scheduler",
        "txt2img_steps",
    ]
    outputs = [app.demo.blocks[i].elem_id for i in dependency["outputs"]]
    assert outputs == ["txt2img_gallery", "generation_info_txt2img", "html_info_txt2img", "txt2img_error"]
    # the events the extension added under `with demo:` are the page's
    assert "txt2img_queue_it" in {getattr(c, "elem_id", None) for c in app.demo.blocks.values()}
    img_dependency, _ = module.BOUND["img2img"]
    assert img_dependency["js"] == "submit_img2img" and len(img_dependency["outputs"]) == 4


def test_every_tab_value_is_carried_once():
    for args, tail, names in (
        (ag.TXT2IMG_ARGS, ag.TXT2IMG_TAIL, t2i.TAB_INPUT_NAMES),
        (ag.IMG2IMG_ARGS, ag.IMG2IMG_TAIL, i2i.INPUT_NAMES),
    ):
        carried = [sumi for _, sumi in args if sumi] + list(tail)
        assert sorted(carried) == sorted(names)


def test_the_a1111_argument_names_are_the_facades():
    import inspect

    from modules import img2img, txt2img

    assert inspect.getfullargspec(txt2img.txt2img_create_processing).args[2:] == [
        a for a, _ in ag.TXT2IMG_ARGS
    ]
    assert inspect.getfullargspec(img2img.img2img).args[3:] == [a for a, _ in ag.IMG2IMG_ARGS[1:]]


def test_recorded_txt2img_values_replay_as_the_pages_job(app):
    module = extension_module(app)
    prompt = next(c for c in app.demo.blocks.values() if getattr(c, "elem_id", None) == "txt2img_prompt")
    changes = {
        prompt: "a red circle",
        "txt2img_steps": 3,
        "txt2img_sampling": "Euler",
        "txt2img_seed": 1234,
        "txt2img_width": 64,
        "txt2img_height": 64,
        "fake_queue_note_t": "from the queue",
    }
    _, values = _click(app, "txt2img", changes)
    module.TASKS.clear()
    module._recorder("txt2img")(None, *values)
    images, info_json, _html, _log = module.replay()
    info = json.loads(info_json)
    assert (info["prompt"], info["steps"], info["seed"], info["sampler_name"]) == (
        "a red circle",
        3,
        1234,
        "Euler",
    )
    assert (info["width"], info["height"]) == (64, 64)
    assert "Queue note: from the queue" in info["infotexts"][0]
    assert len(images) == 1 and images[0].size == (64, 64)


def test_a_recorded_value_the_extension_changed_wins(app):
    module = extension_module(app)
    _, values = _click(app, "txt2img", {"txt2img_steps": 2, "txt2img_width": 64, "txt2img_height": 64})
    module.TASKS.clear()
    module._recorder("txt2img")(None, *values)
    tab, named, blob = module.TASKS[0]
    named = {**json.loads(named), "prompt": "edited in the queue"}  # agent-scheduler's task editor
    module.TASKS[0] = (tab, json.dumps(named), blob)
    _, info_json, _, _ = module.replay()
    assert json.loads(info_json)["prompt"] == "edited in the queue"


def test_recorded_img2img_values_replay_as_the_pages_job(app):
    module = extension_module(app)
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    changes = {
        "img2img_image": image,
        "img2img_prompt": "a blue square",
        "img2img_steps": 2,
        "img2img_seed": 77,
        "img2img_width": 64,
        "img2img_height": 64,
    }
    prompt = next(c for c in app.demo.blocks.values() if getattr(c, "elem_id", None) == "img2img_prompt")
    changes[prompt] = "a blue square"
    _, values = _click(app, "img2img", changes)
    values[1] = 0  # submit_img2img's mode: the img2img sub-tab
    module.TASKS.clear()
    module._recorder("img2img")(None, *values)
    images, info_json, _, _ = module.replay()
    info = json.loads(info_json)
    assert (info["prompt"], info["steps"], info["seed"]) == ("a blue square", 2, 77)
    assert len(images) == 1


def test_a1111_arguments_alone_still_run_as_a1111s(app):
    from modules import txt2img

    runner = app.scripts.txt2img
    args = ["a cat", "", [], 1, 1, 7.0, 64, 64, False, 0.7, 2.0, "Latent", 0, 0, 0, "", "", "", "", "", []]
    p = txt2img.txt2img_create_processing("task(x)", None, *args, *runner.default_args(), steps=2)
    assert (p.prompt, p.steps, p.width) == ("a cat", 2, 64)


def test_split_tab_values_finds_the_marker_where_the_scripts_end_or_later():
    assert ag.split_tab_values([0, "a", ag.MARKER, 1, 2], 2) == ([0, "a"], [1, 2])
    assert ag.split_tab_values([0, "a", "b", ag.MARKER, 1], 2) == ([0, "a", "b"], [1])  # scripts changed
    assert ag.split_tab_values([0, "a"], 2) == ([0, "a"], None)
    import numpy as np

    assert ag.split_tab_values([0, np.zeros(3)], 1)[1] is None  # arrays are never compared


def test_the_queue_lock_holder_runs_its_own_jobs_and_others_wait(app):
    """A1111 generates in the thread that holds `queue_lock`; Sumi runs that thread's jobs on the worker
    (before: the worker waited for the lock's release and the job for the worker)."""
    import threading

    from modules.call_queue import queue_lock

    def worker_name() -> str:
        return threading.current_thread().name

    other: list[str] = []
    with queue_lock:
        assert app.queue.submit("mine", worker_name).future.result(timeout=30) == "sumi-gpu-worker"
        waiting = threading.Thread(target=lambda: other.append(app.queue.run("theirs", lambda: "ran")))
        waiting.start()
        waiting.join(0.5)
        assert other == []  # the worker is this thread's
        assert app.queue.submit("mine again", lambda: 2).future.result(timeout=30) == 2
    waiting.join(30)
    assert other == ["ran"]


def test_recorded_inpaint_values_carry_sumis_canvas_after_the_marker(app):
    """A1111's `init_img_with_mask` is `{"image", "mask"}`; Sumi's canvas value (an ImageEditor's) rides
    after the marker, and A1111's place holds an empty dict of A1111's shape (JSON-serialisable)."""
    module = extension_module(app)
    background = Image.new("RGB", (64, 64), (30, 30, 200))
    stroke = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    stroke.paste((255, 255, 255, 255), (16, 16, 48, 48))
    canvas = {"background": background, "layers": [stroke], "composite": background}
    changes = {"img2maskimg": canvas, "img2img_steps": 2, "img2img_width": 64, "img2img_height": 64}
    _, values = _click(app, "img2img", changes)
    values[1] = 2  # submit_img2img's mode: the Inpaint sub-tab
    module.TASKS.clear()
    module._recorder("img2img")(None, *values)
    named = json.loads(module.TASKS[0][1])
    assert named["init_img_with_mask"] == {"image": None, "mask": None} and named["mode"] == 2
    images, info_json, _, _ = module.replay()
    info = json.loads(info_json)
    assert info["steps"] == 2 and len(images) == 1
