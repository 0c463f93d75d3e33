"""The UNet's skip concatenation (A1111's `sd_hijack_unet.th.cat`) can be replaced: every up block of SD1
and SDXL UNets then joins `[h, skip]` through the replacement (FreeU scales `h` and filters `skip`
there), and putting `torch.cat` back gives exactly the same images as before."""

from __future__ import annotations

import functools

import pytest
import torch
from diffusers.models.unets import unet_2d_blocks

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions.skip_concat import set_skip_concat, skip_concat


@pytest.fixture(scope="module", params=["SD1", "SDXL"])
def model(request, tiny_sd1_ckpt, tiny_sdxl_ckpt):
    path = (tiny_sd1_ckpt if request.param == "SD1" else tiny_sdxl_ckpt)[0]
    loaded = load_checkpoint(path)
    for module in loaded.modules():
        module.eval()
    return loaded


@pytest.fixture
def restored():
    yield
    set_skip_concat(torch.cat)


def _latents(model) -> torch.Tensor:
    request = engine.BatchRequest(
        prompts=["a red fox"], negative_prompts=[""], seeds=[7], width=64, height=64, steps=3, cfg_scale=5.0
    )
    return engine.generate(model, request, progress_bar=False).latents


def _skip_joins(model) -> int:
    return sum(len(block.resnets) for block in model.unet.up_blocks)


def test_every_skip_join_goes_through_the_replacement_with_h_then_skip(model, restored):
    before = _latents(model)
    calls: list[tuple[int, int, dict]] = []

    def recording(tensors, *args, original_function, **kwargs):
        h, skip = tensors
        calls.append((h.shape[1], skip.shape[1], kwargs))
        return original_function(tensors, *args, **kwargs)

    set_skip_concat(functools.partial(recording, original_function=skip_concat()))
    same = _latents(model)
    assert torch.equal(same, before)  # a replacement that only calls the original changes nothing
    assert len(calls) == _skip_joins(model) * 3  # one UNet call per step (cond and uncond rows batched)
    assert all(kwargs == {"dim": 1} for _, _, kwargs in calls)


def test_a_replacement_that_scales_the_backbone_changes_the_image_and_torch_cat_restores_it(model, restored):
    before = _latents(model)

    def scaled(tensors, dim=1):
        h, skip = tensors
        return torch.cat([h * 1.5, skip], dim=dim)

    set_skip_concat(scaled)
    changed = _latents(model)
    assert not torch.allclose(changed, before, atol=1e-3)
    set_skip_concat(torch.cat)
    assert unet_2d_blocks.torch is torch  # nothing left in diffusers' module
    assert torch.equal(_latents(model), before)


def test_a_skip_concatenation_that_is_not_callable_is_refused(restored):
    with pytest.raises(TypeError, match="callable"):
        set_skip_concat(None)  # type: ignore[arg-type]
    assert skip_concat() is torch.cat
