"""The Extensions tab's Available and Backup/Restore sub-tabs in Chromium: load an index.json file,
filter, order, search and install from it; save a backup, see what restoring it changes, confirm and
restore (local git repositories only)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.app_support import serve
from tests.browser_support import open_page
from tests.fixtures.files import GIT_IDENTITY, git_repository, write_files


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(
        ["git", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory, make_module_app, chromium):
    root = tmp_path_factory.mktemp("extensions-tab")
    repos = {
        n: git_repository(write_files(root / "src" / n, {"a.txt": n})) for n in ("alpha", "beta", "gamma")
    }
    index = {
        "tags": {"script": "adds a script", "tab": "adds a tab", "ads": "has ads"},
        "extensions": [
            {"name": "Alpha", "url": str(repos["alpha"]), "description": "installed already",
             "tags": ["script"], "added": "2024-03-01"},
            {"name": "Beta", "url": str(repos["beta"]), "description": "a tab", "tags": ["tab"], "added": "2024-01-01"},
            {"name": "Gamma", "url": str(repos["gamma"]), "description": "ads", "tags": ["ads"], "added": "2024-02-01"},
        ],
    }  # fmt: skip
    (root / "index.json").write_text(json.dumps(index))
    app = make_module_app(root / "data")
    app.extensions.install_from_url(str(repos["alpha"]))
    app.extensions.refresh()
    with serve(app) as url, open_page(chromium, url) as page:
        page.get_by_role("tab", name="Extensions").click()
        yield page, app, root, repos


def _rows(page) -> list[str]:
    return page.locator("#available_extensions tbody tr").evaluate_all(
        "rs => rs.map(r => r.dataset.extension)"
    )


def test_available_loads_an_index_file_filters_and_installs(site):
    page, app, root, _ = site
    page.get_by_role("tab", name="Available").click()
    page.fill("#extensions_index_url textarea, #extensions_index_url input", str(root / "index.json"))
    page.click("#extensions_available_load")
    page.locator("#available_extensions").wait_for()
    assert _rows(page) == ["Beta"]  # Alpha is installed, Gamma has ads: hidden by default
    assert "Extension hidden: 2" in page.inner_text("#extensions_available_html")
    page.locator("#extensions_hide_tags").get_by_label("installed").uncheck()
    page.wait_for_function("() => document.querySelectorAll('#available_extensions tbody tr').length === 2")
    assert _rows(page) == ["Alpha", "Beta"]  # newest first
    assert page.get_by_role("button", name="Installed Alpha").is_disabled()
    page.locator("#extensions_order").get_by_label("z-a").check()
    page.wait_for_function(
        "() => document.querySelector('#available_extensions tbody tr').dataset.extension === 'Beta'"
    )
    page.fill("#extensions_search textarea, #extensions_search input", "TAB")
    page.wait_for_function("() => document.querySelectorAll('#available_extensions tbody tr').length === 1")
    page.get_by_role("button", name="Install Beta").click()
    page.get_by_text("Installed Beta into").wait_for()
    assert (app.paths.extensions_dir / "beta" / "a.txt").read_text() == "beta"
    page.get_by_role("button", name="Installed Beta").wait_for()
    page.get_by_role("tab", name="Installed", exact=True).click()
    page.locator('#extensions_installed_html tr[data-extension="beta"]').wait_for()


def test_backup_then_restore_after_confirming_the_changes(site):
    page, app, _, repos = site
    page.get_by_role("tab", name="Backup/Restore").click()
    page.fill("#extension_backup_name textarea, #extension_backup_name input", "before update")
    page.click("#extension_backup_save")
    page.get_by_text("Saved current webui/extension state").wait_for()
    saved_commit = _git(repos["alpha"], "rev-parse", "HEAD")
    assert "Nothing: the extensions are as saved." in page.inner_text("#extension_backup_details")
    # alpha moves on: a new commit in its repository, updated in the extension folder
    write_files(repos["alpha"], {"b.txt": "2"})
    _git(repos["alpha"], "add", "-A")
    _git(repos["alpha"], "commit", "-q", "-m", "two")
    app.extensions.update(app.extensions.read_info(app.extensions.get("alpha")))
    page.click("#refresh_config_states")
    page.locator("#extension_backup_saved_configs input").click()
    page.get_by_role("option", name="before update").click()
    changes = page.locator("#extension_backup_changes")
    changes.get_by_text(f"→ {saved_commit[:8]}").wait_for()

    messages: list[str] = []
    page.once("dialog", lambda d: (messages.append(d.message), d.dismiss()))
    page.click("#extension_backup_restore")
    page.get_by_text("Cancelled.").wait_for()
    assert (app.extensions.get("alpha").path / "b.txt").exists()

    page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
    page.click("#extension_backup_restore")
    page.locator(".sumi-restore-results").get_by_text("alpha").wait_for()
    assert (
        'Restore the extensions to "before update' in messages[0] and f"→ {saved_commit[:8]}" in messages[0]
    )
    assert not (app.extensions.get("alpha").path / "b.txt").exists()
    assert _git(app.extensions.get("alpha").path, "rev-parse", "HEAD") == saved_commit
    page.get_by_text("Nothing: the extensions are as saved.").wait_for()
