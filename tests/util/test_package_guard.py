"""A broken optional package (a torchvision whose operators do not load) is found at start, named,
and kept away from transformers and diffusers, so Sumi still starts (issue 15, point 5).

The broken torchvision is a fake in a temporary site folder put first on PYTHONPATH of a fresh Python:
the check runs for real, as `webui.main` runs it, before transformers and diffusers are imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.files import write_files

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import json, sys
    from modules.sumi.util.package_guard import guard_optional_packages

    broken = guard_optional_packages()  # what webui.main does first
    import diffusers.utils.import_utils as d
    import transformers.utils.import_utils as t

    from modules.sumi.app import App
    from modules.sumi.services.settings.flags import build_parser

    app = App(build_parser().parse_args(["--data-dir", sys.argv[1], "--no-half"]), sys.argv[2])
    try:
        import torchvision  # noqa: F401
        imported = "imported"
    except ImportError as exc:
        imported = f"{type(exc).__name__}: {exc}"
    from modules.sumi.engine.upscalers.spandrel_loader import import_spandrel

    spandrel_ok = hasattr(import_spandrel(), "ModelLoader")
    try:
        import torchvision  # noqa: F401,F811
        after_spandrel = "imported"
    except ImportError:
        after_spandrel = "blocked"
    print(json.dumps({
        "broken": [b.name for b in broken],
        "transformers": t.is_torchvision_available(),
        "diffusers": d.is_torchvision_available(),
        "notices": app.notices,
        "import": imported,
        "spandrel": spandrel_ok,
        "after_spandrel": after_spandrel,
    }))
    app.shutdown()
    """
)


@pytest.fixture(scope="module")
def broken_torchvision(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("broken-site")
    write_files(
        site,
        {
            "torchvision/__init__.py": """
                import torch  # noqa: F401

                raise RuntimeError("operator torchvision::nms does not exist")
            """,
            "torchvision-0.28.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: torchvision\nVersion: 0.28.0\n",
        },
    )
    return site


def test_a_broken_torchvision_is_named_kept_away_and_sumi_starts(tmp_path, broken_torchvision):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken_torchvision), str(REPO_ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "data"), str(REPO_ROOT)],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["broken"] == ["torchvision"]
    assert result["transformers"] is False and result["diffusers"] is False
    assert result["import"].startswith("ModuleNotFoundError: import of torchvision halted")
    assert result["spandrel"] and result["after_spandrel"] == "blocked"
    notice = next(n for n in result["notices"] if "torchvision" in n)
    assert "The installed torchvision 0.28.0 does not work with this torch" in notice
    assert (
        "operator torchvision::nms does not exist" in notice
        and "To repair: pip install torchvision==" in notice
    )


def test_without_a_broken_package_nothing_is_blocked(tmp_path):
    from modules.sumi.util.package_guard import guard_optional_packages, is_blocked

    assert guard_optional_packages({"json": None, "surely_not_a_package_xyz": None}) == []
    assert not is_blocked("json")
    write_files(
        tmp_path,
        {"sumi_broken_probe/__init__.py": "raise OSError('libfoo.so: cannot open shared object file')\n"},
    )
    sys.path.insert(0, str(tmp_path))
    try:
        found = guard_optional_packages({"sumi_broken_probe": None})
        assert [(b.name, b.error) for b in found] == [
            ("sumi_broken_probe", "OSError: libfoo.so: cannot open shared object file")
        ]
        assert is_blocked("sumi_broken_probe")
        with pytest.raises(ModuleNotFoundError, match="halted"):
            import sumi_broken_probe  # noqa: F401
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("sumi_broken_probe", None)


def test_an_extension_that_needs_torchvision_is_told_how_to_install_it(tmp_path, make_app, monkeypatch):
    """Deforum imports torchvision at load, which every A1111 install has and Sumi's does not: the notice
    names the build made for the running torch (a plain `pip install torchvision` can bring a CUDA build
    that does not load next to a CPU torch)."""
    from modules.sumi.util import package_guard

    versions = {"torch": "2.13.0+cpu"}
    monkeypatch.setattr(package_guard, "installed_version", versions.get)
    write_files(
        tmp_path / "extensions" / "anim-ext",
        {
            "scripts/anim.py": "raise ModuleNotFoundError(\"No module named 'torchvision'\", name='torchvision')\n"
        },
    )
    app = make_app(tmp_path, "--skip-install")

    [notice] = [n for n in app.notices if "anim-ext" in n]
    assert notice == (
        "Extension anim-ext: anim.py failed to load: No module named 'torchvision'. torchvision comes with "
        "A1111's install, not with Sumi's; to install it: pip install torchvision==0.28.0+cpu --index-url "
        "https://download.pytorch.org/whl/cpu (the build made for torch 2.13.0+cpu)."
    )
    versions["torch"] = "2.13.1"  # PyPI's Linux torch (a CUDA build): PyPI's torchvision matches it
    assert package_guard.missing_package_hint("No module named 'torchvision.transforms'").endswith(
        "to install it: pip install torchvision==0.28.1 (the build made for torch 2.13.1)."
    )
    assert package_guard.missing_package_hint("No module named 'kornia'") == ""
