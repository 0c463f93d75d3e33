"""The training core: A1111's learning-rate schedule syntax, the diffusion objective (offset noise,
min-SNR, v-prediction), and the loop's accumulation, clipping, determinism and resume."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.text.encoder import encode_prompts
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import LoopSettings, make_optimizer, run_loop
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.model_io import encode_images, training_guard, unet_predictor
from modules.sumi.engine.training.objective import DiffusionObjective, ObjectiveSettings
from modules.sumi.engine.training.resume import ResumeState, load_resume_state, save_resume_state

SD_SCHEDULE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
}


# -- learning-rate schedules ------------------------------------------------------------------------------
def test_a_schedule_switches_rates_at_its_steps_and_runs_its_last_rate_to_the_end():
    schedule = LearnRateSchedule.parse("0.005:100, 1e-3:1000, 1e-5", 3000)
    assert [schedule.rate_at(s) for s in (0, 99, 100, 999, 1000, 2999)] == [
        0.005,
        0.005,
        1e-3,
        1e-3,
        1e-5,
        1e-5,
    ]
    assert schedule.rate_at(3000) is None


def test_a_schedule_that_ends_early_ends_training_and_minus_one_means_the_end():
    assert LearnRateSchedule.parse("0.1:10", 50).rate_at(10) is None
    assert LearnRateSchedule.parse("0.1:10, 0.01:-1", 50).rate_at(49) == 0.01
    assert LearnRateSchedule.parse(0.002, 5).rate_at(4) == 0.002


@pytest.mark.parametrize("text", ["", "abc", "0.1:x", "0.1:10, 0.2:5", "-1", "0", "0.1:0", "nan"])
def test_a_malformed_schedule_is_a_clear_error(text):
    with pytest.raises(TrainingError, match="learning rate"):
        LearnRateSchedule.parse(text, 100)


# -- the objective -----------------------------------------------------------------------------------------
def test_the_loss_is_the_mean_squared_error_against_the_noise_for_epsilon_models():
    objective = DiffusionObjective(SD_SCHEDULE, "epsilon")
    latents = torch.randn(2, 4, 8, 8)
    generator = torch.Generator().manual_seed(1)
    twin = torch.Generator().manual_seed(1)
    noise = objective.sample_noise(latents, twin)
    loss = objective.loss(lambda noisy, t: torch.zeros_like(noisy), latents, generator)
    torch.testing.assert_close(loss, (noise**2).mean())


def test_v_prediction_models_are_trained_towards_the_velocity():
    objective = DiffusionObjective(SD_SCHEDULE, "v_prediction")
    latents, noise = torch.randn(3, 4, 4, 4), torch.randn(3, 4, 4, 4)
    t = torch.tensor([0, 500, 999])
    a = objective.scheduler.alphas_cumprod[t].sqrt()[:, None, None, None]
    s = (1 - objective.scheduler.alphas_cumprod[t]).sqrt()[:, None, None, None]
    torch.testing.assert_close(objective.target(latents, noise, t), a * noise - s * latents)


def test_offset_noise_shifts_whole_channels():
    plain = DiffusionObjective(SD_SCHEDULE, "epsilon")
    offset = DiffusionObjective(SD_SCHEDULE, "epsilon", ObjectiveSettings(offset_noise=1.0))
    latents = torch.zeros(64, 4, 16, 16)
    channel_means = [
        o.sample_noise(latents, torch.Generator().manual_seed(3)).mean(dim=(2, 3)).std().item()
        for o in (plain, offset)
    ]
    assert channel_means[0] < 0.2 < 0.7 < channel_means[1]


def test_min_snr_weights_low_noise_steps_down_to_gamma_over_snr():
    objective = DiffusionObjective(SD_SCHEDULE, "epsilon", ObjectiveSettings(min_snr_gamma=5.0))
    t = torch.tensor([0, 999])
    weights = objective.snr_weights(t)
    alphas = objective.scheduler.alphas_cumprod[t]
    snr = alphas / (1 - alphas)
    assert weights[0].item() == pytest.approx(5.0 / snr[0].item(), rel=1e-5)
    assert weights[1].item() == pytest.approx(1.0)


def test_debiased_estimation_weights_noisy_steps_up_by_one_over_root_snr_and_multiplies_with_min_snr():
    t = torch.tensor([0, 500, 999])
    alphas = DiffusionObjective(SD_SCHEDULE, "epsilon").scheduler.alphas_cumprod[t]
    snr = (alphas / (1 - alphas)).double()
    debiased = DiffusionObjective(SD_SCHEDULE, "epsilon", ObjectiveSettings(debiased_estimation=True))
    torch.testing.assert_close(
        debiased.snr_weights(t).double(), 1 / snr.clamp(max=1000).sqrt(), rtol=1e-5, atol=0
    )
    assert debiased.snr_weights(t)[2] > 10 > 1 > debiased.snr_weights(t)[0]
    both = DiffusionObjective(
        SD_SCHEDULE, "epsilon", ObjectiveSettings(min_snr_gamma=5.0, debiased_estimation=True)
    )
    expected = snr.clamp(max=5.0) / snr / snr.clamp(max=1000).sqrt()
    torch.testing.assert_close(both.snr_weights(t).double(), expected, rtol=1e-5, atol=0)
    v = DiffusionObjective(SD_SCHEDULE, "v_prediction", ObjectiveSettings(debiased_estimation=True))
    torch.testing.assert_close(v.snr_weights(t).double(), 1 / (snr.clamp(max=1000) + 1), rtol=1e-5, atol=0)


def test_a_pixel_weight_of_zero_removes_those_pixels_from_the_loss():
    objective = DiffusionObjective(SD_SCHEDULE, "epsilon")
    latents = torch.randn(1, 4, 4, 4)
    weight = torch.zeros(1, 1, 4, 4)
    weight[..., :2] = 1
    noise = objective.sample_noise(latents, torch.Generator().manual_seed(0))
    loss = objective.loss(lambda n, t: torch.zeros_like(n), latents, torch.Generator().manual_seed(0), weight)
    torch.testing.assert_close(loss, (noise[..., :2] ** 2).mean())


# -- the loop ----------------------------------------------------------------------------------------------
def _toy(settings: LoopSettings, start: int = 0, param=None, optimizer=None, stop_after: int | None = None):
    param = param if param is not None else torch.nn.Parameter(torch.zeros(3))
    optimizer = optimizer or make_optimizer("AdamW", [param])
    target = torch.tensor([1.0, -2.0, 0.5])
    reports = []

    def loss_for(step, micro, generator):
        jitter = torch.randn(3, generator=generator) * 0.1 + torch.randn(3) * 0.01  # both RNGs in play
        return ((param - target - jitter) ** 2).sum()

    def should_stop():
        return stop_after is not None and len(reports) >= stop_after

    done = run_loop(
        [param],
        optimizer,
        settings,
        loss_for,
        start_step=start,
        on_step=reports.append,
        should_stop=should_stop,
    )
    return param, optimizer, reports, done


def test_the_loop_lowers_the_loss_and_follows_the_schedule():
    settings = LoopSettings(60, LearnRateSchedule.parse("0.1:30, 0.05", 60), seed=4)
    _, _, reports, done = _toy(settings)
    assert done == 60
    assert reports[-1].loss < reports[0].loss / 10
    assert reports[0].learn_rate == 0.1 and reports[-1].learn_rate == 0.05


def test_an_interrupted_run_resumed_from_its_state_ends_where_the_uninterrupted_one_does(tmp_path):
    settings = LoopSettings(20, LearnRateSchedule.parse(0.05, 20), gradient_accumulation=2, seed=9)
    whole, _, _, _ = _toy(settings)
    first, optimizer, _, done = _toy(settings, stop_after=7)
    assert done == 7
    save_resume_state(
        tmp_path / "s.state", ResumeState(done, {"p": first.detach()}, optimizer.state_dict(), "toy")
    )
    state = load_resume_state(tmp_path / "s.state", "toy")
    param = torch.nn.Parameter(state.tensors["p"].clone())
    resumed_optimizer = make_optimizer("AdamW", [param])
    resumed_optimizer.load_state_dict(state.optimizer)
    resumed, _, _, done = _toy(settings, start=state.step, param=param, optimizer=resumed_optimizer)
    assert done == 20
    torch.testing.assert_close(resumed, whole, rtol=0, atol=0)


def test_clipping_by_value_bounds_every_step():
    schedule = LearnRateSchedule.parse(1.0, 1)
    settings = LoopSettings(1, schedule, clip_grad_mode="value", clip_grad=LearnRateSchedule.parse(0.01, 1))
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([param], lr=1.0)
    run_loop([param], optimizer, settings, lambda s, m, g: (param * 100).sum())
    torch.testing.assert_close(param.detach(), torch.full((3,), -0.01))


def test_a_loss_that_explodes_is_a_clear_error_naming_the_step():
    param = torch.nn.Parameter(torch.zeros(1))
    settings = LoopSettings(3, LearnRateSchedule.parse(0.1, 3))
    with pytest.raises(TrainingError, match="step 1"):
        run_loop(
            [param], make_optimizer("SGD", [param]), settings, lambda s, m, g: param.sum() * float("nan")
        )


def test_a_resume_file_of_another_kind_or_a_foreign_pickle_is_refused(tmp_path):
    save_resume_state(tmp_path / "a.state", ResumeState(1, {}, {}, "lora"))
    with pytest.raises(TrainingError, match="lora training state"):
        load_resume_state(tmp_path / "a.state", "embedding")
    torch.save({"x": 1}, tmp_path / "b.state")
    with pytest.raises(TrainingError, match="not a Sumi training state"):
        load_resume_state(tmp_path / "b.state", "embedding")


# -- the model side -----------------------------------------------------------------------------------------
def test_a_tiny_unet_step_gets_gradients_and_the_guard_restores_the_model(tiny_sd1_ckpt):
    model = load_checkpoint(tiny_sd1_ckpt[0])
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    objective = DiffusionObjective(
        model.scheduler_config, model.prediction_type, ObjectiveSettings(offset_noise=0.1)
    )
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    with training_guard(model):
        latents = encode_images(model, pixels)
        weight = model.unet.conv_in.weight
        weight.requires_grad_(True)
        model.unet.train()
        cond = encode_prompts(model.text_encoders, ["a cat", "a dog"], grad=True)
        loss = objective.loss(unet_predictor(model, cond, 64, 64), latents, torch.Generator().manual_seed(0))
        loss.backward()
        assert weight.grad is not None and weight.grad.abs().sum() > 0
    assert not model.unet.training and not weight.requires_grad and weight.grad is None
    after = model.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_8bit_adamw_is_refused_off_cuda_with_the_reason():
    with pytest.raises(TrainingError, match="CUDA only"):
        make_optimizer("AdamW8bit", [torch.nn.Parameter(torch.zeros(3))])


@pytest.mark.cuda
def test_8bit_adamw_trains_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("bitsandbytes")
    layer = torch.nn.Linear(256, 256).cuda()  # bitsandbytes keeps 8-bit state for tensors of 4096+ values
    optimizer = make_optimizer("AdamW8bit", layer.parameters())
    x = torch.randn(64, 256, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    target = torch.zeros(64, 256, device="cuda")
    settings = LoopSettings(40, LearnRateSchedule.parse("0.01", 40), seed=1)
    reports = []
    run_loop(
        layer.parameters(),
        optimizer,
        settings,
        lambda s, m, g: ((layer(x) - target) ** 2).mean(),
        on_step=reports.append,
    )
    assert reports[-1].loss < reports[0].loss / 2
    state = optimizer.state[layer.weight]
    assert any(v.dtype == torch.uint8 for v in state.values() if isinstance(v, torch.Tensor))
