"""Running an image-to-image model (ESRGAN, SwinIR, DAT, HAT, ...) over a picture, whole or in tiles.

Tiles overlap by `overlap` input pixels and are blended with linear ramps across the overlap (a tile's
side on the picture's border keeps full weight), so no seam shows where tiles meet; A1111's settings
`ESRGAN_tile` / `ESRGAN_tile_overlap` (and DAT's, SwinIR's) feed `tile` and `overlap`, and 0 runs the
whole picture at once. `interrupted` is asked between tiles; the tiles not run keep the plain resize
of the input, so an interrupted upscale still returns a full picture.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

Model = Callable[[torch.Tensor], torch.Tensor]


def image_to_tensor(image: Image.Image, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, 3, H, W) RGB in 0..1."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=dtype)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor[0].float().clamp(0, 1).permute(1, 2, 0).mul(255.0).round().byte().cpu().numpy()
    return Image.fromarray(array, "RGB")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where tiles of `tile` pixels begin along a side of `length`, at most `tile - overlap` apart; the
    last one ends on the border."""
    if tile >= length:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def _ramp(size: int, feather: int, start_edge: bool, end_edge: bool) -> torch.Tensor:
    """1 inside, rising linearly over `feather` pixels at each side that is not the picture's edge."""
    weights = torch.ones(size)
    if feather > 0:
        rise = (torch.arange(feather, dtype=torch.float32) + 0.5) / feather
        if not start_edge:
            weights[:feather] = torch.minimum(weights[:feather], rise)
        if not end_edge:
            weights[-feather:] = torch.minimum(weights[-feather:], rise.flip(0))
    return weights


@torch.no_grad()
def upscale_tensor(
    model: Model,
    image: torch.Tensor,
    *,
    tile: int,
    overlap: int,
    interrupted: Callable[[], bool] = lambda: False,
    desc: str = "Tiled upscale",
) -> torch.Tensor:
    """`model(image)` for a (1, C, H, W) tensor, whole when `tile` <= 0 or the picture fits one tile,
    else tile by tile with blended overlaps. The output scale is read from the first tile's result."""
    _, _, height, width = image.shape
    if tile <= 0 or (tile >= height and tile >= width):
        return model(image)
    overlap = max(0, min(overlap, tile // 2))
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    result: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    scale = 1
    with tqdm(total=len(ys) * len(xs), desc=desc, unit="tile") as progress:
        for y in ys:
            for x in xs:
                if interrupted():
                    break
                out = model(image[:, :, y : y + th, x : x + tw])
                if result is None:
                    scale = out.shape[-1] // tw
                    result = image.new_zeros(
                        (1, out.shape[1], height * scale, width * scale), dtype=torch.float32
                    )
                    weights = torch.zeros((1, 1, height * scale, width * scale), device=image.device)
                assert weights is not None
                feather = overlap * scale
                wy = _ramp(th * scale, feather, y == 0, y + th >= height)
                wx = _ramp(tw * scale, feather, x == 0, x + tw >= width)
                w = (wy[:, None] * wx[None, :]).to(image.device)[None, None]
                region = (..., slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale))
                result[region] += out.float() * w
                weights[region] += w
                progress.update(1)
    if result is None or weights is None:  # interrupted before the first tile
        return image
    missing = weights == 0
    if missing.any():  # interrupted: the tiles not run show the input, plainly resized
        plain = F.interpolate(image.float(), size=result.shape[-2:], mode="bicubic", align_corners=False)
        result = torch.where(missing, plain, result)
        weights = torch.where(missing, torch.ones_like(weights), weights)
    return (result / weights).to(image.dtype)


def upscale_image(
    model: Model,
    image: Image.Image,
    *,
    device: torch.device,
    dtype: torch.dtype,
    tile: int,
    overlap: int,
    interrupted: Callable[[], bool] = lambda: False,
    desc: str = "Tiled upscale",
) -> Image.Image:
    """One pass of an upscaling model over a PIL picture (RGB out)."""
    tensor = image_to_tensor(image, device, dtype)
    out = upscale_tensor(model, tensor, tile=tile, overlap=overlap, interrupted=interrupted, desc=desc)
    return tensor_to_image(out)
