"""The end-to-end test extension (tests/fixtures/extensions.py) in Chromium: its tab, style, setting and
scripts in the page, the broken extension named in the Extensions tab, and a real `webui.py` restarted
from the Extensions tab after disabling the extension, which is then gone. The same extension through
the API: tests/compat/test_extension_e2e.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.app_support import REPO_ROOT, free_port, serve, wait_until_up
from tests.browser_support import TIMEOUT_MS, generate, open_page, small_job
from tests.fixtures.extensions import BROKEN, EXT, install_test_extensions


# -- a fresh server on the data folder, in the browser ------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, make_module_app) -> Path:
    return install_test_extensions(tmp_path_factory.mktemp("extension-browser"), make_module_app)


@pytest.fixture(scope="module")
def page(data_dir, make_module_app, chromium):
    app = make_module_app(data_dir, "--api", "--test-ext-flag", preload=True)
    with serve(app) as url, open_page(chromium, url) as page:
        yield page


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
    conflict = page.locator(f'#extensions_conflicts tr[data-extension="{BROKEN}"][data-package="gradio"]')
    assert "gradio==3.41.2" in conflict.inner_text()  # asked for in its requirements.txt, not installed
    page.get_by_role("tab", name="Install from URL").click()
    page.fill("#extension_install_url textarea, #extension_install_url input", str(repo))
    page.fill("#extension_install_dirname textarea, #extension_install_dirname input", "a-copy")
    page.click("#extension_install_button")
    page.get_by_text("Extension with this URL is already installed").wait_for()
    assert not (data_dir / "extensions" / "a-copy").exists()
    page.get_by_role("tab", name="txt2img").click()


def test_an_extension_s_extra_networks_page_is_a_card_tab_whose_cards_write_the_prompt(page):
    page.fill("#txt2img_prompt textarea", "a cat")
    page.locator("#txt2img_extra_tabs").get_by_role("tab", name="Test Cards", exact=True).click()
    card = page.locator("#txt2img_test_cards_cards .card[data-name='sunset card']")
    card.click()
    page.wait_for_function(
        "() => document.querySelector('#txt2img_prompt textarea').value === 'a cat golden sunset'"
    )
    card.click()  # again: taken out, as A1111's cards do
    page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value === 'a cat'")
    page.locator("#txt2img_extra_tabs").get_by_role("tab", name="Generation", exact=True).click()


def test_generate_with_the_always_on_and_a_selected_script(page):
    small_job(page, "a lighthouse")
    tab = page.locator("#tab_txt2img")  # img2img has the same controls, hidden
    tab.get_by_label("Enable rewrite").check()
    assert generate(page, "Steps: 2").startswith("rewritten a lighthouse")
    # the Script dropdown shows the chosen script's controls and runs it
    suffix = tab.get_by_label("Test suffix")
    assert not suffix.is_visible()
    tab.locator("#script_list input").click()
    page.get_by_role("option", name="Test selectable").click()
    suffix.fill("picked")
    page.click("#txt2img_generate")
    page.wait_for_function(
        "() => document.querySelector('#html_info_txt2img').innerText.startsWith('rewritten a lighthouse, picked')"
    )


# -- disable from the Extensions tab and restart a real webui.py ---------------------------------------------
def test_the_page_reads_extension_files_through_file_urls_as_a1111_scripts_do(page):
    fetch = "async (u) => { const r = await fetch(u); return [r.status, await r.text()]; }"
    status, text = page.evaluate(fetch, f"file=extensions/{EXT}/style.css?1712345678")  # relative, as A1111
    assert (status, text) == (200, "#test_ext_hello { color: rgb(1, 2, 3); }\n")
    assert page.evaluate(fetch, "file=config.json")[0] == 403  # the settings file is not on the list


def test_disable_in_the_extensions_tab_then_restart_leaves_it_out(tmp_path, data_dir, chromium):
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
        "--api-server-stop",
        "--test-ext-flag",
    ]
    log = (tmp_path / "webui.log").open("w")
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        first = wait_until_up(url, lambda: proc.poll() is None)["boot_id"]
        with urllib.request.urlopen(url + "/internal/profile-startup") as response:
            records = json.loads(response.read())["records"]  # A1111's startup profile of this start
        assert {"prepare environment", "import torch and Sumi", "load scripts", "create ui"} <= set(records)
        assert f"load scripts/{EXT}/test_ext.py" in records
        context = chromium.new_context()
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
        assert wait_until_up(url, lambda: proc.poll() is None)["boot_id"] != first
        assert json.loads((data / "config.json").read_text())["disabled_extensions"] == [EXT]
        with urllib.request.urlopen(url + "/sdapi/v1/scripts") as response:
            assert "test rewrite" not in json.loads(response.read())["txt2img"]
        stop = urllib.request.Request(url + "/sdapi/v1/server-stop", method="POST")
        with urllib.request.urlopen(stop) as response:
            assert response.read() == b"Stopping."
        assert proc.wait(timeout=60) == 0  # A1111's --api-server-stop: the server ends itself
        assert (tmp_path / "webui.log").read_text().count("Startup time: ") == 2  # both starts said it
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
