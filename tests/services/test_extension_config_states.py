"""Backup/Restore of the extension state (A1111's config states) and "Check for updates" with the
remote's commit, against real local git repositories cloned from local paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modules.sumi.services.extensions.config_states import ConfigState, ConfigStates
from modules.sumi.services.extensions.manager import ExtensionManager
from modules.sumi.services.extensions.model import ExtensionAccessError, ExtensionError
from modules.sumi.services.settings import flags as cmd_args
from modules.sumi.services.settings.options import Options
from tests.fixtures.files import git, git_identity, write_files  # noqa: F401 (git_identity: autouse fixture)


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    write_files(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def origin(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "src" / name
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, {"a.txt": "1"}, "initial")
    return path


def manager(tmp_path: Path, *argv: str) -> ExtensionManager:
    data = tmp_path / "data"
    (data / "extensions").mkdir(parents=True, exist_ok=True)
    args = cmd_args.parse_args(["--data-dir", str(data), *argv])
    return ExtensionManager(
        data / "extensions",
        tmp_path / "builtin",
        Options(),
        args,
        data_dir=data,
        config_file=data / "config.json",
    )


@pytest.fixture
def two_extensions(tmp_path):
    """A manager with extensions `one` and `two` installed from local repositories (one commit each)."""
    m = manager(tmp_path)
    origins = {n: origin(tmp_path, n) for n in ("one", "two")}
    for path in origins.values():
        m.install_from_url(str(path))
    return m, origins


def test_check_for_updates_shows_the_remote_commit_its_date_and_how_far_ahead(two_extensions):
    m, origins = two_extensions
    one = m.read_info(m.get("one"))
    assert m.check_for_updates(one) == "latest"
    assert one.remote_commit_hash == one.commit_hash and one.remote_commits_ahead == 0
    installed_at = one.commit_hash
    commit(origins["one"], {"b.txt": "2"})
    newest = commit(origins["one"], {"c.txt": "3"})
    assert m.check_for_updates(one) == "new commits"
    assert one.remote_commit_hash == newest and one.remote_commits_ahead == 2
    assert one.remote_commit_date == int(git(origins["one"], "log", "-1", "--format=%ct"))
    # reading the date changed nothing: files, HEAD and the remote-tracking branch are where they were
    assert git(one.path, "rev-parse", "HEAD", "refs/remotes/origin/main").split() == [installed_at] * 2
    assert not (one.path / "c.txt").exists()
    assert m.check_for_updates(one) == "new commits"  # still, until it is updated


def test_save_list_and_read_a1111_config_states(two_extensions, tmp_path):
    m, _ = two_extensions
    states = ConfigStates(m, tmp_path / "not-a-repo")
    path = states.save("before ../../evil")
    assert path.parent == m.data_dir / "config_states" and "/" not in path.name[:-5].split("_", 2)[-1]
    saved = json.loads(path.read_text())
    assert saved["name"] == "before ../../evil" and isinstance(saved["created_at"], float)
    assert saved["webui"] == {"remote": None, "commit_hash": None, "commit_date": None, "branch": None}
    one = saved["extensions"]["one"]
    assert one["enabled"] is True and one["branch"] == "main" and len(one["commit_hash"]) == 40
    assert one["remote"] == str(tmp_path / "src" / "one") and one["is_builtin"] is False
    # an A1111 file (its format) and a broken file beside it
    a1111 = {"created_at": 1_600_000_000.0, "name": "From A1111", "webui": {}, "extensions": {}}
    (path.parent / "a1111.json").write_text(json.dumps(a1111))
    (path.parent / "broken.json").write_text("{")
    listed = states.list()
    assert [s.name for s in listed] == ["before ../../evil", "From A1111"]  # newest first
    assert listed[1].label == "From A1111: Sun Sep 13 12:26:40 2020"
    assert states.get(listed[1].label).path == path.parent / "a1111.json"
    assert any("broken.json" in p for p in states.problems)
    with pytest.raises(ExtensionError, match="No saved config"):
        states.get("nothing: here")


def test_restore_plans_then_checks_out_commits_and_sets_enabled(two_extensions, tmp_path):
    m, origins = two_extensions
    states = ConfigStates(m, tmp_path)
    backup = states.get(states.list()[0].label) if states.list() else None
    assert backup is None
    states.save("good")
    good = states.list()[0]
    # afterwards: `one` is updated, `two` disabled, and a third extension is installed
    commit(origins["one"], {"b.txt": "2"})
    m.update(m.read_info(m.get("one")))
    m.set_disabled(["two"])
    m.install_from_url(str(origin(tmp_path, "three")))
    (m.get("one").path / "a.txt").write_text("edited")  # a local change the restore will drop

    plan = {c.name: c for c in states.plan(good)}
    assert set(plan) == {"one", "two", "three"}
    assert plan["one"].commit == good.extensions["one"]["commit_hash"]
    assert "its local changes will be lost" in plan["one"].changes
    assert plan["two"].changes == ["will be enabled"] and plan["two"].commit is None
    assert plan["three"].changes == ["not in the backup: will be disabled"]

    results = {r.name: r for r in states.restore(good)}
    assert all(r.ok for r in results.values()), results
    one = m.read_info(m.get("one"))
    assert one.commit_hash == good.extensions["one"]["commit_hash"] and one.branch == "main"
    assert not (one.path / "b.txt").exists() and (one.path / "a.txt").read_text() == "1"
    assert json.loads((m.data_dir / "config.json").read_text())["disabled_extensions"] == ["three"]
    assert [e.name for e in m.list() if e.enabled] == ["one", "two"]
    assert states.plan(good) == []  # nothing left to change
    assert [s.name for s in states.list()][0] == "Backup (pre-restore)"


def test_restore_reports_what_it_cannot_do(two_extensions, tmp_path):
    m, _ = two_extensions
    state = ConfigState.from_json(
        {
            "created_at": 1.0,
            "extensions": {
                "one": {"enabled": True, "commit_hash": "0123456789abcdef0123456789abcdef01234567"},
                "two": {"enabled": True, "commit_hash": "--upload-pack=touch /tmp/x"},
                "gone": {
                    "enabled": True,
                    "remote": "https://example.invalid/gone",
                    "commit_hash": "ab12cd34",
                },
            },
        }
    )
    results = {r.name: r for r in ConfigStates(m, tmp_path).restore(state)}
    assert not results["one"].ok and "is in none of its remotes" in results["one"].message
    assert not results["two"].ok and "is not a commit hash" in results["two"].message
    assert (
        not results["gone"].ok
        and results["gone"].message == "not installed: install it from https://example.invalid/gone"
    )
    with pytest.raises(ExtensionError, match="not a config state"):
        ConfigState.from_json({"extensions": {}})


def test_restore_needs_extension_access(tmp_path):
    m = manager(tmp_path, "--listen")
    state = ConfigState.from_json({"created_at": 1.0, "extensions": {}})
    with pytest.raises(ExtensionAccessError):
        ConfigStates(m, tmp_path).restore(state)
