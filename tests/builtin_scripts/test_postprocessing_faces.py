"""The GFPGAN and CodeFormer Extras scripts follow A1111's ScriptPostprocessing protocol: name, order,
ui() controls by argument name, process(pp, **args) blending the restored picture by visibility, the
pp.info entries; missing weights are a clear error."""

from __future__ import annotations

import importlib

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from modules.scripts_postprocessing import PostprocessedImage, ScriptPostprocessing
from modules.sumi.services.faces.registry import FaceRestorationUnavailable
from tests.engine.test_faces import grey_with_square
from tests.fixtures.tiny_faces import install_face_files

gfpgan_script = importlib.import_module("modules.sumi.builtin_scripts.postprocessing_gfpgan")
codeformer_script = importlib.import_module("modules.sumi.builtin_scripts.postprocessing_codeformer")


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory, face_files):
    data = tmp_path_factory.mktemp("data")
    install_face_files(data, face_files)
    return make_module_app(data, "--nowebui", start=False)


def picture() -> Image.Image:
    return Image.fromarray(grey_with_square())


def test_the_scripts_declare_a1111s_names_order_and_controls():
    gfpgan = gfpgan_script.ScriptPostprocessingGfpGan()
    codeformer = codeformer_script.ScriptPostprocessingCodeFormer()
    assert isinstance(gfpgan, ScriptPostprocessing) and isinstance(codeformer, ScriptPostprocessing)
    assert (gfpgan.name, gfpgan.order, codeformer.name, codeformer.order) == (
        "GFPGAN",
        2000,
        "CodeFormer",
        3000,
    )
    with gr.Blocks():
        g_ui, c_ui = gfpgan.ui(), codeformer.ui()
    assert list(g_ui) == ["gfpgan_visibility"] and list(c_ui) == [
        "codeformer_visibility",
        "codeformer_weight",
    ]
    assert g_ui["gfpgan_visibility"].elem_id == "extras_gfpgan_visibility"
    assert c_ui["codeformer_weight"].elem_id == "extras_codeformer_weight"
    assert (c_ui["codeformer_visibility"].minimum, c_ui["codeformer_visibility"].maximum) == (0.0, 1.0)


def test_visibility_zero_or_disabled_does_nothing(app):
    for script, args in (
        (gfpgan_script.ScriptPostprocessingGfpGan(), {"gfpgan_visibility": 0}),
        (
            codeformer_script.ScriptPostprocessingCodeFormer(),
            {"codeformer_visibility": 0, "codeformer_weight": 0.5},
        ),
        (gfpgan_script.ScriptPostprocessingGfpGan(), {"gfpgan_visibility": 1, "enable": False}),
    ):
        pp = PostprocessedImage(original := picture())
        script.process(pp, **args)
        assert pp.image is original and pp.info == {}


def test_codeformer_blends_the_restored_picture_by_visibility(app):
    script = codeformer_script.ScriptPostprocessingCodeFormer()
    full = PostprocessedImage(picture())
    script.process(full, codeformer_visibility=1.0, codeformer_weight=0.25)
    half = PostprocessedImage(picture())
    script.process(half, codeformer_visibility=0.5, codeformer_weight=0.25)
    restored = np.asarray(full.image)
    assert np.abs(restored.astype(int) - grey_with_square()).max() > 0
    assert np.array_equal(np.asarray(half.image), np.asarray(Image.blend(picture(), full.image, 0.5)))
    assert half.info == {"CodeFormer visibility": 0.5, "CodeFormer weight": 0.25}


def test_gfpgan_restores_the_face_only_and_records_its_visibility(app):
    pp = PostprocessedImage(picture().convert("RGBA"))
    gfpgan_script.ScriptPostprocessingGfpGan().process(pp, gfpgan_visibility=0.7)
    out, source = np.asarray(pp.image).astype(int), grey_with_square()
    assert pp.image.mode == "RGB" and pp.info == {"GFPGAN visibility": 0.7}
    changed = np.abs(out - source).max(axis=2) > 0
    assert changed.any() and not changed[:, :150].any()


def test_missing_weights_are_an_error_naming_the_file(make_app, tmp_path):
    make_app(tmp_path, "--nowebui", start=False)
    pp = PostprocessedImage(picture())
    with pytest.raises(FaceRestorationUnavailable, match="GFPGANv1.4.pth"):
        gfpgan_script.ScriptPostprocessingGfpGan().process(pp, gfpgan_visibility=1)
    with pytest.raises(FaceRestorationUnavailable, match="codeformer-v0.1.0.pth"):
        codeformer_script.ScriptPostprocessingCodeFormer().process(
            pp, codeformer_visibility=1, codeformer_weight=0
        )
