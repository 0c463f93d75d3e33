"""What Sumi's patches of Gradio's page scripts do (frontends/gradio/asset_patches.py)."""

from __future__ import annotations

from modules.sumi.frontends.gradio import asset_patches
from tests.browser_support import open_page

RUN_STATUS_PUSH = """async (source) => {
    const Blocks = (0, eval)("(class { " + source + " })");
    const blocks = new Blocks();
    const pushed = [];
    blocks.update_state_cb = async (id, state) => pushed.push([id, state.loading_status.status]);
    blocks.loading_stati = {current: {1: {status: "pending"}, 2: {status: "pending"}}};
    await blocks.update_loading_stati_state();
    const first = pushed.length;
    await blocks.update_loading_stati_state();  // nothing changed
    const again = pushed.length;
    blocks.loading_stati.current[2] = {status: "complete"};
    await blocks.update_loading_stati_state();
    return {first, again, last: pushed.slice(again)};
}"""


def test_a_loading_status_is_pushed_when_it_changed_and_not_again(chromium):
    page = chromium.new_page()
    try:
        result = page.evaluate(RUN_STATUS_PUSH, asset_patches.STATUS_PUSH.patched.decode())
    finally:
        page.close()
    assert result == {"first": 2, "again": 2, "last": [[2, "complete"]]}


def test_tabs_not_chosen_yet_are_in_the_page_hidden(chromium, demo_server):
    # A1111's extensions look these up when the page loads (Gradio 3 drew every tab at once).
    ids = ["#img2img_prompt", "#img2img_width", "#img2img_res_switch_btn", "#img2maskimg", "#extras_upscale"]
    with open_page(chromium, demo_server.url) as page:
        found = page.evaluate("(ids) => ids.filter(id => document.querySelector(id) !== null)", ids)
        assert found == ids
        assert not page.locator("#tab_img2img").is_visible()
        page.get_by_role("tab", name="img2img").click()
        page.locator("#img2img_prompt textarea").wait_for(state="visible")
        assert not page.locator("#tab_txt2img").is_visible()


def test_a_prompt_box_is_where_gradio_3_had_it(chromium, demo_server):
    # tagcomplete and others select `#txt2img_prompt > label > textarea` (javascript/script.js moves it).
    with open_page(chromium, demo_server.url) as page:
        page.wait_for_function("() => document.querySelector('#img2img_prompt > label > textarea') !== null")
        box = page.locator("#txt2img_prompt > label > textarea")
        box.fill("a lighthouse")
        assert box.input_value() == "a lighthouse"
