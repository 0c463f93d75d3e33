"""An A1111-style extension from a local git repository, end to end (issue 6, point 7).

The extension is installed through the Extensions tab's handler (`ExtensionManager.install_from_url`),
then a fresh server on the same data folder (that is what a restart does) parses its preload.py flag
the way `webui.main` does, and the extension works through the API and in the browser: its scripts,
setting, tab, FastAPI route and javascript. A broken extension beside it (a script that raises at
import, an `on_ui_tabs` that raises, a duplicate setting and tab) is named in the Extensions tab and
the app still generates. The last test restarts a real `webui.py` process from the Extensions tab
after disabling the extension, and checks that it is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import webui
from modules.sumi.app import App
from modules.sumi.frontends.gradio import extensions_tab
from modules.sumi.services.extensions.model import ACCESS_DENIED
from tests.app_support import REPO_ROOT
from tests.browser_support import browser_skip_reason, free_port, launch_chromium

EXT = "sd-webui-test-ext"
BROKEN = "zz-broken-ext"
BODY = {"steps": 2, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler", "prompt": "a fox"}
TIMEOUT_MS = 30_000
needs_browser = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")

EXTENSION = {
    "preload.py": """
        def preload(parser):
            parser.add_argument("--test-ext-flag", action="store_true", help="the test extension's flag")
    """,
    "install.py": """
        import launch

        print("test-ext install.py: pytest installed =", launch.is_installed("pytest"))
    """,
    "scripts/test_ext.py": """
        import gradio as gr

        import modules.scripts as scripts
        from modules import script_callbacks, shared
        from modules.processing import process_images


        class Rewrite(scripts.Script):
            def title(self):
                return "Test rewrite"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return [gr.Checkbox(False, label="Enable rewrite", elem_id=self.elem_id("enable"))]

            def process(self, p, enabled):
                if enabled:
                    p.all_prompts = ["rewritten " + prompt for prompt in p.all_prompts]


        class Selectable(scripts.Script):
            def title(self):
                return "Test selectable"

            def ui(self, is_img2img):
                return [gr.Textbox("from the script", label="Test suffix")]

            def run(self, p, suffix):
                p.prompt = p.prompt + ", " + suffix
                return process_images(p)


        def on_ui_settings():
            shared.opts.add_option(
                "test_ext_option",
                shared.OptionInfo("hello", "Test extension option", section=("test_ext", "Test Ext")),
            )


        def on_ui_tabs():
            with gr.Blocks(analytics_enabled=False) as tab:
                gr.Markdown("Hello from the test extension", elem_id="test_ext_hello")
            return [(tab, "Test Ext", "test_ext")]


        def on_app_started(demo, app):
            @app.get("/test-ext/ping")
            def ping():
                return {"pong": True, "flag": shared.cmd_opts.test_ext_flag}


        script_callbacks.on_ui_settings(on_ui_settings)
        script_callbacks.on_ui_tabs(on_ui_tabs)
        script_callbacks.on_app_started(on_app_started)
    """,
    "javascript/test_ext.js": """
        window.testExtLoaded = true;
        onUiLoaded(() => { window.testExtUiLoaded = true; });
    """,
    "style.css": "#test_ext_hello { color: rgb(1, 2, 3); }\n",
}

BROKEN_EXTENSION = {
    "scripts/x.py": 'raise RuntimeError("broken extension at import")\n',
    "scripts/y.py": """
        import gradio as gr

        from modules import script_callbacks, shared


        def failing_tabs():
            raise RuntimeError("broken on_ui_tabs")


        def duplicate_tab():
            with gr.Blocks() as tab:
                gr.Markdown("a second Test Ext")
            return [(tab, "Test Ext", "test_ext")]


        def duplicate_option():
            shared.opts.add_option("test_ext_option", shared.OptionInfo(123, "Duplicate option"))


        script_callbacks.on_ui_tabs(failing_tabs)
        script_callbacks.on_ui_tabs(duplicate_tab)
        script_callbacks.on_ui_settings(duplicate_option)
    """,
}


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def git_repository(root: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "test extension"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env, capture_output=True)
    return root


def install(app: App, repo: Path) -> str:
    """Install from URL exactly as the Extensions tab does; the HTML it shows."""
    message, _table = extensions_tab.install_extension(app, str(repo), "", "")
    return message


@contextlib.contextmanager
def sumi_server(app: App) -> Iterator[tuple[str, App]]:
    """The server webui.main builds for a started App, on a free port, in a thread."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(webui.build_server(app), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield url, app
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def wait_until_up(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"webui.py exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/internal/ping", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"no server at {url}")


# -- install --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, make_module_app) -> Path:
    root = tmp_path_factory.mktemp("extension-e2e")
    repo = git_repository(write_files(root / "repos" / EXT, EXTENSION))
    data = root / "data"
    message = install(make_module_app(data, start=False, preload=True), repo)
    assert "test-ext install.py: pytest installed = True" in message, message
    assert f"Installed into {data / 'extensions' / EXT}" in message
    write_files(data / "extensions" / BROKEN, BROKEN_EXTENSION)
    return data


def test_install_from_a_local_git_repository_runs_install_py(data_dir):
    installed = data_dir / "extensions" / EXT
    assert (installed / ".git").is_dir() and (installed / "scripts" / "test_ext.py").is_file()
    assert not (data_dir / "tmp").exists()  # the clone went through tmp/ and was moved


def test_installing_with_listen_is_refused_with_a1111s_message(tmp_path, data_dir, make_app):
    repo = data_dir / "extensions" / EXT
    app = make_app(tmp_path / "listen", "--listen", start=False, preload=True)
    message, _ = extensions_tab.install_extension(app, str(repo), "", "")
    assert ACCESS_DENIED in message
    assert not (tmp_path / "listen" / "extensions" / EXT).exists()
    result, _ = extensions_tab.apply_changes(app, "[]", "[]", "none")
    assert ACCESS_DENIED in result
    assert ACCESS_DENIED in extensions_tab.access_note(app)


# -- a fresh server on the same data folder: API ------------------------------------------------------------
@pytest.fixture(scope="module")
def server(data_dir, make_module_app):
    with sumi_server(make_module_app(data_dir, "--api", "--test-ext-flag", preload=True)) as running:
        yield running


def test_preload_flag_route_scripts_and_option_over_the_api(server):
    url, app = server
    assert app.args.test_ext_flag is True
    with urllib.request.urlopen(url + "/test-ext/ping") as response:
        assert json.loads(response.read()) == {"pong": True, "flag": True}
    with urllib.request.urlopen(url + "/sdapi/v1/scripts") as response:
        names = json.loads(response.read())["txt2img"]
    assert {"test rewrite", "test selectable"} <= set(names)
    with urllib.request.urlopen(url + "/sdapi/v1/options") as response:
        assert json.loads(response.read())["test_ext_option"] == "hello"  # the broken duplicate lost
    with urllib.request.urlopen(url + "/sdapi/v1/extensions") as response:
        listed = {e["name"]: e for e in json.loads(response.read())}
    assert listed[EXT]["enabled"] and listed[EXT]["remote"] and len(listed[EXT]["version"]) == 8


def _txt2img(url: str, **body) -> dict:
    request = urllib.request.Request(
        url + "/sdapi/v1/txt2img",
        data=json.dumps({**BODY, **body}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(json.loads(response.read())["info"])


def test_always_on_and_selectable_scripts_through_the_api(server):
    url, _ = server
    assert _txt2img(url)["all_prompts"] == ["a fox"]
    info = _txt2img(url, alwayson_scripts={"Test rewrite": {"args": [True]}})
    assert info["all_prompts"] == ["rewritten a fox"] and info["infotexts"][0].startswith("rewritten a fox")
    info = _txt2img(url, script_name="test selectable", script_args=["by the API"])
    assert info["all_prompts"] == ["a fox, by the API"]


def test_the_broken_extension_is_named_and_the_rest_works(server):
    _, app = server
    items = extensions_tab.error_items(app)
    text = "\n".join(f"{i.source}: {i.title}" for i in items)
    assert f"{BROKEN} (scripts/x.py): import: broken extension at import" in text
    assert "broken on_ui_tabs" in text
    assert "'test_ext_option' added by" in text and "already defined by" in text
    assert "'Test Ext' already exists" in text
    tracebacks = [i.traceback for i in items if "x.py" in i.source]
    assert tracebacks and "RuntimeError: broken extension at import" in tracebacks[0]


# -- the same server in the browser -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if browser_skip_reason() is not None:
        pytest.skip(browser_skip_reason() or "")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(server, browser):
    url, _ = server
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#txt2img_prompt textarea")
    yield page
    context.close()


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


@needs_browser
@pytest.mark.browser
def test_tab_script_setting_and_extensions_tab_in_the_browser(page, data_dir):
    repo = data_dir.parent / "repos" / EXT
    page.wait_for_function("() => window.testExtLoaded === true && window.testExtUiLoaded === true")
    page.get_by_role("tab", name="Test Ext").click()
    hello = page.locator("#test_ext_hello")
    hello.wait_for()
    assert hello.evaluate("e => getComputedStyle(e).color") == "rgb(1, 2, 3)"  # the extension's style.css
    assert page.get_by_role("tab", name="Test Ext").count() == 1  # the duplicate was left out
    page.get_by_role("tab", name="Settings").click()
    assert page.input_value("#setting_test_ext_option textarea, #setting_test_ext_option input") == "hello"
    page.get_by_role("tab", name="Extensions").click()
    table = page.locator("#extensions_installed_html")
    table.get_by_text(EXT, exact=True).wait_for()
    assert page.locator(
        f'#extensions_installed_html input[data-extension="{EXT}"][data-role=enable]'
    ).is_checked()
    errors = page.inner_text("#extensions_errors")
    assert f"{BROKEN} (scripts/x.py)" in errors and "broken on_ui_tabs" in errors
    page.locator("#extensions_errors summary", has_text="x.py").first.click()
    assert "RuntimeError: broken extension at import" in page.inner_text("#extensions_errors")
    page.get_by_role("tab", name="Install from URL").click()
    page.fill("#extension_install_url textarea, #extension_install_url input", str(repo))
    page.fill("#extension_install_dirname textarea, #extension_install_dirname input", "a-copy")
    page.click("#extension_install_button")
    page.get_by_text("Extension with this URL is already installed").wait_for()
    assert not (data_dir / "extensions" / "a-copy").exists()
    page.get_by_role("tab", name="txt2img").click()


@needs_browser
@pytest.mark.browser
def test_generate_with_the_always_on_and_a_selected_script(page):
    page.fill("#txt2img_prompt textarea", "a lighthouse")
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2)):
        set_number(page, elem_id, value)
    page.get_by_label("Enable rewrite").check()
    page.click("#txt2img_generate")
    page.wait_for_function(
        "() => document.querySelector('#html_info_txt2img').innerText.includes('Steps: 2')",
        timeout=TIMEOUT_MS,
    )
    assert page.inner_text("#html_info_txt2img").startswith("rewritten a lighthouse")
    # the Script dropdown shows the chosen script's controls and runs it
    suffix = page.get_by_label("Test suffix")
    assert not suffix.is_visible()
    page.click("#script_list input")
    page.get_by_role("option", name="Test selectable").click()
    suffix.fill("picked")
    page.click("#txt2img_generate")
    page.wait_for_function(
        "() => document.querySelector('#html_info_txt2img').innerText.startsWith('rewritten a lighthouse, picked')",
        timeout=TIMEOUT_MS,
    )


# -- disable from the Extensions tab and restart a real webui.py ---------------------------------------------
@needs_browser
@pytest.mark.browser
def test_disable_in_the_extensions_tab_then_restart_leaves_it_out(tmp_path, data_dir, browser):
    data = tmp_path / "data"
    shutil.copytree(data_dir / "extensions" / EXT, data / "extensions" / EXT)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "webui.py",
        "--data-dir",
        str(data),
        "--port",
        str(port),
        "--api",
        "--test-ext-flag",
    ]
    log = (tmp_path / "webui.log").open("w")
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        first = wait_until_up(url, proc=proc)["boot_id"]
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.get_by_role("tab", name="Test Ext").wait_for()
            page.get_by_role("tab", name="Extensions").click()
            page.get_by_label(f"Enable {EXT}").uncheck()
            page.click("#extensions_apply")
            page.get_by_text("Restarting…").wait_for()
            page.wait_for_function(
                "() => !document.querySelector('#extensions_result')?.innerText.includes('Restarting')",
                timeout=90_000,
            )  # the page reloaded
            page.wait_for_selector("#txt2img_prompt textarea")
            assert page.get_by_role("tab", name="Test Ext").count() == 0
            notices = page.inner_text("#sumi_notices")
            assert "--test-ext-flag" in notices  # only the disabled extension knew it: ignored, not fatal
        finally:
            context.close()
        assert wait_until_up(url, proc=proc)["boot_id"] != first
        assert json.loads((data / "config.json").read_text())["disabled_extensions"] == [EXT]
        with urllib.request.urlopen(url + "/sdapi/v1/scripts") as response:
            assert "test rewrite" not in json.loads(response.read())["txt2img"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
