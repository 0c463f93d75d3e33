"""A1111's "Tree" view of a card tab (`extra_networks_tree_view_style` = "Tree") and the pane that shows
or hides the folders, from a real LoRA folder through the Lora tab's rendering. The clicks in Chromium
are in tests/browser/test_ui_extra_networks_browser.py."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import save_file

from modules.sumi.frontends.gradio import extra_networks as en
from modules.sumi.services.networks.files import LORA_EXTENSIONS, NetworkFileRegistry
from tests.fixtures.lora_library import library_app
from tests.html_tree import Node, parse

LIBRARY = {
    "": ["plain", "b10", "b2"],
    "chars": ["hero"],
    "chars/anime": ["girl"],
    "styles 10": ["oil"],
    "styles 2": ["ink"],
    ".old": ["stale"],
}
TREE = {"extra_networks_tree_view_style": "Tree"}


def _app(tmp_path: Path, **options) -> SimpleNamespace:
    return library_app(tmp_path, LIBRARY, **options)


def _outline(item: Node, depth: int = 0) -> list[str]:
    """The tree as lines indented two spaces a level: "+ folder" (open), "- folder" (closed), ". file"."""
    row = item.child(lambda n: n.has_class("tree-list-content"))
    assert row is not None
    label = row.by_class("tree-list-item-label")[0].text()
    if item.attrs["data-tree-entry-type"] == "file":
        return ["  " * depth + ". " + label]
    lines = ["  " * depth + ("+ " if "data-expanded" in row.attrs else "- ") + label]
    sub = item.child(lambda n: n.tag == "ul")
    assert sub is not None and ("hidden" in sub.attrs) != ("data-expanded" in row.attrs)
    for child in sub.children:
        lines += _outline(child, depth + 1)
    return lines


def _tree(page: str) -> tuple[list[str], Node]:
    doc = parse(page)
    tree = doc.by_id("txt2img_lora_tree")
    assert tree is not None
    (top,) = tree.children
    assert top.has_class("tree-list--tree")
    (root,) = top.children
    return _outline(root), doc


def _cards(doc: Node) -> list[Node]:
    cards = doc.by_id("txt2img_lora_cards")
    return cards.by_class("sumi-card") if cards is not None else []


def _dirs(doc: Node, selected: bool = False) -> list[Node]:
    return [n for n in doc.by_class("sumi-tree-dir") if not selected or "data-selected" in n.attrs]


def test_the_tree_lists_folders_then_files_in_natural_order_under_the_model_folder(tmp_path: Path):
    outline, doc = _tree(en.render_tab(_app(tmp_path, **TREE), "lora"))
    assert outline == [
        "+ Lora",
        "  - chars",
        "    - anime",
        "      . girl",
        "    . hero",
        "  - styles 2",
        "    . ink",
        "  - styles 10",
        "    . oil",
        "  . b2",
        "  . b10",
        "  . plain",
    ]  # the hidden folder's file waits for a search ("When searched"); its folder is left out with it
    assert not doc.by_class("sumi-dirs")  # the tree takes the place of the folder buttons
    (pane,) = doc.by_class("sumi-card-pane")
    assert pane.has_class("sumi-pane-tree") and not pane.has_class("extra-network-dirs-hidden")
    assert "--sumi-tree-width: 180px" in pane.attrs["style"]
    assert len(_cards(doc)) == 7


def test_a_folder_s_row_searches_for_it_and_the_chosen_folder_is_open_down_to_it(tmp_path: Path):
    app = _app(tmp_path, **TREE, extra_networks_hidden_models="Never")
    outline, doc = _tree(en.render_tab(app, "lora", "chars/anime"))
    assert outline[:4] == ["+ Lora", "  + chars", "    + anime", "      . girl"]
    assert outline[5] == "  - styles 2"
    assert [row.attrs["data-path"] for row in _dirs(doc, selected=True)] == ["chars/anime"]
    rows = {row.attrs["data-folder"]: row.attrs["data-path"] for row in _dirs(doc)}
    assert rows == {
        "": "",
        "chars": "chars",
        "chars/anime": "chars/anime",
        "styles 2": "styles 2",
        "styles 10": "styles 10",
    }
    # the cards are the search's; the tree keeps every file
    assert [c.attrs["data-name"] for c in _cards(doc)] == ["girl"]
    assert len(doc.by_class("sumi-tree-file")) == 7
    # with A1111's '/' option a row searches "/folder/", and that search chooses it
    slash = _app(
        tmp_path / "slash",
        **TREE,
        extra_networks_dir_button_function=True,
        extra_networks_hidden_models="Never",
    )
    outline, doc = _tree(en.render_tab(slash, "lora", "/chars/"))
    assert [row.attrs["data-path"] for row in _dirs(doc, selected=True)] == ["/chars/"]
    assert outline[1:3] == ["  + chars", "    - anime"]


def test_a_file_in_the_tree_carries_what_its_card_inserts(tmp_path: Path):
    app = _app(tmp_path, **TREE)
    doc = parse(en.render_tab(app, "lora", tabname="img2img"))
    assert doc.by_id("img2img_lora_tree") is not None
    (girl,) = [f for f in doc.by_class("sumi-tree-file") if f.attrs["data-name"] == "girl"]
    (card,) = [c for c in doc.by_class("sumi-card") if c.attrs["data-name"] == "girl"]
    for key in ("data-kind", "data-prompt", "data-checkpoint", "data-negative", "data-tabname"):
        assert girl.attrs[key] == card.attrs[key], key
    assert girl.attrs["data-prompt"] == "<lora:girl:1>" and girl.attrs["data-tabname"] == "img2img"
    assert girl.attrs["title"].endswith("anime/girl.safetensors")


def test_hidden_folders_follow_a1111_s_settings_in_the_tree(tmp_path: Path):
    always = _app(tmp_path, **TREE, extra_networks_hidden_models="Always")
    outline, _ = _tree(en.render_tab(always, "lora"))
    assert outline[1:3] == ["  - .old", "    . stale"]
    searched, _ = _tree(en.render_tab(_app(tmp_path / "s", **TREE), "lora", "sta"))
    assert "    . stale" not in searched  # "When searched": 4 characters or more
    searched, _ = _tree(en.render_tab(_app(tmp_path / "s2", **TREE), "lora", "stal"))
    assert "    . stale" in searched
    no_dirs = _app(tmp_path / "n", **TREE, extra_networks_hidden_models="Always")
    no_dirs.options.extra_networks_show_hidden_directories = False
    outline, _ = _tree(en.render_tab(no_dirs, "lora"))
    assert not any(".old" in line or "stale" in line for line in outline)


def test_the_folders_start_hidden_and_at_the_width_the_settings_say(tmp_path: Path):
    for style, folders in (("Tree", "sumi-tree"), ("Dirs", "sumi-dirs")):
        app = _app(
            tmp_path / style,
            extra_networks_tree_view_style=style,
            extra_networks_tree_view_default_enabled=False,
            extra_networks_tree_view_default_width=260,
        )
        (pane,) = parse(en.render_tab(app, "lora")).by_class("sumi-card-pane")
        assert pane.has_class("extra-network-dirs-hidden"), style
        assert "--sumi-tree-width: 260px" in pane.attrs["style"]
        (holder,) = pane.by_class("sumi-pane-folders")
        assert holder.by_class(folders), style
        (toggle,) = pane.by_class("sumi-folders-toggle")
        assert (toggle.attrs["data-tabname"], toggle.attrs["data-kind"]) == ("txt2img", "lora")


def test_a_tab_without_sub_folders_in_dirs_style_has_no_pane_and_a_bad_width_falls_back(tmp_path: Path):
    root = tmp_path / "models" / "Lora"
    root.mkdir(parents=True)
    save_file({"w": torch.zeros(1)}, str(root / "flat.safetensors"))
    loras = NetworkFileRegistry([root], LORA_EXTENSIONS)
    loras.refresh()
    app = SimpleNamespace(loras=loras, options=SimpleNamespace(lora_show_all=True))
    assert "sumi-card-pane" not in en.render_tab(app, "lora")
    app.options.extra_networks_tree_view_style = "Tree"
    for width in ("wide", float("inf"), float("nan")):
        app.options.extra_networks_tree_view_default_width = width
        page = en.render_tab(app, "lora")
        assert "--sumi-tree-width: 180px" in page, width
    assert re.search(r'class="tree-list-item-label[^"]*">flat<', page)


def test_names_are_escaped_in_the_tree(tmp_path: Path):
    root = tmp_path / "models" / "Lora" / 'a"<b>'
    root.mkdir(parents=True)
    save_file({"w": torch.zeros(1)}, str(root / "x<i>.safetensors"))
    loras = NetworkFileRegistry([root.parent], LORA_EXTENSIONS)
    loras.refresh()
    app = SimpleNamespace(loras=loras, options=SimpleNamespace(lora_show_all=True, **TREE))
    page = en.render_tab(app, "lora")
    assert "<b>" not in page and "<i>" not in page
    outline, _ = _tree(page)
    assert outline == ["+ Lora", '  - a"<b>', "    . x<i>"]
