"""tile_colorfix / tile_colorfix+sharp (sd-webui-controlnet): after each UNet call, the prediction's low
frequencies are swapped for the control picture's, so a tile upscale keeps the picture's colours.

For each row, with the DDPM noise level of its (rounded) timestep, the predicted clean latents are
`x0 = (x_t - sqrt(1 - a) eps) / sqrt(a)`; then `x0 <- x0 - blur(x0) + blur(picture latents)`, blur being a
box filter of radius `variation` latent pixels (edges repeated; doubled in a hires pass, as the
extension). "+sharp" also moves the negative-prompt rows' x0 towards its blurred self by sharpness %,
so guidance pushes away from blur. The new x0 is turned back into the model's prediction (eps, or v for
v-prediction models, which the extension does not handle) and blended with the original by the unit's
weight (0..1). As a ControlNet unit it acts within its guidance window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from modules.sumi.engine.controlnet.control import check_window, in_window
from modules.sumi.engine.extensions import Extension, HookPoint, RowOutputs, hook


@dataclass
class ColorFixUnit:
    """`latents` [N, 4, h, w]: the control picture's VAE latents (scaled), one per image or shared;
    `variation`: the blur radius in latent pixels; `sharpness`: "+sharp"'s (0..2), None without."""

    latents: Tensor
    variation: int
    weight: float = 1.0
    sharpness: float | None = None
    guidance_start: float = 0.0
    guidance_end: float = 1.0

    def __post_init__(self) -> None:
        check_window(self.guidance_start, self.guidance_end, "ControlNet")
        self.weight = max(0.0, min(1.0, float(self.weight)))

    @property
    def model(self) -> None:
        """No network of its own (its tile ControlNet is the unit before it); units expose their model."""
        return None


def box_blur(x: Tensor, radius: int) -> Tensor:
    """The mean over a (2r+1)^2 square around each pixel, the edges repeated."""
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)


def color_fixed(
    output: Tensor,
    x_t: Tensor,
    alpha: Tensor,
    picture: Tensor,
    unit: ColorFixUnit,
    *,
    negative: bool,
    v_prediction: bool = False,
) -> Tensor:
    """The model's prediction for rows `x_t` at noise level `alpha` (alphas_cumprod, [rows, 1, 1, 1]) with
    their low frequencies taken from `picture` (the rows' latents)."""
    work = output.float()
    x_t, alpha, picture = x_t.float(), alpha.float(), picture.float()
    if v_prediction:
        x0 = alpha.sqrt() * x_t - (1 - alpha).sqrt() * work
    else:
        x0 = (x_t - (1 - alpha).sqrt() * work) / alpha.sqrt()
    x0 = x0 - box_blur(x0, unit.variation) + box_blur(picture, unit.variation)
    if negative and unit.sharpness is not None:
        detail = unit.sharpness * 0.01
        x0 = detail * box_blur(x0, unit.variation) + (1 - detail) * x0
    eps = (x_t - alpha.sqrt() * x0) / (1 - alpha).sqrt()
    fixed = alpha.sqrt() * eps - (1 - alpha).sqrt() * x0 if v_prediction else eps
    return (fixed * unit.weight + work * (1 - unit.weight)).to(output.dtype)


class ColorFixExtension(Extension):
    """Applies the units' colour fix to the cond and uncond rows of every model call (PRE_CFG)."""

    def __init__(self, units: Sequence[ColorFixUnit], alphas_cumprod: Tensor, v_prediction: bool) -> None:
        super().__init__()
        self.units = list(units)
        self.alphas_cumprod = alphas_cumprod.double()
        self.v_prediction = v_prediction

    def _alpha(self, timestep: Tensor, rows: int, like: Tensor) -> Tensor:
        if self.alphas_cumprod.device != timestep.device:  # once: indexing stays on the device (no sync)
            self.alphas_cumprod = self.alphas_cumprod.to(timestep.device)
        index = timestep.float().round().long().clamp(0, len(self.alphas_cumprod) - 1).reshape(-1)
        alpha = self.alphas_cumprod[index].to(device=like.device, dtype=torch.float32)
        return alpha.expand(rows).reshape(rows, 1, 1, 1) if alpha.numel() == 1 else alpha.view(-1, 1, 1, 1)

    @hook(HookPoint.PRE_CFG)
    def fix_colours(self, rows: RowOutputs) -> None:
        call = rows.call
        active = [
            u for u in self.units if in_window(call.step, call.total_steps, u.guidance_start, u.guidance_end)
        ]
        if not active:
            return
        images = call.x.shape[0]
        n_cond = rows.cond.shape[0]
        cond_x = call.x[rows.owners] if call.rows_x is None else call.rows_x[:n_cond]
        uncond_x = call.x if call.rows_x is None else call.rows_x[n_cond : n_cond + images]
        timestep = torch.as_tensor(call.timestep)
        image_ids = torch.arange(images, device=call.x.device)
        for unit in active:
            latents = unit.latents.to(call.x.device)
            rows.cond = self._fixed(rows.cond, cond_x, timestep, latents, rows.owners, unit, negative=False)
            rows.uncond = self._fixed(
                rows.uncond, uncond_x, timestep, latents, image_ids, unit, negative=True
            )

    def _fixed(
        self,
        output: Tensor,
        x_t: Tensor,
        timestep: Tensor,
        latents: Tensor,
        owners: Tensor,
        unit: ColorFixUnit,
        *,
        negative: bool,
    ) -> Tensor:
        picture = latents[owners.to(latents.device) % latents.shape[0]]
        if picture.shape[-2:] != x_t.shape[-2:]:  # another pass's size (the job resized the latents)
            return output
        timesteps = timestep if timestep.numel() == 1 else timestep[owners.to(timestep.device)]
        alpha = self._alpha(timesteps, output.shape[0], output)
        return color_fixed(
            output, x_t, alpha, picture, unit, negative=negative, v_prediction=self.v_prediction
        )
