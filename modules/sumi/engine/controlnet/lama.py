"""ControlNet's `inpaint_only+lama`: the masked part of the control image is first filled by the LaMa
inpainting network (sd-webui-controlnet's `ControlNetLama.pth`, recognised by spandrel), then the unit
works as `inpaint_only`.

The extension's steps, kept exactly: the picture (with the mask as its alpha) is scaled so its short
side is 256 pixels (cubic when enlarging, area when shrinking), padded to a multiple of 64 by
repeating its edges; LaMa sees the colours with the mask (> 0.5) blanked and the binary mask; the
result loses the padding, is resized back (bilinear) and replaces the picture where the mask is, in
proportion to the mask's grey level.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from modules.sumi.engine.sampling.training_noise import training_alphas

LAMA_RESOLUTION = 256  # LaMa is trained at 256 pixels; the extension always runs it there
LAMA_FILE = "lama/ControlNetLama.pth"


def _pad64(size: int) -> int:
    return int(np.ceil(size / 64.0) * 64 - size)


def _scaled_with_pad(image: np.ndarray, resolution: int) -> tuple[np.ndarray, int, int]:
    """The extension's `resize_image_with_pad`: short side to `resolution`, edges repeated to a multiple
    of 64; returns the padded picture and the size without the padding."""
    height, width = image.shape[:2]
    k = float(resolution) / float(min(height, width))
    interpolation = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    h_target, w_target = int(np.round(height * k)), int(np.round(width * k))
    scaled = cv2.resize(image, (w_target, h_target), interpolation=interpolation)
    padded = np.pad(scaled, [[0, _pad64(h_target)], [0, _pad64(w_target)], [0, 0]], mode="edge")
    return np.ascontiguousarray(padded), h_target, w_target


@torch.no_grad()
def _run(model: Any, rgba: np.ndarray) -> np.ndarray:
    """LaMa on an RGBA uint8 picture whose alpha is the mask; the filled RGB uint8 picture."""
    param = next(model.model.parameters())
    tensor = torch.from_numpy(rgba.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    tensor = tensor.to(device=param.device, dtype=param.dtype)
    mask = (tensor[:, 3:4] > 0.5).to(tensor.dtype)
    color = tensor[:, 0:3] * (1 - mask)
    result = model(color, mask)
    result = result * mask + color * (1 - mask)
    array = result[0].float().permute(1, 2, 0).mul(255.0).cpu().numpy()
    return array.clip(0, 255).astype(np.uint8)


def fill_with_lama(model: Any, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`image` (HxWx3 uint8) with the part under `mask` (HxW uint8, 255 = fill) painted by LaMa."""
    height, width = image.shape[:2]
    rgba = np.concatenate([image[:, :, :3], mask[:, :, None]], axis=2)
    padded, h_target, w_target = _scaled_with_pad(rgba, LAMA_RESOLUTION)
    predicted = _run(model, padded)[:h_target, :w_target]
    predicted = cv2.resize(np.ascontiguousarray(predicted), (width, height))
    alpha = mask.astype(np.float32)[:, :, None] / 255.0
    blended = predicted.astype(np.float32) * alpha + image[:, :, :3].astype(np.float32) * (1 - alpha)
    return blended.clip(0, 255).astype(np.uint8)


def lama_noise(noise: torch.Tensor, x0: torch.Tensor, scheduler_config: dict) -> torch.Tensor:
    """sd-webui-controlnet's initial-noise change for `+lama` units: the starting noise becomes
    `q_sample(x0, t=999, noise)`, x0 being the latents of the LaMa-filled control image, so the colours
    LaMa painted show through from the first step. Noise of another size is left as it is."""
    if noise.shape[-2:] != x0.shape[-2:]:
        return noise
    last = training_alphas(scheduler_config)[-1].to(device=noise.device, dtype=torch.float32)
    x0 = x0.to(device=noise.device, dtype=torch.float32).expand(noise.shape[0], -1, -1, -1)
    return (last.sqrt() * x0 + (1 - last).sqrt() * noise.float()).to(noise.dtype)
