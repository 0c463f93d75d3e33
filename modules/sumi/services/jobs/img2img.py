"""img2img and inpainting jobs, as A1111's `StableDiffusionProcessingImg2Img.init` prepares them.

Per job (`prepare`, what `p.init` runs): the mask is made binary (`mask_round`), inverted, blurred (x and
y apart) and either resized with the image (`resize_mode`) or, for "only masked" (`inpaint_full_res`), cut
around the mask with `inpaint_full_res_padding`, grown to the processing aspect ratio and scaled to the
processing size (`paste_to` says where the result goes back). Each init image is flattened on the
background colour, resized (Just resize, Crop and resize, Resize and fill; Just resize (latent upscale)
resizes the latents instead), its unmasked part kept as an overlay, its masked part "fill"ed when the
masked content is not "original", and encoded with the VAE. The latent mask, the 9-channel inpainting
(or instruct-pix2pix) conditioning and the engine's `InitLatents` follow.

After decoding (`composite`): the result is pasted back into the full picture ("only masked") and the
original is laid over everything outside the mask (setting `overlay_inpaint`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from modules.sumi.engine import img2img as engine_img2img
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.model import SDModel
from modules.sumi.services.images import masking
from modules.sumi.services.images.colors import apply_color_correction, setup_color_correction
from modules.sumi.services.images.resize import Resizer, flatten, lanczos, resize_image
from modules.sumi.services.jobs import vae_tiling
from modules.sumi.services.jobs.processing import (
    StableDiffusionProcessing,
    StableDiffusionProcessingImg2Img,
    apply_overlay,
    create_binary_mask,
)
from modules.sumi.services.scripts.runner import PostProcessMaskOverlayArgs
from modules.sumi.util.b64images import MAX_PIXELS

# A1111's "Masked content" choices, by `inpainting_fill`; "Resize mode" choices, by `resize_mode`.
IMAGE_CFG_UNUSED = (
    "image_cfg_scale={value!r} was ignored: only instruct-pix2pix models use an image CFG scale (as in A1111)"
)
MASKED_CONTENT = ["fill", "original", "latent noise", "latent nothing"]
RESIZE_MODES = ["Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)"]
LATENT_UPSCALE = 3
MAX_MASK_BLUR = 512  # a Gaussian kernel of ~2.5k pixels; more only costs time


def is_img2img(p: Any) -> TypeGuard[StableDiffusionProcessingImg2Img]:
    return isinstance(p, StableDiffusionProcessingImg2Img)


# -- checks ------------------------------------------------------------------------------------------
def validate(p: StableDiffusionProcessingImg2Img, max_side: int) -> None:
    """InvalidRequestError for what cannot run, before the job is queued: no init image, something
    that is not an image, a strength outside [0, 1], modes out of range, more init images than the batch
    holds, an image over 64 megapixels, or over `max_side` squared pixels for "Just resize (latent
    upscale)", which encodes the image at its own size."""
    images = list(p.init_images or [])
    if not images or any(i is None for i in images):
        raise InvalidRequestError("img2img needs an init image (init_images is empty)")
    for image in [*images, p.image_mask, p.latent_mask]:
        if image is not None and not isinstance(image, Image.Image):
            raise InvalidRequestError(f"init images and masks must be images, got {type(image).__name__}")
    strength = p.denoising_strength
    if strength is None or not isinstance(strength, (int, float)) or not 0.0 <= float(strength) <= 1.0:
        raise InvalidRequestError(f"denoising_strength must be from 0 to 1, got {strength!r}")
    _check_range("resize_mode", p.resize_mode, 0, len(RESIZE_MODES) - 1)
    _check_range("inpainting_fill", p.inpainting_fill, 0, len(MASKED_CONTENT) - 1)
    _check_range("inpainting_mask_invert", int(p.inpainting_mask_invert or 0), 0, 1)
    _check_range("mask_blur_x", p.mask_blur_x, 0, MAX_MASK_BLUR)
    _check_range("mask_blur_y", p.mask_blur_y, 0, MAX_MASK_BLUR)
    _check_range("inpaint_full_res_padding", p.inpaint_full_res_padding, 0, 16384)
    if len(images) > 1 and len(images) > p.batch_size:
        raise InvalidRequestError(
            f"bad number of images passed: {len(images)}; expecting {p.batch_size} or less (the batch size)"
        )
    limit = max_side * max_side if p.resize_mode == LATENT_UPSCALE else MAX_PIXELS
    for image in [*images, p.image_mask]:
        if image is not None and image.width * image.height > limit:
            raise InvalidRequestError(
                f"an init image or mask of {image.width}x{image.height} is over the limit of {limit} pixels"
                + (" (max_image_size squared, for the latent upscale mode)" if limit != MAX_PIXELS else "")
            )


def _check_range(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(f"{name} must be an integer from {low} to {high}, got {value!r}")


# -- preparation (A1111's init) ------------------------------------------------------------------------
@dataclass
class Img2ImgContext:
    """What `p.init` needs from the running job: the engine model (None: pixels only), settings, and
    what saves an init image (opt `save_init_img`)."""

    model: SDModel | None
    options: Any
    save_init_image: Callable[[StableDiffusionProcessingImg2Img, Image.Image], None] | None = None
    resizer: Resizer = lanczos  # A1111: opt `upscaler_for_img2img` when the init image must grow

    def init(self, p: StableDiffusionProcessingImg2Img, all_seeds: list[int]) -> None:
        prepare(p, self.model, self.options, self.save_init_image, self.resizer)


def prepare(
    p: StableDiffusionProcessingImg2Img,
    model: SDModel | None,
    options: Any,
    save_init_image: Callable[[StableDiffusionProcessingImg2Img, Image.Image], None] | None = None,
    resizer: Resizer = lanczos,
) -> None:
    """A1111's `init`: masks, overlays, the pixels to encode, and (with a model) `init_latent`, the latent
    masks `mask`/`nmask` and `image_conditioning`. Writes A1111's infotext keys. With opt
    `img2img_color_correction` (and no `p.color_corrections` set yet, as Loopback sets them), each
    prepared init image becomes a colour-correction target; with `save_init_img`, each init image is
    given to `save_init_image` first."""
    extra = p.extra_generation_params
    extra["Denoising strength"] = p.denoising_strength
    # a job object run again (Loopback, an extension's second pass) starts from its inputs, as in A1111:
    # `image_mask` stays the mask given, the rest is made anew
    p.mask = p.nmask = p.init_latent = p.image_conditioning = p.paste_to = None
    if p.initial_noise_multiplier is None:
        p.initial_noise_multiplier = float(getattr(options, "initial_noise_multiplier", 1.0))
    image_mask, crop_region = _prepare_mask(p)
    latent_mask = p.latent_mask if p.latent_mask is not None else image_mask
    if save_init_image is not None and getattr(options, "save_init_img", False):
        for img in p.init_images:
            save_init_image(p, img)
    add_corrections = (
        bool(getattr(options, "img2img_color_correction", False)) and p.color_corrections is None
    )
    if add_corrections:
        p.color_corrections = []
    background = str(options.img2img_background_color)
    pixels = _prepare_images(p, image_mask, latent_mask, crop_region, background, add_corrections, resizer)
    if model is None:
        return
    batch = torch.from_numpy(pixels).to(device=model.device, dtype=model.vae.dtype) * 2 - 1
    tiling, tiled = vae_tiling.policy(options, p), []
    latents = engine_img2img.encode(model, batch, tiling, tiled)
    vae_tiling.record(p, tiled)
    if p.resize_mode == LATENT_UPSCALE:
        size = (p.height // model.vae_scale, p.width // model.vae_scale)
        latents = torch.nn.functional.interpolate(latents, size=size, mode="bilinear")
    p.init_latent = latents
    if image_mask is not None and latent_mask is not None:
        nmask = _latent_mask(latent_mask, latents, p.mask_round)
        p.nmask, p.mask = nmask, 1.0 - nmask
        if p.inpainting_fill in (2, 3):
            extra["Masked content"] = MASKED_CONTENT[p.inpainting_fill]
    p.image_conditioning = _image_conditioning(p, model, batch, image_mask, options)


def _prepare_mask(p: StableDiffusionProcessingImg2Img) -> tuple[Image.Image | None, tuple | None]:
    """The processing-size mask (white = redraw), `mask_for_overlay`, and the "only masked" crop."""
    if p.image_mask is None:
        return None, None
    extra = p.extra_generation_params
    mask = create_binary_mask(p.image_mask, round=p.mask_round)
    if p.init_images and mask.size != p.init_images[0].size:  # a mask of another size fits the image
        mask = mask.resize(p.init_images[0].size, Image.Resampling.LANCZOS)
    if p.inpainting_mask_invert:
        mask = ImageOps.invert(mask)
        extra["Mask mode"] = "Inpaint not masked"
    mask = blur_mask(mask, p.mask_blur_x, p.mask_blur_y)
    if p.mask_blur_x > 0 or p.mask_blur_y > 0:
        extra["Mask blur"] = p.mask_blur
    p.overlay_images = []
    if not p.inpaint_full_res:
        mask = resize_image(p.resize_mode, mask, p.width, p.height)
        doubled = np.clip(np.asarray(mask, dtype=np.float32) * 2, 0, 255).astype(np.uint8)
        p.mask_for_overlay = Image.fromarray(doubled)
        return mask, None
    p.mask_for_overlay = mask
    region = masking.get_crop_region_v2(mask, p.inpaint_full_res_padding)
    if region is None:  # A1111: an empty mask turns "only masked" into plain img2img
        p.mask_for_overlay, p.inpaint_full_res = None, False
        p.overlay_images = None
        p.warnings.append(
            'Unable to perform "Inpaint Only mask" because mask is blank, switch to img2img mode.'
        )
        return None, None
    region = masking.expand_crop_region(region, p.width, p.height, mask.width, mask.height)
    x1, y1, x2, y2 = region
    p.paste_to = (x1, y1, x2 - x1, y2 - y1)
    extra["Inpaint area"] = "Only masked"
    extra["Masked area padding"] = p.inpaint_full_res_padding
    return resize_image(2, mask.crop(region), p.width, p.height), region


def controlnet_mask(p: StableDiffusionProcessingImg2Img) -> np.ndarray:
    """The job's mask as sd-webui-controlnet gives it to an inpaint unit: gray, inverted for "Inpaint not
    masked", blurred by the job's mask blur, at the init image's size (HxW uint8, white = redraw)."""
    mask = p.image_mask.convert("L")
    if p.init_images and mask.size != p.init_images[0].size:
        mask = mask.resize(p.init_images[0].size, Image.Resampling.LANCZOS)
    if p.inpainting_mask_invert:
        mask = ImageOps.invert(mask)
    return np.ascontiguousarray(np.asarray(blur_mask(mask, p.mask_blur_x, p.mask_blur_y)))


def controlnet_crop(p: StableDiffusionProcessingImg2Img, image: np.ndarray, resize_mode: int) -> np.ndarray:
    """A ControlNet unit's image (or mask) for an "only masked" job, as sd-webui-controlnet makes it:
    brought to the init image's size by the unit's resize mode (A1111's 0/1/2), cropped to the job's
    crop region, then fitted to the job's size by "Resize and fill". Unchanged for other jobs."""
    if not (p.inpaint_full_res and p.image_mask is not None):
        return image
    mask = Image.fromarray(controlnet_mask(p))
    region = masking.get_crop_region_v2(mask, p.inpaint_full_res_padding)
    if region is None:
        return image
    region = masking.expand_crop_region(region, p.width, p.height, mask.width, mask.height)
    channels = [image] if image.ndim == 2 else [image[:, :, c] for c in range(image.shape[2])]
    out = []
    for channel in channels:
        whole = resize_image(resize_mode, Image.fromarray(channel), mask.width, mask.height).convert("L")
        fitted = np.asarray(resize_image(2, whole.crop(region), p.width, p.height))
        out.append(fitted[:, :, 0] if fitted.ndim == 3 else fitted)  # resize_image may give RGB
    return np.ascontiguousarray(out[0] if image.ndim == 2 else np.stack(out, axis=2))


def blur_mask(mask: Image.Image, blur_x: int, blur_y: int) -> Image.Image:
    """A1111's mask blur: a Gaussian of sigma `blur_x` across, then `blur_y` down (kernel 2*int(2.5*s+0.5)+1)."""
    import cv2

    for sigma, horizontal in ((blur_x, True), (blur_y, False)):
        if sigma > 0:
            size = 2 * int(2.5 * sigma + 0.5) + 1
            kernel = (size, 1) if horizontal else (1, size)
            mask = Image.fromarray(cv2.GaussianBlur(np.asarray(mask), kernel, sigma))
    return mask


def _prepare_images(
    p: StableDiffusionProcessingImg2Img,
    image_mask: Image.Image | None,
    latent_mask: Image.Image | None,
    crop_region: tuple | None,
    background: str,
    add_corrections: bool = False,
    resizer: Resizer = lanczos,
) -> np.ndarray:
    """The batch's init images as floats in [0, 1] (B, 3, H, W); fills `overlay_images` (and
    `color_corrections` with `add_corrections`)."""
    arrays = []
    overlays: list[Image.Image] = []
    for img in p.init_images:
        image = flatten(img, background)
        if crop_region is None and p.resize_mode != LATENT_UPSCALE:
            image = resize_image(p.resize_mode, image, p.width, p.height, resizer=resizer)
        if image_mask is not None:
            if p.mask_for_overlay.size != image.size:
                p.mask_for_overlay = resize_image(
                    p.resize_mode, p.mask_for_overlay, image.width, image.height
                )
            kept = Image.new("RGBa", image.size)
            kept.paste(
                image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(p.mask_for_overlay.convert("L"))
            )
            overlays.append(kept.convert("RGBA"))
        if crop_region is not None:
            image = resize_image(2, image.crop(crop_region), p.width, p.height, resizer=resizer)
        if image_mask is not None and latent_mask is not None and p.inpainting_fill != 1:
            image = masking.fill(image, _sized(latent_mask, image.size))
            if p.inpainting_fill == 0:
                p.extra_generation_params["Masked content"] = "fill"
        if add_corrections and p.color_corrections is not None:
            p.color_corrections.append(setup_color_correction(image))
        arrays.append(np.moveaxis(np.asarray(image, dtype=np.float32) / 255.0, 2, 0))
    if image_mask is not None:
        p.overlay_images = overlays
    if len(arrays) == 1:  # one init image: the whole batch starts from it
        if p.overlay_images is not None:
            p.overlay_images = p.overlay_images * p.batch_size
        if p.color_corrections is not None and len(p.color_corrections) == 1:
            p.color_corrections = p.color_corrections * p.batch_size
        return np.repeat(arrays[0][None], p.batch_size, axis=0)
    p.batch_size = len(arrays)  # A1111: several init images make a batch of that many
    return np.stack(arrays)


def _sized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` at `size` (a mask made at the job's size meets an image kept at its own size only in the
    latent upscale mode)."""
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _latent_mask(mask: Image.Image, latents: torch.Tensor, round_mask: bool) -> torch.Tensor:
    """The mask at latent size, (C, h, w), 1 = redraw (A1111's `nmask`), rounded unless soft."""
    h, w = latents.shape[-2:]
    small = np.asarray(mask.convert("L").resize((w, h)), dtype=np.float32) / 255.0
    if round_mask:
        small = np.around(small)
    tensor = torch.from_numpy(small)[None].expand(latents.shape[1], h, w)
    return tensor.to(device=latents.device, dtype=latents.dtype)


def _image_conditioning(
    p: StableDiffusionProcessingImg2Img,
    model: SDModel,
    pixels: torch.Tensor,
    image_mask: Image.Image | None,
    options: Any,
) -> torch.Tensor | None:
    """9-channel inpainting models get the mask and the masked image; instruct-pix2pix the image."""
    kind = engine_img2img.needs_image_conditioning(model)
    if kind != "pix2pix":
        if p.image_cfg_scale is not None and p.is_api:  # the UI hides the slider for these models
            p.warnings.append(IMAGE_CFG_UNUSED.format(value=p.image_cfg_scale))
        p.image_cfg_scale = None  # A1111: only instruct-pix2pix models use it
    if kind == "pix2pix":
        return engine_img2img.pix2pix_conditioning(model, pixels, vae_tiling.policy(options, p))
    if kind != "inpaint":
        return None
    mask = None
    if image_mask is not None:
        size = (pixels.shape[-1], pixels.shape[-2])  # the latent upscale mode encodes at the image's size
        mask_pixels = np.asarray(_sized(image_mask.convert("L"), size), dtype=np.float32) / 255.0
        mask = torch.from_numpy(mask_pixels)[None, None]
    weight = float(getattr(p, "inpainting_mask_weight", options.inpainting_mask_weight))
    p.is_using_inpainting_conditioning = True
    p.extra_generation_params["Conditional mask weight"] = weight
    return engine_img2img.inpaint_conditioning(
        model, pixels, mask, mask_weight=weight, round_mask=p.mask_round, tiling=vae_tiling.policy(options, p)
    )


def init_latents(p: StableDiffusionProcessingImg2Img, options: Any) -> engine_img2img.InitLatents:
    """The engine's start for every batch of the job (the same images; the noise follows the seeds)."""
    if p.init_latent is None:
        raise RuntimeError("the img2img job was not prepared (p.init) before its first batch")
    multiplier = float(p.initial_noise_multiplier if p.initial_noise_multiplier is not None else 1.0)
    if multiplier != 1.0:
        p.extra_generation_params["Noise multiplier"] = multiplier
    fill = MASKED_CONTENT[p.inpainting_fill] if p.nmask is not None else "original"
    return engine_img2img.InitLatents(
        latents=p.init_latent,
        strength=float(p.denoising_strength or 0.0),
        mask=p.nmask[:1][None] if p.nmask is not None else None,
        fill="original" if fill == "fill" else fill,
        noise_multiplier=multiplier,
        fix_steps=bool(options.img2img_fix_steps),
        image_conditioning=p.image_conditioning,
        image_cfg_scale=p.image_cfg_scale,
        on_blend=_script_mask_blend(p),
    )


class BlendingDenoiser:
    """What `MaskBlendArgs.denoiser` is during sampling (A1111: its CFG denoiser): the job and step's
    noise level; None at the final blend."""

    def __init__(self, p: StableDiffusionProcessing, sigma: float) -> None:
        self.p = p
        self.sigma = sigma


def _script_mask_blend(p: StableDiffusionProcessingImg2Img):
    """The engine's `on_blend` calling the scripts' `on_mask_blend` (A1111's MaskBlendArgs), when an
    always-on script has one; None (no cost) otherwise."""
    from modules.sumi.services.scripts.base import Script
    from modules.sumi.services.scripts.runner import MaskBlendArgs

    runner = p.scripts
    scripts = getattr(runner, "alwayson_scripts", None) or []
    if not any(type(s).on_mask_blend is not Script.on_mask_blend for s in scripts):
        return None

    def on_blend(current: torch.Tensor, blended: torch.Tensor, sigma: float | None) -> torch.Tensor:
        nmask = p.nmask if p.nmask is not None else torch.ones_like(current)
        nmask = nmask.to(current)
        init = p.init_latent.to(current) if p.init_latent is not None else None
        if sigma is None:
            args = MaskBlendArgs(current, nmask, init, 1.0 - nmask, blended)
        else:
            sigmas = torch.full((current.shape[0],), float(sigma), device=current.device)
            args = MaskBlendArgs(
                current, nmask, init, 1.0 - nmask, blended, BlendingDenoiser(p, sigma), sigmas
            )
        runner.on_mask_blend(p, args)
        return args.blended_latent

    return on_blend


# -- after decoding --------------------------------------------------------------------------------------
@dataclass
class Composited:
    """What the composite of one image leaves besides the image: the mask for the overlay (after the
    scripts' `postprocess_maskoverlay`), the image before the overlay (pasted back), and the image before
    colour correction (None when none was applied)."""

    mask_for_overlay: Image.Image | None
    denoised: Image.Image
    before_color_correction: Image.Image | None = None


def composite(
    p: StableDiffusionProcessing,
    index: int,
    image: Image.Image,
    overlay_enabled: bool,
    record: dict[int, Composited] | None = None,
) -> Image.Image:
    """The decoded `image` pasted back into place ("only masked") with the original laid over it
    outside the mask; the scripts' `postprocess_maskoverlay` may swap the mask and overlay first, then
    the colour correction (`p.color_corrections`) is applied (A1111's order). With `overlay_inpaint` off
    there is no overlay, and as in A1111 an "only masked" result stays the crop. `record[index]` gets
    what A1111 saves and returns besides the image (masks, the image before colour correction)."""
    overlays = p.overlay_images
    overlay = overlays[index] if overlay_enabled and overlays is not None and index < len(overlays) else None
    mask_for_overlay = getattr(p, "mask_for_overlay", None)
    if p.scripts is not None:
        args = PostProcessMaskOverlayArgs(index, mask_for_overlay, overlay)
        p.scripts.postprocess_maskoverlay(p, args)
        mask_for_overlay, overlay = args.mask_for_overlay, args.overlay_image
    if overlay is not None and p.paste_to is None and overlay.size != image.size:  # latent upscale mode
        overlay = _sized(overlay, image.size)
    before = None
    corrections = getattr(p, "color_corrections", None)
    if corrections is not None and index < len(corrections):
        before, _ = apply_overlay(image, p.paste_to, overlay)
        image = apply_color_correction(corrections[index], image)
    image, denoised = apply_overlay(image, p.paste_to, overlay)
    if record is not None:
        record[index] = Composited(mask_for_overlay, denoised, before)
    return image


def mask_composite(
    mask_for_overlay: Image.Image, denoised: Image.Image, size: tuple[int, int]
) -> Image.Image:
    """A1111's "masked composite": the result before the overlay where the mask is, transparent elsewhere."""
    mask = resize_image(2, mask_for_overlay, size[0], size[1]).convert("L")
    kept = Image.composite(denoised.convert("RGBA").convert("RGBa"), Image.new("RGBa", size), mask)
    return kept.convert("RGBA")


# -- the web UI's sources -> init image and mask (the img2img tab and A1111's `modules.img2img.img2img`) --
def sketch_blend(
    original: Image.Image, drawn: Image.Image, strokes: Image.Image, mask_blur: int, mask_alpha: float
) -> tuple[Image.Image, Image.Image]:
    """(init image, mask) of A1111's Inpaint sketch: the mask is the strokes ("L", non-zero where drawn)
    made fainter by the mask transparency (0..100), and the init image is the drawing blended into the
    original through that mask, both blurred by `mask_blur`."""
    original = original.convert("RGB")
    drawn = drawn.convert("RGB").resize(original.size)
    mask = Image.fromarray(np.where(np.asarray(strokes.convert("L")) > 0, 255, 0).astype(np.uint8))
    mask = ImageEnhance.Brightness(mask).enhance(1 - float(mask_alpha) / 100)
    blur = ImageFilter.GaussianBlur(mask_blur)
    return Image.composite(drawn.filter(blur), original, mask.filter(blur)), mask


def changed_pixels(drawn: Image.Image, original: Image.Image) -> Image.Image:
    """Where `drawn` differs from `original` in any channel ("L", 255 there): A1111's Inpaint sketch
    mask when only the two pictures are known."""
    a = np.asarray(drawn.convert("RGB"))
    b = np.asarray(original.convert("RGB").resize(drawn.size))
    return Image.fromarray(np.any(a != b, axis=-1).astype(np.uint8) * 255, "L")


def scaled_by(image: Image.Image, scale: float) -> tuple[int, int]:
    """ "Resize by": the image's size times `scale`, rounded down to multiples of 8 (at least 8)."""
    width, height = int(image.width * float(scale)), int(image.height * float(scale))
    return max(8, width - width % 8), max(8, height - height % 8)


# -- infotext -> job fields (paste) --------------------------------------------------------------------
def fields_from_infotext(params: dict[str, str]) -> dict[str, Any]:
    """The `StableDiffusionProcessingImg2Img` fields an infotext (parsed, A1111's keys) sets: what paste
    restores on the img2img tab, as the processing object's names and types."""
    fields: dict[str, Any] = {}
    readers = {
        "Denoising strength": ("denoising_strength", float),
        "Image CFG scale": ("image_cfg_scale", float),
        "Mask blur": ("mask_blur", lambda v: int(float(v))),
        "Masked area padding": ("inpaint_full_res_padding", lambda v: int(float(v))),
        "Noise multiplier": ("initial_noise_multiplier", float),
    }
    for key, (name, read) in readers.items():
        if key in params:
            try:
                fields[name] = read(params[key])
            except ValueError:
                continue
    if params.get("Masked content") in MASKED_CONTENT:
        fields["inpainting_fill"] = MASKED_CONTENT.index(params["Masked content"])
    if "Inpaint area" in params:
        fields["inpaint_full_res"] = params["Inpaint area"] == "Only masked"
    if "Mask mode" in params:
        fields["inpainting_mask_invert"] = int(params["Mask mode"] == "Inpaint not masked")
    return fields
