"""The folder buttons above a card tab (A1111's "Dirs" view) and the hidden-folder rules, from a real
LoRA folder through the Lora tab's rendering. The clicks in Chromium are in
tests/browser/test_ui_extra_networks_browser.py."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from modules.sumi.frontends.gradio import card_folders as cf
from modules.sumi.frontends.gradio import extra_networks as en
from modules.sumi.services.networks.files import LORA_EXTENSIONS, NetworkFileRegistry
from tests.fixtures.lora_library import library_app

LIBRARY = {
    "": ["plain", "chars_at_root"],
    "chars": ["hero"],
    "chars/anime": ["girl"],
    "styles 2": ["ink"],
    "styles 10": ["oil"],
    ".old": ["stale"],
}


def _library_app(tmp_path: Path, **options) -> SimpleNamespace:
    return library_app(tmp_path, LIBRARY, **options)


def _names(page: str) -> list[str]:
    return sorted(re.findall(r'data-name="([^"]+)"', page))


def _buttons(page: str) -> list[str]:
    return re.findall(r'<button [^>]*class="[^"]*sumi-dir[^"]*"[^>]*>([^<]*)</button>', page)


def test_the_lora_tab_has_a_button_per_folder_and_a_folder_s_search_shows_its_cards(tmp_path: Path):
    app = _library_app(tmp_path)
    page = en.render_tab(app, "lora")
    # every folder holding a card and the folders above it, naturally ordered, "all" first
    assert _buttons(page) == ["all", ".old", "chars", "chars/anime", "styles 2", "styles 10"]
    assert 'id="txt2img_lora_dirs"' in page
    # a hidden folder's cards wait for a search ("When searched", A1111's default)
    assert _names(page) == ["chars_at_root", "girl", "hero", "ink", "oil", "plain"]
    assert _names(en.render_tab(app, "lora", "chars/anime")) == ["girl"]
    assert _names(en.render_tab(app, "lora", "chars")) == ["chars_at_root", "girl", "hero"]
    assert _names(en.render_tab(app, "lora", "styles 2")) == ["ink"]
    # the chosen folder's button is marked, so a second click clears the search
    selected = re.findall(r'data-path="([^"]*)" data-selected=""', en.render_tab(app, "lora", "chars/anime"))
    assert selected == ["chars/anime"]


def test_search_looks_at_the_path_under_the_model_folder_not_the_absolute_path(tmp_path: Path):
    app = _library_app(tmp_path)
    assert tmp_path.name not in cf.search_terms("x", "chars/x.safetensors", str(tmp_path / "x"))
    assert _names(en.render_tab(app, "lora", tmp_path.name)) == []
    assert _names(en.render_tab(app, "lora", "models")) == []  # every card's absolute path has it
    assert _names(en.render_tab(app, "lora", "/chars/anime/girl")) == ["girl"]


def test_slash_buttons_find_a_folder_s_cards_not_names_containing_its_name(tmp_path: Path):
    app = _library_app(tmp_path, extra_networks_dir_button_function=True)
    page = en.render_tab(app, "lora")
    assert _buttons(page)[1:] == ["/.old", "/chars", "/chars/anime", "/styles 2", "/styles 10"]
    assert re.findall(r'data-path="([^"]*)"', page)[1:3] == ["/.old/", "/chars/"]
    assert _names(en.render_tab(app, "lora", "/chars/")) == ["girl", "hero"]  # not chars_at_root


@pytest.mark.parametrize(
    ("rule", "search", "shown"),
    [
        ("Always", "", True),
        ("Never", "stale", False),
        ("When searched", "", False),
        ("When searched", "sta", False),  # A1111: 4 characters or more
        ("When searched", "stale", True),
    ],
)
def test_cards_in_hidden_folders_follow_the_hidden_models_setting(tmp_path: Path, rule, search, shown):
    app = _library_app(tmp_path, extra_networks_hidden_models=rule)
    assert ("stale" in _names(en.render_tab(app, "lora", search))) is shown


def test_hidden_folders_lose_their_buttons_when_hidden_directories_are_not_shown(tmp_path: Path):
    app = _library_app(tmp_path, extra_networks_show_hidden_directories=False)
    assert ".old" not in _buttons(en.render_tab(app, "lora"))
    assert cf.buttons_html([".old", ".old/deep"], "", "txt2img", "lora", show_hidden=False) == ""
    assert _buttons(cf.buttons_html(["a/.h"], "", "txt2img", "lora", show_hidden=False)) == ["all", "a"]


def test_a_tab_whose_files_all_sit_in_its_folder_has_no_folder_row(tmp_path: Path):
    root = tmp_path / "Lora"
    root.mkdir()
    save_file({"w": torch.zeros(1)}, str(root / "only.safetensors"))
    loras = NetworkFileRegistry([root], LORA_EXTENSIONS)
    loras.refresh()
    page = en.render_tab(SimpleNamespace(loras=loras, options=SimpleNamespace(lora_show_all=True)), "lora")
    assert "sumi-dirs" not in page and _names(page) == ["only"]


def test_folder_names_are_escaped_in_the_buttons():
    row = cf.buttons_html(['x"><script>alert(1)</script>'], "", "txt2img", "lora")
    assert "<script>" not in row and "&lt;script&gt;" in row


def test_relative_paths_follow_the_first_root_holding_the_file(tmp_path: Path):
    a, b = tmp_path / "Lora", tmp_path / "LyCORIS"
    assert cf.relative_path(str(b / "s" / "x.safetensors"), [a, b]) == "s/x.safetensors"
    assert cf.relative_path(str(tmp_path / "elsewhere.pt"), [a, b]) is None
    assert cf.folder_of("s/t/x.pt") == "s/t" and cf.folder_of("x.pt") == "" and cf.folder_of(None) == ""
    assert cf.is_hidden(".a/b") and cf.is_hidden("a/.b") and not cf.is_hidden("a.b/c")


def test_a_card_s_search_term_is_a1111_s_path_from_above_the_model_folder(tmp_path: Path):
    app = _library_app(tmp_path)
    page = en.render_tab(app, "lora", "girl")
    assert '<span class="search_term search_terms" hidden>Lora/chars/anime/girl.safetensors</span>' in page
    assert cf.a1111_search_term(str(tmp_path / "x.pt"), [tmp_path / "Lora"]) == str(tmp_path / "x.pt")
