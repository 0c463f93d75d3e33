"""Tiled Diffusion's region prompt control: each region is drawn with its own texts and seed, background
regions average with the tiles (or weigh in with their Gaussian), foreground regions lie over them
through their feather mask — checked against a direct computation; a region covering the canvas with the
job's own seed and no text of its own is exactly the plain job; and with the demo model, regions draw
what their prompts say where they lie, and only there."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.text.encoder import Conditioning
from modules.sumi.engine.text.schedule import ComposableCond, JobConditioning, ScheduledCond
from modules.sumi.engine.tiled_diffusion import TiledDiffusion, TiledForward, TileSettings, gaussian_weights
from modules.sumi.engine.tiled_regions import (
    Region,
    RowRoles,
    feather_mask,
    region_noise,
    row_conditioning,
    row_groups,
    with_addition,
)
from modules.sumi.services.models.demo import SHIPPED_DEMO
from tests.engine.pipeline_reference import two_image_request
from tools.demo_model.reading import colour_shares


def test_a_region_spans_the_pixels_the_extension_rounds_to():
    assert Region(0.25, 0.5, 0.3, 0.6).span(40, 20) == (10, 10, 12, 10)  # ceil(0.3*40), cut at the edge
    assert Region(1.0, 0.0, 0.2, 0.2).span(40, 20) is None
    assert with_addition(["a cat", "a dog"], "red hat") == ["a cat, red hat", "a dog, red hat"]
    assert with_addition(["a cat"], "") == ["a cat"]
    with pytest.raises(ValueError, match="not one of"):
        Region(0, 0, 1, 1, blend_mode="Middle")


def _extension_feather(w: int, h: int, ratio: float) -> torch.Tensor:
    """The extension's feather mask as its loop computes it (tile_utils.utils.feather_mask)."""
    mask = torch.ones(h, w)
    radius = int(min(w // 2, h // 2) * ratio)
    for i in range(h // 2):
        for j in range(w // 2):
            distance = min(i, j)
            if distance < radius:
                weight = (distance / radius) ** 2
                mask[i, j] = mask[i, w - j - 1] = mask[h - i - 1, j] = mask[h - i - 1, w - j - 1] = weight
    return mask


@pytest.mark.parametrize(("w", "h", "ratio"), [(16, 12, 0.2), (24, 24, 1.0), (10, 30, 0.5), (8, 8, 0.0)])
def test_the_feather_mask_is_the_extensions_for_even_sizes(w, h, ratio):
    assert torch.equal(feather_mask(w, h, ratio), _extension_feather(w, h, ratio))


def test_an_odd_sized_feather_fades_its_middle_row_and_column_too():
    mask = feather_mask(9, 9, 1.0)
    assert mask[0, 4] == 0 and mask[4, 0] == 0 and mask[4, 4] == 1
    assert torch.equal(mask, mask.flip(0)) and torch.equal(mask, mask.flip(1))


def test_regions_draw_their_own_seeds_noise_background_averaged_and_foreground_on_top():
    noise = torch.randn(2, 4, 10, 20, generator=torch.Generator().manual_seed(0))
    left, middle = Region(0.0, 0.0, 0.5, 1.0, seed=11), Region(0.25, 0.0, 0.5, 1.0, seed=12)  # x 0-10, 5-15
    front = Region(0.0, 0.0, 0.2, 0.2, blend_mode="Foreground", seed=13)  # x 0-4, y 0-2
    out = region_noise(noise, [left, middle, front])

    def own(seed: int, h: int, w: int) -> torch.Tensor:
        return torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(seed)).expand(2, -1, -1, -1)

    torch.testing.assert_close(out[..., 2:, :5], own(11, 10, 10)[..., 2:, :5])
    torch.testing.assert_close(out[..., 5:10], (own(11, 10, 10)[..., 5:] + own(12, 10, 10)[..., :5]) / 2)
    torch.testing.assert_close(out[..., 10:15], own(12, 10, 10)[..., 5:])
    torch.testing.assert_close(out[..., :2, :4], own(13, 2, 4))
    assert torch.equal(out[..., 15:], noise[..., 15:])  # no region: the job's own noise


def _texts(values: dict[str, float], *, uncond_length: int = 77) -> JobConditioning:
    """Fake encoded texts for two images: every cond row a constant `values['cond']`, uncond rows
    `values['uncond']` (`uncond_length` tokens)."""

    def schedule(value: float, length: int) -> list[ScheduledCond]:
        return [ScheduledCond(100, Conditioning(torch.full((1, length, 8), value)), "")]

    conds = [ComposableCond([(1.0, schedule(values["cond"], 77))]) for _ in range(2)]
    unconds = [schedule(values["uncond"], uncond_length) for _ in range(2)]
    return JobConditioning(conds, unconds)


def _context_forward(sample, timestep, return_dict=False, encoder_hidden_states=None, **kwargs):
    """A stand-in UNet whose prediction is the text value of its row plus the input."""
    return (sample + encoder_hidden_states[:, :1, :1, None],)


def _roles() -> RowRoles:
    return RowRoles((0, 1, 0, 1), (False, False, True, True), 0)  # [uncond, cond] as the denoiser sends


@pytest.mark.parametrize("method", ["MultiDiffusion", "Mixture of Diffusers"])
def test_background_regions_weigh_in_with_the_tiles_and_foregrounds_lie_over_them(method):
    sample = torch.randn(4, 4, 16, 32, generator=torch.Generator().manual_seed(2))
    main = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(4, 1, 1).expand(4, 77, 8).contiguous()  # uncond 0, cond 1
    settings = TileSettings(method, tile_width=16, tile_height=16, overlap=0)
    back = Region(0.25, 0.0, 0.5, 1.0, "b")  # latent x 8..24, full height
    front = Region(0.0, 0.0, 0.5, 0.5, "f", blend_mode="Foreground", feather=0.5)  # x 0..16, y 0..8
    forward = TiledForward(
        _context_forward,
        settings,
        [(back, _texts({"cond": 10.0, "uncond": 20.0})), (front, _texts({"cond": 30.0, "uncond": 40.0}))],
    )
    forward.rows = _roles()
    out = forward(sample, torch.tensor(1), encoder_hidden_states=main, return_dict=False)[0]

    value = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(4, 1, 1, 1)
    total, weight = torch.zeros_like(sample), torch.zeros(16, 32)
    tile = gaussian_weights(16, 16) if method == "Mixture of Diffusers" else torch.ones(16, 16)
    for x in (0, 16):  # the grid: two 16x16 tiles with the main texts
        total[..., :, x : x + 16] += (sample[..., :, x : x + 16] + value) * tile
        weight[:, x : x + 16] += tile
    back_weight = gaussian_weights(16, 16) if method == "Mixture of Diffusers" else torch.ones(16, 16)
    back_value = torch.tensor([20.0, 20.0, 10.0, 10.0]).view(4, 1, 1, 1)
    total[..., :, 8:24] += (sample[..., :, 8:24] + back_value) * back_weight
    weight[:, 8:24] += back_weight
    expected = total / weight
    mask = feather_mask(16, 8, 0.5)
    front_value = torch.tensor([40.0, 40.0, 30.0, 30.0]).view(4, 1, 1, 1)
    expected[..., :8, :16] = expected[..., :8, :16] * (1 - mask) + (sample[..., :8, :16] + front_value) * mask
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


def _left_half_region_alone() -> TiledForward:
    """8x8 tiles, no background, one region over the left half (cond text 1, uncond text 2)."""
    return TiledForward(
        _context_forward,
        TileSettings(tile_width=8, tile_height=8, overlap=0),
        [(Region(0.0, 0.0, 0.5, 1.0), _texts({"cond": 1.0, "uncond": 2.0}))],
        draw_background=False,
    )


def test_without_the_background_only_the_regions_draw_and_the_rest_gets_no_prediction():
    sample = torch.randn(2, 4, 8, 16)
    forward = _left_half_region_alone()
    forward.rows = RowRoles((0, 0), (False, True), 0)
    out = forward(sample, torch.tensor(1), encoder_hidden_states=torch.zeros(2, 77, 8), return_dict=False)[0]
    torch.testing.assert_close(out[..., :8], sample[..., :8] + torch.tensor([2.0, 1.0]).view(2, 1, 1, 1))
    assert torch.equal(out[..., 8:], torch.zeros_like(out[..., 8:]))


def test_cond_and_uncond_of_different_lengths_run_apart_and_keep_their_rows():
    texts = _texts({"cond": 1.0, "uncond": 2.0}, uncond_length=154)
    groups = row_groups(row_conditioning(texts, _roles()), _roles())
    assert [(index, g.context.shape[1]) for index, g in groups] == [([2, 3], 77), ([0, 1], 154)]
    calls = []

    def forward(sample, timestep, return_dict=False, encoder_hidden_states=None, **kwargs):
        calls.append((sample.shape[0], encoder_hidden_states.shape[1], tuple(timestep.tolist())))
        return _context_forward(sample, timestep, encoder_hidden_states=encoder_hidden_states)

    tiled = TiledForward(
        forward, TileSettings(tile_width=8, tile_height=8), [(Region(0, 0, 1, 1), texts)], False
    )
    tiled.rows = _roles()
    sample = torch.randn(4, 4, 8, 8)
    out = tiled(
        sample, torch.tensor([5, 6, 7, 8]), encoder_hidden_states=torch.zeros(4, 77, 8), return_dict=False
    )[0]
    assert calls == [(2, 77, (7, 8)), (2, 154, (5, 6))]
    torch.testing.assert_close(out, sample + torch.tensor([2.0, 2.0, 1.0, 1.0]).view(4, 1, 1, 1))


def test_a_region_over_the_whole_canvas_with_the_jobs_seed_and_no_text_is_the_plain_job(model):
    request = two_image_request(width=64, height=64)
    plain = engine.generate(model, request, progress_bar=False).latents
    whole = Region(0.0, 0.0, 1.0, 1.0, seed=request.seeds[0])
    tiled = TiledDiffusion(
        TileSettings(tile_width=8, tile_height=8, overlap=4), [whole], draw_background=False
    )
    regions = engine.generate(model, request, progress_bar=False, extensions=[tiled]).latents
    assert torch.equal(regions[0], plain[0])
    assert not torch.equal(regions[1], plain[1])  # the second image has another seed: the region's noise
    assert "forward" not in vars(model.unet)


def test_a_region_prompt_changes_the_result_inside_it(model):
    request = two_image_request(width=64, height=64)
    settings = TileSettings(tile_width=8, tile_height=8, overlap=4)
    same = TiledDiffusion(settings, [Region(0.0, 0.0, 1.0, 1.0, seed=request.seeds[0])], False)
    other = TiledDiffusion(settings, [Region(0.0, 0.0, 1.0, 1.0, "a red hat", seed=request.seeds[0])], False)
    first = engine.generate(model, request, progress_bar=False, extensions=[same]).latents
    second = engine.generate(model, request, progress_bar=False, extensions=[other]).latents
    assert not torch.allclose(first, second)


# -- what the demo model draws -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    return load_checkpoint(SHIPPED_DEMO)


def _halves(image) -> tuple[dict[str, float], dict[str, float]]:
    half = image.width // 2
    return colour_shares(image.crop((0, 0, half, image.height))), colour_shares(
        image.crop((half, 0, image.width, image.height))
    )


def _draw(demo, prompt: str, seed: int, regions: list[Region], draw_background: bool):
    request = engine.BatchRequest(
        prompts=[prompt], negative_prompts=[""], seeds=[seed], width=256, height=128, steps=12
    )
    tiled = TiledDiffusion(TileSettings(tile_width=16, tile_height=16, overlap=8), regions, draw_background)
    return engine.generate(demo, request, progress_bar=False, extensions=[tiled]).images[0]


def _green(shares: dict[str, float]) -> float:
    return shares["green"] + shares["yellow"]


@pytest.mark.parametrize("seed", [1, 3])
def test_two_regions_draw_their_own_prompts_each_on_its_half(demo, seed):
    circle = "a red circle in the center, blue background"
    square = "a yellow square in the center, green background"
    left, right = Region(0.0, 0.0, 0.5, 1.0, seed=seed), Region(0.5, 0.0, 0.5, 1.0, seed=seed + 100)
    image = _draw(demo, "", seed, [_with(left, circle), _with(right, square)], draw_background=False)
    first, second = _halves(image)
    assert _green(second) > 0.6 and _green(first) < 0.05, (first, second)
    swapped = _draw(demo, "", seed, [_with(left, square), _with(right, circle)], draw_background=False)
    first, second = _halves(swapped)
    assert _green(first) > 0.6 and _green(second) < 0.05, (first, second)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_foreground_region_changes_its_half_and_leaves_the_other(demo, seed):
    prompt = "a red circle in the center, blue background"
    plain = _halves(_draw(demo, prompt, seed, [], draw_background=True))
    right = Region(
        0.5, 0.0, 0.5, 1.0, "a yellow square in the center, green background", "", "Foreground", 0.0, seed
    )
    first, second = _halves(_draw(demo, prompt, seed, [right], draw_background=True))
    assert _green(plain[1]) < 0.05 and _green(second) > 0.3, (plain, second)
    assert second["blue"] < plain[1]["blue"] / 2, (plain, second)
    assert _green(first) < 0.1 and first["blue"] > 0.3, (plain, first)


def _with(region: Region, prompt: str) -> Region:
    return replace(region, prompt=prompt)


def test_a_unet_call_whose_rows_are_unknown_is_tiled_without_the_regions():
    """A call the sampler did not announce (an extension's own UNet call) cannot give rows their region
    texts: it is tiled plainly rather than failing."""
    sample = torch.randn(3, 4, 8, 16)
    forward = _left_half_region_alone()
    forward.rows = _roles()  # four rows announced, three come
    out = forward(sample, torch.tensor(1), encoder_hidden_states=torch.zeros(3, 77, 8), return_dict=False)[0]
    torch.testing.assert_close(out, sample)  # the grid with the call's own (zero) text


def test_region_texts_and_passes_are_built_once_while_rows_and_step_texts_stay_the_same(monkeypatch):
    from modules.sumi.engine import tiled_diffusion

    stacked = []
    real_groups = tiled_diffusion.row_groups
    monkeypatch.setattr(
        tiled_diffusion, "row_groups", lambda rows, roles: stacked.append(1) or real_groups(rows, roles)
    )
    sample = torch.randn(4, 4, 16, 32, generator=torch.Generator().manual_seed(2))
    main = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(4, 1, 1).expand(4, 77, 8).contiguous()
    region = Region(0.25, 0.0, 0.5, 1.0, "b", blend_mode="Foreground", feather=0.5)
    forward = TiledForward(_context_forward, TileSettings(tile_width=16, tile_height=16, overlap=0),
                           [(region, _texts({"cond": 10.0, "uncond": 20.0}))])  # fmt: skip
    forward.rows = _roles()
    first = forward(sample, torch.tensor(1), encoder_hidden_states=main, return_dict=False)[0]
    passes = forward._passes
    again = forward(sample, torch.tensor(1), encoder_hidden_states=main, return_dict=False)[0]
    assert len(stacked) == 1 and forward._passes is passes  # the second forward reused both
    torch.testing.assert_close(again, first)
    forward.rows = RowRoles((0, 1), (True, True), 1)  # other rows: stacked anew
    forward(sample[2:], torch.tensor(1), encoder_hidden_states=main[2:], return_dict=False)
    assert len(stacked) == 2
