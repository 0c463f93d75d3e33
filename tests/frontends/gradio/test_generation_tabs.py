"""The txt2img and img2img bodies as A1111 1.6+ lays them out, and A1111's class names on the page:
what extensions and themes look up (`#txt2img_extra_tabs .tab-nav button`, `.extra-page`,
`.resize-handle-row`, `.gradio-button`, `div.tabitem.gradio-tabitem`)."""

from __future__ import annotations

import gradio as gr
import pytest

from modules.sumi.frontends.gradio.a1111_classes import add_a1111_classes

NETWORK_TABS = ["Textual Inversion", "Hypernetworks", "Checkpoints", "Lora"]
NETWORK_KINDS = ["textual_inversion", "hypernetworks", "checkpoints", "lora"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, make_module_app):
    from modules.sumi.frontends.gradio import build_ui

    return build_ui(make_module_app(tmp_path_factory.mktemp("generation-tabs"), start=False))


def by_elem_id(demo: gr.Blocks, elem_id: str):
    [block] = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id]
    return block


def ancestors(block) -> list:
    found = []
    while block.parent is not None:
        block = block.parent
        found.append(block)
    return found


@pytest.mark.parametrize("tabname", ["txt2img", "img2img"])
def test_network_tabs_sit_beside_the_generation_tab_as_in_a1111(demo, tabname):
    tabs = by_elem_id(demo, f"{tabname}_extra_tabs")
    assert isinstance(tabs, gr.Tabs) and "extra-networks" in tabs.elem_classes
    assert tabs.overflow_behavior == "wrap"  # every name in its row, never in a "..." menu
    assert [t.label for t in tabs.children] == ["Generation", *NETWORK_TABS]
    assert [t.elem_id for t in tabs.children] == [
        f"{tabname}_generation_tab",
        *(f"{tabname}_{kind}" for kind in NETWORK_KINDS),
    ]
    assert all("extra-page" in t.elem_classes for t in tabs.children[1:])
    generation = tabs.children[0]
    for part in ("settings", "results", "gallery", "generate"):
        above = ancestors(by_elem_id(demo, f"{tabname}_{part}"))
        assert (generation in above) == (part != "generate"), part  # the prompt row stays above the tabs
    [row] = generation.children
    assert isinstance(row, gr.Row) and "resize-handle-row" in row.elem_classes
    assert [c.elem_id for c in row.children] == [f"{tabname}_settings", f"{tabname}_results"]
    for kind in NETWORK_KINDS:  # each tab holds its own cards, search and sort
        for part in ("cards_html", "extra_search", "extra_sort", "extra_refresh"):
            assert tabs.children[1 + NETWORK_KINDS.index(kind)] in ancestors(
                by_elem_id(demo, f"{tabname}_{kind}_{part}")
            )


def test_every_block_of_the_page_carries_a1111_s_class_name(demo):
    named = [b for b in demo.blocks.values() if hasattr(b, "elem_classes")]
    assert len(named) > 500
    missing = [
        (type(b).__name__, b.elem_id)
        for b in named
        if f"gradio-{b.get_block_name()}" not in (b.elem_classes or [])
    ]
    assert missing == []
    assert "tool" in by_elem_id(demo, "txt2img_random_seed").elem_classes  # their own classes are kept
    assert by_elem_id(demo, "tabs").elem_classes[0] == "gradio-tabs"
    assert by_elem_id(demo, "tab_txt2img").elem_classes[0] == "gradio-tabitem"
    assert by_elem_id(demo, "txt2img_prompt").elem_classes[0] == "gradio-textbox"


def test_a1111_class_names_go_first_once_and_mark_multiselect_dropdowns():
    with gr.Blocks() as demo, gr.Row(elem_classes="compact") as row:
        tool = gr.Button("x", elem_classes=["tool", "gradio-button"])
        plain = gr.Textbox()
        several = gr.Dropdown(["a", "b"], multiselect=True)
        one = gr.Dropdown(["a", "b"])
    add_a1111_classes(demo)
    add_a1111_classes(demo)  # twice: nothing doubled
    assert row.elem_classes == ["gradio-row", "compact"]
    assert tool.elem_classes == ["tool", "gradio-button"]  # already there: not added again
    assert plain.elem_classes == ["gradio-textbox"]
    assert several.elem_classes == ["gradio-dropdown", "multiselect"]
    assert one.elem_classes == ["gradio-dropdown"]
