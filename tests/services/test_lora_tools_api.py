"""The LoRA tools through the API: a LoRA baked into a checkpoint draws what the LoRA in the prompt draws;
a LoRA extracted from a fine-tune turns the base into it; a resized LoRA is listed and loads; a request
that cannot be done is a 400 and writes nothing."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from modules.sumi.engine.ldm_export import save_checkpoint, to_single_file_state_dict
from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks import NetworkPatcher, load_network, network_from_state_dict
from modules.sumi.engine.tiny_models import tiny
from tests.app_support import generate
from tests.fixtures import tiny_networks as tn

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 9, "sampler_name": "Euler"}


def _model(components: dict) -> SDModel:
    specs = [TextEncoderSpec(model=m, tokenizer=None) for m in components["text_encoders"]]
    return SDModel(components["family"], components["unet"], components["vae"], specs, scheduler_config={})


def _save(path, components: dict) -> None:
    save_checkpoint(
        path,
        to_single_file_state_dict("SD1", components["unet"], components["vae"], components["text_encoders"]),
    )


@pytest.fixture(scope="module")
def teacher_state(base_components):
    return tn.lora_state_dict(base_components, rank=3, alpha=3.0, seed=11)


@pytest.fixture(scope="module")
def base_components():
    return tiny("SD1", seed=1)


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory, base_components, teacher_state):
    app = make_module_app(tmp_path_factory.mktemp("lora-tools"), "--nowebui")
    folder = app.paths.ckpt_dirs[0]
    _save(folder / "base.safetensors", base_components)
    tuned = copy.deepcopy(base_components)
    NetworkPatcher(_model(tuned)).apply([(network_from_state_dict(teacher_state, "teacher"), 1.0, 1.0)])
    _save(folder / "tuned.safetensors", tuned)
    tn.save(app.paths.lora_dir / "style.safetensors", tn.lora_state_dict(base_components, rank=4, seed=12))
    app.checkpoints.refresh()
    app.loras.refresh()
    return app


def _post(client, route: str, status: int = 200, **body) -> dict:
    r = client.post(f"/sdapi/v1/lora/{route}", json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_a_baked_lora_draws_what_the_lora_in_the_prompt_draws(app, client):
    out = _post(
        client, "merge-into-checkpoint", checkpoint="base", loras="<lora:style:0.7>", custom_name="base-style"
    )
    assert out["filename"] == "base-style.safetensors" and out["warnings"] == []
    titles = [m["title"] for m in client.get("/sdapi/v1/sd-models").json()]
    assert any(t.startswith("base-style.safetensors") for t in titles)
    with_tag, _ = generate(
        client, {**BODY, "override_settings": {"sd_model_checkpoint": "base"}}, "a fox <lora:style:0.7>"
    )
    baked, info = generate(
        client, {**BODY, "override_settings": {"sd_model_checkpoint": "base-style"}}, "a fox"
    )
    assert "Model: base-style" in info["infotexts"][0]
    assert baked == with_tag
    plain, _ = generate(client, {**BODY, "override_settings": {"sd_model_checkpoint": "base"}}, "a fox")
    assert plain != baked


def test_an_extracted_lora_turns_the_base_into_the_fine_tune(app, client, base_components):
    out = _post(client, "extract", tuned_model="tuned", base_model="base", rank=3, save_as_half=False)
    assert out["filename"] == "tuned-base-r3.safetensors"
    assert "tuned-base-r3" in {item["name"] for item in client.get("/sdapi/v1/loras").json()}
    path = app.paths.lora_dir / out["filename"]
    student = _model(copy.deepcopy(base_components))
    (result,) = NetworkPatcher(student).apply([(load_network(path), 1.0, 1.0)])
    assert result.unmatched == []
    tuned = load_file(app.paths.ckpt_dirs[0] / "tuned.safetensors")
    mine = to_single_file_state_dict(
        "SD1", student.unet, student.vae, [s.model for s in student.text_encoders]
    )
    for key, value in tuned.items():
        torch.testing.assert_close(mine[key], value, rtol=1e-4, atol=1e-5, msg=key)
    metadata = load_network(path).metadata
    assert metadata["ss_network_dim"] == "3" and metadata["ss_base_model_version"] == "sd_v1"


def test_a_resized_lora_is_listed_and_loads(app, client):
    out = _post(client, "resize", lora="style", rank=2)
    assert out["filename"] == "style-r2.safetensors"
    network = load_network(app.paths.lora_dir / out["filename"])
    assert all(weights["lora_down.weight"].shape[0] == 2 for weights in network.layers.values())
    assert all(weights["lora_down.weight"].dtype == torch.float16 for weights in network.layers.values())
    image, info = generate(
        client, {**BODY, "override_settings": {"sd_model_checkpoint": "base"}}, "a fox <lora:style-r2:1>"
    )
    assert not info["warnings"]


@pytest.mark.parametrize(
    ("route", "body", "reason"),
    [
        (
            "merge-into-checkpoint",
            {"checkpoint": "nope", "loras": "<lora:style:1>"},
            "no checkpoint called 'nope'",
        ),
        (
            "merge-into-checkpoint",
            {"checkpoint": "base", "loras": "<lora:missing:1>"},
            "Lora not found: missing",
        ),
        (
            "merge-into-checkpoint",
            {"checkpoint": "base", "loras": "<lora:style:1>", "custom_name": "../x"},
            "cannot be a file name",
        ),
        ("extract", {"tuned_model": "base", "base_model": "base", "rank": 4}, "nothing to extract"),
        (
            "extract",
            {"tuned_model": "tuned", "base_model": "base", "rank": 4, "custom_name": "style"},
            "already exists",
        ),
        ("resize", {"lora": "missing", "rank": 2}, "no LoRA called 'missing'"),
    ],
)
def test_a_tool_request_that_cannot_be_done_is_a_400_and_writes_nothing(app, client, route, body, reason):
    before = sorted(p.name for p in (*app.paths.ckpt_dirs[0].iterdir(), *app.paths.lora_dir.iterdir()))
    out = _post(client, route, 400, **body)
    assert reason in json.dumps(out)
    assert (
        sorted(p.name for p in (*app.paths.ckpt_dirs[0].iterdir(), *app.paths.lora_dir.iterdir())) == before
    )


def test_a_rank_out_of_range_is_refused_by_the_schema(client):
    _post(client, "resize", 422, lora="style", rank=0)
