"""ControlNet residuals in the denoiser: equal to diffusers' ControlNet pipeline, and sd-webui-controlnet's
guidance window, weights, control modes and multi-unit sums."""

from __future__ import annotations

import pytest
import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

from modules.sumi.engine import generate as engine
from modules.sumi.engine.controlnet.control import (
    ControlNetExtension,
    ControlUnit,
    control_levels,
    level_scales,
)
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import (
    DenoiserCall,
    Extension,
    ExtensionManager,
    HookPoint,
    UNetBatch,
    hook,
)
from modules.sumi.engine.text.encoder import Conditioning
from tests.engine.pipeline_reference import pipeline_call, pipeline_modules

SIZE = 64


def _jittered_controlnet(unet, seed: int) -> ControlNetModel:
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in controlnet.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return controlnet.eval()


def _control_image(seed: int, count: int = 1) -> torch.Tensor:
    return torch.rand(count, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def controlnets(model):
    return [_jittered_controlnet(model.unet, 1), _jittered_controlnet(model.unet, 2)]


def _request(units=(), prompts=("a red fox", "a blue house"), **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=list(prompts),
        negative_prompts=["blurry", ""][: len(prompts)],
        seeds=[7, 8][: len(prompts)],
        width=SIZE,
        height=SIZE,
        steps=kw.pop("steps", 4),
        cfg_scale=6.0,
        sampler=kw.pop("sampler", "Euler a"),
        control_units=list(units),
        **kw,
    )


def _latents(model, request, **kw) -> torch.Tensor:
    return engine.generate(model, request, progress_bar=False, **kw).latents


def _diffusers_latents(model, request, controlnet, image) -> torch.Tensor:
    pipe = StableDiffusionControlNetPipeline(**pipeline_modules(model, request), controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    call = pipeline_call(model, request)
    return pipe(**call, image=image, controlnet_conditioning_scale=1.0).images


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M"])
def test_balanced_full_range_equals_the_diffusers_controlnet_pipeline(model, controlnets, sampler):
    image = _control_image(3)
    request = _request([ControlUnit(controlnets[0], image)], sampler=sampler)
    ours = _latents(model, request)
    theirs = _diffusers_latents(model, request, controlnets[0], image)
    assert (ours - theirs).abs().max() < 1e-4
    assert (ours - _latents(model, _request(sampler=sampler))).abs().max() > 1e-3  # the control matters


def test_weight_zero_and_an_empty_window_equal_no_controlnet(model, controlnets):
    plain = _latents(model, _request())
    image = _control_image(4)
    assert torch.equal(_latents(model, _request([ControlUnit(controlnets[0], image, weight=0.0)])), plain)


class _RememberStep(Extension):
    def __init__(self):
        super().__init__()
        self.step = -1

    @hook(HookPoint.PRE_MODEL_CALL)
    def remember(self, call: DenoiserCall) -> None:
        self.step = call.step


def test_guidance_start_and_end_choose_the_steps_that_get_residuals(model, controlnets):
    calls: list[int] = []
    current = _RememberStep()
    handle = controlnets[0].register_forward_hook(lambda *_: calls.append(current.step))
    try:
        unit = ControlUnit(controlnets[0], _control_image(5), guidance_start=0.25, guidance_end=0.5)
        _latents(model, _request([unit]), extensions=[current])
    finally:
        handle.remove()
    # 4 steps: fractions 0, .25, .5, .75 -> active at .25 and .5 (sd-webui-controlnet: start <= f <= end)
    assert calls == [1, 2]


def _batch(model, rows: int = 4) -> UNetBatch:
    generator = torch.Generator().manual_seed(0)
    width = model.unet.config.cross_attention_dim
    return UNetBatch(
        x=torch.randn(rows, 4, SIZE // 8, SIZE // 8, generator=generator),
        timestep=torch.tensor(500),
        context=Conditioning(torch.randn(rows, 77, width, generator=generator), None),
        time_ids=None,
        images=torch.tensor([0, 1, 0, 1][:rows]),
        is_cond=torch.tensor([False, False, True, True][:rows]),
        step=0,
        total_steps=4,
    )


def _residuals(units: list[ControlUnit], batch: UNetBatch) -> list[torch.Tensor]:
    """The residuals the ControlNet extension adds to one UNet forward, run through the extension API."""
    batch.unet_kwargs = {}
    ExtensionManager([ControlNetExtension(units)]).run(HookPoint.UNET_FORWARD, batch)
    kwargs = batch.unet_kwargs
    return [*kwargs["down_block_additional_residuals"], kwargs["mid_block_additional_residual"]]


def test_two_units_add_up(model, controlnets):
    batch = _batch(model)
    a = ControlUnit(controlnets[0], _control_image(6), weight=0.7)
    b = ControlUnit(controlnets[1], _control_image(7, count=2), weight=1.3)
    both = _residuals([a, b], batch)
    separate = zip(_residuals([a], batch), _residuals([b], batch), strict=True)
    for total, (ra, rb) in zip(both, separate, strict=True):
        torch.testing.assert_close(total, ra + rb)


def test_control_modes_scale_levels_and_cfg_injection_spares_uncond_rows(model, controlnets):
    batch = _batch(model)
    image = _control_image(8)
    balanced = _residuals([ControlUnit(controlnets[0], image, weight=0.5)], batch)
    prompt = _residuals(
        [ControlUnit(controlnets[0], image, 0.5, control_mode="My prompt is more important")], batch
    )
    count = len(balanced)
    assert level_scales(
        ControlUnit(controlnets[0], image, 2.0, control_mode="My prompt is more important"), 13
    ) == [2.0 * 0.825 ** (12 - i) for i in range(13)]
    for i, (b, p) in enumerate(zip(balanced, prompt, strict=True)):
        torch.testing.assert_close(p, b * 0.825 ** (count - 1 - i))
    cn_more = _residuals(
        [ControlUnit(controlnets[0], image, 0.5, control_mode="ControlNet is more important")], batch
    )
    for p, c in zip(prompt, cn_more, strict=True):
        assert torch.count_nonzero(c[:2]) == 0
        torch.testing.assert_close(c[2:], p[2:])


def test_shuffle_models_average_their_residuals_over_space(model, controlnets):
    unit = ControlUnit(controlnets[0], _control_image(9), global_average_pooling=True)
    for residual in _residuals([unit], _batch(model)):
        assert residual.shape[2:] == (1, 1)


def test_low_vram_unit_returns_to_the_cpu_and_gives_the_same_residuals(model, controlnets):
    batch = _batch(model)
    image = _control_image(10)
    normal = _residuals([ControlUnit(controlnets[0], image)], batch)
    low = _residuals([ControlUnit(controlnets[0], image, low_vram=True)], batch)
    assert next(controlnets[0].parameters()).device.type == "cpu"
    for a, b in zip(normal, low, strict=True):
        assert torch.equal(a, b)


def test_and_prompts_and_batches_run_with_a_controlnet(model, controlnets):
    unit = ControlUnit(controlnets[0], _control_image(11, count=2))
    request = _request([unit], prompts=("a fox AND a hat :0.5", "a house"))
    latents = _latents(model, request)
    assert latents.shape == (2, 4, SIZE // 8, SIZE // 8) and torch.isfinite(latents).all()


@pytest.mark.parametrize(
    ("unit_kw", "message"),
    [
        ({"image": torch.rand(1, 3, 32, 32)}, "control image is 32x32, expected 64x64"),
        ({"image": torch.rand(3, 3, SIZE, SIZE)}, "3 control images for a batch of 2"),
    ],
)
def test_bad_control_images_are_refused_before_sampling(model, controlnets, unit_kw, message):
    with pytest.raises(InvalidRequestError, match=message):
        _latents(model, _request([ControlUnit(controlnets[0], **unit_kw)]))


def test_bad_unit_settings_are_refused(controlnets):
    with pytest.raises(InvalidRequestError, match="guidance start"):
        ControlUnit(controlnets[0], _control_image(1), guidance_start=0.8, guidance_end=0.2)
    with pytest.raises(InvalidRequestError, match="unknown control mode"):
        ControlUnit(controlnets[0], _control_image(1), control_mode="Loud")


def test_advanced_weighting_replaces_the_weight_and_the_soft_levels(model, controlnets):
    batch = _batch(model)
    image = _control_image(12)
    plain = _residuals([ControlUnit(controlnets[0], image)], batch)
    weights = tuple(0.1 * i for i in range(len(plain)))
    for mode in ("Balanced", "My prompt is more important"):
        unit = ControlUnit(controlnets[0], image, 1.7, control_mode=mode, advanced_weighting=weights)
        for residual, raw, w in zip(_residuals([unit], batch), plain, weights, strict=True):
            torch.testing.assert_close(residual, raw * w)


def test_advanced_weighting_needs_one_weight_per_residual(model, controlnets):
    levels = control_levels(controlnets[0])
    assert levels == len(_residuals([ControlUnit(controlnets[0], _control_image(1))], _batch(model)))
    with pytest.raises(InvalidRequestError, match=rf"has {levels} levels.*give {levels} weights, got 2"):
        ControlUnit(controlnets[0], _control_image(1), advanced_weighting=(1.0, 0.5))


def test_all_zero_advanced_weights_leave_the_job_unchanged(model, controlnets):
    plain = _latents(model, _request())
    zero = ControlUnit(
        controlnets[0], _control_image(2), advanced_weighting=(0.0,) * control_levels(controlnets[0])
    )
    assert torch.equal(_latents(model, _request([zero])), plain)


def test_an_effective_region_mask_limits_each_residual_to_its_region(model, controlnets):
    """Each scaled residual x the mask resized (bilinear) to it, as sd-webui-controlnet computes it."""
    batch = _batch(model)
    image = _control_image(13)
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., :, SIZE // 4 :] = 1.0  # the right three quarters
    plain = _residuals([ControlUnit(controlnets[0], image, 0.6)], batch)
    masked = _residuals([ControlUnit(controlnets[0], image, 0.6, region_mask=mask)], batch)
    for raw, limited in zip(plain, masked, strict=True):
        resized = torch.nn.functional.interpolate(mask, size=raw.shape[-2:], mode="bilinear")
        torch.testing.assert_close(limited, raw * resized)
        columns = raw.shape[-1]
        if columns >= 8:  # the left eighth lies wholly outside the region: nothing there
            assert limited[..., : columns // 8].abs().max() == 0
            assert limited[..., columns // 2 :].abs().max() > 0
    full = _residuals([ControlUnit(controlnets[0], image, 0.6, region_mask=torch.ones(1, 1, 9, 7))], batch)
    for raw, same in zip(plain, full, strict=True):
        torch.testing.assert_close(same, raw)
