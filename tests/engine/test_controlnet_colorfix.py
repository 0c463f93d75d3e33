"""tile_colorfix(+sharp): each prediction's clean-latent low frequencies become the control picture's
(the extension's formula, checked against a direct computation with OpenCV's box filter), v-prediction
handled, weight 0 a no-op; in a job the drawn latents take the picture's colours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.controlnet.colorfix import ColorFixUnit, box_blur, color_fixed
from modules.sumi.engine.errors import InvalidRequestError

SIZE = 64


def _blur(latents: np.ndarray, radius: int) -> np.ndarray:
    """OpenCV's normalised box filter with repeated edges, per channel ([N, C, H, W])."""
    size = 2 * radius + 1
    return np.stack(
        [
            np.stack([cv2.blur(c, (size, size), borderType=cv2.BORDER_REPLICATE) for c in image])
            for image in latents
        ]
    )


def _tensors(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 4, 12, 10, generator=g, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("sharpness", [None, 1.5])
def test_the_fix_equals_the_extensions_formula_computed_directly(sharpness):
    eps, x_t, picture = _tensors(1)
    alpha = torch.tensor([0.3, 0.8], dtype=torch.float64).view(2, 1, 1, 1)
    unit = ColorFixUnit(picture, variation=3, weight=0.7, sharpness=sharpness)
    ours = color_fixed(eps, x_t, alpha, picture, unit, negative=True)
    a = alpha.numpy()
    x0 = (x_t.numpy() - np.sqrt(1 - a) * eps.numpy()) / np.sqrt(a)
    x0 = x0 - _blur(x0, 3) + _blur(picture.numpy(), 3)
    if sharpness is not None:
        x0 = sharpness * 0.01 * _blur(x0, 3) + (1 - sharpness * 0.01) * x0
    fixed = (x_t.numpy() - np.sqrt(a) * x0) / np.sqrt(1 - a)
    np.testing.assert_allclose(ours.numpy(), 0.7 * fixed + 0.3 * eps.numpy(), rtol=1e-5, atol=1e-5)
    positive = color_fixed(eps, x_t, alpha, picture, unit, negative=False)
    assert torch.equal(positive, ours) == (sharpness is None)  # +sharp changes only the negative rows


@pytest.mark.parametrize("v_prediction", [False, True])
def test_a_prediction_whose_low_frequencies_are_the_pictures_is_left_as_it_is(v_prediction):
    output, x_t, _ = _tensors(2)
    alpha = torch.full((2, 1, 1, 1), 0.5, dtype=torch.float64)
    if v_prediction:
        x0 = alpha.sqrt() * x_t - (1 - alpha).sqrt() * output
    else:
        x0 = (x_t - (1 - alpha).sqrt() * output) / alpha.sqrt()
    unit = ColorFixUnit(x0, variation=2)
    fixed = color_fixed(output, x_t, alpha, x0, unit, negative=False, v_prediction=v_prediction)
    torch.testing.assert_close(fixed, output, rtol=1e-5, atol=1e-5)  # computed in float32
    other = color_fixed(output, x_t, alpha, x0 + 1.0, unit, negative=False, v_prediction=v_prediction)
    assert (other - output).abs().min() > 0.1  # a brighter picture shifts every value


def test_box_blur_repeats_the_edges():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    np.testing.assert_allclose(box_blur(x, 1)[0, 0].numpy(), _blur(x.numpy(), 1)[0, 0], rtol=1e-6)


def test_weights_are_clamped_and_a_window_must_be_in_order():
    picture = torch.zeros(1, 4, 8, 8)
    assert ColorFixUnit(picture, 3, weight=1.8).weight == 1.0
    with pytest.raises(InvalidRequestError):
        ColorFixUnit(picture, 3, guidance_start=0.8, guidance_end=0.2)


def _request(units=()) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox"],
        negative_prompts=[""],
        seeds=[7],
        width=SIZE,
        height=SIZE,
        steps=6,
        cfg_scale=6.0,
        sampler="Euler",
        control_units=list(units),
    )


def test_in_a_job_the_drawn_latents_take_the_pictures_low_frequencies(model):
    picture = torch.zeros(1, 4, SIZE // 8, SIZE // 8)
    picture[:, 0], picture[:, 2] = 1.5, -1.0  # a flat colour, unlike what the model draws
    plain = engine.generate(model, _request(), progress_bar=False).latents
    fixed = engine.generate(model, _request([ColorFixUnit(picture, 3)]), progress_bar=False).latents
    distance = lambda latents: float((box_blur(latents, 3) - box_blur(picture, 3)).abs().mean())  # noqa: E731
    assert distance(fixed) < 0.5 * distance(plain), (distance(fixed), distance(plain))
    off = engine.generate(model, _request([ColorFixUnit(picture, 3, weight=0.0)]), progress_bar=False).latents
    assert torch.equal(off, plain)
