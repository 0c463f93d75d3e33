"""Scripts and extensions in the web UI, without a browser: the txt2img scripts area and Generate's
script_args, A1111's component callbacks, extension tabs and settings, the Extensions tab's handlers,
restart, and extensions' assets in the page."""

from __future__ import annotations

import argparse
import json
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

import webui
from modules.sumi.frontends.gradio import build_ui, extensions_tab, scripts_ui
from modules.sumi.frontends.gradio import txt2img as ui
from modules.sumi.services.extensions.model import ACCESS_DENIED, ExtensionError
from modules.sumi.services.jobs.processing import Processed
from modules.sumi.services.jobs.queue import JobQueue
from modules.sumi.services.jobs.runner import JobRunner
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.scripts.runner import ScriptErrors, ScriptRunner
from modules.sumi.services.settings.options import OptionInfo
from tests.app_support import local_client
from tests.frontends.gradio.fakes import FakeGeneration, as_dict, values

SCRIPTS = """
import gradio as gr

import modules.scripts as scripts
from modules.processing import process_images


class AlwaysOn(scripts.Script):
    def __init__(self):
        self.seen = []
        self.on_before_component(lambda c: self.seen.append(("before generate", c.component)), elem_id="txt2img_generate")

    def title(self):
        return "Always on"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(False, label="Always enabled", elem_id="always_enabled")]

    def after_component(self, component, **kwargs):
        self.seen.append(("after", kwargs.get("elem_id")))
        if kwargs.get("elem_id") == "txt2img_width":  # A1111 extensions add controls next to a field
            self.width_button = gr.Button("↔", elem_id="always_width_button")
        if kwargs.get("elem_id") == "txt2img_generation_info_button":  # Config-Presets' place for its box
            with gr.Box(elem_id="always_presets_box"):
                gr.Dropdown(["a"], value="a", elem_id="always_presets")


class Selectable(scripts.Script):
    def title(self):
        return "Pick me"

    def ui(self, is_img2img):
        return [gr.Slider(1, 5, value=2, step=1, label="Pick steps")]

    def run(self, p, steps):
        p.steps = int(steps)
        return process_images(p)


class BadUI(scripts.Script):
    def title(self):
        return "Bad UI"

    def ui(self, is_img2img):
        raise RuntimeError("ui exploded")
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory, make_module_app):
    """A real App (not started: no model) with test scripts and extension callbacks, and its page."""
    root = tmp_path_factory.mktemp("ui-scripts")
    script = root / "ext" / "scripts" / "ui_scripts.py"
    script.parent.mkdir(parents=True)
    script.write_text(textwrap.dedent(SCRIPTS))
    app = make_module_app(root / "data", start=False)
    app.scripts.load([(script, script.parent.parent)])
    seen: list[str] = []
    registry = app.callbacks
    registry.add("after_component", lambda component, **kw: seen.append(kw.get("elem_id")))
    registry.add("ui_tabs", lambda: [(_blocks("good tab"), "Good", "good")])
    registry.add("ui_tabs", _raise)
    registry.add("ui_tabs", lambda: [(_blocks("clash"), "Settings", "settings2"), ("not blocks", "X", "x")])
    registry.add("ui_settings", lambda: app.options.add_option("ext_opt", OptionInfo(1, "Ext option")))
    registry.add("ui_settings", lambda: app.options.add_option("ext_opt", OptionInfo("two", "Again")))
    registry.add("ui_settings", lambda: app.options.add_option("samples_save", OptionInfo(5, "Clash")))
    demo = build_ui(app)
    return SimpleNamespace(app=app, demo=demo, seen=seen, module=app.scripts.scripts_data[0].module)


def _blocks(text: str) -> gr.Blocks:
    with gr.Blocks() as blocks:
        gr.Markdown(text, elem_id=f"md_{text.replace(' ', '_')}")
    return blocks


def _raise():
    raise RuntimeError("tabs exploded")


def _inside(block, container) -> bool:
    while block is not None:
        if block is container:
            return True
        block = block.parent
    return False


def _by_elem_id(demo: gr.Blocks, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


# -- the scripts area ----------------------------------------------------------------------------------
def test_scripts_area_follows_a1111_layout(built):
    runner = built.app.scripts.txt2img
    assert built.app.scripts.inputs_ready
    dropdown = _by_elem_id(built.demo, "script_list")
    assert [c[0] for c in dropdown.choices][:1] == ["None"]
    assert "Pick me" in [c[0] for c in dropdown.choices] and dropdown.type == "index"
    always = runner.script("Always on")
    assert always.group.visible is True and runner.inputs[always.args_from].elem_id == "always_enabled"
    pick = runner.script("Pick me")
    assert pick.group.visible is False and runner.inputs[pick.args_from].label == "Pick steps"
    container = _by_elem_id(built.demo, "txt2img_script_container")
    assert _inside(always.group, container) and _inside(dropdown, container)
    assert _inside(runner.inputs[pick.args_from], pick.group)


def test_a_script_whose_ui_raises_is_reported_and_the_page_builds(built):
    runner = built.app.scripts.txt2img
    bad = runner.script("Bad UI")
    assert bad.args_from == bad.args_to  # no controls
    assert any(e.where == "ui" and "ui exploded" in e.message for e in runner.errors.items)
    texts = [b.value for b in bad.group.children if isinstance(b, gr.HTML)]
    assert any("ui exploded" in t for t in texts)


def test_select_script_shows_only_the_chosen_group():
    updates = scripts_ui.select_script([True, False, True], 3)
    assert [u["visible"] for u in updates] == [False, True]
    assert [u["visible"] for u in scripts_ui.select_script([True, True], None)] == [False, False]
    assert scripts_ui.script_args([None, "a", 3]) == [0, "a", 3]
    assert scripts_ui.script_args([2.0]) == [2]


# -- component callbacks ---------------------------------------------------------------------------------
def test_after_component_callbacks_see_sumi_and_script_components(built):
    assert {"txt2img_prompt", "txt2img_width", "txt2img_generate", "txt2img_seed"} <= set(built.seen)
    assert "always_enabled" in built.seen  # made by a script's ui(): called once ui() returned
    script = built.app.scripts.txt2img.script("Always on")
    assert ("after", "txt2img_width") in script.seen
    width = _by_elem_id(built.demo, "txt2img_width")
    button = _by_elem_id(built.demo, "always_width_button")
    column = width.parent.parent  # gradio wraps form fields in a Form
    order = [child for child in column.children]
    assert _inside(button, column)
    assert order.index(next(c for c in order if _inside(button, c))) == order.index(width.parent) + 1


def test_after_component_sees_the_img2img_canvases_extensions_hook(built):
    canvases = {"img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch", "img_inpaint_base"}
    assert canvases | {"img_inpaint_mask"} <= set(built.seen)


def test_after_component_sees_the_hidden_generation_info_button_at_the_end_of_the_results(built):
    assert {"txt2img_generation_info_button", "img2img_generation_info_button"} <= set(built.seen)
    results = _by_elem_id(built.demo, "txt2img_results")
    assert _inside(_by_elem_id(built.demo, "always_presets_box"), results)


def test_on_before_component_by_elem_id_gets_the_component(built):
    script = built.app.scripts.txt2img.script("Always on")
    generate = _by_elem_id(built.demo, "txt2img_generate")
    assert [c for what, c in script.seen if what == "before generate"] == [generate]
    assert not generate.is_rendered or generate.parent is not None


def test_component_hooks_isolate_a_failing_callback():
    registry = CallbackRegistry()
    registry.add("before_component", lambda component, **kw: 1 / 0)
    calls = []
    registry.add("after_component", lambda component, **kw: calls.append((component, kw["elem_id"])))
    runner = ScriptRunner("txt2img", ScriptErrors())
    hooks = scripts_ui.ComponentHooks(registry, runner)
    with gr.Blocks():
        box = hooks.make(gr.Textbox, label="x", elem_id="some_box")
    assert calls == [(box, "some_box")] and box.is_rendered
    assert registry.errors and registry.errors[0].category == "before_component"


# -- Generate with scripts ---------------------------------------------------------------------------------
class Recorder:
    title_text = "Rec"
    alwayson = False

    def __init__(self, fail: bool = False) -> None:
        self.calls: list = []
        self.fail = fail
        self.filename = "rec.py"

    def title(self):
        return self.title_text

    def run(self, p, *args):
        self.calls.append((p, args))
        if self.fail:
            raise RuntimeError("script run failed")
        return Processed(p, [], 1, infotexts=[], all_seeds=[1], all_subseeds=[1])


@pytest.fixture
def script_app():
    state = JobState()
    queue = JobQueue(state)

    def result(p):
        return Processed(p, [], 1, infotexts=["a fox\nSteps: 2, Seed: 1"], all_seeds=[1], all_subseeds=[1])

    generation = FakeGeneration(state, result)
    app = SimpleNamespace(
        state=state, queue=queue, generation=generation, runner=JobRunner(queue, generation)
    )
    runner = ScriptRunner("txt2img", ScriptErrors())
    yield app, runner
    queue.stop()


def _runner_with(runner: ScriptRunner, script: Recorder) -> ScriptRunner:
    runner.selectable_scripts = runner.scripts = [script]
    script.args_from, script.args_to = 1, 3
    return runner


def test_generate_runs_the_selected_script_with_a1111s_script_args(script_app):
    app, runner = script_app
    script = Recorder()
    layout = ui.GenerateInputs(controlnet=0, scripts=_runner_with(runner, script))
    outs = [as_dict(o) for o in ui.generate(app, *values(), 1, "a", 7, layout=layout)]
    p, args = script.calls[0]
    assert args == ("a", 7) and p.script_args == [1, "a", 7] and p.scripts is runner
    assert app.generation.jobs == []  # the script made the images (none here), not a plain job
    assert "No image was finished" in outs[-1]["error"]


def test_generate_without_a_selected_script_runs_a_plain_job_with_the_hooks(script_app):
    app, runner = script_app
    script = Recorder()
    layout = ui.GenerateInputs(controlnet=0, scripts=_runner_with(runner, script))
    outs = [as_dict(o) for o in ui.generate(app, *values(), None, "a", 7, layout=layout)]
    assert script.calls == [] and len(app.generation.jobs) == 1
    assert app.generation.jobs[0].script_args == [0, "a", 7]
    assert "Steps: 2" in outs[-1]["info_html"]


def test_a_selected_script_that_raises_is_shown_and_recorded(script_app):
    app, runner = script_app
    script = Recorder(fail=True)
    layout = ui.GenerateInputs(controlnet=0, scripts=_runner_with(runner, script))
    last = [as_dict(o) for o in ui.generate(app, *values(), 1, "a", 7, layout=layout)][-1]
    assert "script run failed" in last["error"] and "sumi-error" in last["error"]
    assert runner.errors.items[-1].where == "run" and runner.errors.items[-1].script == "rec.py"
    # the worker keeps serving
    assert len([as_dict(o) for o in ui.generate(app, *values(), 0, "a", 7, layout=layout)]) > 1


def test_generate_splits_controlnet_and_script_values(script_app, monkeypatch):
    app, runner = script_app
    seen = {}
    monkeypatch.setattr(
        ui, "units_from_values", lambda control: seen.setdefault("control", list(control)) and []
    )
    layout = ui.GenerateInputs(controlnet=2, scripts=_runner_with(runner, Recorder()))
    list(ui.generate(app, *values(), "cn1", "cn2", 0, "a", 7, layout=layout))
    assert seen["control"] == ["cn1", "cn2"]


# -- extension tabs and settings ---------------------------------------------------------------------------
def test_extension_tabs_come_before_settings_and_bad_ones_are_reported(built):
    tabs = _by_elem_id(built.demo, "tabs")
    labels = [getattr(child, "label", None) for child in tabs.children]
    assert labels == [
        "txt2img", "img2img", "Extras", "PNG Info", "Checkpoint Merger", "Train", "Good", "Settings", "Extensions"
    ]  # fmt: skip
    problems = "\n".join(built.app.settings.extension_problems)
    assert "on_ui_tabs failed (RuntimeError: tabs exploded)" in problems
    assert "the title 'Settings' already exists" in problems
    assert "not (gr.Blocks, title, elem_id)" in problems
    assert any(e.category == "ui_tabs" and "tabs exploded" in e.message for e in built.app.callbacks.errors)
    assert any("tabs exploded" in n for n in built.app.notices)


def test_duplicate_options_keep_the_first_definition(built):
    options = built.app.options
    assert options.data_labels["ext_opt"].label == "Ext option" and options.ext_opt == 1
    assert options.data_labels["samples_save"].label != "Clash" and options.samples_save is True
    problems = "\n".join(built.app.settings.extension_problems)
    assert "Setting 'ext_opt' added by" in problems and "Setting 'samples_save'" in problems
    assert "already defined by Sumi" in problems
    assert _by_elem_id(built.demo, "setting_ext_opt").value == 1  # shown in the Settings tab


# -- the Extensions tab's handlers ----------------------------------------------------------------------
def _ext(name: str, **kw):
    base = dict(
        name=name, enabled=True, is_builtin=False, remote="https://example.com/x.git", branch="main",
        version="0123abcd", commit_date=0, status="unknown", can_update=False, path=Path(name),
        commit_hash="0123abcd" * 5, have_info_from_repo=True, remote_commit_hash=None,
        remote_commit_date=None, remote_commits_ahead=None,
    )  # fmt: skip
    return SimpleNamespace(**{**base, **kw})


def test_installed_table_has_a1111s_columns_and_checkboxes():
    html = extensions_tab.installed_html(
        [_ext('a"b<c'), _ext("off", enabled=False, can_update=True, status="new commits")]
    )
    assert "<th>Extension</th><th>URL</th><th>Branch</th><th>Version</th><th>Date</th><th>Update</th>" in html
    assert 'data-extension="a&quot;b&lt;c"' in html and "a&quot;b&lt;c</label>" in html
    assert 'data-role="enable" data-extension="off" aria-label="Enable off">' in html  # unticked
    assert 'data-role="update" data-extension="off" aria-label="Update off" checked="checked">' in html
    locked = extensions_tab.installed_html([_ext("a")], editable=False)
    assert " disabled>" in locked
    assert "No extensions" in extensions_tab.installed_html([])


class FakeExtensions:
    def __init__(self, allowed: bool = True, fail_update: bool = False, data_dir: Path | None = None) -> None:
        self.allowed, self.fail_update, self.data_dir = allowed, fail_update, data_dir
        self.disabled: list | None = None
        self.updated: list[str] = []
        self.problems: list[str] = []

    def check_access(self):
        if not self.allowed:
            raise ExtensionError(ACCESS_DENIED)

    def set_disabled(self, names, disable_all=None):
        self.check_access()
        self.disabled = (list(names), disable_all)

    def get(self, name):
        return _ext(name) if name != "ghost" else None

    def update(self, ext):
        if self.fail_update:
            raise ExtensionError(f"Updating {ext.name} failed: no network")
        self.updated.append(ext.name)

    def list(self, refresh=False, with_repo_info=False):
        return [_ext("a"), _ext("b")]

    def check_all_for_updates(self):
        self.check_access()
        return {"a": "latest", "b": "Checking b for updates failed: offline"}


def _tab_app(data_dir: Path | None = None, **kw):
    restarts = []
    app = SimpleNamespace(
        extensions=FakeExtensions(data_dir=data_dir, **kw),
        boot_id="abc123",
        restarts=restarts,
        paths=SimpleNamespace(repo_root=data_dir),
    )
    app.request_restart = lambda: bool(restarts.append(1) or True)
    return app


def test_apply_saves_updates_and_restarts(tmp_path):
    app = _tab_app(tmp_path)
    result, table = extensions_tab.apply_changes(app, '["b"]', '["a"]', "extra")
    assert app.extensions.disabled == (["b"], "extra") and app.extensions.updated == ["a"]
    # as A1111, a config state is saved before updating (Backup/Restore can go back to it)
    (backup,) = (tmp_path / "config_states").glob("*_Backup (pre-update).json")
    assert set(json.loads(backup.read_text())["extensions"]) == {"a", "b"}
    assert app.restarts == [1] and 'data-sumi-restart="abc123"' in result and "Restarting" in result
    assert 'data-extension="a"' in table


def test_apply_without_a_restarter_or_with_a_failed_update_says_so(tmp_path):
    app = _tab_app()
    app.request_restart = lambda: False
    result, _ = extensions_tab.apply_changes(app, "not json", "[]", "bogus")
    assert extensions_tab.RESTART_NOTE in result and app.extensions.disabled == ([], None)
    app = _tab_app(tmp_path, fail_update=True)
    result, _ = extensions_tab.apply_changes(app, "[]", '["a", "ghost"]', "none")
    assert "no network" in result and "ghost: not installed" in result and app.restarts == []


def test_every_action_is_refused_without_access():
    app = _tab_app(allowed=False)
    assert ACCESS_DENIED in extensions_tab.apply_changes(app, "[]", "[]", "none")[0]
    assert ACCESS_DENIED in extensions_tab.check_updates(app)[0]
    assert app.restarts == []


def test_check_for_updates_lists_failures():
    result, _ = extensions_tab.check_updates(_tab_app())
    assert "Checked 2 extension(s)" in result and "b: Checking b for updates failed: offline" in result


def test_errors_section_names_the_extension_and_folds_the_traceback(built):
    app = built.app
    ext = app.paths.extensions_dir / "named-ext"
    (ext / "scripts").mkdir(parents=True, exist_ok=True)
    app.extensions.refresh()
    app.scripts.errors.report(str(ext / "scripts" / "z.py"), "import", ValueError("bad <thing>"))
    html = extensions_tab.errors_html(extensions_tab.error_items(app))
    assert "<b>named-ext (scripts/z.py)</b>: import: bad &lt;thing&gt;" in html
    assert "<details" in html and "ValueError: bad &lt;thing&gt;" in html
    assert extensions_tab.errors_html([]) == '<p class="sumi-note">No errors.</p>'
    assert extensions_tab.source_label(app, "") == "Sumi"


# -- restart ----------------------------------------------------------------------------------------------
def test_request_restart_calls_the_handler_after_the_reply(tmp_path, make_app):
    app = make_app(tmp_path, start=False)
    assert app.request_restart() is False and not app.restart_requested
    called = threading.Event()
    app.restart_handler = called.set
    assert app.request_restart(delay=0.01) is True
    assert called.wait(5) and app.restart_requested


def test_parse_args_is_lenient_about_unknown_flags_only_after_a_restart(tmp_path):
    argv = ["--data-dir", str(tmp_path), "--flag-of-a-removed-extension"]
    with pytest.raises(SystemExit):
        webui.parse_args(argv)
    args, notes = webui.parse_args(argv, lenient=True)
    assert isinstance(args, argparse.Namespace) and "--flag-of-a-removed-extension" in notes[-1]
    assert webui.restart_command()[0] == webui.sys.executable


def test_build_server_survives_failing_app_started_and_before_ui(tmp_path, make_app):
    app = make_app(tmp_path, "--nowebui", start=False)
    app.callbacks.add("before_ui", _raise)
    app.callbacks.add("app_started", lambda demo, server: server.add_api_route("/x", lambda: {"ok": 1}))
    app.callbacks.add("app_started", lambda demo, server: 1 / 0)

    client = local_client(webui.build_server(app))
    assert client.get("/x").json() == {"ok": 1}
    assert client.get("/internal/ping").json() == {"boot_id": app.boot_id}
    assert {e.category for e in app.callbacks.errors} == {"before_ui", "app_started"}


def test_app_started_callbacks_read_the_page_as_gradio3_blocks(tmp_path, make_app):
    app = make_app(tmp_path)
    seen: list[Any] = []

    def on_app_started(demo, server):  # agent-scheduler finds the Generate button's event this way
        generate = next(c for c in demo.blocks.values() if c.elem_id == "txt2img_generate")
        seen.extend(d for d in demo.dependencies if d["trigger"] == "click" and generate._id in d["targets"])
        with demo:
            gr.Button(elem_id="ext_enqueue").click(None, js="() => 1")

    app.callbacks.add("app_started", on_app_started)
    local_client(webui.build_server(app))
    assert seen and all(isinstance(d["inputs"], list) for d in seen)
    assert "ext_enqueue" in {c.elem_id for c in app.demo.blocks.values()}
