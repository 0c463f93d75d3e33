"""ControlNet training on tiny models: a ControlNet copied from the UNet's encoder that starts as the
plain UNet, learns through the frozen UNet, leaves the model exact, resumes exactly, drops captions from
the step's generator, and saves files in lllyasviel's layout that Sumi's ControlNet loader reads back
into the trained weights (SD1, SD2-v, SDXL)."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.controlnet.control import controlnet_residuals, residual_kwargs
from modules.sumi.engine.controlnet.models import load_controlnet
from modules.sumi.engine.text.encoder import encode_prompts
from modules.sumi.engine.training.controlnet import (
    ControlNetBatch,
    ControlNetFileInfo,
    ControlNetTrainSettings,
    controlnet_metadata,
    create_controlnet,
    sampling_view,
    save_controlnet,
    train_controlnet,
)
from modules.sumi.engine.training.controlnet.trainer import _drop_captions
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import LoopSettings
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.model_io import unet_predictor
from modules.sumi.engine.training.objective import DiffusionObjective, ObjectiveSettings
from modules.sumi.engine.training.resume import load_resume_state, save_resume_state

CAPTIONS = ["a red circle, top left", "a blue square, bottom"]
SIZE = 64  # pixels; latents are 8x8


@pytest.fixture(scope="module")
def sd1(tiny_sd1_ckpt):
    """One tiny SD1 model for tests that leave it as they found it (which is what training must do)."""
    return load_checkpoint(tiny_sd1_ckpt[0])


def _latents(seed: int = 0, count: int = 2) -> torch.Tensor:
    return torch.randn(count, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(seed))


def _hints(seed: int = 1, count: int = 2) -> torch.Tensor:
    """Control images in [0, 1]: a bright square at a seeded place on black, like a canny/scribble map."""
    generator = torch.Generator().manual_seed(seed)
    hints = torch.zeros(count, 3, SIZE, SIZE)
    for i in range(count):
        top, left = torch.randint(0, SIZE - 24, (2,), generator=generator).tolist()
        hints[i, :, top : top + 24, left : left + 24] = 1.0
    return hints


def _batches(latents=None, hints=None, captions=CAPTIONS):
    latents = _latents() if latents is None else latents
    hints = _hints() if hints is None else hints
    return lambda step, micro, generator: ControlNetBatch(list(captions), hints, latents=latents)


def _training(steps: int, rate: float = 1e-3, **kwargs) -> ControlNetTrainSettings:
    loop = kwargs.pop("loop", None) or LoopSettings(steps, LearnRateSchedule.parse(rate, steps), seed=3)
    return ControlNetTrainSettings(loop=loop, **kwargs)


def _prediction(model, controlnet=None, hints=None, t: int = 500) -> torch.Tensor:
    """The UNet's output for fixed inputs, with `controlnet`'s residuals for `hints` when given."""
    latents = _latents(5)
    with torch.no_grad():
        cond = encode_prompts(model.text_encoders, CAPTIONS)
        extra = None
        if controlnet is not None:
            hint = _hints() if hints is None else hints

            def extra(noisy, timesteps, context, added):
                return residual_kwargs(
                    controlnet_residuals(controlnet, noisy, timesteps, context, hint, added)
                )

        predict = unet_predictor(model, cond, SIZE, SIZE, extra)
        return predict(latents, torch.full((latents.shape[0],), t))


def _weights(model) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v.clone() for i, m in enumerate(model.modules()) for k, v in m.state_dict().items()}


# -- the start: the plain UNet -------------------------------------------------------------------------------
def test_a_fresh_controlnet_copies_the_encoder_with_zero_convs_and_changes_nothing(sd1):
    controlnet = create_controlnet(sd1)
    assert controlnet.config["conditioning_channels"] == 3
    for name, value in sd1.unet.down_blocks.state_dict().items():
        assert torch.equal(controlnet.down_blocks.state_dict()[name], value)
    zero = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
    assert all(not p.any() for conv in zero for p in conv.parameters())
    assert torch.equal(_prediction(sd1, controlnet), _prediction(sd1))
    hint_encoder = controlnet.controlnet_cond_embedding.conv_in.weight
    assert torch.equal(create_controlnet(sd1).controlnet_cond_embedding.conv_in.weight, hint_encoder)
    assert not torch.equal(
        create_controlnet(sd1, seed=1).controlnet_cond_embedding.conv_in.weight, hint_encoder
    )


# -- learning, and the model left exact --------------------------------------------------------------------
def test_training_learns_the_control_and_leaves_the_model_exact(sd1):
    weights = _weights(sd1)
    flags = [p.requires_grad for m in sd1.modules() for p in m.parameters()]
    before = _prediction(sd1)
    latents, hints = _latents(), _hints()
    objective = DiffusionObjective(sd1.scheduler_config, sd1.prediction_type)

    def fixed_loss(controlnet) -> float:
        with torch.no_grad():
            cond = encode_prompts(sd1.text_encoders, CAPTIONS)
            total = 0.0
            for seed in range(4):
                extra = None
                if controlnet is not None:

                    def extra(noisy, timesteps, context, added):
                        residuals = controlnet_residuals(controlnet, noisy, timesteps, context, hints, added)
                        return residual_kwargs(residuals)

                predict = unet_predictor(sd1, cond, SIZE, SIZE, extra)
                total += objective.loss(predict, latents, torch.Generator().manual_seed(seed)).item()
        return total / 4

    plain = fixed_loss(None)
    result = train_controlnet(sd1, _batches(latents, hints), _training(8, 1e-2))
    assert result.finished and result.step == 8 and len(result.losses) == 8
    assert fixed_loss(result.controlnet) < plain * 0.9
    trained = _prediction(sd1, result.controlnet)
    assert (trained - before).abs().max() > 1e-3  # the residuals reach the UNet
    other = _prediction(sd1, result.controlnet, _hints(seed=7))
    assert (other - trained).abs().max() > 1e-4  # ... and depend on the control image
    assert not result.controlnet.training and not any(p.requires_grad for p in result.controlnet.parameters())
    assert not result.controlnet.is_gradient_checkpointing

    assert torch.equal(_prediction(sd1), before)
    now = _weights(sd1)
    assert all(torch.equal(weights[k], now[k]) for k in weights)
    assert flags == [p.requires_grad for m in sd1.modules() for p in m.parameters()]
    assert not any(m.training for m in sd1.modules()) and not sd1.unet.is_gradient_checkpointing


def test_gradient_checkpointing_and_bf16_train_the_same_controlnet(sd1):
    plain = train_controlnet(sd1, _batches(), _training(2)).resume.tensors
    checkpointed = train_controlnet(sd1, _batches(), _training(2, gradient_checkpointing=True))
    for key, value in plain.items():
        torch.testing.assert_close(checkpointed.resume.tensors[key], value, rtol=1e-4, atol=1e-6)
    assert not sd1.unet.is_gradient_checkpointing and not checkpointed.controlnet.is_gradient_checkpointing
    bf16 = train_controlnet(sd1, _batches(), _training(2, mixed_precision="bf16"))
    assert all(torch.isfinite(v).all() for v in bf16.resume.tensors.values())
    assert all(torch.isfinite(torch.tensor(bf16.losses)))


def test_a_half_precision_model_trains_an_fp32_controlnet(tiny_sd1_ckpt):
    """The UNet computes in its own dtype (fp16/bf16 on a GPU); the ControlNet's weights stay fp32 and its
    residuals meet the UNet's features in the UNet's dtype."""
    model = load_checkpoint(tiny_sd1_ckpt[0]).to("cpu", torch.bfloat16)
    result = train_controlnet(model, _batches(), _training(2, 1e-2))
    assert {p.dtype for p in result.controlnet.parameters()} == {torch.float32}
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert any(v.any() for k, v in result.resume.tensors.items() if k.startswith("controlnet_down_blocks"))


def test_pixel_batches_are_encoded_with_the_vae(sd1):
    pixels = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    result = train_controlnet(
        sd1, lambda step, micro, generator: ControlNetBatch(CAPTIONS, _hints(), pixels=pixels), _training(1)
    )
    assert result.finished and len(result.losses) == 1


# -- empty prompts ----------------------------------------------------------------------------------------
def test_empty_prompts_are_drawn_from_the_step_generator():
    captions = [f"caption {i}" for i in range(400)]
    first = _drop_captions(captions, 0.25, torch.Generator().manual_seed(4))
    again = _drop_captions(captions, 0.25, torch.Generator().manual_seed(4))
    assert first == again
    assert 60 < first.count("") < 140
    assert all(kept in ("", caption) for kept, caption in zip(first, captions, strict=True))
    assert _drop_captions(captions, 0.0, torch.Generator()) == captions
    assert _drop_captions(captions[:3], 1.0, torch.Generator()) == ["", "", ""]


def test_with_every_prompt_dropped_the_captions_do_not_matter(sd1):
    def trained(captions, proportion):
        settings = _training(1, proportion_empty_prompts=proportion)
        return train_controlnet(sd1, _batches(captions=captions), settings).resume.tensors

    key = "controlnet_mid_block.weight"
    other = ["green triangle", "yellow star"]
    assert torch.equal(trained(CAPTIONS, 1.0)[key], trained(other, 1.0)[key])
    assert not torch.equal(trained(CAPTIONS, 0.0)[key], trained(other, 0.0)[key])


# -- resume ------------------------------------------------------------------------------------------------
def test_an_interrupted_run_resumed_from_its_state_equals_the_uninterrupted_run(sd1, tmp_path):
    loop = LoopSettings(3, LearnRateSchedule.parse("2e-3:2, 1e-3", 3), seed=11)
    training = _training(
        3,
        loop=loop,
        objective=ObjectiveSettings(offset_noise=0.1, min_snr_gamma=5.0),
        proportion_empty_prompts=0.5,
    )
    whole = train_controlnet(sd1, _batches(), training)
    calls = []
    first = train_controlnet(sd1, _batches(), training, on_step=calls.append, should_stop=lambda: bool(calls))
    assert not first.finished and first.step == 1
    save_resume_state(tmp_path / "run.state", first.resume)
    state = load_resume_state(tmp_path / "run.state", "controlnet")
    resumed = train_controlnet(sd1, _batches(), training, resume=state)
    assert resumed.finished and resumed.step == 3 and len(resumed.losses) == 2
    assert resumed.losses == whole.losses[1:]
    for key, value in whole.resume.tensors.items():
        torch.testing.assert_close(resumed.resume.tensors[key], value, rtol=0, atol=0)
    with pytest.raises(TrainingError, match="control image"):
        train_controlnet(sd1, _batches(), _training(3, conditioning_channels=1), resume=state)
    state.kind = "lora"
    with pytest.raises(TrainingError, match="lora"):
        train_controlnet(sd1, _batches(), training, resume=state)


# -- files -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["SD1", "SD2-v", "SDXL"])
def test_a_saved_file_loads_through_sumis_loader_as_the_trained_weights(
    family, sd1, tiny_sd2v_ckpt, tiny_sdxl_ckpt, tmp_path
):
    model = {
        "SD1": lambda: sd1,
        "SD2-v": lambda: load_checkpoint(tiny_sd2v_ckpt[0]),
        "SDXL": lambda: load_checkpoint(tiny_sdxl_ckpt[0]),
    }[family]()
    result = train_controlnet(model, _batches(), _training(2, 1e-2))
    trained = result.controlnet.state_dict()
    assert any(trained[k].any() for k in trained if k.startswith("controlnet_down_blocks"))
    info = ControlNetFileInfo("my-canny", (SIZE, SIZE), result.step, 2, "canny (100, 200)")
    meta = controlnet_metadata(model, _training(2, 1e-2), info)
    for dtype, torch_dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        path = save_controlnet(tmp_path / f"cn-{dtype}.safetensors", result.controlnet, meta, dtype=dtype)
        with safe_open(str(path), "pt") as f:
            keys, stored = list(f.keys()), dict(f.metadata() or {})  # noqa: SIM118
            assert {f.get_tensor(k).dtype for k in keys} == {torch_dtype}
        assert all(k.startswith("control_model.") for k in keys)
        assert (
            "control_model.input_hint_block.0.weight" in keys
            and "control_model.zero_convs.0.0.weight" in keys
        )
        assert stored["ss_output_name"] == "my-canny" and stored["ss_steps"] == "2"
        assert stored["sumi_controlnet_conditioning"] == "canny (100, 200)"
        assert stored["modelspec.architecture"].endswith("/controlnet")
        assert stored["ss_v_parameterization"] == str(family == "SD2-v")
        loaded = load_controlnet(path, base_unet=model.unet, expected_family=model.family)
        assert loaded.family == model.family and loaded.hint_channels == 3
        state = loaded.model.state_dict()
        assert set(state) == set(trained)
        for key, value in trained.items():
            torch.testing.assert_close(state[key], value.to(torch_dtype).float(), rtol=0, atol=0)


def test_the_sampling_view_runs_in_the_models_dtype_and_returns_to_training(sd1):
    controlnet = create_controlnet(sd1)
    controlnet.train()
    with sampling_view(controlnet, torch.float32) as same:
        assert same is controlnet and not same.training
    assert controlnet.training
    with sampling_view(controlnet, torch.bfloat16) as half:
        assert half is not controlnet and next(half.parameters()).dtype == torch.bfloat16
        assert torch.equal(half.conv_in.weight, controlnet.conv_in.weight.to(torch.bfloat16))
    assert controlnet.training and next(controlnet.parameters()).dtype == torch.float32


# -- bad input ---------------------------------------------------------------------------------------------
def test_bad_batches_and_settings_are_clear_errors(sd1, tmp_path):
    with pytest.raises(TrainingError, match="control images"):
        train_controlnet(sd1, _batches(hints=_hints()[:1]), _training(1))
    with pytest.raises(TrainingError, match="control images"):
        small = torch.zeros(2, 3, 32, 32)
        train_controlnet(sd1, _batches(hints=small), _training(1))
    with pytest.raises(TrainingError, match="proportion_empty_prompts"):
        _training(1, proportion_empty_prompts=1.5)
    with pytest.raises(TrainingError, match="save precision"):
        save_controlnet(tmp_path / "x.safetensors", create_controlnet(sd1), dtype="fp8")
    with pytest.raises(TrainingError, match="safetensors"):
        save_controlnet(tmp_path / "x.pth", create_controlnet(sd1))
