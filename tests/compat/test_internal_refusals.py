"""Extensions that reach for A1111's model internals (ldm, sgm, k_diffusion, the sd_hijack_* patch targets,
modules that only wrap them) get an error naming the extension and what is missing, and the other
scripts still load; Sumi's own code and library probes see the normal import system."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from tests.fixtures.files import write_files

SCRIPTS = {
    "scripts/a_ldm.py": "from ldm.modules.diffusionmodules import openaimodel\n",
    "scripts/b_sgm.py": "import sgm.modules.diffusionmodules.openaimodel\n",
    "scripts/c_kdiffusion.py": "import k_diffusion.external\n",
    "scripts/d_sd_unet.py": "from modules import sd_unet\n",
    "scripts/e_patch.py": (
        "from modules import sd_hijack_unet\nsd_hijack_unet.th.zeros = lambda *args, **kwargs: None\n"
    ),
    "scripts/f_condfunc.py": (
        "from modules.sd_hijack_utils import CondFunc\n"
        "CondFunc('ldm.modules.diffusionmodules.openaimodel.timestep_embedding', print, None)\n"
    ),
    "scripts/g_probe.py": (
        "import importlib.util\n"
        "assert importlib.util.find_spec('ldm') is None\n"  # a probe answers None, as without Sumi
        "from modules.sd_hijack_unet import th as torch\n"
        "assert float(torch.ones(2).sum()) == 2\n"  # reading torch through `th` works (FreeU's import)
    ),
}


@pytest.fixture(scope="module")
def loaded(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("refusals") / "data", "--nowebui", start=False)
    extension = write_files(app.paths.extensions_dir / "sd-webui-deep-ext", SCRIPTS)
    files = sorted((extension / "scripts").glob("*.py"))
    app.scripts.load([(path, extension) for path in files])
    errors = {e.script.rsplit("/", 1)[-1]: e.message for e in app.scripts.errors.items if e.where == "import"}
    return app, errors


@pytest.mark.parametrize(
    ("script", "names"),
    [
        ("a_ldm.py", ["'sd-webui-deep-ext' imports ldm", "A1111's LDM model code"]),
        ("b_sgm.py", ["'sd-webui-deep-ext' imports sgm", "SDXL model code"]),
        (
            "c_kdiffusion.py",
            ["'sd-webui-deep-ext' imports k_diffusion", "k-diffusion with A1111's model wrappers"],
        ),
        ("d_sd_unet.py", ["'sd-webui-deep-ext' imports modules.sd_unet", "UNet replacement API"]),
        ("e_patch.py", ["'sd-webui-deep-ext' patches modules.sd_hijack_unet.th.zeros", "does not call"]),
        (
            "f_condfunc.py",
            ["'sd-webui-deep-ext' patches ldm.modules.diffusionmodules.openaimodel.timestep_emb"],
        ),
    ],
)
def test_an_extension_reaching_for_a1111_internals_is_refused_by_name(loaded, script, names):
    _, errors = loaded
    assert script in errors, errors
    for name in names:
        assert name in errors[script]
    assert "port to Sumi's hooks" in errors[script]


def test_probes_and_reading_torch_through_sd_hijack_unet_still_work(loaded):
    _, errors = loaded
    assert "g_probe.py" not in errors  # its asserts ran at import


def test_th_cat_is_the_unets_skip_concatenation_an_extension_may_replace():
    """FreeU's way: `th.cat = partial(free_u_cat, original_function=th.cat)`; the engine test checks the
    UNet then joins its skips through it (tests/engine/test_skip_concat.py)."""
    import functools

    import torch

    from modules.sd_hijack_unet import th
    from modules.sumi.engine.extensions.skip_concat import skip_concat

    def free_u_like(tensors, *args, original_function, **kwargs):
        return original_function(tensors, *args, **kwargs)

    assert th.cat is torch.cat
    try:
        th.cat = functools.partial(free_u_like, original_function=th.cat)
        assert skip_concat() is th.cat and th.cat.keywords["original_function"] is torch.cat
        assert torch.equal(
            th.cat([torch.ones(1, 2), torch.zeros(1, 1)], dim=1), torch.tensor([[1.0, 1.0, 0.0]])
        )
    finally:
        th.cat = torch.cat
    assert skip_concat() is torch.cat


def test_imports_outside_extensions_see_the_normal_import_system(loaded):
    with pytest.raises(ModuleNotFoundError, match="No module named 'ldm'"):
        importlib.import_module("ldm")
    assert importlib.util.find_spec("sgm") is None
