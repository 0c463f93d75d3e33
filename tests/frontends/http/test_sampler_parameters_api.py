"""A1111's sampler parameter and token merging settings through the API: each changes the picture when
it applies, writes A1111's infotext key, and is read back from an infotext."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from modules.sumi.services.jobs.infotext import parse_infotext

SMALL = {"prompt": "a red fox", "steps": 3, "width": 64, "height": 64, "seed": 99, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui")


def _post(client, route: str = "txt2img", **body) -> tuple[np.ndarray, dict[str, str]]:
    reply = client.post(f"/sdapi/v1/{route}", json={**SMALL, **body})
    assert reply.status_code == 200, reply.text
    image = Image.open(io.BytesIO(base64.b64decode(reply.json()["images"][0])))
    return np.asarray(image.convert("RGB")), parse_infotext(json.loads(reply.json()["info"])["infotexts"][0])


def _init_image() -> str:
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[16:48, 16:48] = (200, 40, 40)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    ("settings", "body", "key", "value"),
    [
        ({"rho": 3.0}, {"scheduler": "Karras"}, "Schedule rho", "3.0"),
        ({"sigma_min": 0.5}, {"scheduler": "Karras"}, "Schedule min sigma", "0.5"),
        ({"sigma_max": 5.0}, {"scheduler": "Exponential"}, "Schedule max sigma", "5.0"),
        ({"beta_dist_alpha": 0.3}, {"scheduler": "Beta"}, "Beta schedule alpha", "0.3"),
        ({"always_discard_next_to_last_sigma": True}, {}, "Discard penultimate sigma", "True"),
        ({"sgm_noise_multiplier": True}, {}, "SGM noise multiplier", "True"),
        ({"s_churn": 2.0}, {}, "Sigma churn", "2.0"),
        ({"skip_early_cond": 0.5}, {}, "Skip Early CFG", "0.5"),
        ({"s_min_uncond": 10.0, "s_min_uncond_all": True}, {}, "NGMS all steps", "True"),
    ],
)
def test_a_setting_changes_the_picture_and_writes_a1111s_key(client, settings, body, key, value):
    plain, plain_info = _post(client, **body)
    changed, info = _post(client, **body, override_settings=settings)
    assert info.get(key) == value and plain_info.get(key) != value  # (A1111's parser adds some as 0)
    assert np.abs(changed.astype(int) - plain.astype(int)).max() > 0


def test_settings_that_do_not_apply_to_the_sampler_change_nothing(client):
    plain, _ = _post(client, sampler_name="DDIM")
    same, _ = _post(client, sampler_name="DDIM", override_settings={"rho": 3.0, "s_churn": 2.0})
    assert np.array_equal(plain, same)  # (the infotext lists the job's override settings, as A1111's)


def test_an_infotext_brings_the_settings_back(client):
    _, info = _post(client, scheduler="Karras", override_settings={"rho": 3.0, "s_churn": 2.0})
    text = f"a red fox\nSteps: 3, Sampler: Euler, Schedule type: Karras, Seed: 99, Size: 64x64, Schedule rho: {info['Schedule rho']}, Sigma churn: 2.0"
    pasted, pasted_info = _post(client, infotext=text)
    wanted, _ = _post(client, scheduler="Karras", override_settings={"rho": 3.0, "s_churn": 2.0})
    assert pasted_info["Schedule rho"] == "3.0" and pasted_info["Sigma churn"] == "2.0"
    assert np.array_equal(pasted, wanted)


def test_img2img_extra_noise_runs_the_extra_noise_callbacks(client, app):
    base = {"init_images": [_init_image()], "denoising_strength": 0.5}
    plain, plain_info = _post(client, "img2img", **base)
    noisy, info = _post(client, "img2img", **base, override_settings={"img2img_extra_noise": 0.5})
    assert info["Extra noise"] == "0.5" and "Extra noise" not in plain_info
    assert np.abs(noisy.astype(int) - plain.astype(int)).max() > 0
    seen = []

    def no_extra_noise(params) -> None:
        seen.append((params.noise.shape, params.x.shape, params.xi.shape))
        params.noise = torch.zeros_like(params.noise)

    app.callbacks.add("extra_noise", no_extra_noise)
    try:
        silenced, _ = _post(client, "img2img", **base, override_settings={"img2img_extra_noise": 0.5})
    finally:
        app.callbacks.remove_function(no_extra_noise)
    assert seen and seen[0][0] == seen[0][1] == seen[0][2]
    assert np.array_equal(silenced, plain)  # the callback's noise (none) was added


def test_token_merging_ratios_for_txt2img_img2img_and_the_hires_pass(client):
    # the demo model has no attention at full latent size, where A1111's token merging works: the
    # picture stays (tests/engine/test_token_merging.py draws with a model that has)
    _, info = _post(client, override_settings={"token_merging_ratio": 0.5})
    assert info["Token merging ratio"] == "0.5"
    base = {"init_images": [_init_image()], "denoising_strength": 0.5}
    _, info = _post(client, "img2img", **base, override_settings={"token_merging_ratio_img2img": 0.4})
    assert info["Token merging ratio"] == "0.4"
    hires = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": 0.5}
    _, info = _post(client, **hires, override_settings={"token_merging_ratio_hr": 0.3})
    assert info["Token merging ratio hr"] == "0.3" and "Token merging ratio" not in info


@pytest.mark.parametrize(
    ("route", "override"),
    [
        ("txt2img", {"uni_pc_variant": "bh2"}),
        ("txt2img", {"uni_pc_variant": "vary_coeff"}),
        ("txt2img", {"uni_pc_skip_type": "logSNR"}),
        ("img2img", {"uni_pc_variant": "bh2"}),
    ],
)
def test_unipc_variant_and_skip_type_change_the_picture(client, route, override):
    extra = {"init_images": [_init_image()], "denoising_strength": 0.6} if route == "img2img" else {}
    plain, _ = _post(client, route, sampler_name="UniPC", steps=6, **extra)
    changed, _ = _post(client, route, sampler_name="UniPC", steps=6, override_settings=override, **extra)
    assert np.abs(changed.astype(int) - plain.astype(int)).max() > 0


def test_an_unknown_unipc_variant_is_refused(client):
    reply = client.post(
        "/sdapi/v1/txt2img",
        json={**SMALL, "sampler_name": "UniPC", "override_settings": {"uni_pc_variant": "bh9"}},
    )
    assert reply.status_code in (400, 422) and "bh9" in reply.text


def test_unipc_order_changes_the_picture(client):
    plain, _ = _post(client, sampler_name="UniPC", steps=4)
    second, _ = _post(client, sampler_name="UniPC", steps=4, override_settings={"uni_pc_order": 1})
    assert np.abs(second.astype(int) - plain.astype(int)).max() > 0
