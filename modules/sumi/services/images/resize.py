"""Resizing and flattening images as A1111 does (`images.resize_image`, `images.flatten`)."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

LANCZOS = Image.Resampling.LANCZOS
# (image, width, height) -> image at that size: Lanczos, or an upscaler where the picture must grow
Resizer = Callable[[Image.Image, int, int], Image.Image]


def lanczos(im: Image.Image, width: int, height: int) -> Image.Image:
    return im.resize((width, height), LANCZOS)


def flatten(img: Image.Image, bgcolor: str) -> Image.Image:
    """An RGB image with transparent parts filled with `bgcolor` (A1111)."""
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, bgcolor)
        background.paste(img, mask=img)
        img = background
    return img.convert("RGB")


def resize_image(
    resize_mode: int,
    im: Image.Image,
    width: int,
    height: int,
    upscaler_name: str | None = None,
    *,
    resizer: Resizer = lanczos,
) -> Image.Image:
    """A1111's resize modes: 0 (and 3) stretch to the size, 1 crop to fill it, 2 fit inside it and fill
    the bars by stretching the image's edges. The picture is scaled with `resizer` (A1111: the named
    upscaler, see `UpscalerRegistry.resizer`); `upscaler_name` is for A1111's signature: the caller
    picks the resizer from it."""
    if resize_mode not in (1, 2):
        return resizer(im, width, height)
    ratio, src_ratio = width / height, im.width / im.height
    crop = resize_mode == 1
    if (ratio > src_ratio) == crop:
        src_w, src_h = width, im.height * width // im.width
    else:
        src_w, src_h = im.width * height // im.height, height
    resized = resizer(im, src_w, src_h)
    res = Image.new("RGB", (width, height))
    left, top = width // 2 - src_w // 2, height // 2 - src_h // 2
    res.paste(resized, box=(left, top))
    if not crop and top > 0:  # bars above and below: stretch the first and last rows
        res.paste(resized.resize((width, top), box=(0, 0, width, 0)), box=(0, 0))
        res.paste(
            resized.resize((width, height - top - src_h), box=(0, src_h, width, src_h)), box=(0, top + src_h)
        )
    elif not crop and left > 0:  # bars left and right: stretch the first and last columns
        res.paste(resized.resize((left, height), box=(0, 0, 0, height)), box=(0, 0))
        res.paste(
            resized.resize((width - left - src_w, height), box=(src_w, 0, src_w, height)),
            box=(left + src_w, 0),
        )
    return res
