"""The A1111 HTTP API against a real App with the tiny demo checkpoint."""

from __future__ import annotations

import base64
import io
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from modules.sumi.services.jobs.infotext import parse_infotext
from tests.app_support import local_client
from webui import build_server

SMALL = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 1234, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui")


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_txt2img_returns_png_with_a1111_infotext(client):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "negative_prompt": "blurry"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 1
    image = decode(body["images"][0])
    assert image.size == (64, 64)
    text = image.info["parameters"]
    assert text.startswith(
        "a red fox\nNegative prompt: blurry\nSteps: 2, Sampler: Euler, Schedule type: Automatic"
    )
    params = parse_infotext(text)
    assert params["Seed"] == "1234" and params["Size-1"] == "64" and params["Model"] == "sumi-demo-shapes"
    info = json.loads(body["info"])
    assert info["seed"] == 1234 and info["all_seeds"] == [1234]
    assert info["infotexts"][0] == text
    assert body["parameters"]["prompt"] == "a red fox"


def test_same_seed_gives_same_image_and_batches_use_consecutive_seeds(client):
    one = client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": 77}).json()
    batch = client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": 76, "batch_size": 2}).json()
    info = json.loads(batch["info"])
    assert info["all_seeds"] == [76, 77]
    # A1111: the API's default save_images=false also means do_not_save_grid, so no grid comes back
    assert len(batch["images"]) == 2 and info["index_of_first_image"] == 0
    saved = client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": 76, "batch_size": 2, "save_images": True})
    assert len(saved.json()["images"]) == 3 and json.loads(saved.json()["info"])["index_of_first_image"] == 1
    in_batch, alone = decode(batch["images"][1]).tobytes(), decode(one["images"][0]).tobytes()
    assert max(abs(a - b) for a, b in zip(in_batch, alone, strict=True)) <= 2  # batched float rounding


def test_random_seed_is_reported(client):
    info = json.loads(client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": -1}).json()["info"])
    assert 0 <= info["seed"] < 2**32 and info["seed"] != -1


def test_a_size_that_is_not_a_multiple_of_8_is_rounded_down_with_a_warning_as_a1111(client):
    """A1111's latents are width // 8 by height // 8: a 100x75 request gives a 96x72 image (an Open WebUI
    user typing "100x75" gets a picture, not an error); Sumi says so and writes the real size."""
    body = client.post("/sdapi/v1/txt2img", json={**SMALL, "width": 100, "height": 75}).json()
    assert decode(body["images"][0]).size == (96, 72)
    info = json.loads(body["info"])
    assert (info["width"], info["height"]) == (96, 72) and "Size: 96x72" in info["infotexts"][0]
    assert any("width 100 is not a multiple of 8: the image is 96 px wide" in w for w in info["warnings"])


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"width": 40}, 422, "width"),  # outside the schema's bounds: 422
        ({"height": 0}, 422, "height"),
        ({"steps": 0}, 422, "steps"),
        ({"steps": 100000}, 422, "steps"),
        ({"batch_size": 10000}, 422, "batch_size"),
        ({"steps": 151}, 400, "steps"),  # inside the schema, over the live limit (setting max_steps)
        ({"batch_size": 33}, 400, "batch_size"),
        ({"sampler_name": "No Such Sampler"}, 400, "not found"),  # a bad value, not a missing route
        ({"scheduler": "wobbly"}, 400, "schedule type"),
    ],
)
def test_bad_input_is_a_4xx_with_a_message_and_the_server_keeps_serving(client, change, status, words):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, **change})
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "detail", "body", "errors"}  # A1111's error body
    assert words.lower() in r.json()["errors"].lower()
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200


def test_samplers_and_schedulers_lists(client):
    names = [s["name"] for s in client.get("/sdapi/v1/samplers").json()]
    for wanted in [
        "Euler a",
        "Euler",
        "LMS",
        "Heun",
        "DPM2",
        "DPM2 a",
        "DPM++ 2S a",
        "DPM++ 2M",
        "DPM++ SDE",
        "DPM++ 2M SDE",
        "DDIM",
        "PLMS",
        "UniPC",
        "LCM",
        "DPM++ 2M SDE Heun",
        "DPM++ 3M SDE",
        "DPM fast",
        "DPM adaptive",
        "Restart",
        "DDIM CFG++",
    ]:
        assert wanted in names
    samplers = {s["name"]: s for s in client.get("/sdapi/v1/samplers").json()}
    assert samplers["DPM++ 3M SDE"] == {  # as A1111 1.10 lists it
        "name": "DPM++ 3M SDE",
        "aliases": ["k_dpmpp_3m_sde"],
        "options": {"scheduler": "exponential", "discard_next_to_last_sigma": True, "brownian_noise": True},
    }
    assert samplers["DPM++ 2M SDE Heun"]["options"] == {
        "scheduler": "exponential",
        "brownian_noise": True,
        "solver_type": "heun",
    }
    assert samplers["Restart"]["options"] == {"scheduler": "karras", "second_order": True}
    assert samplers["DPM adaptive"]["aliases"] == ["k_dpm_ad"]
    assert samplers["DDIM CFG++"]["aliases"] == ["ddim_cfgpp"]
    schedulers = client.get("/sdapi/v1/schedulers").json()
    assert [s["label"] for s in schedulers] == [
        "Automatic",
        "Uniform",
        "Karras",
        "Exponential",
        "Polyexponential",
        "SGM Uniform",
        "KL Optimal",
        "Align Your Steps",
        "Simple",
        "Normal",
        "DDIM",
        "Beta",
    ]
    by_name = {s["name"]: s for s in schedulers}
    assert by_name["karras"]["default_rho"] == 7.0 and by_name["polyexponential"]["default_rho"] == 1.0
    assert by_name["sgm_uniform"] == {
        "name": "sgm_uniform",
        "label": "SGM Uniform",
        "aliases": ["SGMUniform"],
        "default_rho": -1,
        "need_inner_model": True,
    }
    assert by_name["align_your_steps"]["need_inner_model"] is False


def test_old_combined_sampler_names_run_with_their_schedule(client):
    r = client.post(
        "/sdapi/v1/txt2img", json={**SMALL, "sampler_name": "DPM++ 2M SDE Heun Karras", "steps": 3}
    )
    assert r.status_code == 200, r.text
    info = r.json()["info"]
    assert '"sampler_name": "DPM++ 2M SDE Heun"' in info and "Schedule type: Karras" in info


def test_every_sampler_generates_through_the_api(client):
    for sampler in client.get("/sdapi/v1/samplers").json():
        r = client.post("/sdapi/v1/txt2img", json={**SMALL, "sampler_name": sampler["name"], "steps": 3})
        assert r.status_code == 200, (sampler["name"], r.text)


def test_sd_models_options_and_checkpoint_switch(app, client, tmp_path):
    client.post("/sdapi/v1/txt2img", json=SMALL)  # loading a checkpoint hashes it (lazily, as A1111)
    models = client.get("/sdapi/v1/sd-models").json()
    assert models[0]["title"].startswith("sumi-demo-shapes.safetensors [")
    assert len(models[0]["hash"]) == 10
    demo = Path(app.checkpoints.list()[0].filename)
    (demo.parent / "sub").mkdir(exist_ok=True)
    shutil.copy(demo, demo.parent / "sub" / "copy.safetensors")
    assert client.post("/sdapi/v1/refresh-checkpoints").status_code == 200
    titles = [m["title"] for m in client.get("/sdapi/v1/sd-models").json()]
    assert "sub/copy.safetensors" in [t.split(" [")[0] for t in titles]  # hashed lazily, as A1111
    assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sub/copy"}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("sub/copy.safetensors [")
    saved = json.loads((app.paths.config_file).read_text())
    assert saved["sd_model_checkpoint"].startswith("sub/copy.safetensors")
    r = client.post("/sdapi/v1/txt2img", json=SMALL)
    assert "Model: copy," in decode(r.json()["images"][0]).info["parameters"]
    bad = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "does-not-exist"})
    assert bad.status_code == 400 and "no checkpoint is called 'does-not-exist'" in bad.json()["detail"]
    client.post("/sdapi/v1/options", json={"sd_model_checkpoint": models[0]["title"]})


def test_a_corrupt_checkpoint_is_a_clear_error_and_the_loaded_model_stays_usable(app, client):
    folder = app.paths.ckpt_dirs[0]
    (folder / "broken.safetensors").write_bytes(b"this is not a checkpoint")
    client.post("/sdapi/v1/refresh-checkpoints")
    r = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "broken"})
    assert 400 <= r.status_code < 500
    assert "broken.safetensors" in r.json()["detail"]
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("sumi-demo-shapes")
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200
    (folder / "broken.safetensors").unlink()
    client.post("/sdapi/v1/refresh-checkpoints")


def test_progress_and_interrupt_during_a_job(app, client):
    results = {}

    def run():
        results["r"] = client.post(
            "/sdapi/v1/txt2img", json={**SMALL, "steps": 150, "width": 256, "height": 256}
        )

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.time() + 60
    seen = None
    while time.time() < deadline:
        seen = client.get("/sdapi/v1/progress").json()
        if seen["state"]["sampling_step"] > 0:
            break
        time.sleep(0.05)
    assert seen["state"]["sampling_steps"] > 0 and 0 < seen["progress"] < 1
    assert client.post("/sdapi/v1/interrupt").status_code == 200
    worker.join(60)
    assert results["r"].status_code == 200
    assert client.get("/sdapi/v1/progress").json()["progress"] == 0


def test_png_info_reads_back_parameters(client):
    image_b64 = client.post("/sdapi/v1/txt2img", json=SMALL).json()["images"][0]
    info = client.post("/sdapi/v1/png-info", json={"image": image_b64}).json()
    assert info["parameters"]["Steps"] == "2" and info["info"].startswith("a red fox")
    assert client.post("/sdapi/v1/png-info", json={"image": "not base64!"}).status_code == 400


def test_api_auth_requires_credentials(tmp_path, make_app):
    app = make_app(tmp_path, "--nowebui", "--api-auth", "user:secret")
    client = local_client(build_server(app))
    assert client.get("/sdapi/v1/samplers").status_code == 401
    assert client.get("/sdapi/v1/samplers", auth=("user", "wrong")).status_code == 401
    assert client.get("/sdapi/v1/samplers", auth=("user", "secret")).status_code == 200


def test_options_reject_unknown_keys_and_wrong_types(client):
    assert client.post("/sdapi/v1/options", json={"no_such_setting": 1}).status_code == 400
    r = client.post("/sdapi/v1/options", json={"samples_save": "not a bool"})
    assert r.status_code == 400 and "samples_save" in r.json()["detail"]
    assert client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 2
    client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 1})


def test_null_fields_mean_defaults_and_unknown_fields_are_ignored(client):
    body = {**SMALL, "override_settings": None, "styles": None, "eta": None, "made_up_field": 3}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text


def test_request_schema_has_a1111_fields_and_defaults(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"][
        "StableDiffusionTxt2ImgProcessingAPI"
    ]
    props = schema["properties"]
    for name in [
        "prompt",
        "negative_prompt",
        "seed",
        "subseed",
        "subseed_strength",
        "sampler_name",
        "scheduler",
        "batch_size",
        "n_iter",
        "steps",
        "cfg_scale",
        "width",
        "height",
        "override_settings",
        "send_images",
        "save_images",
        "alwayson_scripts",
        "sampler_index",
    ]:
        assert name in props, name
    assert props["steps"]["default"] == 50 and props["sampler_index"]["default"] == "Euler"
    assert "all_seeds" not in props


def test_api_and_web_ui_share_one_server_with_api_flag(tmp_path, make_app):
    app = make_app(tmp_path, "--api")
    client = local_client(build_server(app))
    assert client.get("/sdapi/v1/samplers").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_web_ui_alone_does_not_expose_the_api(tmp_path, make_app):
    app = make_app(tmp_path)
    assert local_client(build_server(app)).get("/sdapi/v1/samplers").status_code == 404


def test_force_task_id_names_the_job_in_progress_reports(app, client):
    """A1111 clients pass `force_task_id` to follow their own job in /progress (`current_task`)."""
    import threading

    seen: list[str | None] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(
                client.get("/sdapi/v1/progress", params={"skip_current_image": True}).json()["current_task"]
            )

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        body = {
            "prompt": "a fox",
            "steps": 40,
            "width": 64,
            "height": 64,
            "force_task_id": "task(my-client-1)",
        }
        assert client.post("/sdapi/v1/txt2img", json=body).status_code == 200
    finally:
        done.set()
        watcher.join()
    assert "task(my-client-1)" in seen
