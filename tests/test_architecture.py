"""The layout rules hold and fail closed: a new file is checked by where it sits.

`lint-imports` runs on a copy of `modules/` with one rule-breaking file added at a time; each copy must
break the contract that names the rule (and a clean copy breaks none). The one rule a newcomer sees —
every module directly in `modules/` is an A1111 name, and small — is checked here too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.a1111_surface import load as load_surface

REPO = Path(__file__).resolve().parent.parent
CONTRACT_LAYERS = "Sumi's layers point down"
CONTRACT_FACADES = "Sumi's packages never import the A1111 facades"
CONTRACT_SHARED = "Only the facades (and scripts written against them) import modules.shared"
CONTRACT_WEB = "The app, services, engine and util never import web frameworks"
CONTRACT_FRONTENDS = "The front ends are independent of each other"
CONTRACT_CYCLES = "No cycles between service areas or between engine packages"

# A1111 modules that Sumi provides although none of the scanned extensions imports them.
A1111_MODULES_NOT_IN_SURFACE = {
    "modules.errors",
    "modules.styles",
    "modules.face_restoration_utils",
    "modules.postprocessing",
    "modules.sd_samplers_cfg_denoiser",  # B-deep CFG extensions (neutral-prompt, EasyPhoto)
    "modules.sd_samplers_kdiffusion",  # its CFG denoiser class (sd-dynamic-thresholding)
    "modules.sd_samplers_compvis",  # a class sd-dynamic-thresholding subclasses when it loads
    "modules.textual_inversion.textual_inversion",  # B-deep lycoris, supermerger; A1111's Train tab
    "modules.interrogate",  # the class of shared.interrogator (ebsynth_utility, sd-webui-mov2mov)
    "modules.timer",  # startup_timer (EasyPhoto, supermerger; A1111's own scripts record into it)
    "modules.cache",  # cache.json sections (lycoris, supermerger, EasyPhoto)
    "modules.patches",  # per-caller monkeypatching (lycoris, supermerger)
    "modules.rng",  # seeded noise and ImageRNG (multidiffusion, seed scripts)
    "modules.shared_state",  # the class of shared.state (multidiffusion)
    "modules.memmon",  # the class of shared.mem_mon (multidiffusion)
}
MAX_FACADE_LINES = 250


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the Python files of `modules/` and the import-linter configuration."""
    root = tmp_path_factory.mktemp("layout")
    shutil.copytree(REPO / "modules", root / "modules", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def lint(root: Path) -> str:
    """`lint-imports` over `root`; its report (contracts KEPT/BROKEN)."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    result = subprocess.run(
        [sys.executable, "-c", code, "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    return result.stdout + result.stderr


def broken(report: str) -> set[str]:
    """Names (their first words) of the contracts the report calls BROKEN."""
    names = {
        CONTRACT_LAYERS,
        CONTRACT_FACADES,
        CONTRACT_SHARED,
        CONTRACT_WEB,
        CONTRACT_FRONTENDS,
        CONTRACT_CYCLES,
    }
    flat = " ".join(report.split())
    return {name for name in names if f"{name}" in flat and _status_after(flat, name) == "BROKEN"}


def _status_after(flat: str, name: str) -> str:
    tail = flat[flat.index(name) :]
    kept, brk = tail.find(" KEPT"), tail.find(" BROKEN")
    if brk == -1 or (kept != -1 and kept < brk):
        return "KEPT"
    return "BROKEN"


def with_file(tree: Path, relative: str, text: str):
    """Context: `relative` (under the copy) exists with `text` (packages get an `__init__.py`)."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        path = tree / relative
        created = []
        for parent in reversed(path.relative_to(tree).parents[:-1]):
            folder = tree / parent
            if not folder.exists():
                folder.mkdir()
                (folder / "__init__.py").write_text("")
                created.append(folder)
        path.write_text(text)
        try:
            yield
        finally:
            path.unlink()
            for folder in reversed(created):
                shutil.rmtree(folder)

    return scope()


def test_the_tree_as_it_is_keeps_every_contract(tree):
    report = lint(tree)
    assert "Contracts: 6 kept, 0 broken" in report, report


@pytest.mark.parametrize(
    ("relative", "text", "contracts"),
    [
        (  # a new service module reading the App singleton
            "modules/sumi/services/newarea/reader.py",
            "from modules import shared\n",
            {CONTRACT_FACADES, CONTRACT_SHARED},
        ),
        (  # any A1111 facade, even one added tomorrow
            "modules/sumi/services/jobs/uses_facade.py",
            "from modules import sd_samplers\n",
            {CONTRACT_FACADES},
        ),
        (  # the engine reaching up into services
            "modules/sumi/engine/knows_too_much.py",
            "from modules.sumi.services.jobs import generation\n",
            {CONTRACT_LAYERS},
        ),
        (  # a web framework below the front ends
            "modules/sumi/engine/new_package/web.py",
            "import gradio\n",
            {CONTRACT_WEB},
        ),
        (
            "modules/sumi/services/models/web.py",
            "import fastapi\n",
            {CONTRACT_WEB},
        ),
        (  # one front end importing the other
            "modules/sumi/frontends/http/borrows.py",
            "from modules.sumi.frontends.gradio import results\n",
            {CONTRACT_FRONTENDS},
        ),
        (  # a cycle between service areas: jobs already imports models
            "modules/sumi/services/models/back_to_jobs.py",
            "from modules.sumi.services.jobs import state\n",
            {CONTRACT_CYCLES},
        ),
        (  # a package under modules/sumi that is not one of the layers
            "modules/sumi/plugins/thing.py",
            "",
            {CONTRACT_LAYERS},
        ),
    ],
)
def test_a_new_file_that_breaks_a_rule_breaks_its_contract(tree, relative, text, contracts):
    with with_file(tree, relative, text):
        report = lint(tree)
    assert contracts <= broken(report), report


def _facade_modules() -> list[Path]:
    files = [p for p in (REPO / "modules").glob("*.py") if p.name != "__init__.py"]
    for package in ("api", "textual_inversion"):
        files += [p for p in (REPO / "modules" / package).glob("*.py") if p.name != "__init__.py"]
    return sorted(files)


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def test_modules_holds_only_a1111_names():
    surface = load_surface()
    known = set(surface.modules) | set(surface.names) | A1111_MODULES_NOT_IN_SURFACE
    packages = {p.name for p in (REPO / "modules").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert packages == {"api", "textual_inversion", "sumi"}
    strangers = [_dotted(p) for p in _facade_modules() if _dotted(p) not in known]
    assert not strangers, f"not A1111 module names (Sumi's code belongs in modules/sumi/): {strangers}"


def test_facades_are_small():
    sizes = {_dotted(p): len(p.read_text().splitlines()) for p in _facade_modules()}
    too_big = {name: n for name, n in sizes.items() if n > MAX_FACADE_LINES}
    assert not too_big, f"facades should re-export and hold A1111's module-level functions only: {too_big}"
