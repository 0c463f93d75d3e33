"""The extension manager with real local git repositories: discovery, order, enable state, install,
install.py, updates, the --listen gate and preload.py."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from modules.sumi.services.extensions.install import (
    InstallScriptError,
    core_constraints,
    dirname_from_url,
    forwarded_flags,
    normalize_git_url,
)
from modules.sumi.services.extensions.manager import ExtensionManager, topological_sort
from modules.sumi.services.extensions.model import (
    ACCESS_DENIED,
    ExtensionAccessError,
    ExtensionError,
    extension_access_allowed,
)
from modules.sumi.services.settings import flags as cmd_args
from modules.sumi.services.settings.options import Options
from tests.fixtures.files import write_files


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch):
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Sumi Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.invalid")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "commit.gpgsign=false", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository on branch main with `files` committed."""
    path.mkdir(parents=True)
    write_files(path, files)
    _git(path, "init", "-q", "-b", "main")
    commit(path, {}, "initial")
    return path


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    write_files(repo, files)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD").strip()


def make_manager(tmp_path: Path, argv: list[str] | None = None, options: Options | None = None):
    data = tmp_path / "data"
    (data / "extensions").mkdir(parents=True, exist_ok=True)
    args = cmd_args.parse_args(["--data-dir", str(data), *(argv or [])])
    return ExtensionManager(
        data / "extensions",
        tmp_path / "builtin",
        options or Options(),
        args,
        data_dir=data,
        config_file=data / "config.json",
    )


def folder(tmp_path: Path, name: str, files: dict[str, str] | None = None, builtin: bool = False) -> Path:
    path = (tmp_path / "builtin" if builtin else tmp_path / "data" / "extensions") / name
    path.mkdir(parents=True, exist_ok=True)
    write_files(path, files or {})
    return path


# --- discovery and order -----------------------------------------------------------------------------


def test_builtins_come_first_then_folders_by_name(tmp_path):
    m = make_manager(tmp_path)
    folder(tmp_path, "zz-lora", builtin=True)
    for name in ("b-ext", "a-ext", ".hidden"):
        folder(tmp_path, name)
    (tmp_path / "data" / "extensions" / "not-a-folder.py").write_text("")
    exts = m.list(refresh=True)
    assert [(e.name, e.is_builtin) for e in exts] == [("zz-lora", True), ("a-ext", False), ("b-ext", False)]
    assert all(e.enabled for e in exts) and m.active() == exts
    assert m.get("a-ext").path == tmp_path / "data" / "extensions" / "a-ext"
    assert m.get("builtin/zz-lora").is_builtin and m.get("missing") is None


def test_metadata_orders_scripts_like_a1111(tmp_path):
    m = make_manager(tmp_path)
    folder(tmp_path, "lora", {"scripts/lora_script.py": ""}, builtin=True)
    folder(
        tmp_path,
        "a-first",
        {
            "scripts/one.py": "",
            "scripts/zero.py": "",
            "metadata.ini": "[Extension]\nRequires = third-thing\n\n[scripts/one.py]\nAfter = nothing|b-second\n",
        },
    )
    folder(tmp_path, "b-second", {"scripts/two.py": "", "scripts/notes.txt": ""})
    folder(
        tmp_path,
        "c-third",
        {
            "scripts/three.py": "",
            "metadata.ini": "[Extension]\nName = Third-Thing\n\n[scripts]\nBefore = a-first\n",
        },
    )
    root = tmp_path / "root_scripts"
    write_files(root, {"prompt_matrix.py": "", "xyz_grid.py": ""})
    m.refresh()
    assert m.get("c-third").canonical_name == "third-thing"
    order = [(f.extension.name if f.extension else None, f.path.name) for f in m.script_files(root_dir=root)]
    assert order == [
        (None, "prompt_matrix.py"),
        (None, "xyz_grid.py"),
        ("lora", "lora_script.py"),
        ("b-second", "two.py"),
        ("c-third", "three.py"),
        ("a-first", "one.py"),
        ("a-first", "zero.py"),
    ]
    assert m.problems == []  # "third-thing" resolves through [Extension] Name


def test_missing_requirement_duplicate_name_and_bad_metadata_are_reported(tmp_path):
    m = make_manager(tmp_path)
    folder(tmp_path, "needs", {"metadata.ini": "[Extension]\nRequires = not-here, off-ext\n"})
    folder(tmp_path, "off-ext")
    folder(tmp_path, "twin-a", {"metadata.ini": "[Extension]\nName = twin\n"})
    folder(tmp_path, "twin-b", {"metadata.ini": "[Extension]\nName = TWIN\n"})
    folder(tmp_path, "broken", {"metadata.ini": "this is not ini\n"})
    m.options.disabled_extensions = ["off-ext"]
    names = [e.name for e in m.list(refresh=True)]
    assert "twin-a" in names and "twin-b" not in names and "broken" in names
    text = "\n".join(m.problems)
    assert 'requires "not-here" which is not installed' in text
    assert 'requires "off-ext" which is disabled' in text
    assert 'Duplicate canonical name "twin"' in text and "metadata.ini of extension broken" in text


def test_javascript_and_style_files_of_active_extensions(tmp_path):
    m = make_manager(tmp_path)
    folder(
        tmp_path, "a", {"javascript/b.js": "", "javascript/a.js": "", "javascript/m.mjs": "", "style.css": ""}
    )
    folder(tmp_path, "b", {"javascript/c.js": ""})
    folder(tmp_path, "off", {"javascript/x.js": "", "style.css": ""})
    m.options.disabled_extensions = ["off"]
    m.refresh()
    assert [(f.extension.name, f.path.name) for f in m.javascript_files()] == [
        ("a", "a.js"),
        ("a", "b.js"),
        ("b", "c.js"),
    ]
    assert [f.path.name for f in m.javascript_files(".mjs")] == ["m.mjs"]
    assert [f.path for f in m.style_files()] == [tmp_path / "data" / "extensions" / "a" / "style.css"]


def test_built_from_data_paths(tmp_path):
    from modules.sumi.services.settings.paths import DataPaths

    args = cmd_args.parse_args(["--data-dir", str(tmp_path / "data")])
    paths = DataPaths.from_args(args, tmp_path / "repo")
    m = ExtensionManager.from_paths(paths, Options(), args)
    assert m.extensions_dir == tmp_path / "data" / "extensions" and m.tmp_dir == tmp_path / "data" / "tmp"
    builtin = tmp_path / "repo" / "modules" / "sumi" / "extensions_builtin"
    assert m.builtin_dir == builtin == paths.extensions_builtin_dir
    assert m.config_file == paths.config_file and m.cache_file == paths.cache_file
    assert m.list() == [] and m.active() == []


def test_topological_sort_ignores_unknown_names_and_cycles():
    assert topological_sort({"a": ["b"], "b": [], "c": ["zz"]}) == ["b", "a", "c"]
    assert sorted(topological_sort({"a": ["b"], "b": ["a"]})) == ["a", "b"]


# --- enable state ------------------------------------------------------------------------------------


def test_disable_by_option_and_by_flags(tmp_path):
    folder(tmp_path, "lora", builtin=True)
    folder(tmp_path, "a")
    folder(tmp_path, "b")
    opts = Options()
    m = make_manager(tmp_path, options=opts)
    opts.disabled_extensions = ["a"]
    assert [e.name for e in m.list(refresh=True)] == ["lora", "a", "b"]
    assert [e.name for e in m.active()] == ["lora", "b"]
    opts.disable_all_extensions = "extra"
    assert [e.name for e in m.active()] == ["lora"]
    opts.disable_all_extensions = "all"
    assert m.active() == [] and m.script_files() == []
    opts.disable_all_extensions = "none"
    assert [e.name for e in make_manager(tmp_path, ["--disable-extra-extensions"], opts).active()] == ["lora"]
    assert make_manager(tmp_path, ["--disable-all-extensions"], opts).active() == []


def test_set_disabled_writes_the_options_and_config_json(tmp_path):
    folder(tmp_path, "a")
    folder(tmp_path, "b")
    m = make_manager(tmp_path)
    m.refresh()
    m.set_disabled(["b", "b"], disable_all="extra")
    assert m.options.disabled_extensions == ["b"] and m.options.disable_all_extensions == "extra"
    assert [e.enabled for e in m.list()] == [True, False]
    saved = json.loads((tmp_path / "data" / "config.json").read_text())
    assert saved["disabled_extensions"] == ["b"] and saved["disable_all_extensions"] == "extra"
    with pytest.raises(ExtensionError, match="must be one of"):
        m.set_disabled([], disable_all="some")


# --- install from URL --------------------------------------------------------------------------------

INSTALL_PY = """\
import os, sys
import launch
print("pytest installed:", launch.is_installed("pytest"))
print("no such package:", launch.is_installed("surely-not-a-package-xyz"))
print("cwd:", os.path.basename(os.getcwd()))
print("data dir:", launch.args.data_dir)
with open(os.path.join(os.path.dirname(__file__), "runs.txt"), "a") as f:
    f.write("run\\n")
"""


def test_default_folder_name_and_url_normalisation():
    assert dirname_from_url("https://x/y/sd-webui-foo.git") == "sd-webui-foo"
    assert dirname_from_url("https://github.com/u/sd-webui-foo/") == "sd-webui-foo"
    assert dirname_from_url("git@github.com:u/my.gitext.git") == "myext"
    assert dirname_from_url(r"C:\repos\thing") == "thing"
    assert (
        normalize_git_url("https://x/y/foo.git/") == normalize_git_url("https://x/y/foo") == "https://x/y/foo"
    )
    assert normalize_git_url(None) == ""


def test_install_from_local_path_runs_install_py(tmp_path):
    origin = make_repo(
        tmp_path / "src" / "sd-webui-foo.git", {"scripts/foo.py": "", "install.py": INSTALL_PY}
    )
    m = make_manager(tmp_path)
    result = m.install_from_url(str(origin))
    target = tmp_path / "data" / "extensions" / "sd-webui-foo"
    assert result.name == "sd-webui-foo" and result.path == target
    assert (target / "scripts" / "foo.py").is_file() and (target / ".git").is_dir()
    assert "pytest installed: True" in result.output and "no such package: False" in result.output
    assert "cwd: sd-webui-foo" in result.output
    assert f"data dir: {tmp_path / 'data'}" in result.output  # Sumi's flags reach launch.args
    ext = m.read_info(m.get("sd-webui-foo"))
    assert ext.remote == str(origin) and ext.branch == "main"
    assert ext.commit_hash == _git(origin, "rev-parse", "HEAD").strip() and ext.version == ext.commit_hash[:8]
    assert isinstance(ext.commit_date, int) and ext.have_info_from_repo
    assert not (tmp_path / "data" / "tmp").exists()


def test_install_from_file_url_with_branch_and_folder_name(tmp_path):
    origin = make_repo(tmp_path / "src" / "ext", {"scripts/a.py": ""})
    _git(origin, "checkout", "-q", "-b", "dev")
    commit(origin, {"dev_only.txt": "dev"})
    _git(origin, "checkout", "-q", "main")
    m = make_manager(tmp_path)
    result = m.install_from_url(f"file://{origin}", branch="dev", dirname="custom")
    assert result.name == "custom" and (result.path / "dev_only.txt").is_file() and result.output == ""
    ext = m.read_info(m.get("custom"))
    assert ext.branch == "dev" and ext.remote == f"file://{origin}"


def test_install_refuses_existing_folder_and_same_url(tmp_path):
    origin = make_repo(tmp_path / "src" / "thing", {"a.txt": ""})
    m = make_manager(tmp_path)
    m.install_from_url(str(origin))
    with pytest.raises(ExtensionError, match="Extension directory already exists"):
        m.install_from_url(str(origin))
    with pytest.raises(ExtensionError, match="Extension with this URL is already installed"):
        m.install_from_url(f"{origin}.git/", dirname="other")
    with pytest.raises(ExtensionError, match="Not a usable folder name"):
        m.install_from_url(str(origin), dirname="../escape")
    with pytest.raises(ExtensionError, match="No URL specified"):
        m.install_from_url("  ")
    assert [e.name for e in m.list(refresh=True)] == ["thing"]


def test_failing_clone_leaves_nothing_behind(tmp_path):
    m = make_manager(tmp_path)
    with pytest.raises(ExtensionError, match="Cloning .* failed: .*(does not exist|not .*repository)"):
        m.install_from_url(str(tmp_path / "no-such-repo"))
    origin = make_repo(tmp_path / "src" / "real", {"a.txt": ""})
    with pytest.raises(ExtensionError, match="no-such-branch"):
        m.install_from_url(str(origin), branch="no-such-branch")
    with pytest.raises(ExtensionError, match="failed"):
        m.install_from_url("https://invalid.invalid/u/repo.git")  # no network: fails fast, no prompt
    assert list((tmp_path / "data" / "extensions").iterdir()) == []
    assert not (tmp_path / "data" / "tmp").exists() or list((tmp_path / "data" / "tmp").iterdir()) == []


def test_failing_install_py_reports_its_output_and_keeps_the_extension(tmp_path):
    failing = "print('step 1 ok')\nprint('step 2 ok')\nraise SystemExit('could not find CUDA toolkit')\n"
    origin = make_repo(tmp_path / "src" / "bad-install", {"install.py": failing})
    good = folder(tmp_path, "good", {"scripts/g.py": ""})
    m = make_manager(tmp_path)
    with pytest.raises(InstallScriptError) as info:
        m.install_from_url(str(origin))
    message = str(info.value)
    assert "Installed bad-install into" in message and "install.py of extension bad-install failed" in message
    assert "step 2 ok" in message and "could not find CUDA toolkit" in message
    assert "step 1 ok" in info.value.output
    assert [e.name for e in m.active()] == ["bad-install", "good"]
    assert m.script_files()[0].path == good / "scripts" / "g.py"


def test_install_scripts_at_start_run_only_when_new_or_changed(tmp_path):
    ext = folder(tmp_path, "counter", {"install.py": INSTALL_PY})
    folder(tmp_path, "broken", {"install.py": "raise RuntimeError('boom')\n"})
    folder(tmp_path, "off", {"install.py": INSTALL_PY})
    m = make_manager(tmp_path)
    m.options.disabled_extensions = ["off"]
    m.refresh()
    runs = ext / "runs.txt"
    failures = m.run_install_scripts_at_start()
    assert len(failures) == 1 and "broken" in failures[0] and "RuntimeError: boom" in failures[0]
    assert (
        runs.read_text() == "run\n" and not (tmp_path / "data" / "extensions" / "off" / "runs.txt").exists()
    )
    assert len(m.run_install_scripts_at_start()) == 1  # broken runs again; counter is unchanged
    assert runs.read_text() == "run\n"
    (ext / "requirements.txt").write_text("tqdm\n")
    m.run_install_scripts_at_start()
    assert runs.read_text() == "run\nrun\n"
    m.run_install_scripts_at_start(force=True)
    assert runs.read_text() == "run\nrun\nrun\n"
    assert make_manager(tmp_path, ["--skip-install"]).run_install_scripts_at_start(force=True) == []
    assert runs.read_text().count("run") == 3
    cache = json.loads((tmp_path / "data" / "cache.json").read_text())
    assert set(cache["sumi-extension-installers"]) == {"counter"}


# --- updates -----------------------------------------------------------------------------------------


def test_check_for_updates_and_update(tmp_path):
    origin = make_repo(tmp_path / "src" / "upd", {"a.txt": "1"})
    m = make_manager(tmp_path)
    m.install_from_url(str(origin))
    ext = m.get("upd")
    assert m.check_for_updates(ext) == "latest" and not ext.can_update
    new_head = commit(origin, {"b.txt": "2"})
    assert m.check_for_updates(ext) == "new commits" and ext.can_update
    assert m.check_all_for_updates() == {"upd": "new commits"}
    _git(ext.path, "fetch", "-q")
    assert m.check_for_updates(ext) == "behind HEAD" and ext.can_update
    m.update(ext)
    assert ext.commit_hash == new_head and ext.status == "latest" and (ext.path / "b.txt").is_file()
    assert m.check_for_updates(ext) == "latest"


def test_update_errors_are_clear(tmp_path):
    folder(tmp_path, "plain")
    origin = make_repo(tmp_path / "src" / "gone", {"a.txt": ""})
    m = make_manager(tmp_path)
    m.install_from_url(str(origin))
    plain = m.get("plain")
    with pytest.raises(ExtensionError, match="not a git repository with a remote"):
        m.check_for_updates(plain)
    with pytest.raises(ExtensionError, match="not a git repository with a remote"):
        m.update(plain)
    gone = m.get("gone")
    m.read_info(gone)
    origin.rename(tmp_path / "src" / "moved")
    with pytest.raises(ExtensionError, match="Checking gone for updates failed"):
        m.check_for_updates(gone)
    assert gone.status == "unknown (remote error)" and not gone.can_update
    assert "gone" in m.check_all_for_updates()["gone"]


# --- access gate -------------------------------------------------------------------------------------


def test_access_gate_follows_a1111(tmp_path):
    def allowed(*argv: str) -> bool:
        return extension_access_allowed(cmd_args.parse_args(list(argv)))

    assert allowed() and allowed("--server-name", "127.0.0.1") and allowed("--server-name", "localhost")
    assert not allowed("--listen") and not allowed("--share") and not allowed("--ngrok", "token")
    assert not allowed("--server-name", "0.0.0.0") and not allowed("--listen", "--api-auth", "u:p")
    assert allowed("--listen", "--enable-insecure-extension-access")
    assert extension_access_allowed(argparse.Namespace()) and extension_access_allowed(None)

    origin = make_repo(tmp_path / "src" / "ext", {"a.txt": ""})
    m = make_manager(tmp_path, ["--listen"])
    folder(tmp_path, "present")
    present = m.list(refresh=True)[0]
    for action in (
        lambda: m.install_from_url(str(origin)),
        lambda: m.set_disabled(["present"]),
        lambda: m.update(present),
        lambda: m.check_for_updates(present),
    ):
        with pytest.raises(ExtensionAccessError, match=ACCESS_DENIED):
            action()
    assert list((tmp_path / "data" / "extensions").iterdir()) == [present.path]
    insecure = make_manager(tmp_path, ["--listen", "--enable-insecure-extension-access"])
    assert insecure.install_from_url(str(origin)).name == "ext"


# --- preload.py --------------------------------------------------------------------------------------


def test_preload_adds_flags_and_a_failing_preload_is_reported(tmp_path):
    folder(
        tmp_path,
        "adds-flag",
        {"preload.py": "def preload(parser):\n    parser.add_argument('--my-ext-dir')\n"},
    )
    folder(tmp_path, "broken", {"preload.py": "def preload(parser):\n    1 / 0\n"})
    folder(tmp_path, "syntax", {"preload.py": "def preload(parser:\n"})
    folder(
        tmp_path,
        "late",
        {"preload.py": "def preload(parser):\n    parser.add_argument('--late-flag', action='store_true')\n"},
    )
    m = make_manager(tmp_path)
    m.refresh()
    parser = cmd_args.build_parser()
    failures = m.preload(parser)
    assert len(failures) == 2
    assert (
        "extension broken" in failures[0]
        and "ZeroDivisionError" in failures[0]
        and "Traceback" in failures[0]
    )
    assert "extension syntax" in failures[1] and "SyntaxError" in failures[1]
    ns = parser.parse_args(["--my-ext-dir", "x", "--late-flag"])
    assert ns.my_ext_dir == "x" and ns.late_flag


# --- launch ------------------------------------------------------------------------------------------


def test_launch_module_for_install_scripts(monkeypatch):
    import launch

    assert launch.is_installed("pytest") and not launch.is_installed("surely-not-a-package-xyz")
    assert launch.python == sys.executable and launch.dir_repos == "repositories"
    assert launch.repo_dir("x").endswith("repositories/x") and launch.git_tag() == "v1.10.1"
    assert isinstance(launch.args, argparse.Namespace) and hasattr(launch.args, "skip_install")
    assert launch.run("echo hello").strip() == "hello"
    with pytest.raises(RuntimeError, match="(?s)Couldn't do it.*Error code: 3.*stdout: out"):
        launch.run("echo out; exit 3", errdesc="Couldn't do it")
    assert launch.check_run_python("import sys; sys.exit(0)") and not launch.check_run_python(
        "raise SystemExit(1)"
    )
    monkeypatch.setattr(launch, "args", argparse.Namespace(skip_install=True))
    assert launch.run_pip("install surely-not-a-package-xyz", "nothing") is None
    monkeypatch.setattr(launch, "args", argparse.Namespace(skip_install=False))
    assert "pytest" in launch.run_pip("list", "the package list")


def test_launch_args_tolerate_foreign_command_lines():
    import launch

    assert launch._parse_args(["--listen", "--some-extension-flag", "1", "-h"]).listen
    assert launch._parse_args(["--precision", "double"]).precision == "autocast"


def test_flags_forwarded_to_install_py(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = cmd_args.parse_args(
        [
            "--data-dir",
            "rel",
            "--listen",
            "--api-auth",
            "u:secret",
            "--use-cpu",
            "all",
            "--styles-file",
            "a.csv",
        ]
    )
    argv = forwarded_flags(ns)
    assert argv[argv.index("--data-dir") + 1] == str(tmp_path / "rel")
    assert "--listen" in argv and "u:secret" not in " ".join(argv)
    assert argv[argv.index("--use-cpu") + 1] == "all" and str(tmp_path / "a.csv") in argv
    assert cmd_args.parse_args(argv).data_dir == str(tmp_path / "rel")


def test_core_packages_are_pinned_for_pip():
    import importlib.metadata

    pins = core_constraints()
    assert f"numpy=={importlib.metadata.version('numpy')}" in pins
    assert all("==" in line for line in pins)


def test_launch_run_extension_installer_prints_output_and_errors(tmp_path, capsys):
    import launch

    write_files(
        tmp_path / "ok", {"install.py": "import launch\nprint('installed', launch.is_installed('pytest'))\n"}
    )
    write_files(tmp_path / "bad", {"install.py": "raise ValueError('nope')\n"})
    launch.run_extension_installer(str(tmp_path / "ok"))
    launch.run_extension_installer(str(tmp_path / "bad"))
    launch.run_extension_installer(str(tmp_path / "none"))
    out = capsys.readouterr().out
    assert (
        "installed True" in out
        and "Error running install.py for extension" in out
        and "ValueError: nope" in out
    )


def test_install_across_file_systems_and_a_hanging_install_py(tmp_path, monkeypatch):
    import errno

    from modules.sumi.services.extensions import install as extension_install

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(extension_install.os, "rename", cross_device)
    origin = make_repo(tmp_path / "src" / "slow", {"install.py": "import time\ntime.sleep(60)\n"})
    m = make_manager(tmp_path)
    path = extension_install.clone_extension(str(origin), m.extensions_dir, m.tmp_dir)
    assert path == m.extensions_dir / "slow" and (path / ".git").is_dir() and (path / "install.py").is_file()
    assert not m.tmp_dir.exists()
    with pytest.raises(InstallScriptError, match="stopped after 1 s"):
        m.run_install_script(m.list(refresh=True)[0], timeout=1)


PIP_LIKE_FAILURE = """
import sys
for i in range(60):
    print(f"pkg 1.{i} depends on numpy<=2.1.1")
print("The user requested (constraint) numpy==2.4.6")
print("ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/", file=sys.stderr)
sys.exit(1)
"""


def test_a_pip_failure_at_start_is_named_by_pip_s_reason_and_logged_whole(tmp_path, caplog):
    folder(tmp_path, "resolver", {"install.py": PIP_LIKE_FAILURE})
    m = make_manager(tmp_path)
    with caplog.at_level("ERROR"):
        (failure,) = m.run_install_scripts_at_start()
    assert failure.splitlines() == [
        "install.py of extension resolver failed (exit code 1):",
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/",
        "The user requested (constraint) numpy==2.4.6",
    ]
    logged = caplog.text
    assert "pkg 1.0 depends on numpy<=2.1.1" in logged and "pkg 1.59 depends on numpy<=2.1.1" in logged
