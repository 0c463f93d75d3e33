"""SDXL Revision (sd-webui-controlnet's revision_clipvision / revision_ignore_prompt): a picture's CLIP
ViT-bigG image embedding stands in for the prompt's pooled embedding.

As the extension: the embedding is noise-augmented first (`q_sample` at t = Noise Augmentation x 1000 on
the linear 1e-4..2e-2 schedule; Sumi seeds that noise with the job's seed, the extension does not); at
each model call the active units' embeddings x weight are summed into the pooled vector of the cond rows,
the uncond rows get zeros there; with revision_ignore_prompt (or when the prompt and the negative prompt
are both empty) the text context of every row becomes zeros, so the picture alone steers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from modules.sumi.engine.controlnet.control import check_window, in_window
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import Extension, HookPoint, UNetBatch, hook

_STEPS, _BETA_START, _BETA_END = 1000, 1e-4, 2e-2  # the extension's AbstractLowScaleModel schedule


@dataclass
class RevisionUnit:
    """`embeds` [N, W]: the pictures' (noise-augmented) CLIP image embeddings, one per image or shared."""

    embeds: Tensor
    weight: float = 1.0
    ignore_prompt: bool = False
    guidance_start: float = 0.0
    guidance_end: float = 1.0

    def __post_init__(self) -> None:
        check_window(self.guidance_start, self.guidance_end, "ControlNet")

    @property
    def model(self) -> None:
        """No network of its own; units expose their model."""
        return None


def noise_augmented(embeds: Tensor, level: float, generator: torch.Generator) -> Tensor:
    """`embeds` noised to step int(level x 1000) (clipped to 0..999) of the linear schedule."""
    betas = torch.linspace(_BETA_START**0.5, _BETA_END**0.5, _STEPS, dtype=torch.float64) ** 2
    alpha = torch.cumprod(1 - betas, dim=0)[min(max(int(level * 1000), 0), _STEPS - 1)]
    noise = torch.randn(embeds.shape, generator=generator, dtype=torch.float32)
    return (alpha.sqrt() * embeds.float() + (1 - alpha).sqrt() * noise).to(embeds.dtype)


class RevisionExtension(Extension):
    """Replaces the pooled embedding (and with `zero_text` the text context) of each UNet forward while
    a revision unit is active; it runs before ControlNets, which then see the same conditioning."""

    def __init__(self, units: Sequence[RevisionUnit], zero_text: bool) -> None:
        super().__init__()
        self.units = list(units)
        self.zero_text = zero_text

    @hook(HookPoint.UNET_FORWARD, order=-20)
    def revise(self, batch: UNetBatch) -> None:
        active = [
            u
            for u in self.units
            if in_window(batch.step, batch.total_steps, u.guidance_start, u.guidance_end)
        ]
        pooled = batch.context.pooled
        if not active or pooled is None:
            return
        device = pooled.device
        images = batch.images.to(device)
        summed = sum(
            (
                u.embeds.to(device=device, dtype=torch.float32)[images % u.embeds.shape[0]] * u.weight
                for u in active
            ),
            torch.zeros(pooled.shape[0], active[0].embeds.shape[-1], device=device),
        )
        if summed.shape[-1] != pooled.shape[-1]:
            raise InvalidRequestError(
                f"Revision: the image embedding is {summed.shape[-1]} wide; this model's pooled prompt is "
                f"{pooled.shape[-1]} (use CLIP ViT-bigG, clip_g.pth, with an SDXL model)"
            )
        cond = batch.is_cond.to(device).view(-1, 1)
        revised = torch.where(cond, summed, torch.zeros_like(summed)).to(pooled.dtype)
        context = batch.context.context
        batch.context = dataclasses.replace(
            batch.context, pooled=revised, context=torch.zeros_like(context) if self.zero_text else context
        )
