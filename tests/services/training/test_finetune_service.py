"""The fine-tune / DreamBooth training kind on a real App (the demo model, 64x64 images the tests write):
class images made by Sumi and reused, a checkpoint in models/Stable-diffusion that the real loader reads
back with the trained weights and is listed at once, the generation model left exactly as it was,
interrupt + resume equal to an uninterrupted run (EMA included), settings checked before anything is
queued, and SDXL / SD2-v checkpoints."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.lora import LoraSettings, create_network, save_lora
from modules.sumi.engine.training.resume import load_resume_state
from modules.sumi.services.models.demo import DEMO_NAME
from modules.sumi.services.training.finetune import FinetuneTraining
from modules.sumi.services.training.finetune_settings import FinetuneTrainingSettings
from modules.sumi.services.training.service import TrainingService

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("finetune"), "--nowebui", loaded=True)
    _write_dataset(app.paths.data_dir / "instance-set")
    classes = app.paths.data_dir / "class-set"
    classes.mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(classes / "mine.png")  # a user's own
    return app


def _write_dataset(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate([(220, 30, 30), (30, 30, 220)]):
        pixels = np.zeros((64, 64, 3), dtype=np.uint8)
        pixels[...] = colour
        pixels[16:48, 16:48] = 255 - np.array(colour)
        Image.fromarray(pixels).save(folder / f"IMG_{i:04d}.png")
    (folder / "IMG_0000.png").with_suffix(".txt").write_text("white centre\n", encoding="utf-8")


def _settings(name: str, **kw) -> FinetuneTrainingSettings:
    base = dict(
        output_name=name,
        data_root="instance-set",
        instance_prompt="sks square",
        learn_rate="0.001",
        steps=3,
        training_width=64,
        training_height=64,
        preview_steps=1,
        preview_sampler_name="Euler",
        preview_seed=1,
        save_precision="fp32",
        seed=3,
    )
    return FinetuneTrainingSettings(**{**base, **kw})  # type: ignore[arg-type]


def _dreambooth(name: str, **kw) -> FinetuneTrainingSettings:
    classes = dict(
        class_data_root="class-set",
        class_prompt="a square",
        num_class_images=3,
        class_steps=1,
        class_sampler_name="Euler",
    )
    return _settings(name, **{**classes, **kw})


def _image(client, prompt: str) -> bytes:
    r = client.post("/sdapi/v1/txt2img", json={**BODY, "prompt": prompt})
    assert r.status_code == 200, r.text
    return Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]))).tobytes()


def _tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _part(tensors: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    return {k[len(part) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{part}.")}


# -- a DreamBooth run through the queue ----------------------------------------------------------------------
def test_a_dreambooth_run_writes_a_checkpoint_that_loads_back_and_leaves_generation_as_it_was(
    app, client, monkeypatch
):
    said: list[str] = []
    record = app.state.set_textinfo
    monkeypatch.setattr(app.state, "set_textinfo", lambda text: (said.append(text), record(text))[1])
    base = _image(client, "a square")
    model = app.models.get().sd
    before = [_weights(m) for m in model.modules()]
    run, job = app.finetune_training.submit(
        _dreambooth("sks-tuned", train_text_encoder=True, save_every=2, create_image_every=3)
    )
    job.future.result(timeout=300)
    view = run.view()
    assert view.status == "done", view.message
    assert [p.step for p in view.losses] == [1, 2, 3]
    assert "Generating class images 1/2" in said and "Generating class images 2/2" in said
    classes = app.paths.data_dir / "class-set"
    made = sorted(p.name for p in classes.glob("class-*.png"))
    assert made == ["class-00000.png", "class-00001.png"]
    assert (classes / "class-00000.txt").read_text(encoding="utf-8").strip() == "a square"
    assert [s.step for s in view.samples] == [3] and view.samples[0].prompt.startswith("sks square")

    path = app.paths.ckpt_dirs[0] / "sks-tuned.safetensors"
    state = load_resume_state(path.with_name(path.name + ".state"), "finetune")
    assert view.files[-1] == path and state.step == 3
    log = Path(view.samples[0].path).parent.parent
    assert (log / "Stable-diffusion" / "sks-tuned-2.safetensors").is_file()
    loaded = load_checkpoint(path)  # Sumi's real loader reads what was trained
    assert _equal(_weights(loaded.unet), _part(state.tensors, "unet"))
    assert _equal(_weights(loaded.text_encoders[0].model), _part(state.tensors, "te0"))
    assert _equal(_weights(loaded.vae), _weights(model.vae))
    _, meta = _tensors(path)
    assert meta["ss_instance_prompt"] == "sks square" and meta["ss_class_prompt"] == "a square"
    # DreamBooth: a picture without a .txt is trained with the instance prompt alone, not "IMG_0001"
    assert json.loads(meta["ss_tag_frequency"]) == {"instance-set": {"sks square": 2, "white centre": 1}}
    assert meta["ss_num_train_images"] == "2" and meta["ss_num_reg_images"] == "3"
    assert meta["ss_steps"] == "3" and meta["ss_sd_model_name"] and meta["ss_train_text_encoder"] == "True"
    assert "sks-tuned" in {m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()}

    assert all(_equal(_weights(m), w) for m, w in zip(model.modules(), before, strict=True))
    assert not any(p.requires_grad for m in model.modules() for p in m.parameters())
    assert not any(m.training for m in model.modules())
    assert _image(client, "a square") == base


def test_a_lora_left_in_the_weights_by_a_job_is_not_baked_into_the_checkpoint(app, client):
    """A learning rate too small to move a weight: the checkpoint must equal the base, not base + LoRA."""
    model = app.models.get().sd
    network = create_network(model, LoraSettings(rank=2, train_text_encoder=False, unet_target="attention"))
    tensors = {
        k: torch.full_like(v, 0.5) if "lora_up" in k else v for k, v in network.file_state_dict().items()
    }
    save_lora(app.paths.lora_dir / "resident.safetensors", tensors, dtype="fp32")
    client.post("/sdapi/v1/refresh-loras")
    base_unet = _weights(model.unet)
    with_lora = _image(client, "a square <lora:resident:1>")  # leaves the deltas in the weights
    assert not _equal(_weights(model.unet), base_unet)
    run = app.finetune_training.train(_settings("no-lora", steps=1, learn_rate="1e-9"))
    assert run.view().status == "done", run.view().message
    saved = load_checkpoint(app.paths.ckpt_dirs[0] / "no-lora.safetensors").unet.state_dict()
    for key, value in base_unet.items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=1e-6)
    assert _image(client, "a square <lora:resident:1>") == with_lora


# -- interrupt and resume ----------------------------------------------------------------------------------
def _interrupting(app) -> FinetuneTraining:
    """The kind on a training service whose sample maker interrupts (at the first sample)."""
    real = app.training._make_sample

    def sample(fields):
        image = real(fields)
        app.state.interrupt()
        return image

    service = TrainingService(
        app.queue, app.state, lambda: (app.models.get().sd, "demo", "0123456789"), sample
    )
    return FinetuneTraining(service, app.paths, app.options, app.checkpoints.refresh)


def test_an_interrupted_run_keeps_a_usable_checkpoint_and_resumes_to_the_uninterrupted_result(app, client):
    """EMA on, captions shuffled: the class images of the first test are reused, none is generated."""
    extra = dict(ema=True, ema_decay=0.9, shuffle_tags=True, flip=True, cache_latents=False)
    whole = app.finetune_training.train(_dreambooth("whole", **extra))
    assert whole.view().status == "done", whole.view().message
    assert not any("class-set" in str(p) for p in whole.view().files)  # no class image made
    folder = app.paths.ckpt_dirs[0]
    expected = load_resume_state(folder / "whole.safetensors.state", "finetune")
    first = _interrupting(app).train(_dreambooth("part", create_image_every=1, **extra))
    assert first.view().status == "interrupted" and first.view().step == 1
    path = folder / "part.safetensors"
    _, meta = _tensors(path)
    assert meta["ss_steps"] == "1" and meta["ss_ema"] == "True"
    rest = app.finetune_training.train(_dreambooth("part", resume=True, **extra))
    assert rest.view().status == "done", rest.view().message
    assert [p.step for p in rest.view().losses] == [2, 3]
    got = load_resume_state(path.with_name(path.name + ".state"), "finetune")
    assert _equal(got.tensors, expected.tensors)
    for a, b in zip(got.extra["ema"]["shadow_params"], expected.extra["ema"]["shadow_params"], strict=True):
        assert torch.equal(a, b)
    saved, _ = _tensors(path)
    assert _equal(saved, _tensors(folder / "whole.safetensors")[0])  # the EMA weights, saved
    raw = load_checkpoint(path).unet.state_dict()
    assert not _equal(dict(raw), _part(got.tensors, "unet"))  # not the raw trained weights
    again = app.finetune_training.train(_dreambooth("part", resume=True, **extra))
    assert "already been trained" in again.view().message


def test_a_run_that_fails_midway_leaves_the_model_as_it_was_and_writes_nothing(app):
    def failing_sample(fields):
        raise RuntimeError("the sample broke")

    service = TrainingService(
        app.queue, app.state, lambda: (app.models.get().sd, "demo", "0123456789"), failing_sample
    )
    kind = FinetuneTraining(service, app.paths, app.options, app.checkpoints.refresh)
    model = app.models.get().sd
    before = [_weights(m) for m in model.modules()]
    run, job = kind.submit(
        _settings("broken", steps=3, create_image_every=1, train_text_encoder=True, ema=True)
    )
    with pytest.raises(RuntimeError, match="the sample broke"):
        job.future.result(timeout=120)
    assert run.view().status == "failed" and "the sample broke" in run.view().message
    assert run.view().step == 1  # it failed after training a step
    assert all(_equal(_weights(m), w) for m, w in zip(model.modules(), before, strict=True))
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in model.unet.parameters())
    assert not any(m.training for m in model.modules())
    assert not (app.paths.ckpt_dirs[0] / "broken.safetensors").exists()


# -- settings and checks ----------------------------------------------------------------------------------
def test_bad_settings_are_refused_before_anything_is_queued(app):
    queued = len(app.training.runs.runs)
    (app.paths.data_dir / "empty-classes").mkdir(exist_ok=True)
    for settings, field in (
        (_settings("x", data_root="missing"), "data_root"),
        (_dreambooth("x", class_data_root="../.."), "class_data_root"),
        (_dreambooth("x", class_data_root="empty-classes", class_prompt=""), "class_prompt"),
        (_dreambooth("x", class_data_root="instance-set"), "class_data_root"),
    ):
        with pytest.raises(TrainingError, match=field):
            app.finetune_training.submit(settings)
    assert len(app.training.runs.runs) == queued
    for kw, field in (
        ({"output_name": "../evil"}, "output_name"),
        ({"save_precision": "fp8"}, "save_precision"),
        ({"ema_decay": 1.5}, "ema_decay"),
        ({"text_encoder_lr": 1e-4}, "text_encoder_lr"),
        ({"class_prompt": "a dog"}, "class_prompt"),
        ({"class_data_root": "class-set", "instance_prompt": ""}, "instance_prompt"),
        ({"num_class_images": 0}, "num_class_images"),
        ({"learn_rate": "fast"}, "learn_rate"),
        ({"class_sampler_name": "Nope"}, "class_sampler_name"),
        ({"prior_loss_weight": -1.0}, "prior_loss_weight"),
    ):
        with pytest.raises(TrainingError, match=field):
            _settings("x", **kw)
    with pytest.raises(TrainingError, match="colour"):
        FinetuneTrainingSettings.from_args({"output_name": "x", "colour": 1})
    with pytest.raises(TrainingError, match="steps"):
        FinetuneTrainingSettings.from_args({"output_name": "x", "steps": "many"})
    parsed = FinetuneTrainingSettings.from_args({"output_name": "x", "learn_rate": 1e-5, "ema": True})
    assert parsed.learn_rate == "1e-05" and parsed.ema and not parsed.prior_preservation


@pytest.mark.skipif(torch.cuda.is_available(), reason="the App computes on CUDA here, where fp16 trains")
def test_fp16_off_cuda_fails_before_any_class_image_is_made(app):
    classes = app.paths.data_dir / "fp16-classes"
    run = app.finetune_training.train(
        _dreambooth("fp16", class_data_root="fp16-classes", mixed_precision="fp16", steps=1)
    )
    assert run.view().status == "failed" and "CUDA" in run.view().message
    assert not classes.exists()


def test_the_loaded_checkpoint_is_never_overwritten(app):
    demo = app.paths.ckpt_dirs[0] / DEMO_NAME
    before = demo.read_bytes()
    run = app.finetune_training.train(_settings(Path(DEMO_NAME).stem, steps=1))
    assert run.view().status == "failed" and "loaded checkpoint" in run.view().message
    assert demo.read_bytes() == before


# -- other families ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "stem"), [("tiny_sdxl_ckpt", "tiny_sdxl"), ("tiny_sd2v_ckpt", "tiny_sd2v")]
)
def test_sdxl_and_v_prediction_checkpoints_fine_tune_and_load_back_as_themselves(app, request, fixture, stem):
    source, _ = request.getfixturevalue(fixture)
    folder = app.paths.ckpt_dirs[0]
    copied = [Path(shutil.copy(source, folder / source.name))]
    if source.with_suffix(".yaml").exists():
        copied.append(Path(shutil.copy(source.with_suffix(".yaml"), folder / f"{stem}.yaml")))
    try:
        app.models.refresh()
        app.settings.set({"sd_model_checkpoint": stem})
        model = app.models.get().sd
        run = app.finetune_training.train(_settings(f"{stem}-tuned", steps=2, instance_prompt=""))
        assert run.view().status == "done", run.view().message
        out = folder / f"{stem}-tuned.safetensors"
        loaded = load_checkpoint(out)
        assert (loaded.family, loaded.prediction_type) == (model.family, model.prediction_type)
        state = load_resume_state(out.with_name(out.name + ".state"), "finetune")
        assert _equal(_weights(loaded.unet), _part(state.tensors, "unet"))
        assert out.with_suffix(".yaml").is_file() == (stem == "tiny_sd2v")  # the base's config travels
    finally:
        app.settings.set({"sd_model_checkpoint": DEMO_NAME})
        for path in copied:
            path.unlink()
