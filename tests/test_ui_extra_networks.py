"""The extra networks panel: card data (names, sidecar metadata, previews), the prompt toggle, and
the Lora card in Chromium against a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from modules.network_files import LORA_EXTENSIONS, NetworkFileRegistry
from modules.ui import extra_networks as en
from tests.browser_support import browser_skip_reason, launch_chromium, running_server


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
    return SimpleNamespace(loras=loras)


def test_lora_cards_and_html(tmp_path: Path):
    app = _fake_app(tmp_path)
    cards = {c.name: c for c in en.lora_cards(app)}
    assert set(cards) == {"a_char", "b_style"}
    assert cards["a_char"].prompt == "<lora:a_char:0.8> charname"
    assert cards["a_char"].description == "A <char>"
    assert cards["a_char"].preview.startswith("data:image/jpeg;base64,")
    assert cards["b_style"].prompt == "<lora:b_style:1>" and cards["b_style"].preview == ""
    page = en.cards_html(list(cards.values()))
    assert page.index("a_char") < page.index("b_style")  # sorted by name
    assert "A &lt;char&gt;" in page and 'data-prompt="&lt;lora:a_char:0.8&gt; charname"' in page
    assert "no preview" in page
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

    app = SimpleNamespace(set_options=fail)
    assert "sumi-error" in en.switch_checkpoint(app, "nope")
    assert en.switch_checkpoint(app, "") == ""
    chosen = {}
    ok = SimpleNamespace(set_options=chosen.update, options=SimpleNamespace(sd_model_checkpoint="m [abc]"))
    assert "m [abc]" in en.switch_checkpoint(ok, "m")
    assert chosen == {"sd_model_checkpoint": "m"}


# -- in the browser ------------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")
def test_lora_card_toggles_tag_in_prompt(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    from tests.fixtures import tiny_embeddings as te

    with running_server(tmp_path / "data") as server, sync_playwright() as pw:
        paths = server.app.paths
        paths.lora_dir.mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.zeros(1)}, str(paths.lora_dir / "tinylora.safetensors"))
        paths.embeddings_dir.mkdir(parents=True, exist_ok=True)
        te.write_safetensors(paths.embeddings_dir / "tinyemb.safetensors", te.random_vectors(1, 32))
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(server.url)
            page.wait_for_selector("#txt2img_prompt textarea")
            page.fill("#txt2img_prompt textarea", "a cat")
            page.click("#txt2img_extra_networks button, #txt2img_extra_networks .label-wrap >> nth=0")
            page.get_by_role("tab", name="Lora").click()
            page.click("#txt2img_lora_extra_refresh")
            card = page.locator("#txt2img_lora_cards .sumi-card[data-name=tinylora]")
            card.click()
            prompt = page.locator("#txt2img_prompt textarea")
            page.wait_for_function(
                "() => document.querySelector('#txt2img_prompt textarea').value === 'a cat <lora:tinylora:1>'"
            )
            card.click()
            page.wait_for_function(
                "() => document.querySelector('#txt2img_prompt textarea').value === 'a cat'"
            )
            assert prompt.input_value() == "a cat"
            page.get_by_role("tab", name="Textual Inversion").click()
            page.click("#txt2img_textual_inversion_extra_refresh")
            page.locator("#txt2img_textual_inversion_cards .sumi-card[data-name=tinyemb]").click()
            page.wait_for_function(
                "() => document.querySelector('#txt2img_prompt textarea').value === 'a cat tinyemb'"
            )
            # an embedding goes to the negative prompt when that box had focus last
            page.click("#txt2img_neg_prompt textarea")
            page.locator("#txt2img_textual_inversion_cards .sumi-card[data-name=tinyemb]").click()
            page.wait_for_function(
                "() => document.querySelector('#txt2img_neg_prompt textarea').value === 'tinyemb'"
            )
            assert prompt.input_value() == "a cat tinyemb"
            # a checkpoint card switches the model; a vanished file is reported
            models = paths.ckpt_dirs[0]
            demo = next(models.glob("sumi-demo*.safetensors"))
            shutil.copy(demo, models / "other.safetensors")
            shutil.copy(demo, models / "gone.safetensors")
            page.get_by_role("tab", name="Checkpoints").click()
            page.click("#txt2img_checkpoints_extra_refresh")
            page.locator("#txt2img_checkpoints_cards .sumi-card[data-name='other.safetensors']").click()
            page.wait_for_selector("#txt2img_extra_networks_status .sumi-note")
            assert "other.safetensors" in str(server.app.options.sd_model_checkpoint)
            (models / "gone.safetensors").unlink()
            page.locator("#txt2img_checkpoints_cards .sumi-card[data-name='gone.safetensors']").click()
            page.wait_for_selector("#txt2img_extra_networks_status .sumi-error")
            assert "other.safetensors" in str(server.app.options.sd_model_checkpoint)
        finally:
            browser.close()
