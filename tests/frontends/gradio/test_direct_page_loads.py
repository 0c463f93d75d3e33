"""Sumi's page-load events skip Gradio's queue (a plain request each, so the page settles sooner); an
extension's load events and any streaming one keep the queue."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from modules.sumi.frontends.gradio.direct_page_loads import answer_page_loads_directly
from modules.sumi.frontends.gradio.quicksettings import page_load


def _load_queues(config: Any) -> list[bool]:
    return [d["queue"] for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"])]


def test_every_load_event_of_sumis_page_is_answered_without_the_queue(make_app, tmp_path):
    from modules.sumi.frontends.gradio import build_ui

    app = make_app(tmp_path / "data", "--nowebui")
    queues = _load_queues(build_ui(app).get_config_file())
    assert len(queues) >= 10  # settings, sizes, checkpoint list, extra network cards, extensions...
    assert not any(queues)


def _streaming_sumi_load():
    yield ""


_streaming_sumi_load.__module__ = "modules.sumi.frontends.gradio.example"


def test_an_extensions_load_event_and_a_stream_stay_on_the_queue():
    sumi_function = partial(page_load, None)  # pyright: ignore[reportArgumentType]  # never called
    with gr.Blocks() as demo:
        box = gr.Textbox()
        demo.load(sumi_function, outputs=[box, box])
        demo.load(lambda: "from an extension", outputs=box)
        demo.load(_streaming_sumi_load, outputs=box)
        box.change(sumi_function, outputs=[box, box])  # not a page load
    assert answer_page_loads_directly(demo) == 1
    assert _load_queues(demo.get_config_file()) == [False, True, True]
    config: Any = demo.get_config_file()
    change = [d for d in config["dependencies"] if d["targets"][0][1] == "change"]
    assert change[0]["queue"] is True
