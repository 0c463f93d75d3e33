"""Training the demo model's VAE, and fitting its latents to SD1's scaling factor.

The VAE learns to reconstruct the scenes (L1 + MSE, and a small KL term that keeps the latents near the
origin) from the posterior's mean: decoding samples of a freshly initialised posterior (deviation ~1)
learnt several times slower, and the diffusion model is trained on the means anyway. A third term asks
the first three latent channels to be the picture's colours averaged over each 8x8 cell: without it the
VAE took thousands of steps to carry colours at all. It trains on random 64x64 crops aligned to the
8-pixel latent grid, 16 at a time (the network is convolutional; four whole pictures a step, the same
pixels, did not learn at this rate). Afterwards `fit_latent_scale` changes the
quant convolutions so that (encoder mean) * 0.18215 has zero mean and unit deviation per channel over the
dataset, the statistics every SD1 sampler assumes; encode-then-decode is unchanged by it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import Tensor

from modules.sumi.engine.training.loop import LoopSettings, StepReport, run_loop
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule

CROP = 64
KL_WEIGHT = 1e-6
COLOUR_WEIGHT = 1.0
COLOUR_GAIN = 3.0


def train_autoencoder(
    autoencoder: AutoencoderKL,
    images: Tensor,
    *,
    steps: int,
    batch: int = 16,
    learn_rate: str = "3e-3:0.6, 1e-3:0.85, 3e-4",
    seed: int = 0,
    on_step: Callable[[StepReport], None] | None = None,
) -> list[float]:
    """Train `autoencoder` in place on `images` ([N, 3, H, W] in [-1, 1]); returns the loss per step."""
    losses: list[float] = []

    def loss_for(step: int, micro: int, generator: torch.Generator) -> Tensor:
        picks = crops(images, batch, generator)
        posterior = autoencoder.encode(picks).latent_dist
        decoded = autoencoder.decode(posterior.mode()).sample
        error = decoded - picks
        colour = posterior.mean[:, :3] - COLOUR_GAIN * F.avg_pool2d(picks, 8)
        return (
            error.abs().mean()
            + error.pow(2).mean()
            + COLOUR_WEIGHT * colour.pow(2).mean()
            + KL_WEIGHT * posterior.kl().mean()
        )

    def report(step: StepReport) -> None:
        losses.append(step.loss)
        if on_step is not None:
            on_step(step)

    settings = LoopSettings(
        steps, LearnRateSchedule.parse(fractions_to_steps(learn_rate, steps), steps), seed=seed
    )
    optimizer = torch.optim.AdamW(autoencoder.parameters(), lr=1e-3, weight_decay=0.0)
    autoencoder.train()
    run_loop(autoencoder.parameters(), optimizer, settings, loss_for, on_step=report)
    autoencoder.eval()
    return losses


def crops(images: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """`count` random CROPxCROP crops of random images, aligned to the 8-pixel latent grid."""
    side = images.shape[-1]
    picks = torch.randint(0, images.shape[0], (count,), generator=generator).tolist()
    corners = (torch.randint(0, (side - CROP) // 8 + 1, (count, 2), generator=generator) * 8).tolist()
    return torch.stack(
        [images[i, :, y : y + CROP, x : x + CROP] for i, (y, x) in zip(picks, corners, strict=True)]
    )


def fractions_to_steps(schedule: str, steps: int) -> str:
    """'1e-3:0.8, 3e-4' with fractions of the run turned into step numbers."""
    parts = []
    for part in schedule.split(","):
        rate, _, end = part.strip().partition(":")
        parts.append(f"{rate}:{max(1, round(float(end) * steps))}" if end else rate)
    return ", ".join(parts)


@torch.no_grad()
def encoder_means(autoencoder: AutoencoderKL, images: Tensor, batch: int = 64) -> Tensor:
    """The posterior means of `images`, unscaled ([N, 4, H/8, W/8])."""
    return torch.cat(
        [autoencoder.encode(images[i : i + batch]).latent_dist.mean for i in range(0, len(images), batch)]
    )


@torch.no_grad()
def fit_latent_scale(autoencoder: AutoencoderKL, images: Tensor, scaling_factor: float) -> None:
    """Make the scaled latents zero-mean, unit-deviation per channel (see the module doc)."""
    means = encoder_means(autoencoder, images)
    centre = means.mean(dim=(0, 2, 3))
    gain = 1.0 / (scaling_factor * means.std(dim=(0, 2, 3)))  # new mean = (old - centre) * gain
    quant, post = autoencoder.quant_conv, autoencoder.post_quant_conv
    channels = centre.numel()
    quant.weight[:channels] *= gain.view(-1, 1, 1, 1)
    quant.bias[:channels] = (quant.bias[:channels] - centre) * gain
    quant.bias[channels:] += 2 * torch.log(gain)  # log-variance of the scaled posterior
    # post_quant_conv(z) must equal the old post_quant_conv(z / gain + centre)
    post.bias += post.weight[:, :, 0, 0] @ centre
    post.weight /= gain.view(1, -1, 1, 1)
