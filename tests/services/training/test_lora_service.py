"""The LoRA / LyCORIS training kind on a real App (the demo model, 64x64 images the tests write): a run
through the queue writes a kohya file with `ss_*` metadata that is listed and usable at once, samples
and intermediate files, buckets, deterministic captions, interrupt + resume equal to an uninterrupted
run, settings checked before anything is queued, and generation left exactly as it was."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from modules.sumi.engine.training.dataset import (
    DatasetSettings,
    LatentDataset,
    TrainingImage,
    bucket_sizes,
    compose_prompt,
    nearest_bucket,
)
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.resume import load_resume_state
from modules.sumi.services.training.dataset import FolderSettings, read_folder
from modules.sumi.services.training.lora import LoraTraining, dataset_settings
from modules.sumi.services.training.lora_settings import (
    LORA_ALGOS,
    SAVE_PRECISIONS,
    UNET_TARGETS,
    LoraTrainingSettings,
)
from modules.sumi.services.training.service import TrainingService

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("lora"), "--nowebui", loaded=True)
    _write_dataset(app.paths.data_dir / "lora-set")
    return app


def _write_dataset(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate([(220, 30, 30), (30, 30, 220)]):
        pixels = np.zeros((64, 64, 3), dtype=np.uint8)
        pixels[...] = colour
        pixels[16:48, 16:48] = 255 - np.array(colour)
        Image.fromarray(pixels).save(folder / f"{i:03d}-square, bright.png")
    (folder / "000-square, bright.txt").write_text("red square, white centre\n", encoding="utf-8")


def _settings(name: str, **kw) -> LoraTrainingSettings:
    base = dict(
        output_name=name,
        data_root="lora-set",
        rank=2,
        alpha=2.0,
        learn_rate="0.01",
        steps=4,
        training_width=64,
        training_height=64,
        preview_steps=1,
        preview_sampler_name="Euler",
        preview_seed=1,
        seed=3,
    )
    return LoraTrainingSettings(**{**base, **kw})  # type: ignore[arg-type]


def _image(client, prompt: str) -> bytes:
    r = client.post("/sdapi/v1/txt2img", json={**BODY, "prompt": prompt})
    assert r.status_code == 200, r.text
    return Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]))).tobytes()


def _tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118


# -- a run through the queue --------------------------------------------------------------------------------
def test_a_run_writes_a_kohya_file_usable_at_once_and_leaves_generation_as_it_was(app, client):
    base = _image(client, "a square")
    run, job = app.lora_training.submit(
        _settings("sq-lora", create_image_every=4, save_every=2, caption_prefix="sqz")
    )
    job.future.result(timeout=120)
    view = run.view()
    assert view.status == "done", view.message
    assert [p.step for p in view.losses] == [1, 2, 3, 4]
    assert [s.step for s in view.samples] == [4] and Path(view.samples[0].path).is_file()
    assert view.samples[0].prompt.startswith("sqz, ")
    path = app.paths.lora_dir / "sq-lora.safetensors"
    assert view.files[-1] == path and (path.parent / "sq-lora.safetensors.state").is_file()
    log = Path(view.samples[0].path).parent.parent
    assert (log / "Lora" / "sq-lora-2.safetensors").is_file() and (
        log / "Lora" / "sq-lora-4.safetensors"
    ).is_file()
    tensors, meta = _tensors(path)
    assert any(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in tensors)
    assert any(k.startswith("lora_te_") for k in tensors)
    assert all(t.dtype == torch.float16 for t in tensors.values())
    assert meta["ss_output_name"] == "sq-lora" and meta["ss_steps"] == "4"
    assert meta["ss_num_train_images"] == "2" and meta["ss_resolution"] == "(64, 64)"
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_network_dim"] == "2"
    assert meta["ss_sd_model_name"]
    assert json.loads(meta["ss_tag_frequency"]) == {
        "lora-set": {"red square": 1, "white centre": 1, "square": 1, "bright": 1}
    }
    assert "sq-lora" in {item["name"] for item in client.get("/sdapi/v1/loras").json()}
    assert _image(client, "a square <lora:sq-lora:1>") != base
    assert _image(client, "a square <lora:sq-lora:0>") == base
    model = app.models.get().sd
    assert not any(p.requires_grad for m in model.modules() for p in m.parameters())
    assert not any(m.training for m in model.modules())
    assert _image(client, "a square") == base


def test_a_lycoris_run_records_its_module(app):
    run = app.lora_training.train(_settings("lokr-net", algo="lokr", steps=1, train_text_encoder=False))
    assert run.view().status == "done", run.view().message
    tensors, meta = _tensors(app.paths.lora_dir / "lokr-net.safetensors")
    assert (
        meta["ss_network_module"] == "lycoris.kohya" and json.loads(meta["ss_network_args"])["algo"] == "lokr"
    )
    assert not any(k.startswith("lora_te_") for k in tensors)


# -- interrupt and resume ----------------------------------------------------------------------------------
def _interrupting(app, stop_at: int) -> LoraTraining:
    """The LoRA kind on a training service whose sample maker interrupts (at the first sample)."""
    real = app.training._make_sample

    def sample(fields):
        image = real(fields)
        app.state.interrupt()
        return image

    service = TrainingService(
        app.queue, app.state, lambda: (app.models.get().sd, "demo", "0123456789"), sample
    )
    return LoraTraining(service, app.paths, app.options, app.loras)


def test_an_interrupted_run_keeps_a_usable_file_and_resumes_to_the_uninterrupted_result(app, client):
    extra = dict(shuffle_tags=True, tag_drop_out=0.2, flip=True, cache_latents=False)
    whole = app.lora_training.train(_settings("whole", **extra))
    assert whole.view().status == "done", whole.view().message
    expected = load_resume_state(app.paths.lora_dir / "whole.safetensors.state", "lora").tensors
    first = _interrupting(app, 2).train(_settings("part", create_image_every=2, **extra))
    assert first.view().status == "interrupted" and first.view().step == 2
    path = app.paths.lora_dir / "part.safetensors"
    tensors, meta = _tensors(path)
    assert meta["ss_steps"] == "2" and tensors
    assert "part" in {item["name"] for item in client.get("/sdapi/v1/loras").json()}
    assert load_resume_state(path.with_name(path.name + ".state"), "lora").step == 2
    rest = app.lora_training.train(_settings("part", resume=True, **extra))
    assert rest.view().status == "done", rest.view().message
    assert [p.step for p in rest.view().losses] == [3, 4]
    got = load_resume_state(path.with_name(path.name + ".state"), "lora").tensors
    assert set(got) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)
    again = app.lora_training.train(_settings("part", resume=True, **extra))
    assert "already been trained" in again.view().message


# -- settings and checks ----------------------------------------------------------------------------------
def test_bad_settings_are_refused_before_anything_is_queued(app):
    queued = len(app.training.runs.runs)
    with pytest.raises(TrainingError, match="data_root"):
        app.lora_training.submit(_settings("x", data_root="missing"))
    with pytest.raises(TrainingError, match="data_root"):
        app.lora_training.submit(_settings("x", data_root="../.."))
    assert len(app.training.runs.runs) == queued
    for kw, field in (
        ({"algo": "dora"}, "algo"),
        ({"unet_target": "everything"}, "unet_target"),
        ({"save_precision": "fp8"}, "save_precision"),
        ({"output_name": "../evil"}, "output_name"),
        ({"output_name": " "}, "output_name"),
        ({"rank": 0}, "rank"),
        ({"learn_rate": "fast"}, "learn_rate"),
        ({"tag_drop_out": 1.0}, "tag_drop_out"),
        ({"preview_sampler_name": "Nope"}, "preview_sampler_name"),
        ({"unet_lr": 0.0}, "unet_lr"),
    ):
        with pytest.raises(TrainingError, match=field):
            _settings("x", **kw)
    with pytest.raises(TrainingError, match="colour"):
        LoraTrainingSettings.from_args({"output_name": "x", "colour": 1})
    with pytest.raises(TrainingError, match="steps"):
        LoraTrainingSettings.from_args({"output_name": "x", "steps": "many"})
    parsed = LoraTrainingSettings.from_args({"output_name": "x", "learn_rate": 0.001, "unet_lr": 1})
    assert parsed.learn_rate == "0.001" and parsed.unet_lr == 1.0
    assert (
        "lokr" in LORA_ALGOS and "transformer" in UNET_TARGETS and SAVE_PRECISIONS == ("fp16", "bf16", "fp32")
    )


# -- buckets and captions (no model) ----------------------------------------------------------------------
def test_buckets_group_images_by_aspect_ratio(tmp_path):
    assert nearest_bucket((128, 64), bucket_sizes(128, 128)) == (192, 64)
    assert nearest_bucket((100, 100), bucket_sizes(128, 128)) == (128, 128)
    assert all(w * h <= 128 * 128 and w % 64 == 0 and h % 64 == 0 for w, h in bucket_sizes(128, 128))
    for i, size in enumerate([(128, 64), (160, 70), (64, 128), (70, 160)]):
        Image.fromarray(np.full((size[1], size[0], 3), 40 * i, np.uint8)).save(tmp_path / f"{i}-img.png")
    contents = read_folder(FolderSettings(tmp_path, 128, 128, buckets=True))
    sizes = [tuple(image.pixels.shape[1:]) for image in contents.images]
    assert sizes == [(64, 192), (64, 192), (192, 64), (192, 64)]
    images = [TrainingImage(f"{i}", torch.zeros(4, h // 8, w // 8)) for i, (h, w) in enumerate(sizes)]
    dataset = LatentDataset(images, DatasetSettings("x", ("[filewords]",), batch_size=2, seed=1))
    assert sorted(len(g) for g in dataset.groups) == [2, 2]
    for step in range(4):
        batch = dataset.batch(step, 0, torch.Generator().manual_seed(0))
        assert batch.latents.shape[0] == 2  # stacking proves one size per batch
        assert sorted(batch.names) in (["0", "1"], ["2", "3"])


def test_keep_tokens_shuffle_and_dropout_are_deterministic_and_keep_the_prefix():
    tags = "alpha, beta, gamma, delta, epsilon, zeta"
    settings = _settings(
        "tok", caption_prefix="trig", shuffle_tags=True, tag_drop_out=0.3, keep_tokens=2, flip=True
    )
    dataset_a, dataset_b = (
        LatentDataset(
            [
                TrainingImage(
                    "a", torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(1)), filewords=tags
                )
            ],
            dataset_settings(settings),
        )
        for _ in range(2)
    )
    seen, flipped = set(), set()
    for step in range(12):
        a = dataset_a.batch(step, 0, torch.Generator().manual_seed(step))
        b = dataset_b.batch(step, 0, torch.Generator().manual_seed(step))
        assert a.prompts == b.prompts and torch.equal(a.latents, b.latents)
        prompt = a.prompts[0]
        assert prompt.startswith("trig, alpha, beta,")
        seen.add(prompt)
        flipped.add(torch.equal(a.latents[0], dataset_a.images[0].latents.flip(-1)))
    assert len(seen) > 3 and flipped == {True, False}
    kept = compose_prompt("[filewords]", "", tags, random.Random(0), True, 0.99, keep_tokens=1)
    assert kept == "alpha"


def test_a_lora_left_on_the_model_by_a_job_is_not_trained_on(app, client):
    """Generation leaves LoRA deltas resident (A1111); training starts from the checkpoint's weights."""
    clean = app.lora_training.train(_settings("from-clean", steps=2, train_text_encoder=False))
    assert clean.view().status == "done"
    _image(client, "a square <lora:from-clean:1>")  # its deltas stay on the model after the job
    again = app.lora_training.train(_settings("from-patched", steps=2, train_text_encoder=False))
    assert again.view().status == "done"
    first = _tensors(app.paths.lora_dir / "from-clean.safetensors")[0]
    second = _tensors(app.paths.lora_dir / "from-patched.safetensors")[0]
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
