"""A1111's page contract in Chromium: an A1111-style extension whose script waits for DOMContentLoaded
starts (its script runs while the page is still loading, with A1111's globals defined), its title and
localization apply, A1111's element ids are on both tabs, and the generation-info pair and the
clear-prompt button work as in A1111. The served HTML itself: tests/frontends/gradio/test_page_head.py.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.app_support import serve
from tests.browser_support import PAGE_LOAD_TIMEOUT_MS, generate, open_page, small_job

EXT_JS = """
window.pageExt = {
    readyState: document.readyState,
    globals: Object.fromEntries(%s.map((name) => [name, typeof window[name]])),
    opts: typeof opts === "object" ? opts.page_ext_flag : undefined,
};
// aspect-ratio-helper's start: once the size sliders and its option are there, it moves the swap button
const sizeObserver = new MutationObserver(() => {
    if (gradioApp().querySelector("#txt2img_width") && window.opts && window.opts.page_ext_flag !== undefined) {
        sizeObserver.disconnect();
        const button = gradioApp().getElementById("txt2img_res_switch_btn");
        window.pageExt.swapButtonParent = button && button.parentNode ? button.parentNode.id : null;
    }
});
sizeObserver.observe(gradioApp(), {childList: true, subtree: true});
titles["Page ext box"] = "Tooltip from the extension";
document.addEventListener("DOMContentLoaded", () => {
    window.pageExt.domContentLoaded = true;
    onUiLoaded(() => {
        window.pageExt.uiLoaded = !!gradioApp().querySelector("#txt2img_prompt");
        window.pageExt.missingAtUiLoaded = %s.filter((id) => !gradioApp().querySelector("#" + id));
        window.pageExt.optsOnUiLoaded = opts.page_ext_flag;
        // sd-webui-oldsix-prompt's way of following the tab in use: a panel whose display became "block"
        window.pageExt.shownTabs = [];
        for (const id of ["tab_txt2img", "tab_img2img"]) {
            const panel = gradioApp().querySelector("#" + id);
            new MutationObserver(() => {
                if (getComputedStyle(panel).display === "block") window.pageExt.shownTabs.push(id);
            }).observe(panel, {attributes: true, attributeFilter: ["style"]});
        }
    });
    onAfterUiUpdate(() => { window.pageExt.afterUpdate = true; });
});
"""
A1111_GLOBALS = [
    "gradioApp", "onUiLoaded", "onUiUpdate", "onAfterUiUpdate", "onUiTabChange", "onOptionsChanged",
    "onOptionsAvailable", "executeCallbacks", "get_uiCurrentTab", "get_uiCurrentTabContent",
    "uiElementIsVisible", "uiElementInSight", "switch_to_txt2img", "switch_to_img2img", "switch_to_sketch",
    "switch_to_inpaint", "switch_to_inpaint_sketch", "switch_to_extras", "switch_to_img2img_tab",
    "get_tab_index", "create_tab_index_args", "create_submit_args", "submit", "submit_img2img",
    "restart_reload", "selected_gallery_index", "extract_image_from_gallery", "updateInput",
    "confirm_clear_prompt", "ask_for_style_name", "args_to_array", "dimensionChange", "titles", "opts",
    "localization", "localSet", "localGet", "onEdit", "setRandomSeed", "switchWidthHeight",
    "getTranslation", "localizeWholePage", "dumpTranslations", "request", "requestProgress", "formatTime",
    "randomId", "rememberGallerySelection", "getGallerySelectedIndex", "showSubmitButtons",
    "setSubmitButtonsVisibility", "showSubmitInterruptingPlaceholder", "showRestoreProgressButton",
]  # fmt: skip
# What extensions look up in onUiLoaded (canvas-zoom: the quicksettings button, the send-to buttons). Gradio 6
# draws the page one component type at a time, buttons and galleries well after the prompt.
AT_UI_LOADED = [
    "txt2img_prompt", "txt2img_generate", "txt2img_gallery", "refresh_sd_model_checkpoint",
    "txt2img_send_to_inpaint", "img2img_send_to_inpaint", "img2img_generate", "img2img_image",
]  # fmt: skip
SCRIPT = """
import gradio as gr
import modules.scripts as scripts
from modules import script_callbacks, shared


class PageExt(scripts.Script):
    def title(self):
        return "Page ext"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Textbox("", label="Page ext box", elem_id="page_ext_box")]


def on_ui_settings():
    shared.opts.add_option("page_ext_flag", shared.OptionInfo("flag-value", "Page ext flag"))


script_callbacks.on_ui_settings(on_ui_settings)
"""
TXT2IMG_IDS = [
    "tabs", "tab_txt2img", "quicksettings", "setting_sd_model_checkpoint", "txt2img_toprow",
    "txt2img_prompt_container", "txt2img_prompt", "txt2img_neg_prompt", "txt2img_actions_column",
    "txt2img_generate_box", "txt2img_generate", "txt2img_interrupt", "txt2img_skip", "txt2img_tools",
    "paste", "txt2img_clear_prompt", "txt2img_styles_row", "txt2img_styles", "txt2img_style_apply",
    "txt2img_token_counter", "txt2img_negative_token_counter", "txt2img_extra_tabs", "txt2img_settings",
    "txt2img_sampling", "txt2img_scheduler", "txt2img_steps", "txt2img_hr", "txt2img_dimensions_row",
    "txt2img_width", "txt2img_height", "txt2img_res_switch_btn", "txt2img_column_batch",
    "txt2img_batch_count", "txt2img_batch_size", "txt2img_cfg_scale", "txt2img_seed_row", "txt2img_seed",
    "txt2img_random_seed", "txt2img_reuse_seed", "txt2img_subseed_show", "txt2img_script_container",
    "txt2img_results", "txt2img_gallery", "image_buttons_txt2img", "txt2img_open_folder", "save_txt2img",
    "save_zip_txt2img", "txt2img_send_to_img2img", "txt2img_send_to_inpaint", "txt2img_send_to_extras",
    "txt2img_upscale", "html_info_txt2img", "html_log_txt2img", "generation_info_txt2img",
    "txt2img_generation_info_button", "txt2img_textual_inversion", "txt2img_hypernetworks",
    "txt2img_checkpoints", "txt2img_lora", "txt2img_lora_cards",
]  # fmt: skip
IMG2IMG_IDS = [
    "tab_img2img", "img2img_prompt", "img2img_neg_prompt", "img2img_generate_box", "img2img_generate",
    "img2img_interrupt", "img2img_skip", "img2img_clear_prompt", "interrogate", "deepbooru", "img2img_styles",
    "mode_img2img",
    "img2img_img2img_tab", "img2img_image", "img2img_settings", "resize_mode", "img2img_tabs_resize",
    "img2img_tab_resize_to", "img2img_width", "img2img_height", "img2img_res_switch_btn",
    "img2img_batch_count", "img2img_batch_size", "img2img_cfg_scale", "img2img_denoising_strength",
    "img2img_sampling", "img2img_steps", "img2img_seed", "img2img_script_container", "img2img_gallery",
    "html_info_img2img", "generation_info_img2img", "img2img_generation_info_button", "img2img_extra_tabs",
    "img2img_lora", "img2img_checkpoints",
]  # fmt: skip
# img2img's sub-tabs (button text) and the ids each shows
IMG2IMG_MODES = {
    "Sketch": ["img2img_sketch"],
    "Inpaint": ["img2maskimg", "img2img_mask_blur", "img2img_mask_mode", "img2img_inpainting_fill",
                "img2img_inpaint_full_res", "img2img_inpaint_full_res_padding"],
    "Inpaint sketch": ["inpaint_sketch"],
    "Inpaint upload": ["img_inpaint_base", "img_inpaint_mask"],
}  # fmt: skip


@pytest.fixture(scope="module")
def page(tmp_path_factory, make_module_app, chromium):
    data = tmp_path_factory.mktemp("page-contract") / "data"
    ext = data / "extensions" / "page-ext"
    (ext / "javascript").mkdir(parents=True)
    (ext / "scripts").mkdir()
    (ext / "localizations").mkdir()
    (ext / "javascript" / "page_ext.js").write_text(
        EXT_JS % (json.dumps(A1111_GLOBALS), json.dumps(AT_UI_LOADED))
    )
    (ext / "scripts" / "page_ext.py").write_text(SCRIPT)
    (ext / "javascript" / "mod.mjs").write_text(
        "import { part } from './part.mjs';\nwindow.pageExtModule = part;"
    )
    (ext / "javascript" / "part.mjs").write_text("export const part = 'imported';")
    # a minified bundle's globals (lobe-theme's main.js has a global `ce`)
    (ext / "javascript" / "zz_bundle.js").write_text("var ce = 'the bundle\\'s', ae = 1; function de() {}")
    (ext / "localizations" / "xx.json").write_text(json.dumps({"Sampling steps": "XX steps"}))
    (data / "config.json").write_text(json.dumps({"localization": "xx"}))
    app = make_module_app(data)
    errors: list[str] = []
    with serve(app) as url, open_page(chromium, url, errors=errors) as page:
        page.wait_for_function(
            "() => window.pageExt && window.pageExt.uiLoaded === true", timeout=PAGE_LOAD_TIMEOUT_MS
        )
        page.script_errors = errors  # what the page's scripts threw, from the start
        yield page
        assert errors == []


def test_extension_script_runs_before_domcontentloaded_with_a1111_globals(page):
    ext = page.evaluate("() => window.pageExt")
    assert ext["readyState"] == "loading"  # in the page head, as in A1111
    assert ext["domContentLoaded"] is True and ext["uiLoaded"] is True
    assert ext["missingAtUiLoaded"] == []  # the whole UI was drawn when onUiLoaded ran, as in A1111
    assert {name: kind for name, kind in ext["globals"].items() if kind == "undefined"} == {}
    assert ext["opts"] is None  # as A1111: `opts` is filled once the page is drawn
    assert ext["optsOnUiLoaded"] == "flag-value"
    page.wait_for_function("() => window.pageExt.swapButtonParent !== undefined")
    page.wait_for_function("() => window.pageExt.afterUpdate === true")


def test_an_extension_s_global_names_do_not_clash_with_the_page_s_own_scripts(page):
    """Gradio 6's page ends with a script declaring `const ce`; an extension's global `ce` made it throw."""
    assert page.evaluate("() => window.ce") == "the bundle's"
    assert [e for e in page.script_errors if "already been declared" in e] == []


def test_an_extensions_module_script_runs_with_its_relative_import(page):
    page.wait_for_function("() => window.pageExtModule === 'imported'")


def test_an_option_set_means_the_page_is_drawn_so_the_size_row_is_whole(page):
    # aspect-ratio-helper waits for #txt2img_width and its option, then moves the swap button beside it
    assert page.evaluate("() => window.pageExt.swapButtonParent") == "txt2img_dimensions_row"


def test_titles_and_localization_apply_to_the_page(page):
    page.wait_for_function(
        "() => document.querySelector('#page_ext_box label span, #page_ext_box span')?.title"
        " === 'Tooltip from the extension'"
    )
    page.locator("#txt2img_steps").get_by_text("XX steps").wait_for()  # the extension's localizations/xx.json
    assert page.evaluate("() => localization['Sampling steps']") == "XX steps"


def _missing(page, ids) -> list[str]:
    """The ids not on the page once Gradio has drawn what it draws lazily (waits up to 15 s for them)."""
    script = "(ids) => ids.every((id) => document.getElementById(id))"
    with contextlib.suppress(PlaywrightTimeoutError):  # the caller's assertion names what is missing
        page.wait_for_function(script, arg=ids, timeout=15_000)
    return page.evaluate("(ids) => ids.filter((id) => !document.getElementById(id))", ids)


def test_a1111_element_ids_on_both_tabs(page):
    assert _missing(page, TXT2IMG_IDS) == []
    page.evaluate("() => switch_to_img2img()")
    try:
        page.locator("#img2img_prompt").wait_for()
        assert page.evaluate("() => get_uiCurrentTabContent().id") == "tab_img2img"
        assert _missing(page, IMG2IMG_IDS) == []
        for index, (mode, ids) in enumerate(IMG2IMG_MODES.items(), start=1):
            page.locator("#mode_img2img").get_by_role("tab", name=mode, exact=True).click()
            page.locator(f"#{ids[0]}").wait_for()
            assert page.evaluate("() => get_tab_index('mode_img2img')") == index
            assert _missing(page, ids) == []
    finally:  # the module's other tests start on txt2img
        page.evaluate("() => switch_to_txt2img()")
        page.locator("#txt2img_prompt").wait_for()


def test_extra_networks_are_tabs_beside_generation_with_a1111_s_names(page):
    """A1111 1.6+'s layout, as themes and extensions find it: the tab names in `.tab-nav` (img2img's has
    its mode tabs' own `.tab-nav` inside, as in A1111), the pages as
    `.tabitem.gradio-tabitem` children, the settings in a `.resize-handle-row`, A1111's class names."""
    names = "(id) => [...document.querySelectorAll(`#${id} > * > .tab-nav > button`)].map((b) => b.textContent.trim())"
    for tabname in ("txt2img", "img2img"):
        tabs = f"{tabname}_extra_tabs"
        assert page.evaluate(names, tabs) == [
            "Generation",
            "Textual Inversion",
            "Hypernetworks",
            "Checkpoints",
            "Lora",
        ]
        assert page.locator(f"#{tabs} > .tabitem.gradio-tabitem").count() == 5
        assert page.locator(f"#{tabs} .resize-handle-row > #{tabname}_settings").count() == 1
    assert page.evaluate("() => document.querySelector('#tabs').classList.contains('gradio-tabs')")
    for selector in ("#txt2img_generate.gradio-button", "#txt2img_prompt.gradio-textbox",
                     "#txt2img_sampling.gradio-dropdown", "#txt2img_steps.gradio-slider", "#tab_txt2img.gradio-tabitem"):  # fmt: skip
        assert page.locator(selector).count() == 1, selector
    lora = page.locator("#txt2img_extra_tabs .tab-nav").get_by_role("tab", name="Lora", exact=True)
    lora.click()  # the cards take the place of the settings and the results
    page.locator("#txt2img_lora_cards").wait_for()
    assert not page.locator("#txt2img_settings").is_visible()
    assert not page.locator("#txt2img_gallery").is_visible()
    page.locator("#txt2img_extra_tabs .tab-nav").get_by_role("tab", name="Generation").click()
    page.locator("#txt2img_settings").wait_for()
    assert not page.locator("#txt2img_lora_cards").is_visible()


def test_a_shown_tab_panel_is_display_block_as_in_gradio3(page):
    """Gradio 3 showed the selected tab's panel with the inline style `display: block` (Gradio 6: flex) and
    hid the others with `display: none`; page scripts follow the tab in use by watching for "block"."""
    panels = """(ids) => ids.map((id) => document.getElementById(id).style.display)"""
    top = ["tab_txt2img", "tab_img2img"]
    assert page.evaluate(panels, top) == ["block", "none"]
    page.evaluate("() => switch_to_img2img()")
    try:
        page.wait_for_function("() => window.pageExt.shownTabs.includes('tab_img2img')")
        assert page.evaluate(panels, top) == ["none", "block"]
        page.locator("#mode_img2img").get_by_role("tab", name="Inpaint", exact=True).click()
        page.wait_for_function(
            "() => document.getElementById('img2img_inpaint_tab').style.display === 'block'"
        )
        assert page.evaluate(panels, ["img2img_img2img_tab", "img2img_inpaint_tab"]) == ["none", "block"]
    finally:  # the module's other tests start on txt2img
        page.evaluate("() => switch_to_txt2img()")
        page.locator("#txt2img_prompt").wait_for()
    page.wait_for_function("() => window.pageExt.shownTabs.at(-1) === 'tab_txt2img'")
    assert page.evaluate(panels, top) == ["block", "none"]


def test_clear_prompt_asks_then_empties_both_prompts(page):
    page.fill("#txt2img_prompt textarea", "a lighthouse")
    page.fill("#txt2img_neg_prompt textarea", "fog")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#txt2img_clear_prompt")
    page.wait_for_timeout(300)
    assert page.input_value("#txt2img_prompt textarea") == "a lighthouse"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#txt2img_clear_prompt")
    page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value === ''")
    assert page.input_value("#txt2img_neg_prompt textarea") == ""


def test_generation_info_json_and_button_as_a1111(page):
    small_job(page, "a red circle", batch_size=2)
    generate(page)
    page.wait_for_function(
        "() => (document.querySelector('#generation_info_txt2img textarea')?.value || '').includes('infotexts')"
    )
    info = json.loads(page.input_value("#generation_info_txt2img textarea"))
    assert info["prompt"] == "a red circle" and len(info["infotexts"]) == 3  # the grid, then two images
    second = info["infotexts"][2]
    page.locator("#txt2img_gallery .thumbnails button, #txt2img_gallery .thumbnail-item").nth(2).click()
    page.evaluate("() => gradioApp().getElementById('txt2img_generation_info_button').click()")
    seed = second.split("Seed: ", 1)[1].split(",", 1)[0]
    page.wait_for_function(
        "(seed) => document.querySelector('#html_info_txt2img').innerText.includes('Seed: ' + seed)", arg=seed
    )
    assert page.evaluate("() => selected_gallery_index()") == 2


def test_request_progress_draws_a_bar_and_a_live_preview_then_calls_at_end(page):
    """A1111's `requestProgress(id_task, progressbarContainer, gallery, atEnd, onProgress)` for a task of
    the server's queue (agent-scheduler shows its own tasks' progress this way)."""
    from modules import shared  # the module's App, which the page's server runs
    from tests.frontends.http.test_internal_progress import held_job

    page.evaluate(
        """() => {
            const box = document.createElement("div");
            box.id = "rp_box";
            box.innerHTML = '<div id="rp_container"></div><div id="rp_gallery"></div>';
            document.body.appendChild(box);
            window.rp = {ended: false, seen: []};
        }"""
    )
    start = """(id) => requestProgress(id, document.getElementById("rp_container"),
        document.getElementById("rp_gallery"), () => { window.rp.ended = true; },
        (res) => { window.rp.seen.push(res.textinfo); })"""
    with held_job(shared.app(), "task(rp)") as release:
        page.evaluate(start, "task(rp)")
        page.wait_for_function(
            "() => (document.querySelector('#rp_box .progressDiv .progress')?.textContent || '').startsWith('50%')"
        )
        assert "held by the test" in page.text_content("#rp_box .progressDiv .progress")
        page.wait_for_function(
            "() => document.querySelector('#rp_box .livePreview img')?.src.startsWith('data:image/')"
        )
        assert page.evaluate("() => window.rp.ended") is False
        release.set()
    page.wait_for_function("() => window.rp.ended === true")
    assert (
        page.evaluate("() => document.querySelectorAll('#rp_box .progressDiv, #rp_box .livePreview').length")
        == 0
    )
    assert "held by the test" in page.evaluate("() => window.rp.seen")
