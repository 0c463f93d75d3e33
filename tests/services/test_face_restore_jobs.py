"""Restore faces in txt2img / img2img jobs on a real App: only the face regions change, the infotext
says `Face restoration: CodeFormer`, a copy before restoration is saved when asked, the setting is the
default, and a job asking for it with nothing installed warns and keeps its image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from modules.sumi.engine.faces.align import FACE_SIZE, face_transform
from modules.sumi.engine.faces.restore import restore_faces
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import (
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
)
from tests.app_support import with_random_weight_model
from tests.fixtures.tiny_faces import install_face_files, write_bright_spot_detector

SIZE = 64


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory, face_files):
    data = tmp_path_factory.mktemp("data")
    with_random_weight_model(data)
    install_face_files(data, face_files, ("GFPGAN", "CodeFormer"))
    # a detector that needs a brighter spot than the session's, so a noisy tiny-model picture has few
    write_bright_spot_detector(data / "models" / "GFPGAN" / "detection_Resnet50_Final.pth", threshold=120.0)
    return make_module_app(data, "--nowebui", loaded=True)


def txt2img(seed: int, **changes) -> StableDiffusionProcessingTxt2Img:
    values = {
        "prompt": "a face",
        "steps": 4,
        "width": SIZE,
        "height": SIZE,
        "seed": seed,
        "sampler_name": "Euler",
    }
    return StableDiffusionProcessingTxt2Img(**{**values, "do_not_save_grid": True, **changes})


def face_region(app, image: np.ndarray) -> np.ndarray:
    """Where the faces the detector finds in `image` are pasted (their squares, a pixel wider)."""
    found = restore_faces(image, app.faces.detector(), lambda x: x).faces
    region = np.zeros(image.shape[:2], np.uint8)
    for face in found:
        inverse = cv2.invertAffineTransform(face_transform(face.landmarks))
        square = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), np.float32), inverse, image.shape[1::-1])
        region |= (square > 0).astype(np.uint8)
    return cv2.dilate(region, np.ones((3, 3), np.uint8)) > 0


@pytest.fixture(scope="module")
def plain_with_a_face(app):
    """A seed whose picture has one or two "faces" for the detector, and that picture unrestored."""
    for seed in range(1, 12):
        image = np.asarray(app.runner.process(txt2img(seed, do_not_save_samples=True)).images[0])
        region = face_region(app, image)
        if 0 < region.mean() < 0.4:
            return seed, image, region
    pytest.fail("no seed gave a picture in which the test detector finds a face")


def test_restore_faces_changes_only_the_faces_and_writes_the_infotext(app, plain_with_a_face, tmp_path):
    seed, plain, region = plain_with_a_face
    app.options.save_images_before_face_restoration = True
    try:
        p = txt2img(seed, restore_faces=True, outpath_samples=str(tmp_path))
        processed = app.runner.process(p)
    finally:
        app.options.save_images_before_face_restoration = False
    restored = np.asarray(processed.images[0])
    changed = np.abs(restored.astype(int) - plain).max(axis=2) > 0
    assert changed.any() and not changed[~region].any()
    params = parse_infotext(processed.infotexts[0])
    assert params["Face restoration"] == "CodeFormer" and processed.warnings == []
    before = sorted(tmp_path.rglob("*-before-face-restoration.png"))
    assert len(before) == 1 and np.array_equal(np.asarray(Image.open(before[0]).convert("RGB")), plain)
    assert "Face restoration: CodeFormer" in Image.open(before[0]).info["parameters"]


def test_the_setting_is_the_default_and_off_means_no_infotext(app, plain_with_a_face):
    seed, plain, _ = plain_with_a_face
    p = txt2img(seed, do_not_save_samples=True)  # restore_faces None: the setting (off)
    processed = app.runner.process(p)
    assert p.restore_faces is False and "Face restoration" not in processed.infotexts[0]
    assert np.array_equal(np.asarray(processed.images[0]), plain)


def test_a_missing_restorer_is_a_warning_and_the_image_stays(app, plain_with_a_face):
    seed, plain, _ = plain_with_a_face
    p = txt2img(seed, restore_faces=True, do_not_save_samples=True)
    p.override_settings = {"face_restoration_model": "GFPGAN"}
    app.faces.folders["GFPGAN"], saved = (
        app.faces.folders["GFPGAN"] / "elsewhere",
        app.faces.folders["GFPGAN"],
    )
    try:
        processed = app.runner.process(p)
    finally:
        app.faces.folders["GFPGAN"] = saved
    assert any("GFPGANv1.4.pth" in w and "not face-restored" in w for w in processed.warnings)
    assert np.array_equal(np.asarray(processed.images[0]), plain)
    assert "Face restoration" not in processed.infotexts[0]


def test_img2img_restores_before_the_overlay_of_the_original(app):
    """With an inpainting mask the unmasked part is the original again after restoration (A1111's
    order: restore, then overlay), so the picture outside the mask is the init picture exactly."""
    init = Image.fromarray(np.full((SIZE, SIZE, 3), 128, np.uint8))
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, 32, SIZE))
    p = StableDiffusionProcessingImg2Img(
        prompt="a face", steps=3, width=SIZE, height=SIZE, seed=3, sampler_name="Euler", init_images=[init],
        mask=mask, mask_blur=0, inpaint_full_res=False, restore_faces=True, do_not_save_samples=True,
        do_not_save_grid=True,
    )  # fmt: skip
    processed = app.runner.process(p)
    out = np.asarray(processed.images[0])
    assert (out[:, 40:] == 128).all()
    assert parse_infotext(processed.infotexts[0])["Face restoration"] == "CodeFormer"
