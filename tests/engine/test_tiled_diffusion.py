"""Tiled Diffusion: the extension's tile grid; one tile is a plain job; overlapping tiles are averaged as
MultiDiffusion says (weighted by Mixture of Diffusers' Gaussians), checked against a direct computation
on the tiny model; ControlNet residuals are cut to each tile."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.tiled_diffusion import (
    TiledDiffusion,
    TiledForward,
    TileSettings,
    gaussian_weights,
    tile_boxes,
)
from tests.engine.pipeline_reference import two_image_request


def test_the_grid_spreads_as_few_tiles_as_cover_the_latent_with_the_overlap():
    boxes = tile_boxes(160, 96, 96, 96, 48)
    assert [(b.x, b.y) for b in boxes] == [(0, 0), (32, 0), (64, 0)]
    boxes = tile_boxes(200, 130, 64, 64, 16)
    xs, ys = sorted({b.x for b in boxes}), sorted({b.y for b in boxes})
    assert xs[0] == 0 and xs[-1] == 200 - 64 and len(xs) == 4  # ceil((200-16)/48)
    assert ys[0] == 0 and ys[-1] == 130 - 64 and len(ys) == 3
    assert tile_boxes(40, 30, 96, 96, 48) == [tile_boxes(40, 30, 40, 30, 0)[0]]  # bigger than the latent: one


def test_one_tile_is_exactly_a_plain_job(model):
    request = two_image_request()
    plain = engine.generate(model, request, progress_bar=False).latents
    tiled = engine.generate(
        model,
        request,
        progress_bar=False,
        extensions=[TiledDiffusion(TileSettings(tile_width=64, tile_height=64))],
    ).latents
    assert torch.equal(plain, tiled)


def _call(model, sample: torch.Tensor):
    context = torch.randn(
        sample.shape[0], 77, model.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(3)
    )
    return sample, torch.tensor(500), context


@pytest.mark.parametrize("method", ["MultiDiffusion", "Mixture of Diffusers"])
def test_overlapping_tiles_are_averaged_as_the_method_says(model, method):
    sample, timestep, context = _call(
        model, torch.randn(2, 4, 24, 40, generator=torch.Generator().manual_seed(1))
    )
    settings = TileSettings(method, tile_width=16, tile_height=16, overlap=8, batch_size=3)
    original = model.unet.forward
    with torch.no_grad():
        tiled = TiledForward(original, settings)(
            sample, timestep, encoder_hidden_states=context, return_dict=False
        )[0]
        total, weight = torch.zeros_like(sample), torch.zeros(24, 40)
        for box in tile_boxes(40, 24, 16, 16, 8):
            rows, columns = box.window()
            out = original(
                sample[..., rows, columns], timestep, encoder_hidden_states=context, return_dict=False
            )[0]
            w = gaussian_weights(16, 16) if method == "Mixture of Diffusers" else torch.ones(16, 16)
            total[..., rows, columns] += out * w
            weight[rows, columns] += w
    torch.testing.assert_close(tiled, total / weight, rtol=1e-4, atol=1e-5)
    assert len(tile_boxes(40, 24, 16, 16, 8)) == 8  # 4 across, 2 down


def test_a_tiled_job_runs_with_the_unet_restored_after(model):
    request = two_image_request(width=128, height=96)
    plain = engine.generate(model, request, progress_bar=False).latents
    tiled = engine.generate(
        model,
        request,
        progress_bar=False,
        extensions=[TiledDiffusion(TileSettings(tile_width=8, tile_height=8, overlap=4))],
    ).latents
    assert tiled.shape == plain.shape and not torch.equal(tiled, plain)
    assert "forward" not in vars(model.unet)  # the wrapper is gone
    assert torch.equal(engine.generate(model, request, progress_bar=False).latents, plain)


def test_controlnet_residuals_are_cut_to_each_tile_at_their_resolution():
    seen = []

    def forward(sample, timestep, return_dict=False, **kwargs):
        seen.append(
            (
                tuple(sample.shape),
                [tuple(r.shape) for r in kwargs["down_block_additional_residuals"]],
                tuple(kwargs["mid_block_additional_residual"].shape),
            )
        )
        return (sample * 2,)

    sample = torch.randn(2, 4, 32, 48)
    residuals = [torch.randn(2, 8, 32 // s, 48 // s) for s in (1, 2, 4)]
    mid = torch.randn(2, 16, 4, 6)
    settings = TileSettings(tile_width=16, tile_height=16, overlap=0, batch_size=2)
    out = TiledForward(forward, settings)(
        sample, torch.tensor(1), encoder_hidden_states=torch.zeros(2, 5, 8),
        down_block_additional_residuals=residuals, mid_block_additional_residual=mid, return_dict=False,
    )[0]  # fmt: skip
    torch.testing.assert_close(out, sample * 2)
    assert seen[0] == ((4, 4, 16, 16), [(4, 8, 16, 16), (4, 8, 8, 8), (4, 8, 4, 4)], (4, 16, 2, 2))
    assert len(seen) == 3  # 6 tiles, 2 per call


def test_unknown_inputs_send_the_tiles_one_at_a_time():
    batches = []

    def forward(sample, timestep, return_dict=False, **kwargs):
        batches.append(sample.shape[0])
        return (sample,)

    TiledForward(forward, TileSettings(tile_width=16, tile_height=16, overlap=0, batch_size=4))(
        torch.randn(1, 4, 16, 32), torch.tensor(1), cross_attention_kwargs={"scale": 1.0}, return_dict=False
    )
    assert batches == [1, 1]


def test_settings_refuse_what_cannot_tile():
    with pytest.raises(ValueError, match="not one of"):
        TileSettings("Tiles")
    with pytest.raises(ValueError, match="at least 8"):
        TileSettings(tile_width=4)
