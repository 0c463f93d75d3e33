"""POST /sdapi/v1/img2img against a real App (tiny demo model): A1111's request and response, masks,
scripts (Soft Inpainting, an A1111-style extension that runs an inner img2img job from
`postprocess_image`, as ADetailer does), and bad input as clear 4xx errors."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from modules.sumi.services.jobs.infotext import parse_infotext
from tests.fixtures.files import write_files
from tests.frontends.http.test_bounds_and_errors import bomb_png_b64

SMALL = {"prompt": "a red fox", "steps": 3, "width": 64, "height": 64, "seed": 21, "sampler_name": "Euler"}

# An A1111-style extension: an always-on script whose postprocess_image redraws a square of each image
# with an inner img2img job (ADetailer's pattern), and says which tab it ran on.
INNER_JOB_EXTENSION = {
    "scripts/inner_job.py": """
        import gradio as gr
        from PIL import Image

        import modules.scripts as scripts
        from modules.processing import StableDiffusionProcessingImg2Img, process_images


        class InnerJob(scripts.Script):
            def title(self):
                return "Inner job"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return [gr.Checkbox(False, label="Redraw a square")]

            def process(self, p, enabled):
                if enabled:
                    p.extra_generation_params["Inner job tab"] = "img2img" if self.is_img2img else "txt2img"

            def postprocess_image(self, p, pp, enabled):
                if not enabled:
                    return
                mask = Image.new("L", pp.image.size, 0)
                mask.paste(255, (16, 16, 48, 48))
                inner = StableDiffusionProcessingImg2Img(
                    prompt="a blue bird", steps=3, width=pp.image.width, height=pp.image.height, seed=5,
                    sampler_name="Euler", init_images=[pp.image], mask=mask, mask_blur=0,
                    inpaint_full_res=False, denoising_strength=0.9, do_not_save_samples=True,
                    do_not_save_grid=True,
                )
                processed = process_images(inner)
                pp.image = processed.images[0]
                p.extra_generation_params["Inner job seed"] = processed.seed
    """,
}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_files(data / "extensions" / "inner-job-ext", INNER_JOB_EXTENSION)
    return make_module_app(data, "--api", "--nowebui")


def encode(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def picture(size=(64, 64)) -> Image.Image:
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    return Image.fromarray(np.stack([x, x.T if w == h else x, 255 - x], -1))


def square_mask(size=(64, 64), box=(20, 20, 44, 44)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


def test_img2img_returns_images_infotext_and_a1111s_response(client):
    body = {**SMALL, "init_images": [encode(picture())], "denoising_strength": 0.6}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    image = decode(data["images"][0])
    params = parse_infotext(image.info["parameters"])
    assert image.size == (64, 64) and params["Denoising strength"] == "0.6" and params["Seed"] == "21"
    info = json.loads(data["info"])
    assert info["denoising_strength"] == 0.6 and info["all_seeds"] == [21]
    assert data["parameters"]["init_images"] is None  # not echoed unless include_init_images
    echoed = client.post("/sdapi/v1/img2img", json={**body, "include_init_images": True}).json()
    assert echoed["parameters"]["init_images"] == body["init_images"]


def test_inpainting_through_the_api_keeps_the_outside_and_writes_a1111s_keys(client):
    body = {
        **SMALL,
        "init_images": [encode(picture())],
        "mask": encode(square_mask()),
        "mask_blur": 0,
        "inpainting_fill": 2,
        "inpaint_full_res": False,
        "denoising_strength": 0.9,
    }
    data = client.post("/sdapi/v1/img2img", json=body).json()
    out = pixels(decode(data["images"][0]))
    original = pixels(picture())
    assert (out[:20] == original[:20]).all() and (out[44:] == original[44:]).all()
    assert np.abs(out[24:40, 24:40] - original[24:40, 24:40]).max() > 10
    params = parse_infotext(json.loads(data["info"])["infotexts"][0])
    assert params["Masked content"] == "latent noise" and "Mask blur" not in params


def test_a_mask_of_another_size_is_resized_and_an_all_black_mask_keeps_the_picture(client):
    other = {
        **SMALL,
        "init_images": [encode(picture())],
        "mask": encode(square_mask((32, 32), (8, 8, 24, 24))),
    }
    assert client.post("/sdapi/v1/img2img", json=other).status_code == 200
    black = {
        **SMALL,
        "init_images": [encode(picture())],
        "mask": encode(Image.new("L", (64, 64), 0)),
        "inpaint_full_res": False,
        "mask_blur": 0,
    }
    r = client.post("/sdapi/v1/img2img", json=black)
    assert r.status_code == 200 and (pixels(decode(r.json()["images"][0])) == pixels(picture())).all()


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"init_images": ["not base64 at all!"]}, 400, "init_images[0]"),
        ({"init_images": [base64.b64encode(b"hello").decode()]}, 400, "not a readable image"),
        ({"init_images": []}, 400, "Init image not found"),
        ({"mask": "%%%"}, 400, "mask"),
        ({"denoising_strength": 1.5}, 422, "denoising_strength"),
        ({"denoising_strength": -0.1}, 422, "denoising_strength"),
        ({"resize_mode": 4}, 422, "resize_mode"),
        ({"mask_blur": 100000}, 422, "mask_blur"),
        ({"init_images": [bomb_png_b64(9000, 9000)]}, 400, "too large"),
        ({"script_name": "no such script"}, 400, "Script not found"),
    ],
)
def test_bad_input_is_a_clear_4xx(client, changes, status, words):
    body = {**SMALL, "init_images": [encode(picture())], **changes}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == status, r.text
    assert words in json.dumps(r.json())


def test_latent_upscale_refuses_an_init_image_over_the_live_size_limit(client):
    body = {**SMALL, "init_images": [encode(Image.new("RGB", (2100, 2100)))], "resize_mode": 3}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 400 and "max_image_size" in r.text


def test_scripts_lists_the_img2img_scripts(client):
    scripts = client.get("/sdapi/v1/scripts").json()
    assert "soft inpainting" in scripts["img2img"] and "soft inpainting" not in scripts["txt2img"]
    assert "inner job" in scripts["img2img"] and "inner job" in scripts["txt2img"]
    info = client.get("/sdapi/v1/script-info").json()
    soft = next(s for s in info if s["name"] == "soft inpainting")
    assert soft["is_img2img"] and soft["is_alwayson"] and len(soft["args"]) == 7


def test_soft_inpainting_through_alwayson_scripts_with_a1111s_args(client):
    body = {
        **SMALL,
        "init_images": [encode(picture())],
        "mask": encode(square_mask()),
        "mask_blur": 8,
        "inpaint_full_res": False,
        "alwayson_scripts": {"soft inpainting": {"args": [True, 1, 0.5, 4, 0, 0.5, 2]}},
    }
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    params = parse_infotext(json.loads(r.json()["info"])["infotexts"][0])
    assert params["Soft inpainting enabled"] == "True"
    assert params["Soft inpainting preservation strength"] == "0.5"
    plain = client.post("/sdapi/v1/img2img", json={k: v for k, v in body.items() if k != "alwayson_scripts"})
    assert not np.array_equal(
        pixels(decode(r.json()["images"][0])), pixels(decode(plain.json()["images"][0]))
    )


def test_an_extension_runs_an_inner_img2img_job_from_postprocess_image(client):
    plain = client.post("/sdapi/v1/txt2img", json=SMALL).json()
    body = {**SMALL, "alwayson_scripts": {"inner job": {"args": [True]}}}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    before, after = pixels(decode(plain["images"][0])), pixels(decode(r.json()["images"][0]))
    assert (after[:16] == before[:16]).all() and (after[48:] == before[48:]).all()
    assert np.abs(after[20:44, 20:44] - before[20:44, 20:44]).max() > 10
    params = parse_infotext(json.loads(r.json()["info"])["infotexts"][0])
    assert params["Inner job seed"] == "5" and params["Inner job tab"] == "txt2img"
    # the same extension on the img2img tab: its hooks see is_img2img
    i2i = {**body, "init_images": [encode(picture())]}
    r = client.post("/sdapi/v1/img2img", json=i2i)
    assert r.status_code == 200, r.text
    assert parse_infotext(json.loads(r.json()["info"])["infotexts"][0])["Inner job tab"] == "img2img"


def test_force_task_id_and_progress_label(app, client):
    body = {**SMALL, "init_images": [encode(picture())], "force_task_id": "task(i2i-1)"}
    assert client.post("/sdapi/v1/img2img", json=body).status_code == 200


def test_the_schema_states_the_img2img_bounds(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"][
        "StableDiffusionImg2ImgProcessingAPI"
    ]
    props = schema["properties"]
    blur = next(x for x in props["mask_blur"]["anyOf"] if x.get("type") == "integer")
    strength = next(x for x in props["denoising_strength"]["anyOf"] if x.get("type") == "number")
    assert blur["maximum"] == 512 and strength["maximum"] == 1.0 and strength["minimum"] == 0.0
    assert {"init_images", "mask", "include_init_images", "inpainting_fill", "image_cfg_scale"} <= set(props)
