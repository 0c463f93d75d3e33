"""LCM as diffusers' scheduler steps it, with its fresh noise sent to the device without waiting.

diffusers draws LCM's per-step noise inside `step` and copies it to the device with a blocking copy, once
per step. Here diffusers computes the step's denoised sample (its last-step branch, which adds no noise)
and the noise is added as diffusers adds it, from the same draws (`randn_on`).
"""

from __future__ import annotations

from typing import cast

from diffusers import LCMScheduler
from diffusers.schedulers.scheduling_lcm import LCMSchedulerOutput

from modules.sumi.engine.sampling.noise_sources import randn_on


class LCMHostNoiseScheduler(LCMScheduler):
    def step(self, model_output, timestep, sample, generator=None, return_dict: bool = True):
        if self.step_index is None:
            self._init_step_index(timestep)
        index = cast(int, self.step_index)
        steps = cast(int, self.num_inference_steps)
        if index == steps - 1:
            return super().step(model_output, timestep, sample, generator=generator, return_dict=return_dict)
        self.num_inference_steps = index + 1  # diffusers' last step: the denoised sample, no noise
        try:
            denoised = super().step(model_output, timestep, sample, return_dict=False)[1]
        finally:
            self.num_inference_steps = steps
        following = self.timesteps[index + 1] if index + 1 < len(self.timesteps) else timestep
        alpha_prev = self.alphas_cumprod[following] if following >= 0 else self.final_alpha_cumprod
        noise = randn_on(model_output.shape, generator, model_output.device, denoised.dtype)
        prev = alpha_prev.sqrt() * denoised + (1 - alpha_prev).sqrt() * noise
        if not return_dict:
            return prev, denoised
        return LCMSchedulerOutput(prev_sample=prev, denoised=denoised)
