"""Ancestral schedulers with A1111's `eta` (Euler a, DPM++ 2S a), in diffusers' scheduler interface.

diffusers' Euler a has no eta and diffusers has no DPM++ 2S a; both are k-diffusion samplers that
A1111 users rely on, so we implement their steps here on top of diffusers' sigma bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, KDPM2AncestralDiscreteScheduler
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_euler_ancestral_discrete import EulerAncestralDiscreteSchedulerOutput

from modules.sumi.engine.sampling.noise_sources import randn_on


def ancestral_step(
    sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-diffusion's split of a step into a deterministic part (down) and fresh noise (up)."""
    if eta == 0 or sigma_to == 0:
        return sigma_to, torch.zeros_like(sigma_to)
    up = torch.clamp(eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5, max=sigma_to)
    return (sigma_to**2 - up**2) ** 0.5, up


def predicted_original(
    model_output: torch.Tensor, sample: torch.Tensor, sigma, prediction_type: str
) -> torch.Tensor:
    """Denoised estimate x0 from the UNet output at noise level sigma (k-diffusion convention)."""
    if prediction_type == "epsilon":
        return sample - sigma * model_output
    if prediction_type == "v_prediction":
        return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
    raise ValueError(f"prediction type {prediction_type!r} is not supported")


class EulerAncestralEtaScheduler(EulerAncestralDiscreteScheduler):
    """Euler a with A1111's `eta` (ancestral noise amount; 1.0 = diffusers' Euler a) and the
    Karras / exponential / beta schedule types, which diffusers' Euler a lacks."""

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas=None,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        eta: float = 1.0,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
    ):
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            prediction_type=prediction_type,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
        )

    def set_timesteps(self, num_inference_steps: int, device=None):
        super().set_timesteps(num_inference_steps, device=device)
        convert = self._sigma_converter()
        if convert is None:
            return
        sigmas = convert(self, in_sigmas=self.sigmas[:-1].clone(), num_inference_steps=num_inference_steps)
        sigmas = torch.as_tensor(np.asarray(sigmas), dtype=torch.float32)
        log_sigmas = np.log((((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).numpy())
        # borrowed from Euler (not a base class): it only reads arguments, not scheduler state
        to_t = EulerDiscreteScheduler._sigma_to_t
        timesteps = [to_t(self, s, log_sigmas) for s in sigmas.numpy()]  # pyright: ignore[reportArgumentType]
        self.sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
        self.timesteps = torch.tensor(np.array(timesteps), dtype=torch.float32, device=device)

    def _sigma_converter(self) -> Callable[..., Any] | None:
        """Euler's sigma conversion for the configured schedule type, called with this scheduler as
        `self` (they read nothing from it but optional `config` entries)."""
        if self.config["use_karras_sigmas"]:
            return EulerDiscreteScheduler._convert_to_karras
        if self.config["use_exponential_sigmas"]:
            return EulerDiscreteScheduler._convert_to_exponential
        if self.config["use_beta_sigmas"]:
            return EulerDiscreteScheduler._convert_to_beta
        return None

    def step(self, model_output, timestep, sample, generator=None, return_dict: bool = True):
        if self.step_index is None:
            self._init_step_index(timestep)
        index = self.step_index
        sigma, sigma_next = self.sigmas[index], self.sigmas[index + 1]
        sample = sample.to(torch.float32)
        denoised = predicted_original(model_output, sample, sigma, self.config["prediction_type"])
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, self.config["eta"])
        prev = sample + (sample - denoised) / sigma * (sigma_down - sigma)
        if sigma_up > 0:
            noise = randn_on(model_output.shape, generator, model_output.device, model_output.dtype)
            prev = prev + noise * sigma_up
        self._step_index = index + 1
        prev = prev.to(model_output.dtype)
        if not return_dict:
            return prev, denoised
        return EulerAncestralDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=denoised)


class DPM2AncestralScheduler(KDPM2AncestralDiscreteScheduler):
    """DPM2 a (k-diffusion `sample_dpm_2_ancestral`) as diffusers' KDPM2 ancestral scheduler steps it, with
    the second evaluation's noise drawn by `randn_on` (the same draws, sent to the device without
    waiting for it). Its first evaluation draws no noise and is diffusers' own step."""

    def step(self, model_output, timestep, sample, generator=None, return_dict: bool = True):
        if self.step_index is None:
            self._init_step_index(timestep)
        if self.state_in_first_order:
            return super().step(model_output, timestep, sample, generator=generator, return_dict=return_dict)
        # diffusers types these for numpy too and the index/stored sample as optional; here they are
        # the loop's tensors, the index is set above and the first-order step stored the sample
        model_output, sample = cast(torch.Tensor, model_output), cast(torch.Tensor, sample)
        index = cast(int, self.step_index)
        sigma, sigma_mid = self.sigmas[index - 1], self.sigmas_interpol[index - 1]
        sigma_up, sigma_down = self.sigmas_up[index - 1], self.sigmas_down[index - 1]
        denoised_mid = predicted_original(model_output, sample, sigma_mid, self.config["prediction_type"])
        start = cast(torch.Tensor, self.sample)
        self.sample = None
        prev = self._second_update(start, sample, denoised_mid, sigma, sigma_mid, sigma_down)
        noise = randn_on(model_output.shape, generator, model_output.device, model_output.dtype)
        prev = prev + noise * sigma_up
        self._step_index = index + 1
        if not return_dict:
            return prev, denoised_mid
        return EulerAncestralDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=denoised_mid)

    def _second_update(self, start, sample, denoised_mid, sigma, sigma_mid, sigma_down) -> torch.Tensor:
        """DPM-Solver-2: the derivative at the midpoint over the whole step from the stored sample."""
        return start + (sample - denoised_mid) / sigma_mid * (sigma_down - sigma)


class DPMPP2SAncestralScheduler(DPM2AncestralScheduler):
    """DPM++ 2S a (k-diffusion `sample_dpmpp_2s_ancestral`, r = 1/2).

    It evaluates the model at the same two noise levels as DPM2 a (sigma, then the log-midpoint
    towards sigma_down), and its first half-step equals DPM2 a's; only the second update differs:
    an exponential-integrator step from the stored sample using the midpoint's denoised estimate.
    Ancestral noise is always eta = 1 (A1111's default); other etas apply to Euler a and DDIM only.
    """

    def _second_update(self, start, sample, denoised_mid, sigma, sigma_mid, sigma_down) -> torch.Tensor:
        return (sigma_down / sigma) * start + (1 - sigma_down / sigma) * denoised_mid
