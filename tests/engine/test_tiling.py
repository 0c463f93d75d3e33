"""Tiling in the engine: with every Conv2d padding circularly the picture has no edge (shifting the start
noise shifts the latents and the image by exactly as much, wrapping around), and the patch gives every
convolution its own padding mode back after the batch, also when the batch fails."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import Extension, HookPoint, LoopContext, StepContext, hook
from modules.sumi.engine.extensions.circular import CircularPadding, Tiling

SHIFT = (4, 2)  # latent pixels (rows, columns): a multiple of the tiny UNet's downsampling


@pytest.fixture(scope="module")
def sd1(tiny_sd1_ckpt):
    return load_checkpoint(tiny_sd1_ckpt[0])


class RollStart(Extension):
    """Starts the loop from the seed's noise shifted (wrapping) by SHIFT."""

    @hook(HookPoint.PRE_LOOP)
    def roll(self, ctx: LoopContext) -> None:
        ctx.latents = torch.roll(ctx.latents, shifts=SHIFT, dims=(2, 3))


class Fails(Extension):
    """Records the padding modes it sees at the first step, then raises."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.seen: set[str] = set()

    @hook(HookPoint.PRE_STEP)
    def boom(self, ctx: StepContext) -> None:
        self.seen = {m.padding_mode for m in _convs(self.model)}
        raise RuntimeError("a failing batch")


def _convs(model) -> list[nn.Conv2d]:
    return [m for part in (model.unet, model.vae) for m in part.modules() if isinstance(m, nn.Conv2d)]


def _run(model, extensions):
    request = engine.BatchRequest(
        prompts=["a tileable stone wall"], negative_prompts=[""], seeds=[5], width=64, height=64, steps=4,
        sampler="Euler",
    )  # fmt: skip
    return engine.generate(model, request, extensions=extensions, progress_bar=False)


def _pixels(result) -> np.ndarray:
    return np.asarray(result.images[0]).astype(int)


def test_tiled_output_wraps_around_its_edges(sd1):
    plain, tiled = _run(sd1, [Tiling()]), _run(sd1, [Tiling(), RollStart()])
    rolled = torch.roll(plain.latents, shifts=SHIFT, dims=(2, 3))
    assert torch.allclose(rolled, tiled.latents, atol=1e-3)
    pixel_shift = (SHIFT[0] * 8, SHIFT[1] * 8)
    image_gap = np.abs(np.roll(_pixels(plain), pixel_shift, axis=(0, 1)) - _pixels(tiled))
    assert image_gap.max() <= 2  # the decoder wraps too (uint8 rounding only)


def test_without_tiling_the_edges_are_edges(sd1):
    plain, shifted = _run(sd1, []), _run(sd1, [RollStart()])
    rolled = torch.roll(plain.latents, shifts=SHIFT, dims=(2, 3))
    assert (rolled - shifted.latents).abs().max() > 1.0


def test_padding_modes_are_restored_after_a_batch_and_after_a_failing_batch(sd1):
    before = [m.padding_mode for m in _convs(sd1)]
    assert set(before) == {"zeros"}
    _run(sd1, [Tiling()])
    assert [m.padding_mode for m in _convs(sd1)] == before
    failing = Fails(sd1)
    with pytest.raises(RuntimeError, match="a failing batch"):
        _run(sd1, [Tiling(), failing])
    assert failing.seen == {"circular"}  # the batch did run tiled
    assert [m.padding_mode for m in _convs(sd1)] == before


def test_circular_padding_puts_back_each_convolutions_own_mode():
    reflect, zeros = nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), nn.Conv2d(1, 1, 3, padding=1)
    outer = nn.Sequential(reflect, nn.Sequential(zeros))
    with CircularPadding([outer, zeros, None]) as patch:  # a module inside one already added: once
        assert len(patch) == 2 and {reflect.padding_mode, zeros.padding_mode} == {"circular"}
        patch.add(outer)
        assert len(patch) == 2
    assert (reflect.padding_mode, zeros.padding_mode) == ("reflect", "zeros")


def test_extra_modules_such_as_controlnets_tile_with_the_model(sd1):
    control = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
    seen = []

    class Look(Extension):
        @hook(HookPoint.PRE_STEP)
        def look(self, ctx: StepContext) -> None:
            seen.append(control[0].padding_mode)

    _run(sd1, [Tiling([control]), Look()])
    assert set(seen) == {"circular"} and control[0].padding_mode == "zeros"
