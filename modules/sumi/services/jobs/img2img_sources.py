"""The init image and mask of each of A1111's img2img modes (img2img, Sketch, Inpaint, Inpaint sketch,
Inpaint upload, Batch) from the web UI's inputs, as A1111 1.10's `modules.img2img.img2img` picks them."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageOps

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs.img2img import changed_pixels, sketch_blend
from modules.sumi.services.jobs.processing import create_binary_mask


def fix_image(value: Any) -> Image.Image | None:
    """A1111's `images.fix_image`: the picture turned by its EXIF orientation (None stays None)."""
    return ImageOps.exif_transpose(value) if isinstance(value, Image.Image) else None


def source_images(
    mode: int,
    init_img: Any,
    sketch: Any,
    init_img_with_mask: Any,
    inpaint_color_sketch: Any,
    inpaint_color_sketch_orig: Any,
    init_img_inpaint: Any,
    init_mask_inpaint: Any,
    mask_blur: int,
    mask_alpha: float,
) -> tuple[Image.Image | None, Image.Image | None]:
    """(init image, mask) for A1111's `mode`, as A1111 1.10 picks them: img2img and Sketch have no mask;
    Inpaint takes the canvas dict's `image` and the binary of its `mask`; Inpaint sketch masks the pixels
    the drawing changed (fainter by `mask_alpha`) and blends the drawing in through the blurred mask;
    Inpaint upload takes both pictures; Batch has neither."""
    if mode == 0:
        return fix_image(init_img), None
    if mode == 1:
        return fix_image(sketch), None
    if mode == 2:
        canvas = init_img_with_mask if isinstance(init_img_with_mask, dict) else {}
        image, mask = canvas.get("image"), canvas.get("mask")
        if mask is None:
            raise InvalidRequestError("Inpaint: the canvas has no mask (a dict with 'image' and 'mask')")
        return fix_image(image), fix_image(create_binary_mask(mask))
    if mode == 3:
        drawn = fix_image(inpaint_color_sketch)
        if drawn is None:
            return None, None
        original = fix_image(inpaint_color_sketch_orig) or drawn
        mask = changed_pixels(drawn, original)
        return sketch_blend(original, drawn, mask, int(mask_blur), float(mask_alpha or 0))
    if mode == 4:
        return fix_image(init_img_inpaint), fix_image(init_mask_inpaint)
    return None, None
