"""Card tabs of the extra networks pages extensions register (A1111's `ui_extra_networks.register_page`)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import gradio as gr
import pytest

from modules.sumi.frontends.gradio import extension_card_pages as pages

OPTIONS = SimpleNamespace(extra_networks_default_multiplier=0.75, some_text="hi")


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ('"golden sunset"', "golden sunset"),  # quote_js(text), what most pages write
        ('"a \\"quoted\\" word \\\\ done"', 'a "quoted" word \\ done'),
        ("'single' + 'quotes'", "singlequotes"),
        ('"<lora:x:" + opts.extra_networks_default_multiplier + ">"', "<lora:x:0.75>"),  # A1111's Lora page
        ('"a" + opts.some_text', "ahi"),
        ('"two\nlines"', "two\nlines"),  # quote_js leaves a line break as it is
        ('"a + b"', "a + b"),  # a plus inside a string
    ],
)
def test_prompt_expressions_a1111_pages_write_are_read(expression, text):
    assert pages.prompt_text(expression, OPTIONS) == text


@pytest.mark.parametrize(
    "expression",
    ["alert(1)", '"a" + fetch("x")', "opts.missing_setting", '"a" +', "", None, 3, '"unclosed'],
)
def test_any_other_expression_is_never_run(expression):
    assert pages.prompt_text(expression, OPTIONS) is None


class Page:
    """An A1111 page as extensions write them."""

    title = "Prompt Cards"
    extra_networks_tabname = "prompt_cards"
    allow_negative_prompt = True

    def __init__(self, items=None, fail=False):
        self.items, self.fail, self.refreshed = items or [], fail, 0

    def refresh(self):
        self.refreshed += 1

    def list_items(self):
        if self.fail:
            raise RuntimeError("its folder is gone")
        yield from self.items


ITEMS = [
    {"name": "sunset", "filename": "", "description": "an <b>evening</b> sky", "search_term": "sky",
     "prompt": '"golden sunset"', "preview": "data:image/png;base64,AAAA"},
    {"name": "forest", "filename": "/x/forest.txt", "search_terms": ["trees", "green"], "prompt": "evil()"},
    "not a dict",
]  # fmt: skip


def app_with(*registered):
    return SimpleNamespace(options=OPTIONS, card_pages=list(registered))


def test_a_page_s_items_become_cards_with_their_text_search_and_preview():
    page = Page(ITEMS)
    cards = {c.name: c for c in pages.page_cards(page, "prompt_cards", OPTIONS)}
    assert set(cards) == {"sunset", "forest"}
    assert cards["sunset"].prompt == "golden sunset" and cards["sunset"].negative
    assert cards["forest"].prompt == "forest"  # an expression Sumi does not run: the card's name
    assert "trees" in cards["forest"].search_terms and "sky" in cards["sunset"].search_terms
    html = pages.render_page(app_with(page), page, "txt2img")
    assert 'data-prompt="golden sunset"' in html and 'src="data:image/png;base64,AAAA"' in html
    assert "an &lt;b&gt;evening&lt;/b&gt; sky" in html  # escaped
    assert 'data-tabname="txt2img"' in html
    searched = pages.render_page(app_with(page), page, "txt2img", search="green")
    assert 'data-name="forest"' in searched and 'data-name="sunset"' not in searched
    pages.render_page(app_with(page), page, "txt2img", refresh=True)
    assert page.refreshed == 1


def test_a_page_takes_a1111_s_ids_unless_they_are_sumi_s():
    """Pages' scripts find their tab by A1111's ids (`#txt2img_ez-tags_cards_html` for "EZ-Tags"); a page
    that would take an id of Sumi's tab gets "ext_" before its own."""

    def titled(title: str) -> Page:
        page = Page(ITEMS)
        page.title, page.extra_networks_tabname = title, title.lower().replace(" ", "_")
        return page

    assert pages.page_kind(titled("EZ-Tags")) == "ez-tags"
    assert pages.page_kind(titled("Lora")) == "ext_lora"  # one of Sumi's card tabs
    assert pages.page_kind(titled("Settings"), {"txt2img_settings"}) == "ext_settings"
    assert pages.page_kind(titled("Settings"), {"img2img_settings"}, "txt2img") == "settings"
    assert pages.page_kind(titled("Odd <name>")) == "odd__name_"  # safe in an HTML id


def test_an_item_s_sort_keys_are_on_its_card():
    page = Page([{"name": "a", "prompt": '"a"', "sort_keys": {"date_modified": "Style-007", "bad key": 1}}])
    html = pages.render_page(app_with(page), page, "txt2img")
    assert 'data-sort-date_modified="Style-007"' in html and 'data-sort-bad_key="1"' in html


def test_a_failing_page_says_so_in_its_tab():
    page = Page(fail=True)
    html = pages.render_page(app_with(page), page, "img2img")
    assert "Prompt Cards could not list its cards: its folder is gone" in html


def test_each_registered_page_gets_a_tab_with_a1111_s_ids():
    page = Page(ITEMS)
    with gr.Blocks() as demo, gr.Tabs():
        pages.create_page_tabs(app_with(page), "txt2img")
    ids = {b.elem_id for b in demo.blocks.values()}
    assert {"txt2img_prompt_cards", "txt2img_prompt_cards_cards_html"} <= ids
    assert {"txt2img_prompt_cards_extra_search", "txt2img_prompt_cards_extra_refresh"} <= ids
    [tab] = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert tab.label == "Prompt Cards" and "extra-page" in tab.elem_classes


def test_a_page_has_a1111_s_attributes_while_it_is_made(tmp_path):
    """EZ-Tags clears `self.metadata` in its `__init__`; the dynamic-prompts page resets `self.lister`."""
    from modules.ui_extra_networks import ExtraNetworksPage

    (tmp_path / "card.tag").write_text("tags", encoding="utf-8")

    class Tags(ExtraNetworksPage):
        def __init__(self):
            super().__init__("EZ-Tags")
            self.metadata.clear()
            self.lister.reset()

    page = Tags()
    assert page.extra_networks_tabname == "ez-tags" and page.items == {} and page.metadata == {}
    assert page.lister.exists(str(tmp_path / "card.tag")) and not page.lister.exists(str(tmp_path / "x.tag"))
    assert (
        page.lister.mctime(str(tmp_path / "card.tag"))[0] > 0
        and page.lister.mctime(str(tmp_path / "x"))[0] == 0
    )


class FolderPage(Page):
    """A page whose files sit in category folders under the folder it names (EZ-Tags' layout)."""

    def __init__(self, folder, items):
        super().__init__(items)
        self.folder = folder

    def allowed_directories_for_previews(self):
        return [str(self.folder)]


def _tag_items(folder):
    files = {"Style/2D/Anime": "anime", "Style/3D/Digital": "3d", "Subject/1 girl": "1girl", "Plain": "x"}
    return [
        {"name": path.rsplit("/", 1)[-1], "filename": str(folder / f"{path}.tag"), "prompt": f'"{text}"'}
        for path, text in files.items()
    ]


def test_a_page_s_sub_folders_get_the_folder_buttons_and_a_folder_s_search_shows_its_cards(tmp_path):
    page = FolderPage(tmp_path / "cards", _tag_items(tmp_path / "cards"))
    options = SimpleNamespace(**vars(OPTIONS), extra_networks_tree_view_default_enabled=True)
    app = SimpleNamespace(options=options)
    html = pages.render_page(app, page, "txt2img")
    assert 'id="txt2img_prompt_cards_dirs"' in html
    assert re.findall(r'data-path="([^"]*)"', html) == ["", "Style", "Style/2D", "Style/3D", "Subject"]
    shown = pages.render_page(app, page, "txt2img", search="Style/2D")
    assert re.findall(r'data-name="([^"]+)"', shown) == ["Anime"]


def test_a_page_s_tree_lists_its_folders_and_files_under_the_page_s_folder(tmp_path):
    page = FolderPage(tmp_path / "cards", _tag_items(tmp_path / "cards"))
    app = SimpleNamespace(options=SimpleNamespace(**vars(OPTIONS), extra_networks_tree_view_style="Tree"))
    html = pages.render_page(app, page, "txt2img", search="Subject")
    assert 'id="txt2img_prompt_cards_tree"' in html
    labels = re.findall(r'tree-list-item-label[^"]*">([^<]*)<', html)
    assert labels == ["cards", "Style", "2D", "Anime", "3D", "Digital", "Subject", "1 girl", "Plain"]
    assert re.findall(r'data-folder="([^"]*)" data-selected=""', html) == ["Subject"]
    files = dict(re.findall(r'sumi-tree-file"[^>]*data-name="([^"]+)" data-prompt="([^"]*)"', html))
    assert files["1 girl"] == "1girl"
    # a page without folders, or whose listing of them fails, has its cards only
    assert "sumi-card-pane" not in pages.render_page(app, Page(ITEMS), "txt2img")


def test_a_page_naming_one_folder_as_a_string_or_failing_to_name_them_still_renders(tmp_path):
    class OneFolder(FolderPage):
        def allowed_directories_for_previews(self):
            return str(self.folder)  # not a list: one folder, not its characters

    class Broken(FolderPage):
        def allowed_directories_for_previews(self):
            raise OSError("gone")

    app = SimpleNamespace(options=OPTIONS)
    items = _tag_items(tmp_path / "cards")
    assert pages.page_roots(OneFolder(tmp_path / "cards", items)) == [tmp_path / "cards"]
    assert 'id="txt2img_prompt_cards_dirs"' in pages.render_page(
        app, OneFolder(tmp_path / "cards", items), "txt2img"
    )
    html = pages.render_page(app, Broken(tmp_path / "cards", items), "txt2img")
    assert "sumi-card-pane" not in html and html.count('class="card sumi-card"') == 4
