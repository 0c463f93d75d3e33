"""Every A1111 module and name that the A, C and B-light extensions of
`reference/extension_ecosystem.md` use (the 39 of 58 in `a1111_surface.json`, written from their sources
by `tools/scan_a1111_surface.py`) exists in Sumi.

One test per module (and per object: `shared.opts`, `shared.state`, `p`, ...), so a failure names the
missing names and the extensions that need them. Whether a name behaves like A1111's is tested
elsewhere (`test_a1111_facades.py`, `test_api.py`, ...); here only that an extension importing or
reading it would find it, against a live App as extensions see it.
"""

from __future__ import annotations

import importlib
from collections import Counter

import pytest

from modules import shared
from tests.compat.a1111_surface import load

surface = load()


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("coverage"), "--nowebui")


def _missing(obj, names: dict[str, set[str]]) -> list[str]:
    return [
        f"{name} (used by {', '.join(sorted(names[name]))})"
        for name in sorted(names)
        if not hasattr(obj, name)
    ]


def test_the_table_covers_the_39_extensions():
    categories = Counter(category for category, _ in surface.extensions.values())
    assert categories == {"A": 13, "C": 18, "B-light": 8}
    users = set().union(*surface.modules.values())
    assert users <= set(surface.extensions)
    assert set(surface.extensions) - users == {"localization-zh_CN"}  # JSON files only


@pytest.mark.parametrize("module", sorted(set(surface.modules) | set(surface.names)))
def test_module_and_its_names(app, module):
    mod = importlib.import_module(module)
    missing = _missing(mod, surface.names.get(module, {}))
    assert not missing, f"{module} lacks: " + "; ".join(missing)


def test_modules_shared_items_is_reachable_from_the_package(app):
    """adetailer does `import modules` and then calls `modules.shared_items.sd_vae_items()`."""
    import modules

    assert modules.shared_items.sd_vae_items()[:1] == ["Automatic"]


def test_shared_opts(app):
    missing = _missing(shared.opts, surface.opts)
    assert not missing, "shared.opts lacks: " + "; ".join(missing)
    assert not set(surface.extension_options) & set(surface.opts)


def test_shared_state(app):
    missing = _missing(shared.state, surface.state)
    assert not missing, "shared.state lacks: " + "; ".join(missing)


def test_shared_cmd_opts_come_from_the_parser(app):
    from modules.cmd_args import build_parser

    missing = _missing(build_parser().parse_args([]), surface.cmd_opts)
    assert not missing, "the parser lacks: " + "; ".join(missing)
    missing = _missing(shared.cmd_opts, surface.cmd_opts)
    assert not missing, "shared.cmd_opts lacks: " + "; ".join(missing)


def test_shared_sd_model(app):
    missing = _missing(shared.sd_model, surface.sd_model)
    assert not missing, "shared.sd_model lacks: " + "; ".join(missing)


def test_model_hijack_and_model_data(app):
    from modules import sd_hijack, sd_models

    missing = _missing(sd_hijack.model_hijack, surface.model_hijack)
    missing += _missing(sd_models.model_data, surface.model_data)
    assert not missing, "lacking: " + "; ".join(missing)


@pytest.mark.parametrize("runner", ["scripts_txt2img", "scripts_img2img"])
def test_script_runners(app, runner):
    from modules import scripts

    names = surface.script_runner_txt2img if runner == "scripts_txt2img" else surface.script_runner_img2img
    missing = _missing(getattr(scripts, runner), names)
    assert not missing, f"scripts.{runner} lacks: " + "; ".join(missing)


def test_processing_attributes(app):
    from modules.processing import StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img

    missing = _missing(
        StableDiffusionProcessingTxt2Img(prompt="a cat"), {**surface.p_attrs, **surface.p_txt2img_attrs}
    )
    assert not missing, "StableDiffusionProcessingTxt2Img lacks: " + "; ".join(missing)
    img2img = StableDiffusionProcessingImg2Img(prompt="a cat", init_images=[])
    missing = _missing(img2img, {**surface.p_attrs, **surface.p_img2img_attrs})
    assert not missing, "StableDiffusionProcessingImg2Img lacks: " + "; ".join(missing)
