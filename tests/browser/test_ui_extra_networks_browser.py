"""The extra networks panel in Chromium against one real server (tiny demo model) for the module: the
cards' prompt toggle and sort, the card editor writing the sidecar, saving a generated image as a
card's preview, the token counter after a card click, the embedding problems notice, checkpoint cards.

Each test opens a fresh page; the files the server finds at start are written by the `server` fixture.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import pytest
import torch
from PIL import Image, ImageChops
from safetensors.torch import save_file

from tests.app_support import running_server
from tests.browser_support import NEGATIVE, PROMPT, open_page, set_number, small_job, wait_text, wait_value
from tests.fixtures import tiny_embeddings as te

DEMO_WIDTH = 64  # the demo model's text encoder width (engine/tiny_models.py, demo_sd1)
EMB_VECTORS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("sumi-extra-networks") / "data"
    lora_dir, emb_dir = data / "models" / "Lora", data / "embeddings"
    lora_dir.mkdir(parents=True)
    emb_dir.mkdir(parents=True)
    trained = {"ss_sd_model_name": "base-v1.safetensors", "ss_tag_frequency": json.dumps({"5_x": {"zxc": 7}})}
    save_file({"w": torch.zeros(1)}, str(lora_dir / "edlora.safetensors"), metadata=trained)
    save_file({"w": torch.zeros(1)}, str(lora_dir / "prevlora.safetensors"))
    cover = io.BytesIO()
    Image.new("RGB", (600, 400), "red").save(cover, format="PNG")
    covers = json.dumps([base64.b64encode(cover.getvalue()).decode()])  # a cover stored in the file
    save_file({"w": torch.zeros(1)}, str(lora_dir / "gcoverlora.safetensors"), {"ssmd_cover_images": covers})
    for folder, name in (("chars/anime", "foldlora"), (".old", "hidlora")):  # a sub-folder, a hidden one
        (lora_dir / folder).mkdir(parents=True)
        save_file({"w": torch.zeros(1)}, str(lora_dir / folder / f"{name}.safetensors"))
    (lora_dir / "edlora.json").write_text(
        json.dumps({"sd version": "SD1", "description": "old words"}), encoding="utf-8"
    )
    te.write_safetensors(emb_dir / "tinyemb.safetensors", te.random_vectors(EMB_VECTORS, DEMO_WIDTH))
    te.write_safetensors(emb_dir / "wide.safetensors", te.random_vectors(2, 48))  # skipped: 48 ≠ 64
    (emb_dir / "bad.pt").write_bytes(torch.randint(0, 256, (512,), dtype=torch.uint8).numpy().tobytes())
    with running_server(data) as srv:
        srv.app.queue.run("wait for the model", lambda: None)  # the start-up load is queued first
        yield srv


@pytest.fixture
def page(chromium, server):
    errors: list[str] = []
    with open_page(chromium, server.url, height=1100, errors=errors) as page:
        yield page
    assert not errors, f"errors in the page: {errors}"


# -- helpers -----------------------------------------------------------------------------------------
def open_tab(page, label: str) -> None:
    """Open one of the card tabs beside txt2img's "Generation" tab."""
    page.locator("#txt2img_extra_tabs").get_by_role("tab", name=label, exact=True).click()


def open_editor(page, kind: str, card: str) -> str:
    """Open the tab's "Edit card" accordion and choose `card`; returns the editor's id prefix."""
    prefix = f"#txt2img_{kind}_extra_edit"
    page.click(f"{prefix} > .label-wrap")
    page.click(f"{prefix}_card input")
    page.get_by_role("option", name=card, exact=True).click()
    return prefix


def field(page, selector: str):
    return page.locator(f"{selector} textarea, {selector} input").first


def card(page, kind: str, name: str):
    return page.locator(f"#txt2img_{kind}_cards .sumi-card[data-name='{name}']")


# -- A1111's tree view ----------------------------------------------------------------------------------
def test_the_tree_view_chooses_folders_inserts_files_and_keeps_what_the_user_opened_or_hid(page, server):
    """Settings > Extra Networks > "Tree": the folders and files beside the cards. A folder's row shows its
    cards (the row of the chosen, open folder all again), its chevron only closes or opens it, a file's
    row toggles its tag in the prompt, and what the user closed or hid stays so when the cards are drawn
    again (a search)."""
    server.app.settings.set({"extra_networks_tree_view_style": "Tree"})
    try:
        page.fill(PROMPT, "a cat")
        open_tab(page, "Lora")
        page.click("#txt2img_lora_extra_refresh")
        tree = "#txt2img_lora_tree"
        page.wait_for_selector(tree)
        cards = "#txt2img_lora_cards .sumi-card"
        shown = f"() => [...document.querySelectorAll('{cards}')].map(c => c.dataset.name).join(',')"
        everything = "edlora,foldlora,gcoverlora,prevlora"
        assert page.evaluate(shown) == everything
        labels = page.locator(f"{tree} .tree-list-item-label")
        assert labels.all_inner_texts()[:2] == ["Lora", "chars"]  # .old: its file waits for a search
        row = page.locator(f"{tree} .sumi-tree-dir[data-folder='chars']")
        anime = page.locator(f"{tree} .sumi-tree-dir[data-folder='chars/anime']")
        assert not anime.is_visible()
        row.locator(".tree-list-item-label").click()
        page.wait_for_function(f"() => ({shown})() === 'foldlora'")
        assert field(page, "#txt2img_lora_extra_search").input_value() == "chars"
        assert anime.is_visible() and row.get_attribute("data-selected") == ""
        row.locator(".tree-list-item-label").click()  # the chosen, open folder: all the cards again
        page.wait_for_function(f"() => ({shown})() === '{everything}'")
        anime.locator(".tree-list-item-label").click()  # drawn again open down to the chosen folder
        page.wait_for_function(f"() => ({shown})() === 'foldlora'")
        file = page.locator(f"{tree} .sumi-tree-file[data-name='foldlora']")
        file.click()
        wait_value(page, PROMPT, "a cat <lora:foldlora:1>")
        file.click()
        wait_value(page, PROMPT, "a cat")
        row.locator(".tree-list-item-action-chevron").click()  # closed by the user: its search stays
        assert not anime.is_visible()
        assert field(page, "#txt2img_lora_extra_search").input_value() == "chars/anime"
        page.locator(f"{tree} .sumi-tree-dir[data-folder='']").click()  # the model folder: every card
        page.wait_for_function(f"() => ({shown})() === '{everything}'")
        assert not anime.is_visible()  # drawn again, still closed as the user left it
        field(page, "#txt2img_lora_extra_search").fill("chars/anime")
        page.wait_for_function(f"() => ({shown})() === 'foldlora'")
        assert anime.is_visible()  # a chosen folder stays in view, though the user closed the one above
        page.click("#txt2img_lora .sumi-folders-toggle")
        assert not page.locator(tree).is_visible()
        field(page, "#txt2img_lora_extra_search").fill("edl")
        page.wait_for_function(f"() => ({shown})() === 'edlora'")
        assert page.locator(tree).count() == 1 and not page.locator(tree).is_visible()
        page.click("#txt2img_lora .sumi-folders-toggle")
        assert page.locator(tree).is_visible()
    finally:
        server.app.settings.set({"extra_networks_tree_view_style": "Dirs"})


# -- the card editor ---------------------------------------------------------------------------------
def test_card_editor_writes_the_sidecar_and_the_card_uses_it(page, server):
    from playwright.sync_api import expect

    lora_dir = server.app.paths.lora_dir
    page.fill(PROMPT, "a cat")
    open_tab(page, "Lora")
    late = lora_dir / "latelora.safetensors"  # found after this page was loaded (🔄 in another page)
    save_file({"w": torch.zeros(1)}, str(late))
    server.app.loras.refresh()
    try:
        open_editor(page, "lora", "latelora")  # the editor's list is renewed when it opens
    finally:
        late.unlink()
        server.app.loras.refresh()
    edit = "#txt2img_lora_extra_edit"
    # the card's own buttons (A1111 1.6+), shown on hover; none of them toggles the card's text
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    card(page, "lora", "edlora").hover()
    card(page, "lora", "edlora").locator(".copy-path-button").click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == str(lora_dir / "edlora.safetensors")
    card(page, "lora", "edlora").locator(".metadata-button").click()  # the file's metadata in a popup
    expect(page.locator(".global-popup")).to_contain_text("base-v1.safetensors")
    expect(page.locator(".global-popup")).to_contain_text("ss_sd_model_name")
    page.keyboard.press("Escape")
    expect(page.locator(".global-popup")).to_be_hidden()
    card(page, "lora", "edlora").hover()
    card(page, "lora", "edlora").locator(".edit-button").click()  # the editor opens on this card
    assert page.locator(PROMPT).input_value() == "a cat"
    description = field(page, f"{edit}_description")
    page.wait_for_function(  # choosing the card loads its sidecar into the fields
        "el => el.value === 'old words'", arg=description.element_handle()
    )
    info = page.locator(f"{edit}_file_info")  # and what the file says about its training
    expect(info).to_contain_text("edlora.safetensors")
    expect(info).to_contain_text("base-v1.safetensors")
    expect(info).to_contain_text("Training tags: zxc (7)")
    description.fill("A <b>bold</b> style")
    field(page, f"{edit}_activation_text").fill("red hat")
    set_number(page, f"{edit.lstrip('#')}_preferred_weight", 0.7)
    field(page, f"{edit}_notes").fill("from civitai")
    page.click(f"{edit}_save")
    wait_text(page, f"{edit}_status", "Saved edlora.json.")
    assert json.loads((lora_dir / "edlora.json").read_text(encoding="utf-8")) == {
        "sd version": "SD1",  # keys the editor does not know are kept
        "description": "A <b>bold</b> style",
        "activation text": "red hat",
        "preferred weight": 0.7,
        "notes": "from civitai",
    }
    lora = card(page, "lora", "edlora")
    wait_text(page, "#txt2img_lora_cards .sumi-card[data-name='edlora'] .sumi-card-description", "A <b>bold")
    assert lora.locator(".sumi-card-description b").count() == 0  # shown as text, not markup
    lora.click()
    wait_value(page, PROMPT, "a cat <lora:edlora:0.7> red hat")
    lora.click()
    wait_value(page, PROMPT, "a cat")


# -- a generated image as a card's preview -----------------------------------------------------------
def test_save_preview_writes_the_selected_image_and_the_card_shows_it(page, server):
    lora_dir = server.app.paths.lora_dir
    small_job(page, batch_size=2)
    page.fill(PROMPT, "a preview")
    page.click("#txt2img_generate")
    # the grid and two images; the gallery shows them as a grid or as a preview with a strip
    third = page.locator(
        "#txt2img_gallery button.thumbnail-item[aria-label='Thumbnail 3 of 3'] >> visible=true"
    )
    wait_text(page, "#html_info_txt2img", "a preview")
    seed = int(re.findall(r"Seed: (\d+)", page.inner_text("#html_info_txt2img"))[0]) + 1
    third.first.click()
    wait_text(page, "#html_info_txt2img", f"Seed: {seed},")  # the infotext follows: the second image
    open_tab(page, "Lora")
    assert card(page, "lora", "prevlora").locator("img").count() == 0
    embedded = card(page, "lora", "gcoverlora").locator("img.sumi-card-preview")
    assert (embedded.get_attribute("src") or "").startswith("./sd_extra_networks/cover-images?page=lora")
    page.wait_for_function("img => img.complete && img.naturalWidth === 256", arg=embedded.element_handle())
    open_editor(page, "lora", "prevlora")
    page.click("#txt2img_lora_extra_save_preview")
    wait_text(page, "#txt2img_lora_extra_edit_status", "Saved prevlora.preview.png.")
    preview = lora_dir / "prevlora.preview.png"
    [sample] = (server.data_dir / "outputs" / "txt2img-images").rglob(f"*-{seed}-*.png")
    with Image.open(preview) as saved, Image.open(sample) as generated:
        assert saved.size == (64, 64)
        assert ImageChops.difference(saved.convert("RGB"), generated.convert("RGB")).getbbox() is None
    card(page, "lora", "prevlora").locator("img.sumi-card-preview").wait_for()
    page.reload()  # a new page draws the cards from the folder
    page.wait_for_selector(PROMPT)
    open_tab(page, "Lora")
    page.click("#txt2img_lora_extra_refresh")
    image = card(page, "lora", "prevlora").locator("img.sumi-card-preview")
    assert (image.get_attribute("src") or "").startswith("./sd_extra_networks/thumb?filename=")
    page.wait_for_function("img => img.complete && img.naturalWidth === 64", arg=image.element_handle())


# -- the token counter after a card click ------------------------------------------------------------
def test_embedding_card_recounts_tokens_and_generate_sends_the_new_prompt(page, server, seen):
    small_job(page, batch_size=1)
    page.fill(PROMPT, "a cat")
    wait_text(page, "#txt2img_token_counter", "2/75")
    open_tab(page, "Textual Inversion")
    emb = card(page, "textual_inversion", "tinyemb")
    emb.click()
    page.click("#txt2img_generate")  # at once: Gradio must already hold the new prompt
    wait_value(page, PROMPT, "a cat tinyemb")
    wait_text(page, "#txt2img_token_counter", f"{2 + EMB_VECTORS}/75")  # an embedding counts its vectors
    assert "a cat tinyemb" in seen
    open_tab(page, "Generation")  # the results are in the Generation tab
    wait_text(page, "#html_info_txt2img", "TI hashes")
    assert page.inner_text("#html_info_txt2img").startswith("a cat tinyemb\n")
    open_tab(page, "Textual Inversion")
    emb.focus()  # Enter on a focused card clicks it: the embedding goes again
    page.keyboard.press("Enter")
    wait_value(page, PROMPT, "a cat")
    wait_text(page, "#txt2img_token_counter", "2/75")
    # the negative prompt when it had focus last, with its own counter
    page.click(NEGATIVE)
    emb.click()
    wait_value(page, NEGATIVE, "tinyemb")
    wait_text(page, "#txt2img_negative_token_counter", f"{EMB_VECTORS}/75")
    assert page.input_value(PROMPT) == "a cat"


# -- problems with embedding files -------------------------------------------------------------------
def test_unreadable_and_skipped_embeddings_are_listed_above_the_cards(page, server):
    emb_dir = server.app.paths.embeddings_dir
    notice = "#txt2img_textual_inversion_cards_html .sumi-extra-notice"
    open_tab(page, "Textual Inversion")
    page.click("#txt2img_textual_inversion_extra_refresh")
    wait_text(page, notice, "Could not load 1 embedding file:")
    text = page.inner_text(notice)
    assert "bad.pt (" in text and "not a readable PyTorch checkpoint" in text
    assert "Skipped 1 embedding" in text and "wide (48 ≠ 64)" in text
    assert "sumi-card-skipped" in (card(page, "textual_inversion", "wide").get_attribute("class") or "")
    odd = emb_dir / "<i>odd.safetensors"
    odd.write_bytes(b"not safetensors")
    try:
        page.click("#txt2img_textual_inversion_extra_refresh")
        wait_text(page, notice, "Could not load 2 embedding files:")
        assert "<i>odd.safetensors (not a valid .safetensors file" in page.inner_text(notice)
        assert page.locator(f"{notice} i").count() == 0  # escaped
    finally:
        odd.unlink()
    page.click("#txt2img_textual_inversion_extra_refresh")
    wait_text(page, notice, "Could not load 1 embedding file:")
    # the page keeps working: the good embedding's card still toggles
    page.fill(PROMPT, "a dog")
    card(page, "textual_inversion", "tinyemb").click()
    wait_value(page, PROMPT, "a dog tinyemb")


# -- Lora cards: toggle, sort; checkpoint cards switch the model (last: it changes the model) -------
def test_lora_card_toggles_tag_in_prompt_and_checkpoint_cards_switch(page, server):
    paths = server.app.paths
    page.fill(PROMPT, "a cat")
    open_tab(page, "Lora")
    # the folder buttons: a click shows that folder's cards, a second click all again; a hidden folder's
    # cards show only while searched for (A1111's "When searched")
    cards = "#txt2img_lora_cards .sumi-card"
    shown = f"() => [...document.querySelectorAll('{cards}')].map(c => c.dataset.name).join(',')"
    everything = "edlora,foldlora,gcoverlora,prevlora"
    assert page.evaluate(shown) == everything
    dirs = page.locator("#txt2img_lora_dirs button.sumi-dir")
    assert dirs.all_inner_texts() == ["all", ".old", "chars", "chars/anime"]
    dirs.filter(has_text="chars/anime").click()
    page.wait_for_function(f"() => ({shown})() === 'foldlora'")
    assert field(page, "#txt2img_lora_extra_search").input_value() == "chars/anime"
    page.locator("#txt2img_lora_dirs button.sumi-dir.selected").click()
    page.wait_for_function(f"() => ({shown})() === '{everything}'")
    page.locator("#txt2img_lora_dirs button.sumi-dir", has_text=".old").click()
    page.wait_for_function(f"() => ({shown})() === 'hidlora'")
    page.locator("#txt2img_lora_dirs button.search-all").click()
    page.wait_for_function(f"() => ({shown})() === '{everything}'")
    save_file({"w": torch.zeros(1)}, str(paths.lora_dir / "zzlora.safetensors"))
    try:
        page.click("#txt2img_lora_extra_refresh")
        page.wait_for_selector(f"{cards}[data-name=zzlora]")
        assert page.locator(cards).first.get_attribute("data-name") == "edlora"
        page.locator("#txt2img_lora_extra_sort input").click()
        page.get_by_role("option", name="Name (desc)").click()
        page.wait_for_function(f"() => document.querySelector('{cards}').dataset.name === 'zzlora'")
        lora = card(page, "lora", "zzlora")
        lora.click()
        wait_value(page, PROMPT, "a cat <lora:zzlora:1>")
        lora.click()
        wait_value(page, PROMPT, "a cat")
        # Settings > Extra Networks > "Extra networks separator" (A1111's opt, read by the page's `opts`)
        page.evaluate("() => { opts.extra_networks_add_text_separator = ', '; }")
        lora.click()
        wait_value(page, PROMPT, "a cat, <lora:zzlora:1>")
        lora.click()
        wait_value(page, PROMPT, "a cat")
    finally:
        (paths.lora_dir / "zzlora.safetensors").unlink()
        server.app.loras.refresh()
    # a checkpoint card switches the model; a vanished file is reported
    models = paths.ckpt_dirs[0]
    demo = next(models.glob("sumi-demo*.safetensors"))
    shutil.copy(demo, models / "other.safetensors")
    shutil.copy(demo, models / "gone.safetensors")
    open_tab(page, "Checkpoints")
    page.click("#txt2img_checkpoints_extra_refresh")
    card(page, "checkpoints", "other.safetensors").click()
    page.wait_for_selector("#txt2img_extra_networks_status .sumi-note")
    assert "other.safetensors" in str(server.app.options.sd_model_checkpoint)
    (models / "gone.safetensors").unlink()
    card(page, "checkpoints", "gone.safetensors").click()
    page.wait_for_selector("#txt2img_extra_networks_status .sumi-error")
    assert "other.safetensors" in str(server.app.options.sd_model_checkpoint)
