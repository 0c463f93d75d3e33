"""The extra networks panel: card data (names, sidecar metadata, previews), the prompt toggle, and
the Textual Inversion notice. The browser tests are in test_ui_extra_networks_browser.py."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from modules.sumi.frontends.gradio import extra_networks as en
from modules.sumi.services.networks.files import LORA_EXTENSIONS, NetworkFileRegistry


# -- sidecar metadata and card text -------------------------------------------------------------------
def test_sidecar_metadata_is_read_and_bad_json_is_tolerated(tmp_path: Path):
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"")
    assert en.read_user_metadata(lora) == {}
    (tmp_path / "style.json").write_text("{not json", encoding="utf-8")
    assert en.read_user_metadata(lora) == {}
    (tmp_path / "style.json").write_text("[1, 2]", encoding="utf-8")
    assert en.read_user_metadata(lora) == {}
    meta = {"description": "A style", "preferred weight": 0.7, "activation text": "in the style of x"}
    (tmp_path / "style.json").write_text(json.dumps(meta), encoding="utf-8")
    assert en.read_user_metadata(lora) == meta
    assert en.description_of(lora, meta) == "A style"


def test_description_falls_back_to_txt(tmp_path: Path):
    path = tmp_path / "thing.pt"
    (tmp_path / "thing.txt").write_text("from txt\n", encoding="utf-8")
    assert en.description_of(path, {}) == "from txt"
    assert en.description_of(path, {"description": "from json"}) == "from json"


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({}, "<lora:x:1>"),
        ({"preferred weight": 0}, "<lora:x:1>"),
        ({"preferred weight": "bad"}, "<lora:x:1>"),
        ({"preferred weight": 0.65}, "<lora:x:0.65>"),
        ({"preferred weight": 2, "activation text": " red hat "}, "<lora:x:2> red hat"),
    ],
)
def test_lora_prompt(meta, expected):
    assert en.lora_prompt("x", meta) == expected


# -- toggling text in the prompt -----------------------------------------------------------------------
def test_toggle_appends_then_removes_a_tag():
    once = en.toggle_prompt_text("a cat", "<lora:x:1>")
    assert once == "a cat <lora:x:1>"
    assert en.toggle_prompt_text(once, "<lora:x:1>") == "a cat"
    assert en.toggle_prompt_text("", "<lora:x:1>") == "<lora:x:1>"
    assert en.toggle_prompt_text("<lora:x:1>", "<lora:x:1>") == ""


def test_toggle_removes_a_tag_with_another_weight_and_its_activation_text():
    prompt = "a cat <lora:x:0.4> red hat, <lora:y:1>"
    assert en.toggle_prompt_text(prompt, "<lora:x:1> red hat") == "a cat, <lora:y:1>"
    assert en.toggle_prompt_text("a <hypernet:h:1>", "<hypernet:h:1>") == "a"
    # a different network of the same name prefix stays
    assert en.toggle_prompt_text("a <lora:xy:1>", "<lora:x:1>") == "a <lora:xy:1> <lora:x:1>"


def test_toggle_plain_embedding_name():
    assert en.toggle_prompt_text("a cat", "myemb") == "a cat myemb"
    assert en.toggle_prompt_text("a cat myemb", "myemb") == "a cat"


# -- cards ---------------------------------------------------------------------------------------------
def _fake_app(tmp_path: Path) -> SimpleNamespace:
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    save_file({"w": torch.zeros(1)}, str(lora_dir / "b_style.safetensors"))
    save_file({"w": torch.zeros(1)}, str(lora_dir / "a_char.safetensors"))
    (lora_dir / "a_char.json").write_text(
        json.dumps({"description": "A <char>", "preferred weight": 0.8, "activation text": "charname"}),
        encoding="utf-8",
    )
    (lora_dir / "b_style.json").write_text("{{{", encoding="utf-8")  # broken: ignored
    Image.new("RGB", (600, 400), "red").save(lora_dir / "a_char.preview.png")
    loras = NetworkFileRegistry([lora_dir], LORA_EXTENSIONS)
    loras.refresh()
    return SimpleNamespace(loras=loras, options=SimpleNamespace())


def test_lora_cards_and_html(tmp_path: Path):
    app = _fake_app(tmp_path)
    cards = {c.name: c for c in en.lora_cards(app)}
    assert set(cards) == {"a_char", "b_style"}
    assert cards["a_char"].prompt == "<lora:a_char:0.8> charname"
    assert cards["a_char"].description == "A <char>"
    preview = urllib.parse.quote(str(tmp_path / "Lora" / "a_char.preview.png"))
    assert cards["a_char"].preview.startswith(f"./sd_extra_networks/thumb?filename={preview}&mtime=")
    assert cards["b_style"].prompt == "<lora:b_style:1>" and cards["b_style"].preview == ""
    page = en.cards_html(list(cards.values()))
    assert page.index("a_char") < page.index("b_style")  # sorted by name
    assert "A &lt;char&gt;" in page and 'data-prompt="&lt;lora:a_char:0.8&gt; charname"' in page
    assert "no preview" in page
    # A1111's card parts, where extensions add their buttons and read the file
    path = str(tmp_path / "Lora" / "b_style.safetensors")
    # A1111 1.8+'s search term: the path from above the model folder (Civitai Helper finds sidecars by it)
    assert (
        '<div class="additional"><span class="search_term search_terms" hidden>Lora/b_style.safetensors</span><ul></ul></div>'
        in page
    )
    assert page.count('<div class="button-row"><div class="copy-path-button card-button"') == 2
    # A1111 1.6+'s buttons on the card: copy the path, show the file's metadata, edit the card
    assert f'data-clipboard-text="{path}"' in page
    assert (
        page.count('class="metadata-button card-button"') == 2
        and page.count('class="edit-button card-button"') == 2
    )
    assert '</div></div><div class="actions">' in page
    assert (
        f'src="./sd_extra_networks/thumb?filename={preview}&amp;mtime=' in page and 'loading="lazy"' in page
    )
    assert [c.name for c in en.filter_cards(list(cards.values()), "STY")] == ["b_style"]
    assert "Nothing matches" in en.cards_html(list(cards.values()), "zzz")


def test_render_and_refresh_tab_pick_up_new_files(tmp_path: Path):
    app = _fake_app(tmp_path)
    assert "c_new" not in en.render_tab(app, "lora")
    save_file({"w": torch.zeros(1)}, str(tmp_path / "Lora" / "c_new.safetensors"))
    assert "c_new" in en.refresh_tab(app, "lora")
    assert "c_new" not in en.render_tab(app, "lora", "char")


def test_switch_checkpoint_reports_errors():
    def fail(values):
        raise ValueError("Checkpoint not found: 'nope'")

    app = SimpleNamespace(settings=SimpleNamespace(set=fail))
    assert "sumi-error" in en.switch_checkpoint(app, "nope")
    assert en.switch_checkpoint(app, "") == ""
    chosen = {}
    ok = SimpleNamespace(
        settings=SimpleNamespace(set=chosen.update), options=SimpleNamespace(sd_model_checkpoint="m [abc]")
    )
    assert "m [abc]" in en.switch_checkpoint(ok, "m")
    assert chosen == {"sd_model_checkpoint": "m"}


# -- sorting -------------------------------------------------------------------------------------------
def test_sort_cards_by_name_and_date(tmp_path: Path):
    import os

    cards = []
    for i, name in enumerate(["b", "A", "c"]):
        path = tmp_path / f"{name}.pt"
        path.write_bytes(b"")
        os.utime(path, (1000 + i * 10, {"b": 3000, "A": 1000, "c": 2000}[name]))
        cards.append(en.Card("lora", name, str(path), search_terms=name.lower()))
    cards.append(en.Card("lora", "nofile", "", search_terms="nofile"))
    names = lambda sort: [c.name for c in en.sort_cards(cards, sort)]  # noqa: E731
    assert names("Name") == ["A", "b", "c", "nofile"]
    assert names("Name (desc)") == ["nofile", "c", "b", "A"]
    assert names("Date modified") == ["nofile", "A", "c", "b"]
    assert names("Date modified (desc)") == ["b", "c", "A", "nofile"]
    assert names("bogus") == names(None) == names("Name")
    assert [c.name for c in en.filter_cards(cards, "b", "Name (desc)")] == ["b"]
    page = en.cards_html(cards, None, sort="Date modified (desc)")
    assert page.index('data-name="b"') < page.index('data-name="c"') < page.index('data-name="A"')


def test_render_tab_applies_sort(tmp_path: Path):
    app = _fake_app(tmp_path)
    page = en.render_tab(app, "lora", None, sort="Name (desc)")
    assert page.index("b_style") < page.index("a_char")


# -- A1111's Extra Networks settings -----------------------------------------------------------------
def test_cards_follow_the_extra_networks_settings(tmp_path: Path):
    app = _fake_app(tmp_path)
    save_file(
        {"w": torch.zeros(1)}, str(tmp_path / "Lora" / "c_file.safetensors"), {"ss_output_name": "aliased"}
    )
    app.loras.refresh()
    app.options = SimpleNamespace(
        extra_networks_default_multiplier=0.65,
        extra_networks_card_width=180,
        extra_networks_card_height=0,
        extra_networks_card_text_scale=1.5,
        extra_networks_card_show_desc=False,
        extra_networks_card_order_field="Name",
        extra_networks_card_order="Descending",
    )
    cards = {c.name: c for c in en.lora_cards(app)}
    assert cards["b_style"].prompt == "<lora:b_style:0.65>"  # no preferred weight: the default multiplier
    assert cards["a_char"].prompt == "<lora:a_char:0.8> charname"  # its own preferred weight wins
    assert cards["c_file"].prompt == "<lora:aliased:0.65>"  # "Alias from file", A1111's default
    app.options.lora_preferred_name = "Filename"
    assert {c.name: c.prompt for c in en.lora_cards(app)}["c_file"] == "<lora:c_file:0.65>"
    page = en.render_tab(app, "lora")
    assert page.index("c_file") < page.index("b_style") < page.index("a_char")  # Name, Descending
    assert page.count('style="width: 180px; font-size: 1.5em"') == 3
    assert "A &lt;char&gt;" not in page  # descriptions hidden
    app.options.extra_networks_card_order_field = "Date Modified"
    assert en.default_sort(app.options) == "Date modified (desc)"
    assert en.default_sort(SimpleNamespace()) == "Name"  # A1111's defaults: Path, Ascending
    (tmp_path / "plain").mkdir()
    assert 'style="' not in en.render_tab(_fake_app(tmp_path / "plain"), "lora")  # defaults: the stylesheet's


def test_lora_cards_for_another_model_version_are_hidden_as_on_a1111(tmp_path: Path):
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    for name, metadata in {
        "xl": {"ss_base_model_version": "sdxl_base_v1-0"},
        "v2": {"ss_v2": "True"},
        "v1": {"ss_network_dim": "4"},
        "plain": None,  # no metadata: Unknown
    }.items():
        save_file({"w": torch.zeros(1)}, str(lora_dir / f"{name}.safetensors"), metadata)
    (lora_dir / "v2.json").write_text(
        json.dumps({"sd version": "SDXL"}), encoding="utf-8"
    )  # the sidecar wins
    loras = NetworkFileRegistry([lora_dir], LORA_EXTENSIONS)
    model = SimpleNamespace(active=SimpleNamespace(sd=SimpleNamespace(family="SDXL")))
    app = SimpleNamespace(loras=loras, models=model, options=SimpleNamespace(lora_show_all=False))
    names = lambda: sorted(c.name for c in en.lora_cards(app))  # noqa: E731
    assert names() == ["plain", "v2", "xl"]
    app.options.lora_hide_unknown_for_versions = ["SDXL"]
    assert names() == ["v2", "xl"]
    model.active.sd.family = "SD1"
    assert names() == ["plain", "v1"]
    model.active = None  # no model loaded: all
    assert names() == ["plain", "v1", "v2", "xl"]
    model.active = SimpleNamespace(sd=SimpleNamespace(family="SDXL"))
    app.options.lora_show_all = True
    assert names() == ["plain", "v1", "v2", "xl"]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("", ["Textual Inversion", "Hypernetworks", "Checkpoints", "Lora"]),
        ("lora", ["Lora", "Textual Inversion", "Hypernetworks", "Checkpoints"]),
        ("Lora, checkpoints, nothing", ["Lora", "Checkpoints", "Textual Inversion", "Hypernetworks"]),
        ("inversion,hyper", ["Textual Inversion", "Hypernetworks", "Checkpoints", "Lora"]),
    ],
)
def test_tab_order_follows_ui_extra_networks_tab_reorder(order, expected):
    options = SimpleNamespace(ui_extra_networks_tab_reorder=order)
    assert [label for _, label in en.ordered_tabs(options)] == expected


# -- sidecar writing -----------------------------------------------------------------------------------
def test_write_user_metadata_keeps_unknown_keys(tmp_path: Path):
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"")
    (tmp_path / "style.json").write_text(
        json.dumps({"sd version": "SDXL", "negative text": "ugly", "notes": "old"}), encoding="utf-8"
    )
    sidecar, note = en.write_user_metadata(lora, {"notes": "new", "preferred weight": 0.5})
    assert sidecar == tmp_path / "style.json" and note == ""
    assert json.loads(sidecar.read_text(encoding="utf-8")) == {
        "sd version": "SDXL",
        "negative text": "ugly",
        "notes": "new",
        "preferred weight": 0.5,
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.json", "style.safetensors"]  # no temp left


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
def test_write_user_metadata_starts_over_on_bad_json(tmp_path: Path, bad: str):
    lora = tmp_path / "style.safetensors"
    (tmp_path / "style.json").write_text(bad, encoding="utf-8")
    sidecar, note = en.write_user_metadata(lora, {"description": "d"})
    assert "started over" in note
    assert json.loads(sidecar.read_text(encoding="utf-8")) == {"description": "d"}


def test_editor_load_and_save_round_trip(tmp_path: Path):
    app = _fake_app(tmp_path)
    assert en.load_edit_fields(app, "lora", "a_char") == ("A <char>", "charname", 0.8, "")
    assert en.load_edit_fields(app, "lora", None) == ("", "", 0.0, "")
    assert en.load_edit_fields(app, "lora", "b_style") == ("", "", 0.0, "")  # broken sidecar
    status, page = en.save_edit(app, "lora", "b_style", "Styled", "stylish", 0.6, "n")
    assert "Saved b_style.json" in status and "started over" in status
    assert 'data-prompt="&lt;lora:b_style:0.6&gt; stylish"' in page and "Styled" in page
    assert en.read_user_metadata(tmp_path / "Lora" / "b_style.safetensors") == {
        "description": "Styled",
        "activation text": "stylish",
        "preferred weight": 0.6,
        "notes": "n",
    }
    status, _ = en.save_edit(app, "lora", "a_char", "A", "", None, "")
    meta = en.read_user_metadata(tmp_path / "Lora" / "a_char.safetensors")
    assert meta["preferred weight"] == 0.0 and meta["activation text"] == ""
    status, _ = en.save_edit(app, "lora", None, "x", "", 1, "")
    assert "sumi-error" in status and "Choose a card" in status
    status, _ = en.save_edit(app, "lora", "gone", "x", "", 1, "")
    assert "sumi-error" in status
    assert en.card_names(app, "lora") == ["a_char", "b_style"]


# -- saving a preview ----------------------------------------------------------------------------------
def test_save_preview_writes_png_beside_the_file(tmp_path: Path):
    import numpy as np

    model = tmp_path / "net.v1.safetensors"
    model.write_bytes(b"")
    target = en.save_preview(model, Image.new("RGB", (8, 6), "blue"))
    assert target == tmp_path / "net.v1.preview.png"
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size == (8, 6)
    # gallery entries: (file path, caption) and numpy arrays
    src = tmp_path / "out.png"
    Image.new("RGB", (4, 4), "green").save(src)
    en.save_preview(model, (str(src), None))
    with Image.open(target) as image:
        assert image.size == (4, 4) and image.getpixel((0, 0)) == (0, 128, 0)
    en.save_preview(model, (np.zeros((3, 5, 3), dtype=np.uint8), "caption"))
    with Image.open(target) as image:
        assert image.size == (5, 3)
    assert en.find_preview(model) == target
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_save_preview_action_uses_selected_image_and_refreshes(tmp_path: Path):
    app = _fake_app(tmp_path)
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    Image.new("RGB", (4, 4), "red").save(red)
    Image.new("RGB", (4, 4), "blue").save(blue)
    gallery = [(str(red), None), (str(blue), None)]
    status, page = en.save_preview_action(app, "lora", "b_style", gallery, 1)
    target = tmp_path / "Lora" / "b_style.preview.png"
    assert "Saved b_style.preview.png" in status
    with Image.open(target) as image:
        assert image.getpixel((0, 0)) == (0, 0, 255)
    assert "no preview" not in page  # both cards have previews now
    en.save_preview_action(app, "lora", "b_style", gallery, 7)  # a stale index: the first image
    with Image.open(target) as image:
        assert image.getpixel((0, 0)) == (255, 0, 0)
    status, _ = en.save_preview_action(app, "lora", "b_style", [], 0)
    assert "sumi-error" in status and "empty" in status
    status, _ = en.save_preview_action(app, "lora", None, gallery, 0)
    assert "sumi-error" in status
    assert en.pick_gallery_image(None, 0) is None


# -- the Textual Inversion notice: unreadable and skipped embeddings ---------------------------------------
def _fake_embedding_app(tmp_path: Path, errors: dict[str, str], skipped: dict[str, str], loaded=True):
    folder = tmp_path / "embeddings"
    folder.mkdir(exist_ok=True)
    embeddings = {}
    for name in ("good", *skipped):
        (folder / f"{name}.safetensors").write_bytes(b"")
        embeddings[name] = SimpleNamespace(filename=str(folder / f"{name}.safetensors"))
    database = SimpleNamespace(
        embeddings=embeddings,
        errors=errors,
        folders=[folder],
        for_model=lambda sd: SimpleNamespace(skipped=skipped),
    )
    active = SimpleNamespace(sd=object()) if loaded else None
    return SimpleNamespace(
        embeddings=database, models=SimpleNamespace(active=active), options=SimpleNamespace()
    ), folder


def test_embedding_notice_lists_unreadable_files_escaped_and_relative(tmp_path: Path):
    folder = tmp_path / "embeddings"
    bad, odd = folder / "bad.pt", folder / "sub" / "<b>odd</b>.safetensors"
    errors = {
        str(bad): f"{bad}: not a readable PyTorch checkpoint (UnpicklingError: x)",
        str(odd): "not a valid .safetensors file (header too large) & more",
    }
    page = en.embedding_notice_html(errors, {}, [folder])
    assert "Could not load 2 embedding files:" in page and 'class="sumi-notice sumi-extra-notice"' in page
    assert "<li>bad.pt (not a readable PyTorch checkpoint (UnpicklingError: x))</li>" in page
    assert str(bad) not in page  # the path is shown once, relative to the folder
    assert "sub/&lt;b&gt;odd&lt;/b&gt;.safetensors (not a valid .safetensors file" in page
    assert "<b>odd" not in page and "&amp; more" in page
    assert "Skipped" not in page
    one = en.embedding_notice_html({str(bad): "broken"}, {})
    assert "Could not load 1 embedding file:" in one and f"{bad} (broken)" in one  # outside any folder
    assert en.embedding_notice_html({}, {}) == ""


def test_embedding_notice_lists_skipped_embeddings_with_reasons():
    page = en.embedding_notice_html({}, {"wide": "48 ≠ 64", "Alpha": "1024 ≠ 768"})
    assert "Skipped 2 embeddings whose vectors do not fit the loaded model:" in page
    assert page.index("Alpha (1024 ≠ 768)") < page.index("wide (48 ≠ 64)")
    assert "Could not load" not in page


def test_embedding_notice_shortens_long_lists():
    errors = {f"/e/f{i:02}.pt": "broken" for i in range(en.NOTICE_LIMIT + 5)}
    page = en.embedding_notice_html(errors, {}, [Path("/e")])
    assert page.count("<li>") == en.NOTICE_LIMIT + 1 and "… and 5 more" in page
    assert "f00.pt (broken)" in page and f"f{en.NOTICE_LIMIT:02}.pt" not in page


def test_textual_inversion_tab_shows_the_notice_above_the_cards(tmp_path: Path):
    folder = tmp_path / "embeddings"
    errors = {str(folder / "bad.pt"): f"{folder / 'bad.pt'}: broken"}
    app, _ = _fake_embedding_app(tmp_path, errors, {"wide": "48 ≠ 64"})
    page = en.render_tab(app, "textual_inversion")
    assert page.index("sumi-extra-notice") < page.index('class="sumi-cards extra-network-cards"')
    assert "bad.pt (broken)" in page and "wide (48 ≠ 64)" in page
    cards = {c.name: c for c in en.embedding_cards(app)}
    assert cards["wide"].skipped == "48 ≠ 64" and "(48 ≠ 64)" in cards["wide"].description
    assert cards["good"].skipped == ""
    assert 'class="card sumi-card sumi-card-skipped"' in en.card_html(cards["wide"])
    assert 'class="card sumi-card"' in en.card_html(cards["good"])
    # the notice stays when a search hides every card; other tabs have none
    assert "bad.pt" in en.render_tab(app, "textual_inversion", "zzz")
    assert en.tab_notice(app, "lora") == ""


def test_no_model_loaded_lists_only_unreadable_files(tmp_path: Path):
    app, _ = _fake_embedding_app(tmp_path, {}, {"wide": "48 ≠ 64"}, loaded=False)
    assert en.skipped_embeddings(app) == {}
    assert "sumi-extra-notice" not in en.render_tab(app, "textual_inversion")


def test_a_failing_notice_never_hides_the_cards(tmp_path: Path, caplog):
    app, _ = _fake_embedding_app(tmp_path, {}, {})

    def broken(sd):
        raise RuntimeError("model view failed")

    app.embeddings.for_model = broken
    app.embeddings.errors = None  # not a dict: the notice itself fails
    page = en.render_tab(app, "textual_inversion")
    assert 'data-name="good"' in page and "sumi-extra-notice" not in page
    assert "notice not shown" in caplog.text


def test_a_refresh_clicked_during_a_rescan_rescans_again_afterwards(tmp_path, make_app):
    """A user drops a file while a 🔄 is running and clicks again: the second click must not be
    dropped (Gradio's default trigger mode), or the page keeps the listing from before the file.
    The same holds for every refresh button on the page."""
    from modules.sumi.frontends.gradio import build_ui

    demo = build_ui(make_app(tmp_path, start=False))
    buttons = {
        block_id: block.elem_id
        for block_id, block in demo.blocks.items()
        if block.elem_id and "refresh" in block.elem_id and type(block).__name__ == "Button"
    }
    wired = {buttons[b]: fn.trigger_mode for fn in demo.fns.values() for b, _ in fn.targets if b in buttons}
    kinds = {"lora", "textual_inversion", "hypernetworks", "checkpoints"}
    assert {f"{tab}_{kind}_extra_refresh" for tab in ("txt2img", "img2img") for kind in kinds} <= set(wired)
    assert len(wired) > 10
    assert {name: mode for name, mode in wired.items() if mode != "always_last"} == {}


def test_typing_in_a_search_box_while_a_search_runs_searches_again_for_the_last_text(tmp_path, make_app):
    """Gradio's default for input events ("once") drops the keys typed while a search is running (a big
    library takes a moment), leaving the cards of the first letter under the whole word."""
    from modules.sumi.frontends.gradio import build_ui

    demo = build_ui(make_app(tmp_path, start=False))
    views = {
        block_id: block.elem_id
        for block_id, block in demo.blocks.items()
        if block.elem_id and block.elem_id.endswith(("_extra_search", "_extra_sort"))
    }
    wired = {views[b]: fn.trigger_mode for fn in demo.fns.values() for b, _ in fn.targets if b in views}
    assert len(wired) == 16  # search and sort of four tabs, on txt2img and img2img
    assert {name: mode for name, mode in wired.items() if mode != "always_last"} == {}


def test_a_tab_looks_up_previews_and_sidecars_in_one_listing_per_folder(tmp_path: Path, monkeypatch):
    """10,000 LoRAs were 130,000 stat calls per search; now one directory listing per folder."""
    app = _fake_app(tmp_path)
    sub = tmp_path / "Lora" / "more"
    sub.mkdir()
    for i in range(30):
        save_file({"w": torch.zeros(1)}, str(sub / f"extra_{i:02d}.safetensors"))
    (sub / "extra_07.txt").write_text("seven\n", encoding="utf-8")
    Image.new("RGB", (8, 8), "blue").save(sub / "extra_09.png")
    app.loras.refresh()
    listed: list[str] = []
    real_listdir = en.os.listdir
    monkeypatch.setattr(en.os, "listdir", lambda folder: listed.append(folder) or real_listdir(folder))

    def no_stat(*args, **kwargs):
        raise AssertionError("a file was looked up outside the folder's listing")

    monkeypatch.setattr(en.os.path, "isfile", no_stat)
    monkeypatch.setattr(Path, "is_file", no_stat)
    page = en.render_tab(app, "lora")
    assert sorted(listed) == sorted([str(tmp_path / "Lora"), str(sub)])
    monkeypatch.undo()
    cards = {c.name: c for c in en.lora_cards(app)}  # outside a render: looked up one by one
    assert len(cards) == 32 and cards["extra_07"].description == "seven"
    assert cards["extra_09"].preview.startswith("./sd_extra_networks/thumb") and cards["a_char"].preview
    assert page == en.render_tab(app, "lora")


def test_a_search_looks_up_previews_only_for_the_cards_it_shows(tmp_path: Path, monkeypatch):
    app = _fake_app(tmp_path)
    for i in range(6):
        save_file({"w": torch.zeros(1)}, str(tmp_path / "Lora" / f"pic_{i}.safetensors"))
        Image.new("RGB", (8, 8), "green").save(tmp_path / "Lora" / f"pic_{i}.png")
    app.loras.refresh()
    looked_up: list[str] = []
    real = en.find_preview
    monkeypatch.setattr(en, "find_preview", lambda path: looked_up.append(Path(path).name) or real(path))
    page = en.render_tab(app, "lora", "pic_3")
    assert looked_up == ["pic_3.safetensors"] and page.count("sd_extra_networks/thumb") == 1
    assert (
        en.render_tab(app, "lora").count("sd_extra_networks/thumb") == 7
    )  # every preview when all are shown


def test_the_lora_editor_shows_the_file_and_its_training_tags_escaped(tmp_path: Path):
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    tags = {"1_x": {"<b>zxc</b>": 9, "smiling": 4}}
    metadata = {"ss_sd_model_name": "base.ckpt", "ss_tag_frequency": json.dumps(tags)}
    save_file({"w": torch.zeros(1)}, str(lora_dir / "trained.safetensors"), metadata=metadata)
    save_file({"w": torch.zeros(1)}, str(lora_dir / "plain.safetensors"))
    app = SimpleNamespace(loras=NetworkFileRegistry([lora_dir], LORA_EXTENSIONS), options=SimpleNamespace())
    text = en.lora_file_info(app, "trained")
    assert "trained.safetensors" in text and "<td>base.ckpt</td>" in text
    assert "&lt;b&gt;zxc&lt;/b&gt; <small>(9)</small>" in text and "<b>zxc</b>" not in text
    assert text.index("zxc") < text.index("smiling")
    assert "records no training tags" in en.lora_file_info(app, "plain")
    assert en.lora_file_info(app, None) == "" and en.lora_file_info(app, "gone") == ""
