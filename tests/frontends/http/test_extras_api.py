"""POST /sdapi/v1/extra-single-image and /extra-batch-images: A1111's request fields mapped onto the
Extras scripts, base64 in, bigger images out, the original PNG info kept, clear 4xx for bad values."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from tests.app_support import decode_pixels

PARAMETERS = "a red fox\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x48"


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("extras-api") / "data", "--nowebui")


def picture(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def b64(image: Image.Image, parameters: str | None = PARAMETERS) -> str:
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def post(client, route: str, status: int = 200, **body) -> dict:
    response = client.post(f"/sdapi/v1/{route}", json=body)
    assert response.status_code == status, response.text
    return response.json()


def test_single_image_round_trip_upscales_by_two(client, app):
    body = post(client, "extra-single-image", image=b64(picture()), upscaler_1="Lanczos", upscaling_resize=2)
    result = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    assert result.size == (128, 96)
    expected = picture().resize((128, 96), Image.Resampling.LANCZOS)
    assert np.array_equal(decode_pixels(body["image"]), np.asarray(expected))
    assert "Postprocess upscale by: 2.0" in body["html_info"]
    assert "Postprocess upscaler: Lanczos" in body["html_info"]
    assert result.info["parameters"] == PARAMETERS  # the image's own parameters travel along
    assert "Postprocess upscaler: Lanczos" in result.info["postprocessing"]
    assert not (app.paths.data_dir / "outputs" / "extras-images").exists()  # the API saves nothing (A1111)


def test_resize_to_with_and_without_crop(client):
    image = b64(picture(64, 32))
    common = {"image": image, "upscaler_1": "Nearest", "resize_mode": 1, "upscaling_resize_w": 96}
    cropped = post(client, "extra-single-image", **common, upscaling_resize_h=96)
    assert decode_pixels(cropped["image"]).shape[:2] == (96, 96)
    assert "Postprocess crop to: 96x96" in cropped["html_info"]
    whole = post(client, "extra-single-image", **common, upscaling_resize_h=96, upscaling_crop=False)
    assert decode_pixels(whole["image"]).shape[:2] == (96, 192)


def test_upscaler_2_visibility_blends_the_second_upscaler(client):
    body = post(
        client,
        "extra-single-image",
        image=b64(picture()),
        upscaler_1="Nearest",
        upscaler_2="Lanczos",
        extras_upscaler_2_visibility=0.5,
    )
    source = picture()
    expected = Image.blend(
        source.resize((128, 96), Image.Resampling.NEAREST),
        source.resize((128, 96), Image.Resampling.LANCZOS),
        0.5,
    )
    assert np.array_equal(decode_pixels(body["image"]), np.asarray(expected))


def test_batch_images_come_back_in_order_and_can_be_left_out(client):
    images = [{"data": b64(picture(seed=i)), "name": f"{i}.png"} for i in range(2)]
    body = post(client, "extra-batch-images", imageList=images, upscaler_1="Lanczos", upscaling_resize=1.5)
    assert [decode_pixels(i).shape[:2] for i in body["images"]] == [(72, 96), (72, 96)]
    quiet = post(
        client, "extra-batch-images", imageList=images, upscaler_1="Lanczos", show_extras_results=False
    )
    assert quiet["images"] == [] and "Postprocess upscaler: Lanczos" in quiet["html_info"]


def test_an_unknown_upscaler_is_a_400_naming_the_choices(client):
    error = post(client, "extra-single-image", 400, image=b64(picture()), upscaler_1="4x-Missing")
    assert "4x-Missing" in error["detail"] and "Lanczos" in error["detail"]


def test_face_restoration_asked_for_without_its_weights_is_a_400_naming_the_file(client):
    error = post(client, "extra-single-image", 400, image=b64(picture()), gfpgan_visibility=0.5)
    assert "GFPGAN" in error["detail"] and "models" in error["detail"]
    error = post(client, "extra-single-image", 400, image=b64(picture()), codeformer_visibility=0.5)
    assert "CodeFormer" in error["detail"] or "Codeformer" in error["detail"]


def test_bad_images_and_values_are_4xx(client):
    assert "image" in post(client, "extra-single-image", 400, image="not base64!")["detail"]
    assert "image" in post(client, "extra-single-image", 400)["detail"]  # no image at all
    bad = post(client, "extra-batch-images", 400, imageList=[{"data": "eA==", "name": "x.png"}])
    assert "x.png" in bad["detail"]
    post(client, "extra-single-image", 422, image=b64(picture()), upscaling_resize=9)
    post(client, "extra-single-image", 422, image=b64(picture()), resize_mode=2)
    tiny = post(
        client, "extra-single-image", 400, image=b64(picture()), upscaler_1="Lanczos", upscaling_resize=0.01
    )
    assert "8 pixels" in tiny["detail"]


def test_other_extras_scripts_are_set_by_name_under_scripts(client):
    tall = picture(64, 200)
    body = post(
        client,
        "extra-batch-images",
        imageList=[{"data": b64(tall), "name": "tall.png"}],
        resize_mode=1,
        upscaling_resize_w=64,
        upscaling_resize_h=64,
        scripts={
            "Split oversized images": {"enable": True, "overlap_ratio": 0.2},
            "Create flipped copies": {"enable": True, "option": ["Vertical"]},
        },
    )
    tiles = [decode_pixels(i) for i in body["images"]]
    assert [t.shape[:2] for t in tiles] == [(64, 64)] * 8  # the picture and its flip, 4 tiles each
    assert np.array_equal(tiles[0], np.asarray(tall)[:64])
    single = post(
        client,
        "extra-single-image",
        image=b64(tall),
        resize_mode=1,
        upscaling_resize_w=64,
        upscaling_resize_h=64,
        scripts={"Auto focal point crop": {"enable": True}},
    )
    assert decode_pixels(single["image"]).shape[:2] == (64, 64)


def test_a_bad_script_argument_is_a_400_naming_it(client):
    image = b64(picture())
    cases = (
        ({"Split oversized image": {"enable": True}}, "Split oversized images"),  # the choices
        ({"Split oversized images": {"threshold": 0.5}}, "split_threshold"),  # the arguments it takes
        ({"Split oversized images": {"split_threshold": "half"}}, "must be a number"),
        ({"Create flipped copies": {"enable": "yes"}}, "true or false"),
        ({"Upscale": {"upscale_by": 2}}, "request's own fields"),
        ({"Caption": {"enable": True}}, "/sdapi/v1/interrogate"),  # nowhere to write it: nothing is saved
    )
    for scripts, named in cases:
        assert named in post(client, "extra-single-image", 400, image=image, scripts=scripts)["detail"]
