"""An A1111-style extension from a local git repository, end to end (issue 6, point 7), without a browser.

The extension (tests/fixtures/extensions.py) is installed through the Extensions tab's handler
(`ExtensionManager.install_from_url`), then a fresh server on the same data folder (that is what a
restart does) parses its preload.py flag the way `webui.main` does, and the extension works through the
API: its scripts, setting and FastAPI route. A broken extension beside it (a script that raises at
import, an `on_ui_tabs` that raises, a duplicate setting and tab) is named for the Extensions tab and
the app still generates. The same extension in the browser, and a restart of a real `webui.py` after
disabling it: tests/browser/test_extension_browser.py.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from modules.sumi.frontends.gradio import extensions_tab
from modules.sumi.services.extensions.model import ACCESS_DENIED
from tests.app_support import serve
from tests.fixtures.extensions import BROKEN, EXT, install_test_extensions

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler", "prompt": "a fox"}


# -- install --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, make_module_app) -> Path:
    return install_test_extensions(tmp_path_factory.mktemp("extension-e2e"), make_module_app)


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
    """(url, App) of a fresh server on the same data folder: what a restart gives."""
    app = make_module_app(data_dir, "--api", "--test-ext-flag", preload=True)
    with serve(app) as url:
        yield url, app


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
