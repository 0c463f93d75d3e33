"""T2I-Adapters: the files people download (TencentARC's layout, the light adapter, diffusers' SDXL layout)
load into adapters that equal diffusers' `T2IAdapter` on the same weights, and a job with an adapter unit
equals diffusers' StableDiffusionAdapterPipeline; sd-webui-controlnet's weights and modes."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionAdapterPipeline

from modules.sumi.engine import generate as engine
from modules.sumi.engine.controlnet.control import ControlUnit, adapter_features, control_levels
from modules.sumi.engine.controlnet.models import detect_controlnet_family, load_controlnet
from modules.sumi.engine.controlnet.t2i_adapter import build_t2i_adapter, level_sizes
from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError
from tests.engine.pipeline_reference import pipeline_call, pipeline_modules
from tests.fixtures.tiny_controlnets import random_t2i_adapter, tencentarc_adapter_state

SIZE = 64


@pytest.mark.parametrize(
    ("kind", "channels", "in_channels", "layout"),
    [
        ("full_adapter", (320, 640, 1280, 1280), 3, "tencentarc"),  # t2iadapter_canny_sd15v2.pth
        ("full_adapter", (320, 640, 1280, 1280), 1, "tencentarc"),  # t2iadapter_sketch_sd15v2.pth
        ("light_adapter", (320, 640, 1280), 3, "tencentarc"),  # t2iadapter_color_sd14v1.pth (4 levels)
        ("full_adapter_xl", (320, 640, 1280, 1280), 3, "diffusers"),  # t2i-adapter_diffusers_xl_canny
    ],
)
def test_adapter_files_load_and_equal_diffusers_t2i_adapter(kind, channels, in_channels, layout):
    theirs = random_t2i_adapter(kind, channels, in_channels)
    state = tencentarc_adapter_state(theirs) if layout == "tencentarc" else dict(theirs.state_dict())
    ours = build_t2i_adapter(state, "adapter.safetensors")
    hint = torch.rand(2, 3, 128, 192)
    with torch.no_grad():
        expected = theirs(hint[:, :in_channels])
        found = ours(hint)  # a 1-channel adapter reads the first channel, as the extension feeds it
    assert [f.shape for f in found] == [f.shape for f in expected]
    for a, b in zip(found, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert detect_controlnet_family(state) == ("SDXL" if kind == "full_adapter_xl" else "SD1")


def test_the_style_adapter_is_refused_with_a_message():
    with pytest.raises(ModelLoadError, match="style adapter"):
        build_t2i_adapter({"style_embedding": torch.zeros(1, 8, 1024)}, "t2iadapter_style_sd14v1.pth")


def test_features_are_placed_where_the_unet_adds_them():
    assert level_sizes(64, 96, 4, sdxl=False) == [(64, 96), (32, 48), (16, 24), (8, 12)]
    assert level_sizes(65, 97, 4, sdxl=False) == [(65, 97), (33, 49), (17, 25), (9, 13)]
    assert level_sizes(128, 128, 4, sdxl=True) == [(64, 64), (64, 64), (32, 32), (32, 32)]


# --- in a job ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter(model, tmp_path_factory):
    """A TencentARC-layout adapter file sized for the tiny UNet, loaded through Sumi's ControlNet loader."""
    from safetensors.torch import save_file

    theirs = random_t2i_adapter("full_adapter", model.unet.config.block_out_channels, seed=3)
    with torch.no_grad():
        for value in theirs.parameters():
            value.mul_(4.0)  # features strong enough to move the tiny model's picture
    path = tmp_path_factory.mktemp("adapters") / "t2iadapter_canny_sd15v2.safetensors"
    save_file({k: v.contiguous() for k, v in tencentarc_adapter_state(theirs).items()}, path)
    return theirs, load_controlnet(path, expected_family="SD1")


def _request(units=(), **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox", "a blue house"],
        negative_prompts=["blurry", ""],
        seeds=[7, 8],
        width=SIZE,
        height=SIZE,
        steps=4,
        cfg_scale=6.0,
        sampler=kw.pop("sampler", "Euler a"),
        control_units=list(units),
        **kw,
    )


def _latents(model, request) -> torch.Tensor:
    return engine.generate(model, request, progress_bar=False).latents


def _pipeline_latents(model, request, adapter, image) -> torch.Tensor:
    pipe = StableDiffusionAdapterPipeline(**pipeline_modules(model, request), adapter=adapter)
    pipe.set_progress_bar_config(disable=True)
    call = pipeline_call(model, request)
    return pipe(**call, image=image, adapter_conditioning_scale=1.0).images


def _hint(seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M"])
def test_a_job_with_an_adapter_unit_equals_diffusers_adapter_pipeline(model, adapter, sampler):
    theirs, loaded = adapter
    image = _hint()
    ours = _latents(model, _request([ControlUnit(loaded.model, image)], sampler=sampler))
    expected = _pipeline_latents(model, _request(sampler=sampler), theirs, image.repeat(2, 1, 1, 1))
    torch.testing.assert_close(
        ours, expected, rtol=1e-4, atol=5e-4
    )  # the pipeline runs the adapter on 2 images
    assert (ours - _latents(model, _request(sampler=sampler))).abs().max() > 1e-3  # the adapter matters


def _batch(step: int = 0, total: int = 4):
    from modules.sumi.engine.extensions import UNetBatch

    batch = UNetBatch.__new__(UNetBatch)  # only the fields the adapter reads
    batch.x, batch.images = torch.zeros(4, 4, SIZE // 8, SIZE // 8), torch.tensor([0, 1, 0, 1])
    batch.is_cond = torch.tensor([True, True, False, False])
    batch.step, batch.total_steps = step, total
    return batch


def test_the_guidance_window_chooses_the_steps_that_get_features(adapter):
    from modules.sumi.engine.controlnet.control import control_kwargs

    unit = ControlUnit(adapter[1].model, _hint(2), guidance_start=0.25, guidance_end=0.5)
    given = [control_kwargs([unit], _batch(step)) is not None for step in range(4)]
    assert given == [False, True, True, False]  # step / 4 within [0.25, 0.5]
    kwargs = control_kwargs([unit], _batch(1))
    assert kwargs is not None and set(kwargs) == {"down_intrablock_additional_residuals"}


def test_modes_scale_the_levels_and_cfg_injection_spares_the_uncond_rows(model, adapter):
    _, loaded = adapter
    image = _hint(3)
    batch = _batch()
    balanced = adapter_features(ControlUnit(loaded.model, image, weight=0.5), batch)
    soft = adapter_features(
        ControlUnit(loaded.model, image, weight=0.5, control_mode="My prompt is more important"), batch
    )
    for level, (b, s) in enumerate(zip(balanced, soft, strict=True)):
        torch.testing.assert_close(s, b * (0.25, 0.62, 0.825, 1.0)[level])
    control = adapter_features(
        ControlUnit(loaded.model, image, control_mode="ControlNet is more important"), batch
    )
    assert all(f[2:].abs().max() == 0 and f[:2].abs().max() > 0 for f in control)


def test_advanced_weighting_scales_each_level_and_takes_the_extensions_extra_weight(model, adapter):
    _, loaded = adapter
    image = _hint(4)
    batch = _batch()
    raw = adapter_features(ControlUnit(loaded.model, image), batch)
    levels = control_levels(loaded.model)
    assert levels == len(raw)
    steps = tuple(0.5 * i for i in range(levels))
    for weights in (steps, (*steps, 9.0)):  # one more is accepted: the extension documents 5 for SD1's 4
        unit = ControlUnit(
            loaded.model, image, 0.3, control_mode="My prompt is more important", advanced_weighting=weights
        )
        for level, (r, f) in enumerate(zip(raw, adapter_features(unit, batch), strict=True)):
            torch.testing.assert_close(f, r * weights[level])
    with pytest.raises(InvalidRequestError, match=f"has {levels} levels"):
        ControlUnit(loaded.model, image, advanced_weighting=(1.0,) * 13)


def test_an_effective_region_mask_limits_the_adapter_features(model, adapter):
    _, loaded = adapter
    image = _hint(5)
    batch = _batch()
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., : SIZE // 2, :] = 1.0  # the top half
    raw = adapter_features(ControlUnit(loaded.model, image), batch)
    limited = adapter_features(ControlUnit(loaded.model, image, region_mask=mask), batch)
    for r, f in zip(raw, limited, strict=True):
        torch.testing.assert_close(
            f, r * torch.nn.functional.interpolate(mask, size=r.shape[-2:], mode="bilinear")
        )
