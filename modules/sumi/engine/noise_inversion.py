"""Noise inversion for img2img upscaling (the multidiffusion-upscaler extension's, after A1111's img2img
alternative test): instead of random noise, img2img starts from the noise that Euler steps run backwards
from the picture itself give, so a redraw at high denoising keeps the picture's layout and adds detail.

`invert` walks the model's noise levels upwards from the init latents in `steps` Euler steps with the cond
prediction only (no guidance); each UNet call sees the timestep divided by `retouch` (above 1 the model
believes the picture is less noisy than it is, and smooths less). The result, divided by the top noise
level, is noise-shaped. `starting_noise` turns it into the img2img noise as the extension does:
`inverted − init / sigma_max`, and, with a renoise strength, mixes fresh noise in where `retouch_mask`
finds flat areas (an edge-preserving filter of the grey picture), keeping the mix's variance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from modules.sumi.engine.host_values import scalar_on
from modules.sumi.engine.sampling.ancestral import predicted_original
from modules.sumi.engine.sampling.schedules import ModelSigmas, ScheduleArgs, uniform

log = logging.getLogger(__name__)

# x, t (fractional training timestep), model call index -> the UNet's prediction
CondForward = Callable[[Tensor, Tensor, int], Tensor]


@dataclass(frozen=True)
class InversionSettings:
    steps: int = 10
    retouch: float = 1.0
    renoise_strength: float = 1.0
    renoise_kernel: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 200:
            raise ValueError(f"noise inversion steps must be from 1 to 200, got {self.steps}")
        if not 1 <= self.retouch <= 100:
            raise ValueError(f"retouch must be from 1 to 100, got {self.retouch}")
        if not 0 <= self.renoise_strength <= 2:
            raise ValueError(f"renoise strength must be from 0 to 2, got {self.renoise_strength}")
        if not 2 <= self.renoise_kernel <= 512:
            raise ValueError(f"renoise kernel size must be from 2 to 512, got {self.renoise_kernel}")


@torch.no_grad()
def invert(
    forward: CondForward,
    init: Tensor,
    sigmas: ModelSigmas,
    steps: int,
    retouch: float,
    prediction_type: str = "epsilon",
    progress_bar: bool = True,
    progress: Callable[[int, int, Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Tensor | None:
    """The noise the picture `init` came from: Euler steps from sigma 0 up the model's uniform schedule of
    `steps` levels (the extension's `find_noise_for_image_sigma_adjustment`), divided by the top level.
    `progress(step, steps, x)` after each step; None when `should_stop` says so between steps."""
    levels = uniform(ScheduleArgs(steps, sigmas.sigma_min, sigmas.sigma_max, sigmas)).flip(0)
    x = init.float()
    for i in tqdm(range(1, len(levels)), desc="Noise Inversion", disable=not progress_bar, leave=False):
        if should_stop is not None and should_stop():
            return None
        sigma = levels[i]
        scaled = x / (sigma**2 + 1) ** 0.5
        t = sigmas.sigma_to_t(sigma.reshape(1)) / retouch
        out = forward(scaled.to(init.dtype), scalar_on(t, init.device), steps - i).float()
        if prediction_type == "epsilon":
            slope = out  # (x - denoised) / sigma, exactly
        else:
            slope = (x - predicted_original(out, x, float(sigma), prediction_type)) / sigma
        x = x + slope * (sigma - levels[i - 1])
        if progress is not None:
            progress(i - 1, steps, x.to(init.dtype))
    return (x / levels[-1]).to(init.dtype)


def retouch_mask(gray: np.ndarray, kernel: int) -> np.ndarray:
    """The extension's detail map of a grey uint8 picture, in [0, 1]: a guided filter's per-pixel linear
    fit (a, b not averaged again, as the extension has it) minus the picture, kept the way its uint8 cast
    keeps it (numpy truncates and wraps: a small negative difference becomes nearly 1), so flat areas give
    0 and the sides of the picture's edges high values."""
    image = gray.astype(np.float32) / 255.0
    size = (kernel, kernel)
    mean = cv2.blur(image, size)
    variance = cv2.blur(image * image, size) - mean * mean
    a = variance / (variance + 0.01)
    b = mean - a * mean
    wrapped = np.trunc((a * image + b - image) * 255).astype(np.int64) % 256
    return wrapped.astype(np.float32) / 255.0


def renoise_weights(mask: np.ndarray, strength: float, height: int, width: int) -> Tensor:
    """How much fresh noise each latent pixel gets: (1 − the detail map) shrunk to the latent, times the
    strength, within [0, 1]."""
    detail = torch.from_numpy(mask)[None, None]
    shrunk = F.interpolate(detail, size=(height, width), mode="bilinear")[0, 0]
    return ((1 - shrunk) * strength).clamp(0, 1)


def starting_noise(
    inverted: Tensor, init: Tensor, sigma_max: float, fresh: Tensor, renoise: Tensor | None
) -> Tensor:
    """The img2img noise from the inverted noise (the extension's `sample_img2img`): inverted − init /
    sigma_max, mixed with the `fresh` noise by the `renoise` weights, the mix scaled back to unit variance."""
    inverse = inverted - init / sigma_max
    if renoise is None:
        return inverse
    weight = renoise.to(inverse.device, inverse.dtype)
    mixed = (1 - weight) * inverse + weight * fresh.to(inverse.dtype)
    return mixed / (weight**2 + (1 - weight) ** 2) ** 0.5


@dataclass
class InversionCache:
    """The last inversion, reused when the model, picture, prompts and settings are the same (an X/Y/Z of
    denoising strengths inverts once)."""

    key: tuple = ()
    init: Tensor | None = None
    inverted: Tensor | None = None
    hits: int = field(default=0, compare=False)

    def get(self, key: tuple, init: Tensor) -> Tensor | None:
        if self.inverted is None or self.init is None or key != self.key or self.init.shape != init.shape:
            return None
        if not torch.equal(self.init, init.detach().cpu()):
            return None
        self.hits += 1
        log.info(
            "Noise Inversion: same model, picture, prompts and settings as the last job; reusing its noise"
        )
        return self.inverted.to(init.device)

    def put(self, key: tuple, init: Tensor, inverted: Tensor) -> None:
        self.key, self.init, self.inverted = key, init.detach().cpu(), inverted.detach().cpu()
