"""The Checkpoint Merger through the API: the merged file is the per-key formula, carries A1111's
metadata, is listed at once and generates; a merge that cannot be done is a 400 and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from modules.sumi.engine.merging import merge_layout
from tests.fixtures.tiny_models import write_tiny_checkpoint

KEY_UNET = "model.diffusion_model.output_blocks.3.1.proj_in.weight"
KEY_TEXT = "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"
KEY_VAE = "first_stage_model.decoder.conv_in.weight"


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("merger"), "--nowebui")
    folder = app.paths.ckpt_dirs[0]
    for name, seed in (("alpha", 1), ("beta", 2), ("gamma", 3)):
        write_tiny_checkpoint(folder / f"{name}.safetensors", "SD1", seed=seed)
    (folder / "alpha.yaml").write_text("model:\n  params: {}\n", encoding="utf-8")
    write_tiny_checkpoint(folder / "xl.safetensors", "SDXL")
    vae = {
        k.removeprefix("first_stage_model."): v
        for k, v in load_file(folder / "gamma.safetensors").items()
        if k.startswith("first_stage_model.")
    }
    app.paths.vae_dirs[0].mkdir(parents=True, exist_ok=True)
    save_file(vae, app.paths.vae_dirs[0] / "gamma-vae.safetensors")
    app.checkpoints.refresh()
    app.vaes.refresh()
    return app


def _merge(client, status: int = 200, **body) -> dict:
    r = client.post("/sdapi/v1/merge-checkpoints", json=body)
    assert r.status_code == status, r.text
    return r.json()


def _tensors(app, name: str) -> dict[str, torch.Tensor]:
    return load_file(app.paths.ckpt_dirs[0] / name)


def test_a_block_weighted_merge_is_written_listed_and_generates(app, client):
    ratios = [(i + 1) / 30 for i in range(26)]
    out = _merge(
        client,
        primary_model_name="alpha",
        secondary_model_name="beta",
        multiplier=0.4,
        block_weights=",".join(map(str, ratios)),
        custom_name="blend",
    )
    assert out["filename"] == "blend.safetensors" and "Checkpoint saved to" in out["info"]
    titles = [m["title"] for m in client.get("/sdapi/v1/sd-models").json()]
    assert out["title"] in titles
    merged, a, b = (
        _tensors(app, "blend.safetensors"),
        _tensors(app, "alpha.safetensors"),
        _tensors(app, "beta.safetensors"),
    )
    by_block = dict(zip(merge_layout(sdxl=False), ratios, strict=True))
    for key, block in ((KEY_UNET, "OUT03"), (KEY_TEXT, "BASE")):
        r = by_block[block]
        assert torch.equal(merged[key], (a[key].float() * (1 - r) + b[key].float() * r).to(a[key].dtype))
    assert torch.equal(merged[KEY_VAE], a[KEY_VAE])  # the VAE is the primary's unless asked
    with safe_open(str(app.paths.ckpt_dirs[0] / "blend.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    recipe = json.loads(metadata["sd_merge_recipe"])
    assert (
        recipe["type"] == "webui"
        and recipe["interp_method"] == "Weighted sum"
        and recipe["multiplier"] == 0.4
    )
    assert recipe["block_weights"].startswith("0.0333")
    models = json.loads(metadata["sd_merge_models"])
    assert {entry["name"] for entry in models.values()} == {"alpha.safetensors", "beta.safetensors"}
    assert (app.paths.ckpt_dirs[0] / "blend.yaml").is_file()  # A's config copied
    r = client.post(
        "/sdapi/v1/txt2img",
        json={
            "prompt": "a fox",
            "steps": 1,
            "width": 64,
            "height": 64,
            "override_settings": {"sd_model_checkpoint": out["title"]},
        },
    )
    assert r.status_code == 200, r.text
    assert "Model: blend" in json.loads(r.json()["info"])["infotexts"][0]


def test_add_difference_in_half_with_a_baked_vae_and_discarded_keys(app, client):
    out = _merge(
        client,
        primary_model_name="alpha",
        secondary_model_name="beta",
        tertiary_model_name="gamma",
        interp_method="Add difference",
        multiplier=0.5,
        save_as_half=True,
        bake_in_vae="gamma-vae.safetensors",
        discard_weights=r"final_layer_norm",
        config_source=3,
    )
    assert out["filename"] == "alpha + 0.5(beta - gamma).safetensors"
    merged = _tensors(app, out["filename"])
    a, b, c = (_tensors(app, f"{n}.safetensors") for n in ("alpha", "beta", "gamma"))
    assert merged[KEY_UNET].dtype == torch.float16
    assert torch.equal(
        merged[KEY_UNET], (a[KEY_UNET].float() + (b[KEY_UNET].float() - c[KEY_UNET].float()) * 0.5).half()
    )
    assert torch.equal(merged[KEY_VAE], c[KEY_VAE].half())  # the baked VAE
    assert not any("final_layer_norm" in key for key in merged)
    assert not (app.paths.ckpt_dirs[0] / "alpha + 0.5(beta - gamma).yaml").exists()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"secondary_model_name": "xl"}, "different families"),
        ({"secondary_model_name": "nope"}, "no checkpoint called 'nope'"),
        ({"secondary_model_name": "beta", "custom_name": "../outside"}, "cannot be a file name"),
        ({"secondary_model_name": "beta", "discard_weights": "("}, "not a regular expression"),
        ({"secondary_model_name": "beta", "block_weights": "1,2,3"}, "neither a preset"),
        ({"secondary_model_name": "beta", "interp_method": "Add difference"}, "needs a tertiary model"),
        ({"secondary_model_name": "beta", "bake_in_vae": "missing.pt"}, "Bake in VAE"),
        ({"secondary_model_name": "beta", "custom_name": "alpha"}, "already exists"),
    ],
)
def test_a_merge_that_cannot_be_done_is_a_400_and_writes_nothing(app, client, body, reason):
    before = sorted(p.name for p in app.paths.ckpt_dirs[0].iterdir())
    out = _merge(client, 400, primary_model_name="alpha", **body)
    assert reason in json.dumps(out)
    assert sorted(p.name for p in app.paths.ckpt_dirs[0].iterdir()) == before


def test_a_full_disk_leaves_no_partial_file(app, client, monkeypatch):
    import errno

    from modules.sumi.services.models import merger

    def full(path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(merger, "save_checkpoint", full)
    before = sorted(p.name for p in app.paths.ckpt_dirs[0].iterdir())
    out = _merge(client, 400, primary_model_name="alpha", secondary_model_name="beta", custom_name="full")
    assert "No space left on device" in json.dumps(out) and "nothing was saved" in json.dumps(out)
    assert sorted(p.name for p in app.paths.ckpt_dirs[0].iterdir()) == before


def test_a_merge_tried_in_memory_draws_what_the_saved_merge_draws_and_writes_nothing(app, client):
    body = {
        "primary_model_name": "alpha",
        "secondary_model_name": "gamma",
        "multiplier": 0.6,
        "block_weights": "GRAD_V",
    }
    before = sorted(p.name for p in app.paths.ckpt_dirs[0].iterdir())
    tried = _merge(client, **body, in_memory=True, custom_name="trial")
    assert tried["title"] == "trial (in memory)" and "nothing was written" in tried["info"]
    assert sorted(p.name for p in app.paths.ckpt_dirs[0].iterdir()) == before
    assert "trial (in memory)" in [m["title"] for m in client.get("/sdapi/v1/sd-models").json()]
    job = {"prompt": "a fox", "steps": 1, "width": 64, "height": 64, "seed": 2}
    r = client.post(
        "/sdapi/v1/txt2img", json={**job, "override_settings": {"sd_model_checkpoint": "trial (in memory)"}}
    )
    assert r.status_code == 200, r.text
    assert "Model: trial (in memory)" in json.loads(r.json()["info"])["infotexts"][0]
    in_memory_image = r.json()["images"][0]
    again = _merge(client, 400, primary_model_name="trial (in memory)", secondary_model_name="beta")
    assert "is a merge tried in memory; save it" in json.dumps(again)
    saved = _merge(client, **body, custom_name="trial-saved")
    r = client.post(
        "/sdapi/v1/txt2img", json={**job, "override_settings": {"sd_model_checkpoint": saved["title"]}}
    )
    from tests.app_support import decode_pixels

    assert (decode_pixels(r.json()["images"][0]) == decode_pixels(in_memory_image)).all()  # the same weights
    # another model took its place: the tried merge is gone from the list, and asking for it says why
    assert "trial (in memory)" not in [m["title"] for m in client.get("/sdapi/v1/sd-models").json()]
