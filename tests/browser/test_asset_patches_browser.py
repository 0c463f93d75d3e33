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


COMPARE_NODE_LOOKUP = """(sources) => {
    const make = (src) => (0, eval)("(() => { " + src + "; return Z; })()");
    const [plain, indexed] = [make(sources.original), make(sources.patched)];
    let seed = 7, next = 0;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const build = (depth) => {
        const node = {id: next++, children: []};
        const count = depth < 5 ? Math.floor(rand() * 4) : 0;
        for (let i = 0; i < count; i++) node.children.push(build(depth + 1));
        return node;
    };
    const root = {id: next++, children: [build(1), build(1), build(1)]};
    const differences = [];
    const compare = (label, from = root) => {
        for (const id of [...Array(next).keys(), -1, next]) {  // a miss (unknown id) last
            if (plain(from, id) !== indexed(from, id)) differences.push([label, id]);
        }
    };
    compare("fresh");
    compare("again");
    const first = root.children[0];
    root.children[0] = {id: first.id, children: first.children.slice(1)};  // same id, new node
    compare("a node replaced by a new one of the same id");
    root.children.pop();
    compare("a subtree removed");
    root.children.push(build(4));
    compare("a subtree added");
    root.children = [...root.children].reverse();
    compare("children reassigned");
    compare("from a subtree", root.children[0]);
    return {nodes: next, differences};
}"""

COMPARE_ATTACHED_EVENTS = """(sources) => {
    const end = "return e.props.shared_props.attached_events=n,e}";
    const make = (src) => (0, eval)("(class { " + src + end + " })");
    const [Plain, Indexed] = [make(sources.original), make(sources.patched)];
    const [plain, indexed] = [new Plain(), new Indexed()];
    const names = ["click", "change", "input", null, "submit", ""];
    let seed = 11;
    const rand = (n) => Math.floor(((seed = (seed * 16807) % 2147483647) / 2147483647) * n);
    const dependencies = [];
    for (let d = 0; d < 300; d++) {
        const targets = [];
        for (let t = rand(4); t >= 0; t--) targets.push([rand(60), names[rand(names.length)]]);
        dependencies.push({targets});
    }
    const differences = [];
    const compare = (label) => {
        for (let id = 0; id < 62; id++) {
            const a = plain.find_attached_events({id, props: {shared_props: {}}}, dependencies);
            const b = indexed.find_attached_events({id, props: {shared_props: {}}}, dependencies);
            const [x, y] = [a.props.shared_props.attached_events, b.props.shared_props.attached_events];
            if (JSON.stringify(x) !== JSON.stringify(y)) differences.push([label, id, x, y]);
        }
    };
    compare("fresh");
    dependencies.push({targets: [[5, "blur"], [5, "focus"], [61, "click"]]});
    compare("an event added");
    const found = indexed.find_attached_events({id: 5, props: {shared_props: {}}}, dependencies);
    return {differences, last: found.props.shared_props.attached_events.at(-1)};
}"""


def _compare(chromium, script: str, patch: asset_patches.AssetPatch) -> dict:
    page = chromium.new_page()
    try:
        return page.evaluate(script, {"original": patch.original.decode(), "patched": patch.patched.decode()})
    finally:
        page.close()


def test_the_indexed_node_lookup_finds_what_gradios_tree_walk_finds_as_the_tree_changes(chromium):
    result = _compare(chromium, COMPARE_NODE_LOOKUP, asset_patches.NODE_INDEX)
    assert result["nodes"] > 50 and result["differences"] == []


def test_the_indexed_attached_events_equal_gradios_for_every_component(chromium):
    result = _compare(chromium, COMPARE_ATTACHED_EVENTS, asset_patches.ATTACHED_EVENTS_INDEX)
    assert result == {"differences": [], "last": "blur"}
