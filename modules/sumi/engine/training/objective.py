"""The denoising objective every trainer minimises, with offset noise and min-SNR weighting.

loss = mean over images of  w_snr(t) * mean_pixels( m * (prediction - target)^2 )

- noisy latents come from the model's own noise schedule (diffusers' DDPM `add_noise` on the
  checkpoint's betas); `t` is drawn uniformly from [t_min, t_max);
- the target is the noise (epsilon models) or the velocity (v-prediction models, SD2-v);
- **offset noise** adds `strength * N(0, 1)` per image and channel (constant over the pixels) to the
  noise, which lets a model learn much darker and brighter images (the usual strength is 0.05-0.1);
- **min-SNR** (Hang et al. 2023) weights each image by min(SNR, gamma) / SNR (/ (SNR + 1) for v);
- **debiased estimation** (kohya's `--debiased_estimation_loss`) weights each image by 1 / sqrt(SNR)
  (1 / (SNR + 1) for v), SNR capped at 1000: the noisiest steps, where the picture's layout is decided
  and the noise loss barely sees it, count more. It multiplies with min-SNR when both are on;
- `m` is an optional per-pixel weight at latent size (A1111's "use PNG alpha channel as loss weight").

Randomness comes only from the generator passed in, so a run is reproducible and a resumed run draws
what the uninterrupted one would have drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler

from modules.sumi.engine.files import from_config
from modules.sumi.engine.training.errors import TrainingError

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(noisy latents [B, C, h, w], timesteps [B]) -> the UNet's output, same shape as the latents."""


@dataclass(frozen=True)
class ObjectiveSettings:
    offset_noise: float = 0.0
    min_snr_gamma: float | None = None
    debiased_estimation: bool = False
    timestep_min: int = 0
    timestep_max: int | None = None  # None: the schedule's number of training steps


class DiffusionObjective:
    """The noise schedule of one model and the loss built on it."""

    def __init__(
        self, scheduler_config: dict, prediction_type: str, settings: ObjectiveSettings | None = None
    ):
        if prediction_type not in ("epsilon", "v_prediction"):
            raise TrainingError(
                f"training a {prediction_type!r} model is not supported (epsilon or v_prediction)"
            )
        self.scheduler = from_config(DDPMScheduler, {**scheduler_config, "prediction_type": prediction_type})
        self.prediction_type = prediction_type
        self.settings = settings or ObjectiveSettings()
        total = int(self.scheduler.config["num_train_timesteps"])
        high = total if self.settings.timestep_max is None else self.settings.timestep_max
        if not 0 <= self.settings.timestep_min < high <= total:
            raise TrainingError(
                f"the timestep range [{self.settings.timestep_min}, {high}) must lie within [0, {total})"
            )
        if self.settings.offset_noise < 0:
            raise TrainingError("the offset noise strength must not be negative")
        if self.settings.min_snr_gamma is not None and self.settings.min_snr_gamma <= 0:
            raise TrainingError("min-SNR gamma must be above 0 (or off)")
        self.timestep_range = (self.settings.timestep_min, high)

    def sample_noise(self, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Gaussian noise like `latents`, plus the offset term when it is on (drawn on the CPU)."""
        shape = latents.shape
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        if self.settings.offset_noise:
            offset = torch.randn((shape[0], shape[1], 1, 1), generator=generator, dtype=torch.float32)
            noise = noise + self.settings.offset_noise * offset
        return noise.to(latents.device)

    def sample_timesteps(self, count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        low, high = self.timestep_range
        return torch.randint(low, high, (count,), generator=generator).to(device)

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "v_prediction":
            return self.scheduler.get_velocity(latents, noise, timesteps)  # pyright: ignore[reportArgumentType]
        return noise

    def snr_weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        """Each image's loss weight from its step's signal-to-noise ratio; None when nothing weights."""
        gamma = self.settings.min_snr_gamma
        if gamma is None and not self.settings.debiased_estimation:
            return None
        alphas = self.scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
        snr = alphas / (1 - alphas)
        v = self.prediction_type == "v_prediction"
        weights = torch.ones_like(snr)
        if gamma is not None:
            weights = torch.clamp(snr, max=gamma) / (snr + 1 if v else snr)
        if self.settings.debiased_estimation:
            capped = torch.clamp(snr, max=1000.0)
            weights = weights / (capped + 1 if v else capped.sqrt())
        return weights

    def loss(
        self,
        predict: Predict,
        latents: torch.Tensor,
        generator: torch.Generator,
        pixel_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The scalar loss for one batch of clean latents [B, C, h, w] (fp32 maths)."""
        latents = latents.float()
        noise = self.sample_noise(latents, generator)
        timesteps = self.sample_timesteps(latents.shape[0], generator, latents.device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)  # pyright: ignore[reportArgumentType]
        prediction = predict(noisy, timesteps).float()
        error = (prediction - self.target(latents, noise, timesteps)) ** 2
        if pixel_weight is not None:
            weight = pixel_weight.to(error)
            per_image = (error * weight).sum(dim=(1, 2, 3)) / (
                weight.expand_as(error).sum(dim=(1, 2, 3)) + 1e-8
            )
        else:
            per_image = error.mean(dim=(1, 2, 3))
        snr = self.snr_weights(timesteps)
        if snr is not None:
            per_image = per_image * snr
        return per_image.mean()
