"""Published A1111 API clients, unchanged, against a Sumi server with the demo model.

- `webuiapi` (mix1009/sdwebuiapi 0.9.17, the pip package): every `WebUIApi` method a user calls, its
  `ControlNetUnit`s and `ControlNetInterface`, with the results checked against what A1111 1.10 gives
  (types, fields, image sizes, the `info` JSON).
- Open WebUI's AUTOMATIC1111 image backend and SillyTavern's Stable Diffusion extension: their exact
  routes, headers and bodies, written from their code (open-webui `backend/open_webui/routers/images.py`;
  SillyTavern `src/endpoints/stable-diffusion.js` and `public/scripts/extensions/stable-diffusion/index.js`),
  replayed through httpx.

One server for the module, with an API login (`--api-auth`) as these clients are set up; jobs are tiny
(64x64, 2 steps). The data folder looks like a user's: an A1111 config.json with settings Sumi does not
have, a style, a VAE file, a LoRA, an embedding, captioning models, a second checkpoint.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
import webuiapi
from PIL import Image
from safetensors.torch import load_file, save_file

from modules.sumi.services.models.demo import DEMO_NAME
from tests.app_support import local_client, running_server
from tests.fixtures.tiny_captioners import write_blip, write_deepdanbooru
from tests.fixtures.tiny_embeddings import random_vectors, write_a1111_pt

USER, PASSWORD = "sillytavern", "open-webui-pw"
STYLE = ("Flat colours", "flat colours, plain background", "gradient")
SECOND = "second-model.safetensors"
A1111_LEFTOVERS = {"ldsr_steps": 100, "some_removed_extension_option": [1, 2]}  # from an A1111 config.json
DEMO_WIDTH = 64  # the demo model's text encoder width (embeddings)
TINY = {"width": 64, "height": 64, "steps": 2}


def _write_vae(demo: Path, path: Path) -> None:
    """The demo checkpoint's own VAE as a separate file, in the layout VAE downloads have."""
    prefix = "first_stage_model."
    state = {k[len(prefix) :]: v for k, v in load_file(str(demo)).items() if k.startswith(prefix)}
    save_file(state, str(path))


def _prepare(data: Path) -> None:
    from modules.sumi.services.models.demo import SHIPPED_DEMO

    (data / "config.json").write_text(json.dumps(A1111_LEFTOVERS), encoding="utf-8")
    (data / "styles.csv").write_text(
        'name,prompt,negative_prompt\n"{}","{{prompt}}, {}",{}\n'.format(*STYLE), encoding="utf-8"
    )
    (data / "models" / "VAE").mkdir(parents=True)
    _write_vae(SHIPPED_DEMO, data / "models" / "VAE" / "demo-vae.safetensors")
    (data / "models" / "Lora").mkdir(parents=True)
    save_file(
        {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(1, 4)},
        str(data / "models" / "Lora" / "flat.safetensors"),
        metadata={"ss_output_name": "flat_style", "ss_network_dim": "1"},
    )
    (data / "embeddings").mkdir()
    write_a1111_pt(data / "embeddings" / "shiny.pt", random_vectors(2, DEMO_WIDTH), step=50)
    write_blip(data / "models" / "BLIP" / "base", word="grass")
    write_deepdanbooru(
        data / "models" / "torch_deepdanbooru" / "model-resnet_custom_v3.pt",
        ["circle", "square", "rating:safe"],
        logits=[3.0, -3.0, 4.0],
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("api-clients")
    _prepare(data)
    flags = ["--api", "--nowebui", "--api-auth", f"{USER}:{PASSWORD}"]
    with running_server(data, flags) as srv:
        srv.app.queue.run("wait for the start-up load", lambda: None)
        yield srv


@pytest.fixture(scope="module")
def api(server) -> webuiapi.WebUIApi:
    host, port = server.url.removeprefix("http://").split(":")
    return webuiapi.WebUIApi(host=host, port=int(port), username=USER, password=PASSWORD, steps=2)


@pytest.fixture(scope="module")
def http(server):
    """An httpx client as the Node/Python clients send: HTTP Basic in an `Authorization` header."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Basic {token}"}, timeout=120
    ) as client:
        yield client


@pytest.fixture(scope="module")
def picture(api) -> Image.Image:
    """A picture made by the server (its PNG carries the infotext)."""
    return api.txt2img(prompt="a red circle", seed=3, **TINY).image


def _add_second_checkpoint(server) -> None:
    folder = server.data_dir / "models" / "Stable-diffusion"
    if not (folder / SECOND).exists():
        shutil.copy(folder / DEMO_NAME, folder / SECOND)


def _png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


# -- webuiapi: lists and settings ------------------------------------------------------------------


def test_webuiapi_lists_have_a1111s_fields(api, server):
    models = api.get_sd_models()
    assert {m["model_name"] for m in models} >= {Path(DEMO_NAME).stem}
    for m in models:
        assert set(m) == {"title", "model_name", "hash", "sha256", "filename", "config"}
    assert api.util_get_current_model() in api.util_get_model_names()

    samplers = api.get_samplers()
    assert {"Euler a", "Euler", "DPM++ 2M", "DDIM"} <= {s["name"] for s in samplers}
    assert all(set(s) == {"name", "aliases", "options"} for s in samplers)
    assert "karras" in api.util_get_scheduler_names() and "automatic" in api.util_get_scheduler_names()
    assert all(
        set(s) == {"name", "label", "aliases", "default_rho", "need_inner_model"}
        for s in api.get_schedulers()
    )
    assert api.util_get_sampler_names() == sorted(s["name"] for s in samplers)

    upscalers = api.get_upscalers()
    assert [u["name"] for u in upscalers][:3] == ["None", "Lanczos", "Nearest"]
    assert all(set(u) == {"name", "model_name", "model_path", "model_url", "scale"} for u in upscalers)
    assert [m["name"] for m in api.get_latent_upscale_modes()][0] == "Latent"
    vae = server.data_dir / "models" / "VAE" / "demo-vae.safetensors"
    assert api.get_sd_vae() == [{"model_name": "demo-vae.safetensors", "filename": str(vae)}]

    (lora,) = api.get_loras()
    assert lora["name"] == "flat" and lora["alias"] == "flat_style"
    assert lora["metadata"]["ss_network_dim"] == "1" and lora["path"].endswith("flat.safetensors")
    embeddings = api.get_embeddings()
    assert embeddings["loaded"]["shiny"]["step"] == 50 and embeddings["loaded"]["shiny"]["vectors"] == 2
    assert embeddings["loaded"]["shiny"]["shape"] == DEMO_WIDTH
    assert api.get_hypernetworks() == [] and api.get_face_restorers() == []
    assert api.get_realesrgan_models() == []
    assert api.get_prompt_styles() == [
        {"name": STYLE[0], "prompt": f"{{prompt}}, {STYLE[1]}", "negative_prompt": STYLE[2]}
    ]
    scripts = api.get_scripts()
    assert set(scripts) == {"txt2img", "img2img"} and "x/y/z plot" in scripts["txt2img"]
    assert {"ram", "cuda"} <= set(api.get_memory())


def test_webuiapi_cmd_flags_and_progress_when_idle(api):
    flags = api.get_cmd_flags()
    assert flags["api"] is True and flags["nowebui"] is True
    assert PASSWORD not in json.dumps(flags)  # the login is never returned
    progress = api.get_progress()
    assert progress["progress"] == 0 and progress["state"]["job_count"] == 0
    assert set(progress) == {"progress", "eta_relative", "state", "current_image", "textinfo", "current_task"}
    assert progress["current_task"] is None
    api.util_wait_for_ready(check_interval=0.1)  # returns at once when idle


def test_webuiapi_options_round_trip(api, server):
    options = api.get_options()
    assert options["sd_model_checkpoint"] == api.util_get_current_model()
    assert options["sd_checkpoint_hash"] == next(
        m["sha256"] for m in api.get_sd_models() if m["title"] == options["sd_model_checkpoint"]
    )
    assert api.set_options({"n_rows": 2, "samples_format": "png"}) == {}
    assert api.get_options()["n_rows"] == 2
    assert api.set_options(api.get_options()) == {}  # everything sent back, as Open WebUI does
    assert json.loads(server.app.paths.config_file.read_text())["n_rows"] == 2


def test_webuiapi_switches_checkpoints(api, server):
    _add_second_checkpoint(server)
    first = api.util_get_current_model()
    try:
        assert api.refresh_checkpoints() == {}
        assert any(name.startswith(SECOND) for name in api.util_get_model_names())
        api.util_set_model("second-model")
        assert api.util_get_current_model().startswith(SECOND)
        result = api.txt2img(prompt="a blue square", seed=5, **TINY)
        assert result.info["sd_model_name"] == "second-model"
    finally:
        api.util_set_model(first, find_closest=False)
    assert api.util_get_current_model() == first


# -- webuiapi: generation --------------------------------------------------------------------------


def test_webuiapi_txt2img_with_a_style_and_a_batch(api):
    result = api.txt2img(prompt="a red circle", styles=[STYLE[0]], seed=11, batch_size=2, cfg_scale=5, **TINY)
    assert [image.size for image in result.images] == [(64, 64)] * 2
    info = result.info
    assert isinstance(info, dict) and info["seed"] == 11 and info["all_seeds"] == [11, 12]
    assert info["styles"] == [STYLE[0]]  # A1111's info: `prompt` is all_prompts[0], the style applied
    assert (
        info["all_prompts"] == [f"a red circle, {STYLE[1]}"] * 2 and info["prompt"] == info["all_prompts"][0]
    )
    assert info["all_negative_prompts"] == [STYLE[2]] * 2 and info["negative_prompt"] == STYLE[2]
    assert (info["width"], info["height"], info["steps"], info["cfg_scale"]) == (64, 64, 2, 5)
    assert info["sampler_name"] == "Euler a" and info["sd_model_name"] == Path(DEMO_NAME).stem
    assert info["index_of_first_image"] == 0 and len(info["infotexts"]) == 2
    assert result.images[0].info["parameters"] == info["infotexts"][0]
    assert "Styles array" not in info["infotexts"][0] and "Seed: 11," in info["infotexts"][0]
    assert result.parameters["prompt"] == "a red circle" and result.parameters["batch_size"] == 2


def test_webuiapi_txt2img_hires_fix(api):
    result = api.txt2img(
        prompt="a red circle",
        seed=2,
        enable_hr=True,
        hr_scale=2,
        hr_upscaler=webuiapi.HiResUpscaler.Latent,
        hr_second_pass_steps=1,
        denoising_strength=0.5,
        hr_prompt="a red circle, sharp",
        hr_sampler_name="DPM++ 2M",
        hr_scheduler="Karras",  # the label, as A1111's UI sends it
        **TINY,
    )
    assert result.image.size == (128, 128)
    extra = result.info["extra_generation_params"]
    assert extra["Hires upscale"] == 2 and extra["Hires upscaler"] == "Latent" and extra["Hires steps"] == 1
    infotext = result.info["infotexts"][0]
    assert 'Hires prompt: "a red circle, sharp"' in infotext
    assert "Hires sampler: DPM++ 2M" in infotext and "Hires schedule type: Karras" in infotext
    assert result.info["denoising_strength"] == 0.5

    resized = api.txt2img(
        prompt="a red circle",
        seed=2,
        enable_hr=True,
        hr_resize_x=96,
        hr_resize_y=80,
        hr_upscaler="Nearest",
        **TINY,
    )
    assert resized.image.size == (96, 80)


def test_webuiapi_txt2img_override_settings_and_alwayson_scripts(api):
    result = api.txt2img(
        prompt="a red circle",
        seed=4,
        override_settings={"CLIP_stop_at_last_layers": 2, "sd_vae": "demo-vae.safetensors"},
        alwayson_scripts={"Refiner": {"args": [False, "", 0.8]}},
        **TINY,
    )
    info = result.info
    assert info["clip_skip"] == 2 and "Clip skip: 2" in info["infotexts"][0]
    assert info["sd_vae_name"] == "demo-vae.safetensors"
    assert api.get_options()["CLIP_stop_at_last_layers"] == 1  # restored afterwards


def test_webuiapi_img2img_and_inpainting(api, picture):
    result = api.img2img(images=[picture], prompt="a blue square", seed=7, denoising_strength=0.5, **TINY)
    assert result.image.size == (64, 64)
    assert (
        result.info["denoising_strength"] == 0.5 and "Denoising strength: 0.5" in result.info["infotexts"][0]
    )
    assert result.parameters["init_images"] is None  # include_init_images=False

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    inpainted = api.img2img(
        images=[picture],
        mask_image=mask,
        prompt="a blue square",
        seed=7,
        inpainting_fill=1,
        inpaint_full_res=False,
        mask_blur=0,
        include_init_images=True,
        width=64,
        height=64,
        steps=2,
    )
    assert inpainted.image.size == (64, 64)
    assert len(inpainted.parameters["init_images"]) == 1  # echoed, as asked
    assert "Mask blur" not in inpainted.info["infotexts"][0]  # mask_blur 0, as A1111 writes it
    before, after = picture.convert("RGB"), inpainted.image.convert("RGB")
    assert before.getpixel((2, 2)) == after.getpixel((2, 2))  # outside the mask: the picture, unchanged

    only_masked = api.img2img(images=[picture], mask_image=mask, prompt="a blue square", seed=7, **TINY)
    assert only_masked.image.size == (64, 64)  # webuiapi's defaults: inpaint_full_res, mask_blur 4
    assert "Inpaint area: Only masked" in only_masked.info["infotexts"][0]
    assert "Mask blur: 4" in only_masked.info["infotexts"][0]


def test_webuiapi_extras(api, picture):
    single = api.extra_single_image(image=picture, upscaler_1="Lanczos", upscaling_resize=2)
    assert single.image.size == (128, 128)
    assert "Postprocess upscaler: Lanczos" in single.info
    assert single.image.info["parameters"] == picture.info["parameters"]  # the picture's infotext is kept

    batch = api.extra_batch_images(images=[picture, picture], upscaler_1="Nearest", upscaling_resize=1.5)
    assert [image.size for image in batch.images] == [(96, 96)] * 2


def test_webuiapi_png_info(api, picture):
    result = api.png_info(picture)
    assert result.info == picture.info["parameters"]  # the raw infotext, as A1111's `info`
    params = result.json["parameters"]
    assert params["Prompt"] == "a red circle" and params["Seed"] == "3" and params["Size-1"] == "64"
    assert result.json["items"] == {}


def test_webuiapi_interrogate(api, picture, server):
    server.app.options.set("interrogate_clip_min_length", 1)
    server.app.options.set("interrogate_clip_max_length", 4)
    assert api.interrogate(picture).info == "grass grass grass"  # {"caption": ...}
    assert api.interrogate(picture, model="deepdanbooru").info == "circle"


def test_webuiapi_controlnet(api, picture):
    assert api.controlnet_version() == 2
    models = api.controlnet_model_list()
    assert models and models == webuiapi.ControlNetInterface(api).model_list()
    assert "canny" in api.controlnet_module_list()

    unit = webuiapi.ControlNetUnit(image=picture, module="canny", model=models[0], weight=0.8)
    # A fresh alwayson_scripts each time: webuiapi adds the units to the dict it is given, and its default
    # is one shared dict (every later call would carry them).
    result = api.txt2img(prompt="a red circle", seed=9, controlnet_units=[unit], alwayson_scripts={}, **TINY)
    assert len(result.images) == 2  # the picture, then the detected map (as the extension returns it)
    assert result.images[1].size == (64, 64)
    assert "Module: canny" in result.info["extra_generation_params"]["ControlNet 0"]

    img = api.img2img(
        images=[picture], prompt="a red circle", seed=9, controlnet_units=[unit], alwayson_scripts={}, **TINY
    )
    assert len(img.images) == 2

    # webuiapi 0.9.17's controlnet_detect sends `controlnet_images`; the extension's route reads
    # `controlnet_input_images` (sd-webui-controlnet scripts/api.py), so A1111 refuses it too.
    with pytest.raises(RuntimeError, match="controlnet_input_images"):
        api.controlnet_detect([picture], module="canny")
    detected = api.custom_post(
        "controlnet/detect",
        {
            "controlnet_module": "canny",
            "controlnet_input_images": [webuiapi.raw_b64_img(picture)],
            "controlnet_processor_res": 64,
        },
    )
    assert detected.image.size == (64, 64) and detected.info == "Success"


def test_webuiapi_progress_interrupt_and_skip_while_a_job_runs(api):
    results: list = []
    job = threading.Thread(
        target=lambda: results.append(
            api.txt2img(prompt="a red circle", seed=1, width=64, height=64, steps=150)
        )
    )
    job.start()
    deadline = time.monotonic() + 60
    progress = api.get_progress()
    while progress["state"]["sampling_step"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
        progress = api.get_progress()
    assert progress["state"]["job_count"] >= 1 and progress["state"]["sampling_steps"] == 150
    assert 0 < progress["progress"] < 1 and progress["current_task"] is not None
    assert api.skip() == {}
    assert api.interrupt() == {}
    job.join(60)
    (result,) = results
    assert result.image.size == (64, 64)  # an interrupted job still returns its picture, as A1111's
    api.util_wait_for_ready(check_interval=0.1)


def test_webuiapi_async_requests(api):
    pytest.importorskip("aiohttp")  # webuiapi's use_async needs it and does not install it
    import asyncio

    async def run():
        return await api.txt2img(prompt="a red circle", seed=6, use_async=True, **TINY)

    assert asyncio.run(run()).image.size == (64, 64)


# -- Open WebUI's AUTOMATIC1111 backend (backend/open_webui/routers/images.py) ------------------------


def test_open_webui_verify_list_pick_and_generate(http, server):
    assert http.get("/sdapi/v1/options").status_code == 200  # verify_url
    models = [{"id": m["title"], "name": m["model_name"]} for m in http.get("/sdapi/v1/sd-models").json()]
    assert Path(DEMO_NAME).stem in {m["name"] for m in models}

    # set_image_model: the whole options dict is read, the checkpoint changed, and all of it posted back
    _add_second_checkpoint(server)
    http.post("/sdapi/v1/refresh-checkpoints")
    second = next(m["title"] for m in http.get("/sdapi/v1/sd-models").json() if m["title"].startswith(SECOND))
    options = http.get("/sdapi/v1/options").json()
    assert A1111_LEFTOVERS.items() <= options.items()  # an A1111 config.json's settings Sumi has no use for
    first = options["sd_model_checkpoint"]
    try:
        options["sd_model_checkpoint"] = second
        r = http.post("/sdapi/v1/options", json=options)
        assert r.status_code == 200, r.text
        assert http.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith(SECOND)

        # image_generations: IMAGE_SIZE, IMAGE_STEPS, negative prompt, AUTOMATIC1111_CFG_SCALE / _SAMPLER /
        # _SCHEDULER, then AUTOMATIC1111_PARAMS merged in
        data = {"prompt": "a green star", "batch_size": 2, "width": 64, "height": 64, "steps": 2}
        data |= {
            "negative_prompt": "blurry",
            "cfg_scale": 6.5,
            "sampler_name": "DPM++ 2M",
            "scheduler": "karras",
        }
        data |= {"seed": 21, "override_settings": {"CLIP_stop_at_last_layers": 2}}
        res = http.post("/sdapi/v1/txt2img", json=data).json()
        assert len(res["images"]) == 2
        for image in res["images"]:  # get_image_data: no "," so a plain base64 PNG
            assert "," not in image and _png(image).size == (64, 64)
        info = json.loads(res["info"])
        assert info["sd_model_name"] == "second-model" and info["sampler_name"] == "DPM++ 2M"
        assert "Schedule type: Karras" in info["infotexts"][0] and info["clip_skip"] == 2
    finally:
        options["sd_model_checkpoint"] = first
        assert http.post("/sdapi/v1/options", json=options).status_code == 200


def test_open_webui_error_is_json(http):
    r = http.post("/sdapi/v1/txt2img", json={"prompt": "x", "sampler_name": "No such sampler", **TINY})
    assert 400 <= r.status_code < 500 and "no such sampler" in r.json()["detail"].lower()


# -- SillyTavern's Stable Diffusion extension (src/endpoints/stable-diffusion.js) -----------------------


def test_sillytavern_lists(http):
    assert http.get("/sdapi/v1/options").status_code == 200  # /ping
    upscalers = [x["name"] for x in http.get("/sdapi/v1/upscalers").json()]
    latent = [x["name"] for x in http.get("/sdapi/v1/latent-upscale-modes").json()]
    upscalers[1:1] = latent  # "0 = None, then Latent Upscalers, then Upscalers"
    assert upscalers[:2] == ["None", "Latent"]
    assert [x["model_name"] for x in http.get("/sdapi/v1/sd-vae").json()] == ["demo-vae.safetensors"]
    assert "DDIM" in [x["name"] for x in http.get("/sdapi/v1/samplers").json()]  # its default sampler
    assert "normal" in [x["name"] for x in http.get("/sdapi/v1/schedulers").json()]  # its default scheduler
    titles = [x["title"] for x in http.get("/sdapi/v1/sd-models").json()]
    assert http.get("/sdapi/v1/options").json()["sd_model_checkpoint"] in titles  # /get-model


def test_sillytavern_set_model_then_waits_on_progress(http):
    title = http.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    r = http.post(
        "/sdapi/v1/options",
        content=json.dumps({"sd_model_checkpoint": title}),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200
    state = http.get("/sdapi/v1/progress").json()
    assert state["progress"] == 0.0 and state["state"]["job_count"] == 0  # `jobCount === 0`: an int


@pytest.mark.parametrize("enable_hr", [False, True])
def test_sillytavern_generate(http, server, enable_hr):
    body = {"url": server.url, "auth": f"{USER}:{PASSWORD}"}  # getSdRequestBody(), forwarded as is
    body |= {
        "prompt": "a yellow triangle",
        "negative_prompt": "lowres",
        "sampler_name": "DDIM",
        "scheduler": "normal",
        "steps": 2,
        "cfg_scale": 7,
        "width": 64,
        "height": 64,
        "restore_faces": False,
        "enable_hr": enable_hr,
        "hr_upscaler": "Latent",
        "hr_scale": 2.0,
        "denoising_strength": 0.7,
        "hr_second_pass_steps": 0,
        "override_settings": {"CLIP_stop_at_last_layers": 1, "sd_vae": "demo-vae.safetensors"},
        "override_settings_restore_afterwards": True,
        "clip_skip": 1,  # for SD.Next
        "save_images": True,
        "send_images": True,
        "do_not_save_grid": False,
        "do_not_save_samples": False,
    }  # `seed` left out (undefined) for a random one
    outputs = server.data_dir / "outputs" / "txt2img-images"
    saved_before = set(outputs.rglob("*.png")) if outputs.exists() else set()
    r = http.post("/sdapi/v1/txt2img", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    data = r.json()
    side = 128 if enable_hr else 64
    assert _png(data["images"][0]).size == (side, side)
    assert PASSWORD not in r.text  # the forwarded `auth` never comes back
    info = json.loads(data["info"])
    assert (
        "ignored (A1111 ignores them too): auth, clip_skip, url" in info["warnings"][0]
    )  # SD.Next's clip_skip too
    assert info["sd_vae_name"] == "demo-vae.safetensors" and info["sampler_name"] == "DDIM"
    assert len(set(outputs.rglob("*.png")) - saved_before) == 1  # save_images: true


def test_sillytavern_abort_interrupts(http):
    result: dict = {}

    def generate():
        body = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 150, "sampler_name": "Euler"}
        result["response"] = http.post("/sdapi/v1/txt2img", json=body)

    job = threading.Thread(target=generate)
    job.start()
    deadline = time.monotonic() + 60
    while http.get("/sdapi/v1/progress").json()["state"]["sampling_step"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http.post("/sdapi/v1/interrupt").status_code == 200  # the browser closed the request
    job.join(60)
    assert result["response"].status_code == 200
    assert json.loads(result["response"].json()["info"])["steps"] == 150


# -- logins as these clients send them ---------------------------------------------------------------


def test_a_wrong_login_is_a_401(server):
    r = httpx.get(server.url + "/sdapi/v1/options", auth=(USER, "wrong"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")


@pytest.fixture(scope="module")
def open_server(make_module_app, tmp_path_factory):
    """A server without a login (the usual local install)."""
    from webui import build_server

    app = make_module_app(tmp_path_factory.mktemp("no-login"), "--api", "--nowebui", start=False)
    return local_client(build_server(app))


@pytest.mark.parametrize(
    "header",
    [
        "Basic ",  # Open WebUI with AUTOMATIC1111_API_AUTH "" (base64 of nothing)
        "",  # Open WebUI with no AUTOMATIC1111_API_AUTH
        "Basic " + base64.b64encode(b"undefined").decode(),  # SillyTavern with no auth set
    ],
)
def test_the_login_header_clients_always_send_is_ignored_without_a_login(open_server, header):
    assert open_server.get("/sdapi/v1/options", headers={"Authorization": header}).status_code == 200
