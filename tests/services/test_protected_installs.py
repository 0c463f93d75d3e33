"""Protected installs (issue 15, point 5): what extensions' install.py and pip runs may change.

pip runs for real, offline: a folder of tiny wheels (tests/fixtures/wheels.py) is the only index and
everything installs into a temporary target folder, never into the Python running the tests.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from modules.sumi.services.extensions import install
from modules.sumi.services.extensions.conflicts import (
    Conflict,
    conflict_with,
    conflicts_from_pip_output,
    parse_pip_args,
    requirement_lines,
)
from modules.sumi.services.extensions.install import InstallScriptError, constraints_file
from modules.sumi.services.extensions.manager import ExtensionManager
from modules.sumi.services.extensions.pins import core_pins
from modules.sumi.services.settings import flags as cmd_args
from modules.sumi.services.settings.options import Options
from modules.sumi.util.torch_companions import torchvision_for_torch
from tests.fixtures.files import write_files
from tests.fixtures.wheels import pip_sandbox_env, write_wheel

TRANSFORMERS = importlib.metadata.version("transformers")
TORCH = importlib.metadata.version("torch")
WANTED_TORCHVISION = torchvision_for_torch(TORCH)

PIP_RESOLVER_OUTPUT = """
ERROR: Cannot install dynprompts==1.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    dynprompts 1.0 depends on transformers<5
    The user requested pydantic<2
    The user requested (constraint) transformers==5.24.0

To fix this you could try to:
1. loosen the range of package versions you've specified
"""


def _manager(tmp_path: Path) -> ExtensionManager:
    data = tmp_path / "data"
    (data / "extensions").mkdir(parents=True, exist_ok=True)
    args = cmd_args.parse_args(["--data-dir", str(data)])
    return ExtensionManager(data / "extensions", None, Options(), args, data_dir=data)


@pytest.fixture(scope="module")
def wheel_index(tmp_path_factory) -> Path:
    index = tmp_path_factory.mktemp("wheels")
    write_wheel(index, "okpkg", "1.0")
    write_wheel(index, "transformers", "4.46.0")
    write_wheel(index, "dynprompts", "1.0", ["transformers<5"])
    magic = ['transformers<5; extra == "magic"']
    write_wheel(index, "dynextras", "1.0", ["okpkg", *magic], extras=["magic", "plain"])
    assert WANTED_TORCHVISION is not None
    plain = WANTED_TORCHVISION.split("+")[0]
    for version in {"0.99.0", plain, WANTED_TORCHVISION}:
        write_wheel(index, "torchvision", version)
    return index


@pytest.fixture
def sandbox(tmp_path, wheel_index, monkeypatch) -> Path:
    """pip (in install.py subprocesses too) reads only the wheel folder and installs into the target."""
    target = tmp_path / "target"
    for key, value in pip_sandbox_env(wheel_index, target).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SUMI_ALLOW_CORE_PACKAGE_CHANGES", raising=False)
    return target


def _installed(target: Path) -> dict[str, str]:
    return {d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[str(target)])}


# -- the pins --------------------------------------------------------------------------------------------
def test_the_constraints_file_keeps_core_packages_and_torchvision_at_the_build_for_this_torch():
    with constraints_file() as path:
        assert path is not None
        lines = path.read_text().split()
    assert f"torch=={TORCH}" in lines and f"transformers=={TRANSFORMERS}" in lines
    assert f"torchvision=={WANTED_TORCHVISION}" in lines  # pinned even though it is not installed
    assert f"pydantic=={importlib.metadata.version('pydantic')}" in lines
    if TORCH == "2.13.0+cpu":
        assert "torchvision==0.28.0+cpu" in lines


def test_with_core_package_changes_allowed_there_is_no_constraints_file(monkeypatch):
    monkeypatch.setenv("SUMI_ALLOW_CORE_PACKAGE_CHANGES", "1")
    with constraints_file() as path:
        assert path is None


# -- finding what an extension asks for -------------------------------------------------------------------
def test_core_requirements_sumi_does_not_satisfy_are_conflicts():
    pins = {
        "transformers": "==5.24.0",
        "pydantic": "==2.13.4",
        "torchvision": "==0.28.0+cpu",
        "gradio": "==6.31.0",
    }
    assert conflict_with("transformers<5", pins) == ("transformers", "==5.24.0")
    assert conflict_with("pydantic<2", pins) == ("pydantic", "==2.13.4")
    assert conflict_with("gradio==3.41.2", pins) == ("gradio", "==6.31.0")
    assert conflict_with("torchvision==0.29.0", pins) == ("torchvision", "==0.28.0+cpu")
    assert conflict_with("Transformers[torch]>=4.30", pins) is None
    assert conflict_with("torchvision", pins) is None  # pip gets the pinned build
    assert conflict_with("rich<13", pins) is None  # not Sumi's to keep
    assert conflict_with('transformers<5; python_version < "3"', pins) is None  # not for this Python
    assert conflict_with("transformers @ https://example.invalid/t.whl", pins) == ("transformers", "==5.24.0")
    assert conflict_with("torchvision", {"torchvision": "<0"}) == ("torchvision", "<0")
    assert Conflict("x", "torchvision", "torchvision", "<0", "requirements.txt").message() == (
        "Extension x asked for torchvision (requirements.txt); no torchvision is known to work with Sumi's torch"
    )


def test_pip_arguments_are_split_into_requirements_files_and_options(tmp_path):
    parsed = parse_pip_args(
        "install -U 'transformers<5' --index-url https://x.invalid/simple okpkg==1.0 -r req.txt -c c.txt",
        cwd=tmp_path,
    )
    assert parsed.requirements == ["transformers<5", "okpkg==1.0"]
    assert parsed.requirement_files == [tmp_path / "req.txt"]
    assert parsed.without(["transformers<5"]) == (
        "install -U --index-url https://x.invalid/simple okpkg==1.0 -r req.txt -c c.txt"
    )
    assert parse_pip_args("uninstall -y transformers").requirements == []


def test_requirement_files_are_read_with_comments_options_and_nested_files(tmp_path):
    write_files(tmp_path, {"requirements.txt": "# tools\nrich  # pretty\n--extra-index-url x\n-r more.txt\n\n",
                           "more.txt": "pydantic<2\n-r requirements.txt\n"})  # fmt: skip
    assert requirement_lines(tmp_path / "requirements.txt") == ["rich", "pydantic<2"]
    assert requirement_lines(tmp_path / "missing.txt") == []


def test_pips_resolver_output_names_what_was_asked_for_and_by_whom():
    pins = {"transformers": "==5.24.0", "pydantic": "==2.13.4"}
    found = conflicts_from_pip_output(PIP_RESOLVER_OUTPUT, pins, "dyn")
    assert found == [
        Conflict("dyn", "transformers", "transformers<5", "==5.24.0", "pip: dynprompts 1.0 needs it"),
        Conflict("dyn", "pydantic", "pydantic<2", "==2.13.4", "pip: asked for directly"),
    ]
    assert found[0].message() == (
        "Extension dyn asked for transformers<5 (pip: dynprompts 1.0 needs it); Sumi keeps transformers 5.24.0"
    )


def test_a_pinned_build_missing_from_the_index_is_named():
    output = """ERROR: Cannot install torchvision because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested torchvision
    The user requested (constraint) torchvision==0.28.0+cpu

To fix this you could try to:
"""
    found = conflicts_from_pip_output(output, {"torchvision": "==0.28.0+cpu"}, "adetailer")
    assert [c.message() for c in found] == [
        "Extension adetailer asked for torchvision (pip: the package index has no torchvision 0.28.0+cpu); "
        "Sumi keeps torchvision 0.28.0+cpu"
    ]


def test_requirements_txt_conflicts_are_listed_per_extension(tmp_path):
    m = _manager(tmp_path)
    write_files(m.extensions_dir / "old-ext", {"requirements.txt": "transformers<5\npydantic<2\nrich\n"})
    write_files(m.extensions_dir / "fine-ext", {"requirements.txt": "transformers>=4\n"})
    m.refresh()
    found = m.conflicts()
    assert [(c.extension, c.asked, c.source) for c in found] == [
        ("old-ext", "transformers<5", "requirements.txt"),
        ("old-ext", "pydantic<2", "requirements.txt"),
    ]
    assert found[0].kept == f"=={TRANSFORMERS}"
    m.set_disabled(["old-ext"])
    assert m.conflicts() == []  # only extensions that load


# -- pip for real ---------------------------------------------------------------------------------------------
def test_run_pip_leaves_out_a_core_requirement_installs_the_rest_and_reports_it(tmp_path, sandbox):
    m = _manager(tmp_path)
    write_files(
        m.extensions_dir / "dyn-ext",
        {"install.py": "import launch\nlaunch.run_pip('install okpkg \"transformers<5\"', 'okpkg')\n"},
    )
    ext = m.list(refresh=True)[0]
    output = m.run_install_script(ext)
    assert f"Sumi keeps transformers {TRANSFORMERS}: transformers<5 is not installed." in output
    assert _installed(sandbox) == {"okpkg": "1.0"}
    expected = Conflict(
        "dyn-ext", "transformers", "transformers<5", f"=={TRANSFORMERS}", "install.py: launch.run_pip"
    )
    assert m.conflicts() == [expected]
    assert _manager(tmp_path).conflicts() == [expected]  # kept in cache.json for the next start

    write_files(ext.path, {"install.py": "print('nothing to install')\n"})
    m.run_install_script(ext)
    assert m.conflicts() == []  # a fixed install.py clears it


def test_a_dependency_that_needs_another_core_version_fails_in_pip_and_is_reported(tmp_path, sandbox):
    m = _manager(tmp_path)
    write_files(m.extensions_dir / "dep-ext", {"install.py": "import launch\nlaunch.run_pip('install dynprompts', 'dynprompts')\n"})  # fmt: skip
    with pytest.raises(InstallScriptError) as failed:
        m.run_install_script(m.list(refresh=True)[0])
    assert "conflicting dependencies" in failed.value.output
    shown = str(failed.value).splitlines()  # the notice: pip's reason, not its resolver's whole story
    assert shown[0] == "install.py of extension dep-ext failed (exit code 1):"
    assert any(line.startswith("ERROR:") and "conflicting dependencies" in line for line in shown), shown
    assert "RuntimeError: Couldn't install dynprompts." in shown
    assert any(f"transformers=={TRANSFORMERS}" in line for line in shown) and len(shown) <= 14, shown
    assert _installed(sandbox) == {}
    assert m.conflicts() == [
        Conflict(
            "dep-ext", "transformers", "transformers<5", f"=={TRANSFORMERS}", "pip: dynprompts 1.0 needs it"
        )
    ]


INSTALL_LIKE_DYNAMIC_PROMPTS = """
import importlib.metadata, os, subprocess, sys
if not list(importlib.metadata.distributions(name="dynextras", path=[os.environ["PIP_TARGET"]])):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "okpkg", "dynextras[magic,plain]==1.0"])
"""


def test_an_optional_extra_wanting_another_core_version_is_left_out_and_the_rest_installs(tmp_path, sandbox):
    """sd-dynamic-prompts: its install.py runs pip itself for `dynamicprompts[magicprompt]`, whose extra
    wants transformers<5; pip refuses the whole command, so Sumi installs it without that extra,
    names the conflict, and install.py runs again and succeeds."""
    m = _manager(tmp_path)
    write_files(m.extensions_dir / "extras-ext", {"install.py": INSTALL_LIKE_DYNAMIC_PROMPTS})
    output = m.run_install_script(m.list(refresh=True)[0])
    assert "install.py ran again" in output
    assert _installed(sandbox) == {"dynextras": "1.0", "okpkg": "1.0"}  # no transformers 4 in the target
    assert m.conflicts() == [
        Conflict(
            "extras-ext",
            "transformers",
            "transformers<5 (extra 'magic' of dynextras)",
            f"=={TRANSFORMERS}",
            "pip: the extra was left out, the rest installed",
        )
    ]


def test_an_install_py_failing_for_another_reason_still_fails(tmp_path, sandbox):
    m = _manager(tmp_path)
    script = "import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', 'nosuchpkg'])\n"
    write_files(m.extensions_dir / "broken-ext", {"install.py": script})
    with pytest.raises(InstallScriptError):
        m.run_install_script(m.list(refresh=True)[0])
    assert _installed(sandbox) == {}


def test_a_requirements_file_given_to_run_pip_is_checked_and_pip_refuses_it(tmp_path, sandbox):
    m = _manager(tmp_path)
    files = {
        "install.py": "import launch\nlaunch.run_pip('install -r requirements.txt', 'requirements')\n",
        "requirements.txt": "okpkg\ntransformers<5\n",
    }
    write_files(m.extensions_dir / "req-ext", files)
    with pytest.raises(InstallScriptError) as failed:
        m.run_install_script(m.list(refresh=True)[0])
    assert (
        "transformers<5 (install.py: pip -r requirements.txt) conflicts: pip will refuse it"
        in failed.value.output
    )
    assert _installed(sandbox) == {}
    recorded = install.recorded_conflicts(m.cache_file)["req-ext"]
    assert [c.source for c in recorded] == ["install.py: pip -r requirements.txt"]  # pip said it again
    assert [(c.asked, c.source) for c in m.conflicts()] == [("transformers<5", "requirements.txt")]  # once


def test_any_pip_an_install_py_starts_gets_torchvision_built_for_this_torch(tmp_path, sandbox):
    m = _manager(tmp_path)
    script = "import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'pip', 'install', 'torchvision'], check=True)\n"
    write_files(m.extensions_dir / "vision-ext", {"install.py": script})
    m.run_install_script(m.list(refresh=True)[0])
    # the newest (0.99.0) and the plain PyPI-style build are in the index; pip took the pinned one
    assert _installed(sandbox) == {"torchvision": WANTED_TORCHVISION}


def test_uv_pip_in_an_install_py_gets_the_same_constraints(tmp_path, monkeypatch):
    monkeypatch.delenv("UV_CONSTRAINT", raising=False)
    m = _manager(tmp_path)
    script = "import os\nfor p in os.environ['UV_CONSTRAINT'].split():\n    print(open(p).read())\n"
    write_files(m.extensions_dir / "uv-ext", {"install.py": script})
    output = m.run_install_script(m.list(refresh=True)[0])
    assert f"torchvision=={WANTED_TORCHVISION}" in output.split() and f"torch=={TORCH}" in output.split()


def test_a_pip_run_through_launch_run_gets_the_constraints(sandbox, monkeypatch):
    import launch

    monkeypatch.delenv("PIP_CONSTRAINT", raising=False)
    with pytest.raises(RuntimeError, match="torchvision==0.99.0"):
        launch.run(f'"{sys.executable}" -m pip install "torchvision==0.99.0"')
    assert _installed(sandbox) == {}


def test_an_extension_asking_for_another_torchvision_gets_none(tmp_path, sandbox):
    m = _manager(tmp_path)
    write_files(m.extensions_dir / "vision-ext", {"install.py": "import launch\nlaunch.run_pip('install torchvision==0.99.0', 'tv')\n"})  # fmt: skip
    assert "torchvision==0.99.0 is not installed" in m.run_install_script(m.list(refresh=True)[0])
    assert _installed(sandbox) == {}
    assert [c.asked for c in m.conflicts()] == ["torchvision==0.99.0"]
    assert core_pins()["torchvision"] == f"=={WANTED_TORCHVISION}"


def test_run_pip_called_by_an_extension_script_inside_sumi_keeps_the_pins_and_names_it(
    tmp_path, sandbox, capsys
):
    import importlib.util

    m = _manager(tmp_path)
    script = m.extensions_dir / "inproc-ext" / "scripts" / "setup_deps.py"
    write_files(script.parent, {script.name: "import launch\n\ndef ensure():\n    return launch.run_pip('install \"transformers<5\"', 't')\n"})  # fmt: skip
    spec = importlib.util.spec_from_file_location("sumi_test_inproc_ext", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.ensure() == ""  # nothing left to install: pip is not run
    assert f"Sumi keeps transformers {TRANSFORMERS}" in capsys.readouterr().out
    assert _installed(sandbox) == {} and importlib.metadata.version("transformers") == TRANSFORMERS
    m.refresh()
    assert [(c.extension, c.asked) for c in m.conflicts()] == [("inproc-ext", "transformers<5")]


def test_an_install_py_that_reads_versions_through_pkg_resources_runs(tmp_path):
    # sd-webui-oldsix-prompt's install.py, in form: A1111 ships a setuptools that still has pkg_resources
    script = tmp_path / "install.py"
    script.write_text(
        "import pkg_resources\n"
        "import launch\n"
        "version = pkg_resources.get_distribution('pytest').version\n"
        "assert pkg_resources.parse_version(version) >= pkg_resources.parse_version('1.0')\n"
        "print('installed', launch.is_installed('pytest'))\n"
    )
    out, code = install.run_python_script(script, tmp_path, extension="pkg-ext")
    assert (code, out.strip().splitlines()[-1]) == (0, "installed True"), out


def test_requirements_keep_a1111s_pandas():
    # A1111 1.10's gradio 3.41.2 asks for pandas<3.0; Deforum's schedule parsing (a text value set into a
    # float Series, `series[i] = "0"`) raises TypeError on pandas 3 and only warns on pandas 2
    from packaging.requirements import Requirement

    lines = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text().splitlines()
    (pandas,) = [Requirement(line.split("#")[0]) for line in lines if line.startswith("pandas")]
    assert pandas.specifier.contains("2.3.3") and not pandas.specifier.contains("3.0.0")
