"""The Extensions tab's Available and Backup/Restore sub-tabs and the commits shown by Check for
updates, through their handlers on a real App with local git repositories and an index.json file."""

from __future__ import annotations

import json

import pytest

from modules.sumi.frontends.gradio import extensions_available, extensions_backup, extensions_tab
from modules.sumi.services.extensions.config_states import CURRENT
from tests.fixtures.files import git, git_identity, git_repository, write_files  # noqa: F401 (git_identity: autouse fixture)


@pytest.fixture
def setup(tmp_path, make_app, monkeypatch):
    """An App (not started), two source repositories and an index.json listing them."""
    repos = {
        n: git_repository(write_files(tmp_path / "src" / n, {"a.txt": n})) for n in ("alpha", "beta.git")
    }
    index = {
        "tags": {"script": "script", "ads": "ads"},
        "extensions": [
            {"name": "Alpha", "url": str(repos["alpha"]), "description": "first", "tags": ["script"], "added": "2024-01-02"},
            {"name": "Beta", "url": str(repos["beta.git"]), "description": "second <b>", "tags": ["ads"], "added": "2023-01-01"},
        ],
    }  # fmt: skip
    index_file = tmp_path / "index.json"
    index_file.write_text(json.dumps(index))
    app = make_app(tmp_path / "data", start=False)
    monkeypatch.setattr(app, "request_restart", lambda: False)
    return app, repos, index_file


def test_available_loads_filters_and_installs_from_the_index(setup):
    app, repos, index_file = setup
    index, table, hide, message, search = extensions_available.load_index(
        app, str(index_file), ["ads"], "a-z"
    )
    assert message == "" and search == ""
    assert hide["choices"] == ["script", "ads", "installed"] and hide["value"] == ["ads"]
    assert "Alpha" in table and "Beta" not in table and "Extension hidden: 1" in table
    table, _ = extensions_available.refresh(app, index, [], "z-a", "")
    assert table.index("Beta") < table.index("Alpha") and "second &lt;b&gt;" in table  # escaped

    table, installed, message = extensions_available.install_from_index(
        app, index, str(repos["beta.git"]), [], "a-z", ""
    )
    assert "Installed Beta into" in message and (app.paths.extensions_dir / "beta" / "a.txt").is_file()
    assert 'data-extension="beta"' in installed
    assert 'aria-label="Installed Beta" disabled' in table  # now marked installed
    table, _ = extensions_available.refresh(app, index, ["installed"], "a-z", "")
    assert "Beta" not in table

    _, _, message = extensions_available.install_from_index(app, index, "/somewhere/else", [], "a-z", "")
    assert "is not in the loaded extension index" in message
    assert not (app.paths.extensions_dir / "else").exists()
    _, _, _, message, _ = extensions_available.load_index(app, str(index_file) + ".missing", [], "a-z")
    assert "Cannot read the extension index" in message


def test_check_for_updates_shows_current_and_remote_commits(setup):
    app, repos, _ = setup
    app.extensions.install_from_url(str(repos["alpha"]))
    (repos["alpha"] / "b.txt").write_text("b")
    git(repos["alpha"], "add", "-A")
    git(repos["alpha"], "commit", "-q", "-m", "two")
    new = git(repos["alpha"], "rev-parse", "HEAD")
    app.extensions.refresh()
    _, table = extensions_tab.check_updates(app)
    assert "new commits" in table and f"1 new commit, remote: {new[:8]}" in table


def test_backup_save_show_and_restore_with_confirmation(setup):
    app, repos, _ = setup
    app.extensions.install_from_url(str(repos["alpha"]))
    saved, message, details = extensions_backup.save(app, "known good")
    label = saved["value"]
    assert label.startswith("known good: ") and saved["choices"][0] == CURRENT and "Saved current" in message
    assert "Nothing: the extensions are as saved." in details

    app.extensions.set_disabled(["alpha"])
    details = extensions_backup.show(app, label)
    assert "<b>alpha</b>: will be enabled" in details and "sumi-changed" in details

    message, _, _ = extensions_backup.restore(app, False, label)
    assert "Cancelled." in message and app.options.disabled_extensions == ["alpha"]
    assert "Select a config" in extensions_backup.restore(app, True, CURRENT)[0]

    message, details, installed = extensions_backup.restore(app, True, label)
    assert "✓ <b>alpha</b>: will be enabled" in message and extensions_tab.RESTART_NOTE in message
    assert app.options.disabled_extensions == [] and "Nothing: the extensions are as saved." in details
    assert 'data-extension="alpha"' in installed


def test_with_listen_the_index_is_not_read_and_nothing_is_restored(tmp_path, make_app):
    index_file = tmp_path / "index.json"
    index_file.write_text(json.dumps({"extensions": [{"name": "A", "url": "https://github.com/u/a"}]}))
    app = make_app(tmp_path / "data", "--listen", start=False)
    *_, message, _ = extensions_available.load_index(app, str(index_file), [], "a-z")
    assert "extension access disabled because of command line flags" in message
    index = extensions_available.read_index(str(index_file))
    assert 'aria-label="Install A" disabled' in extensions_available.render(app, index, [], "a-z", "")
    _, _, message = extensions_available.install_from_index(
        app, index, "https://github.com/u/a", [], "a-z", ""
    )
    assert "extension access disabled" in message
    path = extensions_backup.config_states(app).save("x")  # saving a backup changes nothing: allowed
    message, _, _ = extensions_backup.restore(app, True, extensions_backup.choices(app)[1])
    assert "extension access disabled" in message and path.is_file()
