"""Full fine-tune / DreamBooth in the engine: a model trained from scratch learns, the prior-preservation
loss is diffusers' sum, text encoders train at their own rate, EMA weights are what the model ends with,
an exact resume, weights put back bit for bit, and checkpoints that load back (SD1, SDXL, SD2-v)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors import safe_open

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.text.encoder import encode_prompts
from modules.sumi.engine.tiny_models import demo_sd1, write_checkpoint
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.finetune import (
    FinetuneBatch,
    FinetuneFileInfo,
    FinetuneTrainSettings,
    finetune_metadata,
    preserved_weights,
    save_finetuned,
    train_finetune,
)
from modules.sumi.engine.training.loop import LoopSettings, micro_seed, run_loop
from modules.sumi.engine.training.lora import TrainingBatch
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.model_io import unet_predictor
from modules.sumi.engine.training.objective import DiffusionObjective
from modules.sumi.engine.training.resume import ResumeState, load_resume_state, save_resume_state

CAPTIONS = ["a red circle", "a blue square"]
CLASS_CAPTIONS = ["a circle", "a square"]


def _latents(seed: int, count: int = 2, size: int = 8) -> torch.Tensor:
    return torch.randn(count, 4, size, size, generator=torch.Generator().manual_seed(seed))


def _training(steps: int, rate: float = 1e-3, seed: int = 3, **kwargs) -> FinetuneTrainSettings:
    accumulation = kwargs.pop("accumulation", 1)
    loop = LoopSettings(steps, LearnRateSchedule.parse(rate, steps), accumulation, seed=seed)
    return FinetuneTrainSettings(loop=loop, **kwargs)


def _instance(step, micro, generator):
    return TrainingBatch(CAPTIONS, latents=_latents(1))


def _with_prior(step, micro, generator):
    return FinetuneBatch(
        TrainingBatch(CAPTIONS, latents=_latents(1)), TrainingBatch(CLASS_CAPTIONS, latents=_latents(2))
    )


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def sd1(tiny_sd1_ckpt):
    """A fresh tiny SD1 model per test (fine-tuning changes it)."""
    return load_checkpoint(tiny_sd1_ckpt[0])


def _eval_loss(model, latents: torch.Tensor) -> float:
    """The objective on fixed noise and timesteps, averaged over several draws."""
    objective = DiffusionObjective(model.scheduler_config, model.prediction_type)
    with torch.no_grad():
        context = encode_prompts(model.text_encoders, CAPTIONS).context
        predict = unet_predictor(model, type("C", (), {"context": context, "pooled": None})(), 64, 64)
        losses = [objective.loss(predict, latents, torch.Generator().manual_seed(s)) for s in range(8)]
    return float(torch.stack(losses).mean())


# -- training -----------------------------------------------------------------------------------------
def test_a_model_trained_from_scratch_learns_its_data(tmp_path):
    """A freshly initialised model (no pretrained weight anywhere), written and loaded as a script would."""
    path = write_checkpoint(tmp_path / "scratch.safetensors", demo_sd1(seed=7))
    model = load_checkpoint(path)
    latents = _latents(1)
    before = _eval_loss(model, latents)
    result = train_finetune(model, _instance, _training(6, 5e-3))
    assert result.finished and result.step == 6 and len(result.losses) == 6
    assert _eval_loss(model, latents) < 0.8 * before
    assert not any(p.requires_grad for m in model.modules() for p in m.parameters())
    assert not any(m.training for m in model.modules())


def test_the_text_encoder_trains_at_its_own_rate_only_when_asked(sd1):
    te, vae = _weights(sd1.text_encoders[0].model), _weights(sd1.vae)
    unet = _weights(sd1.unet)
    train_finetune(sd1, _instance, _training(2))
    assert _equal(_weights(sd1.text_encoders[0].model), te) and _equal(_weights(sd1.vae), vae)
    assert not _equal(_weights(sd1.unet), unet)
    with preserved_weights([sd1.unet, sd1.text_encoders[0].model]):
        train_finetune(sd1, _instance, _training(2, train_text_encoder=True, text_encoder_lr=1e-2))
        moved = _weights(sd1.text_encoders[0].model)
    assert not _equal(moved, te) and _equal(_weights(sd1.vae), vae)
    assert _equal(_weights(sd1.text_encoders[0].model), te)  # preserved_weights put it back


def test_gradient_checkpointing_gives_the_same_step_and_is_turned_off_again(sd1):
    modules = [sd1.unet, sd1.text_encoders[0].model]
    results = []
    for checkpointing in (False, True):
        with preserved_weights(modules):
            train_finetune(
                sd1, _instance, _training(1, train_text_encoder=True, gradient_checkpointing=checkpointing)
            )
            results.append((_weights(sd1.unet), _weights(sd1.text_encoders[0].model)))
    for plain, checkpointed in zip(*results, strict=True):
        assert plain.keys() == checkpointed.keys()
        for key, value in plain.items():
            torch.testing.assert_close(checkpointed[key], value, rtol=1e-5, atol=1e-7)
    assert not sd1.unet.is_gradient_checkpointing
    assert not sd1.text_encoders[0].model.is_gradient_checkpointing


def test_the_prior_preservation_loss_is_the_instance_loss_plus_the_weighted_class_loss(sd1):
    """Step 1's reported loss against the objective computed by hand with that step's generator."""
    weight = 0.7
    generator = torch.Generator().manual_seed(micro_seed(3, 0, 0))
    objective = DiffusionObjective(sd1.scheduler_config, sd1.prediction_type)

    def loss(captions, latents):
        with torch.no_grad():
            cond = encode_prompts(sd1.text_encoders, captions)
            return objective.loss(unet_predictor(sd1, cond, 64, 64), latents, generator)

    expected = loss(CAPTIONS, _latents(1)) + weight * loss(CLASS_CAPTIONS, _latents(2))
    result = train_finetune(sd1, _with_prior, _training(1, prior_loss_weight=weight))
    assert result.losses[0] == pytest.approx(float(expected), rel=1e-5)


def test_a_prior_loss_weight_of_zero_trains_as_without_class_images(sd1):
    with preserved_weights([sd1.unet]):
        train_finetune(sd1, _instance, _training(2))
        plain = _weights(sd1.unet)
    with preserved_weights([sd1.unet]):
        train_finetune(sd1, _with_prior, _training(2, prior_loss_weight=0.0))
        zero = _weights(sd1.unet)
        assert _equal(zero, plain)
    train_finetune(sd1, _with_prior, _training(2))
    assert not _equal(_weights(sd1.unet), plain)


def test_with_ema_the_model_ends_with_the_averaged_weights_and_samples_see_them(sd1):
    sessions, seen = [], []

    def on_step(report):
        with sessions[0].for_sampling():
            seen.append(next(sd1.unet.parameters()).detach().clone())
            assert not sd1.unet.training
        assert sd1.unet.training

    result = train_finetune(
        sd1, _instance, _training(3, 1e-2, ema_decay=0.5), on_start=sessions.append, on_step=on_step
    )
    shadow = result.resume.extra["ema"]["shadow_params"]
    raw = {k[len("unet.") :]: v for k, v in result.resume.tensors.items() if k.startswith("unet.")}
    params = list(sd1.unet.parameters())
    assert all(torch.equal(p.detach(), s) for p, s in zip(params, shadow, strict=True))
    assert torch.equal(seen[-1], shadow[0])
    assert not torch.equal(raw[next(iter(dict(sd1.unet.named_parameters())))], shadow[0])


def test_a_resumed_run_equals_the_uninterrupted_one(sd1, tmp_path):
    """EMA, text encoder, a schedule and prior preservation: all continue exactly."""
    loop = LoopSettings(3, LearnRateSchedule.parse("0.002:2, 0.001", 3), seed=11)
    training = FinetuneTrainSettings(
        loop=loop, train_text_encoder=True, text_encoder_lr=5e-4, ema_decay=0.9, prior_loss_weight=0.5
    )
    modules = [sd1.unet, sd1.text_encoders[0].model]
    with preserved_weights(modules):
        whole = train_finetune(sd1, _with_prior, training)
        final = _weights(sd1.unet)
    reports = []
    with preserved_weights(modules):
        first = train_finetune(
            sd1, _with_prior, training, on_step=reports.append, should_stop=lambda: len(reports) >= 1
        )
        assert (first.step, first.finished) == (1, False)
    save_resume_state(tmp_path / "run.state", first.resume)
    state = load_resume_state(tmp_path / "run.state", "finetune")
    with preserved_weights(modules):
        resumed = train_finetune(sd1, _with_prior, training, resume=state)
        assert resumed.finished and resumed.step == 3 and len(resumed.losses) == 2
        assert _equal(_weights(sd1.unet), final)
    for key, value in whole.resume.tensors.items():
        torch.testing.assert_close(resumed.resume.tensors[key], value, rtol=0, atol=0)
    for got, want in zip(
        resumed.resume.extra["ema"]["shadow_params"], whole.resume.extra["ema"]["shadow_params"], strict=True
    ):
        torch.testing.assert_close(got, want, rtol=0, atol=0)

    for other in (
        FinetuneTrainSettings(loop=loop, ema_decay=0.9),
        dataclasses.replace(training, optimizer="SGD"),
    ):
        with pytest.raises(TrainingError, match="settings it was started with"):
            train_finetune(sd1, _with_prior, other, resume=state)
    with pytest.raises(TrainingError, match="not a fine-tune"):
        train_finetune(sd1, _with_prior, training, resume=ResumeState(1, {}, {}, "lora"))


def test_preserved_weights_put_a_half_precision_model_back_bit_for_bit(sd1):
    storages = [p.data_ptr() for p in sd1.unet.parameters()]
    with preserved_weights([sd1.unet]):
        train_finetune(sd1, _instance, _training(1))
    assert [p.data_ptr() for p in sd1.unet.parameters()] == storages  # fp32: copied back in place
    sd1.unet.to(torch.bfloat16)
    before = _weights(sd1.unet)
    identities = [id(p) for p in sd1.unet.parameters()]
    with preserved_weights([sd1.unet]):
        train_finetune(sd1, _instance, _training(1, mixed_precision="bf16"))
        assert next(sd1.unet.parameters()).dtype == torch.float32  # master weights while training
    assert _equal(_weights(sd1.unet), before)
    assert [id(p) for p in sd1.unet.parameters()] == identities
    assert all(p.dtype == torch.bfloat16 and p.grad is None for p in sd1.unet.parameters())


def test_fp16_loss_scaling_skips_a_step_whose_gradients_overflow():
    """The loop's GradScaler path (fp16 mixed precision) on the CPU: scaled, unscaled, skipped on inf."""
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    settings = LoopSettings(2, LearnRateSchedule.parse(0.1, 2))
    losses = iter([weight[0] * 3e38, None])

    def loss_for(step, micro, generator):
        loss = next(losses)
        return loss if loss is not None else (weight**2).sum()

    run_loop([weight], optimizer, settings, loss_for, scaler=scaler)
    assert scaler.get_scale() == 2.0**15  # the overflowing first step was skipped and the scale halved
    torch.testing.assert_close(weight.detach(), torch.full((3,), 0.8))  # one real SGD step: 1 - 0.1 * 2


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"text_encoder_lr": 1e-4}, "text encoder is not trained"),
        ({"ema_decay": 1.0}, "EMA decay"),
        ({"prior_loss_weight": -1.0}, "prior loss weight"),
        ({"unet_lr": 0.0}, "unet lr"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, words):
    with pytest.raises(TrainingError, match=words):
        _training(1, **kwargs)


def test_fp16_mixed_precision_off_cuda_is_refused_before_any_work(sd1):
    before = _weights(sd1.unet)
    with pytest.raises(TrainingError, match="CUDA"):
        train_finetune(sd1, _instance, _training(1, mixed_precision="fp16"))
    assert _equal(_weights(sd1.unet), before)


# -- checkpoints --------------------------------------------------------------------------------------------
def _metadata(model, training, **kw):
    info = FinetuneFileInfo("tuned", resolution=(64, 64), steps=training.loop.steps, **kw)
    return finetune_metadata(model, training, info)


def _assert_loads_back(path, model, **kwargs):
    loaded = load_checkpoint(path, **kwargs)
    assert _equal(_weights(loaded.unet), _weights(model.unet))
    for got, want in zip(loaded.text_encoders, model.text_encoders, strict=True):
        assert _equal(_weights(got.model), _weights(want.model))
    assert _equal(_weights(loaded.vae), _weights(model.vae))
    return loaded


def test_the_checkpoint_loads_back_with_the_trained_weights_and_the_recipe(sd1, tmp_path):
    training = _training(1, train_text_encoder=True, ema_decay=0.99)
    train_finetune(sd1, _instance, training)
    meta = _metadata(
        sd1,
        training,
        num_train_images=2,
        num_reg_images=2,
        sd_model_name="tiny_sd1",
        sd_model_hash="0123456789",
        instance_prompt="a photo of sks shape",
        class_prompt="a photo of a shape",
        training_comment="for the test",
    )
    path = save_finetuned(tmp_path / "tuned.safetensors", sd1, meta, dtype="fp32")
    _assert_loads_back(path, sd1)
    with safe_open(str(path), "pt") as f:
        saved = f.metadata()
        assert any(k.startswith("model.diffusion_model.") for k in f.keys())  # noqa: SIM118
    assert saved["ss_steps"] == "1" and saved["ss_learning_rate"] == "0.001"
    assert saved["ss_sd_model_name"] == "tiny_sd1" and saved["ss_new_sd_model_hash"] == "0123456789"
    assert saved["ss_instance_prompt"] == "a photo of sks shape"
    assert saved["ss_class_prompt"] == "a photo of a shape" and saved["ss_num_reg_images"] == "2"
    assert saved["ss_training_comment"] == "for the test" and saved["ss_ema_decay"] == "0.99"
    assert saved["ss_train_text_encoder"] == "True" and saved["ss_base_model_version"] == "sd_v1"
    assert saved["modelspec.architecture"] == "stable-diffusion-v1"
    half = save_finetuned(tmp_path / "half.safetensors", sd1, meta)
    with safe_open(str(half), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118
    with pytest.raises(TrainingError, match="safetensors"):
        save_finetuned(tmp_path / "tuned.ckpt", sd1, meta)


def test_sdxl_fine_tunes_both_text_encoders_and_loads_back(tiny_sdxl_ckpt, tmp_path):
    model = load_checkpoint(tiny_sdxl_ckpt[0])
    encoders = [_weights(spec.model) for spec in model.text_encoders]
    training = _training(2, train_text_encoder=True)
    train_finetune(model, _instance, training)
    assert all(
        not _equal(_weights(spec.model), before)
        for spec, before in zip(model.text_encoders, encoders, strict=True)
    )
    path = save_finetuned(tmp_path / "xl.safetensors", model, _metadata(model, training), dtype="fp32")
    loaded = _assert_loads_back(path, model)
    assert loaded.family == "SDXL"


def test_a_v_prediction_model_trains_towards_the_velocity_and_loads_back_as_one(tiny_sd2v_ckpt, tmp_path):
    model = load_checkpoint(tiny_sd2v_ckpt[0])
    assert model.prediction_type == "v_prediction"
    training = _training(2)
    result = train_finetune(model, _instance, training)
    assert result.finished
    path = save_finetuned(tmp_path / "v.safetensors", model, _metadata(model, training), dtype="fp32")
    assert not path.with_suffix(".yaml").exists()
    loaded = load_checkpoint(path)  # no yaml beside it: the modelspec metadata says v
    assert loaded.prediction_type == "v_prediction" and loaded.family == "SD2"
    assert _equal(_weights(loaded.unet), _weights(model.unet))
