"""Noise inversion: Euler steps up the model's noise levels from the picture (checked against the closed
form for a constant prediction), the retouch factor on the timestep, the extension's detail map and its
noise mix."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from modules.sumi.engine.noise_inversion import (
    InversionCache,
    InversionSettings,
    invert,
    renoise_weights,
    retouch_mask,
    starting_noise,
)
from modules.sumi.engine.sampling.schedules import ModelSigmas

SIGMAS = ModelSigmas.from_config({})  # SD's scaled-linear betas


def test_a_constant_prediction_inverts_to_the_closed_form_and_retouch_divides_the_timestep():
    init = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    eps = torch.full_like(init, 0.3)
    seen = []

    def forward(x, t, step):
        seen.append((float(t), step, x.clone()))
        return eps

    out = invert(forward, init, SIGMAS, steps=5, retouch=2.0, progress_bar=False)
    top = SIGMAS.sigma_max
    torch.testing.assert_close(out, (init + eps * top) / top)  # x grows by eps per unit of sigma
    assert [step for _, step, _ in seen] == [4, 3, 2, 1, 0]
    expected_t = SIGMAS.sigma_to_t(torch.tensor([SIGMAS.sigma_max])) / 2.0
    assert seen[-1][0] == pytest.approx(float(expected_t), rel=1e-5)  # the top level's timestep, halved
    first_sigma = SIGMAS.sigma_min
    torch.testing.assert_close(seen[0][2], init / (first_sigma**2 + 1) ** 0.5)  # scaled as k-diffusion's c_in


def test_v_prediction_inverts_through_its_denoised_estimate():
    init = torch.randn(1, 4, 4, 4)

    def forward(x, t, step):
        return torch.zeros_like(
            x
        )  # v = 0: denoised = x / (sigma^2 + 1), so x grows by sigma x / (sigma^2 + 1)

    out = invert(
        forward, init, SIGMAS, steps=3, retouch=1.0, prediction_type="v_prediction", progress_bar=False
    )
    assert torch.isfinite(out).all() and not torch.allclose(out, init)


def _extension_detail(gray: np.ndarray, kernel: int) -> np.ndarray:
    """The extension's get_retouch_mask, step by step (tile_utils/utils.py)."""
    img = gray.astype(np.float32) / 255.0
    size = img.shape[:2]
    s1 = (size[1], size[0])
    si = cv2.resize(img, s1, interpolation=cv2.INTER_LINEAR)
    sp = cv2.resize(img, s1, interpolation=cv2.INTER_LINEAR)
    k = (kernel, kernel)
    msi, msp = cv2.blur(si, k), cv2.blur(sp, k)
    msii, msip = cv2.blur(si * si, k), cv2.blur(si * sp, k)
    vsi, csip = msii - msi * msi, msip - msi * msp
    rec_a = csip / (vsi + 0.01)
    rec_b = msp - rec_a * msi
    m_a = cv2.resize(rec_a, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    m_b = cv2.resize(rec_b, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    gf = (m_a * img + m_b - img) * 255
    return gf.astype(np.uint8).clip(0, 255).astype(np.float32) / 255.0


def test_the_detail_map_is_the_extensions():
    rng = np.random.default_rng(0)
    gray = (rng.random((40, 56)) * 80).astype(np.uint8)
    gray[10:30, 20:40] += 150  # an edge
    np.testing.assert_allclose(retouch_mask(gray, 8), _extension_detail(gray, 8), atol=1.5 / 255)
    flat = np.full((16, 16), 120, np.uint8)
    assert np.all(retouch_mask(flat, 4) == 0)  # nothing to keep: the whole picture is renoised
    assert torch.all(renoise_weights(retouch_mask(flat, 4), 0.5, 2, 2) == 0.5)


def test_the_start_noise_is_inverted_minus_the_picture_and_mixes_fresh_noise_keeping_variance():
    inverted, init, fresh = (
        torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(s)) for s in (1, 2, 3)
    )
    plain = starting_noise(inverted, init, 14.6, fresh, None)
    torch.testing.assert_close(plain, inverted - init / 14.6)
    weight = torch.rand(6, 6, generator=torch.Generator().manual_seed(4))
    mixed = starting_noise(inverted, init, 14.6, fresh, weight)
    expected = ((1 - weight) * plain + weight * fresh) / (weight**2 + (1 - weight) ** 2) ** 0.5
    torch.testing.assert_close(mixed, expected)
    torch.testing.assert_close(starting_noise(inverted, init, 14.6, fresh, torch.ones(6, 6)), fresh)


def test_the_cache_gives_back_only_the_same_picture_under_the_same_key():
    cache, init = InversionCache(), torch.randn(1, 4, 4, 4)
    cache.put(("model", 10), init, init * 2)
    assert torch.equal(cache.get(("model", 10), init.clone()), init * 2)
    assert cache.get(("model", 11), init) is None
    assert cache.get(("model", 10), init + 1e-3) is None
    assert cache.hits == 1


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match="steps"):
        InversionSettings(steps=0)
    with pytest.raises(ValueError, match="retouch"):
        InversionSettings(retouch=0.5)
    with pytest.raises(ValueError, match="kernel"):
        InversionSettings(renoise_kernel=1)


def test_the_inversion_reports_each_step_and_stops_when_asked():
    init = torch.randn(1, 4, 4, 4)
    calls, seen = [], []

    def forward(x, t, step):
        calls.append(step)
        return torch.zeros_like(x)

    out = invert(
        forward, init, SIGMAS, 4, 1.0, progress_bar=False, progress=lambda i, n, x: seen.append((i, n))
    )
    assert out is not None and seen == [(0, 4), (1, 4), (2, 4), (3, 4)]
    calls.clear()
    stopped = invert(forward, init, SIGMAS, 4, 1.0, progress_bar=False, should_stop=lambda: len(calls) >= 2)
    assert stopped is None and len(calls) == 2  # asked between steps: no third UNet call


def test_the_inversion_runs_the_batchs_unet_hooks_so_controlnet_reaches_it(model):
    """A job's UNET_FORWARD hooks (ControlNet's residuals) see the inversion's calls too: cond rows only,
    counted against the inversion's steps."""
    from modules.sumi.engine import generate as engine
    from modules.sumi.engine import img2img
    from modules.sumi.engine.extensions import Extension, HookPoint, hook
    from modules.sumi.engine.tiled_diffusion import NoiseInversion, TiledDiffusion, TileSettings
    from tests.engine.pipeline_reference import two_image_request

    class Recorder(Extension):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[int, bool, int]] = []

        @hook(HookPoint.UNET_FORWARD)
        def note(self, batch) -> None:
            self.calls.append((batch.x.shape[0], bool(batch.is_cond.all()), batch.total_steps))

    init = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5)) * 0.5
    request = two_image_request(init=img2img.InitLatents(init, 0.5), sampler="Euler")
    recorder = Recorder()
    inversion = NoiseInversion(InversionSettings(steps=3, renoise_strength=0.0))
    tiled = TiledDiffusion(TileSettings(tile_width=64, tile_height=64), inversion=inversion)
    engine.generate(model, request, progress_bar=False, extensions=[tiled, recorder])
    assert recorder.calls[:3] == [(2, True, 3)] * 3  # the inversion: two images' cond rows, 3 steps
    assert all(rows == 4 and not cond for rows, cond, _ in recorder.calls[3:])  # then the sampler's
