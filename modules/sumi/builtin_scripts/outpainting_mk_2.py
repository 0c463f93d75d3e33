"""Outpainting mk2 (A1111's built-in img2img script): grow the picture on the chosen sides.

One side at a time (left, right, up, down), the picture is put on a larger canvas whose new part is
filled with noise shaped like the picture (its spectrum, with the colours of the picture's own histogram:
the "noise-matched fill", learned from g-diffuser as A1111 did), and an img2img job with "Masked content:
original" redraws the strip next to that side, no wider than the job's width or height. The mask keeps
the old picture (less `Mask blur` pixels at the seam, blurred by 4x that); the final size is the old
one plus `Pixels to expand` on each chosen side, rounded up to a multiple of 64 as A1111 does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

import modules.scripts as scripts
from modules import shared
from modules.sumi.builtin_scripts.support.img2img import (
    DIRECTIONS,
    assembled,
    direction_choice,
    directions,
    expansion,
    init_image,
    keep_box,
    mask_blur_everywhere,
    number,
    outpaint_sliders,
    slider,
    whole,
)
from modules.sumi.services.images.colors import match_histograms
from modules.sumi.services.jobs.processing import Processed
from modules.sumi.services.jobs.script_jobs import fix_seed, generated, job_copy, validate_jobs

TITLE = "Outpainting mk2"
INFO = (
    '<p style="margin-bottom:0.75em">Recommended settings: Sampling Steps: 80-100, Sampler: Euler a, '
    "Denoising strength: 0.8</p>"
)
ORIGINAL = 1  # A1111's "Masked content: original": the noise-matched fill is the starting point


# --- the noise-matched fill --------------------------------------------------------------------------


def _fft(data: np.ndarray) -> np.ndarray:
    """Orthonormal 2-D FFT over the first two axes, centred before and after."""
    axes = (0, 1)
    return np.fft.ifftshift(np.fft.fft2(np.fft.fftshift(data, axes=axes), axes=axes, norm="ortho"), axes=axes)


def _ifft(data: np.ndarray) -> np.ndarray:
    axes = (0, 1)
    return np.fft.ifftshift(
        np.fft.ifft2(np.fft.fftshift(data, axes=axes), axes=axes, norm="ortho"), axes=axes
    )


def _falloff_window(rows: int, cols: int) -> np.ndarray:
    """1 / ((x² + 1)(y² + 1)) over [-1, 1) scaled by each side over the shorter one."""
    short = min(rows, cols)
    y = (np.arange(rows) / rows * 2.0 - 1.0) * (rows / short)
    x = (np.arange(cols) / cols * 2.0 - 1.0) * (cols / short)
    return 1.0 / np.outer(y**2 + 1.0, x**2 + 1.0)


def _safe_divide(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=np.asarray(b) != 0)


def matched_noise(
    image: np.ndarray, mask: np.ndarray, noise_q: float = 1.0, color_variation: float = 0.05
) -> np.ndarray:
    """`image` (H, W, 3) in [0, 1] with the part where `mask` (H, W) is 1 replaced by noise whose
    spectrum follows the rest of the image (`noise_q`: fall-off exponent, lower keeps more detail), whose
    colours have the image's histogram, and whose colourfulness is `color_variation` (0 = grey noise).
    The noise comes from a fixed generator, so the fill depends only on the picture."""
    image = image.astype(np.float64)
    fill = mask.astype(np.float64)[..., None]
    windowed = image * (1.0 - fill)
    windowed = _safe_divide(windowed, float(windowed.max())) + image.mean() * fill
    spectrum = _fft(windowed)
    magnitude = np.abs(spectrum)
    phase = np.divide(spectrum, magnitude, out=np.ones_like(spectrum), where=magnitude != 0)

    rng = np.random.default_rng(0)
    noise = rng.random(image.shape)
    grey = noise.mean(axis=2, keepdims=True)
    noise = noise * color_variation + (1.0 - color_variation) * grey
    noise = np.real(_ifft(_fft(noise) * _falloff_window(*image.shape[:2])[..., None]))
    shaped = np.real(_ifft(np.abs(_fft(noise)) ** 2 * magnitude**noise_q * phase))
    shaped -= shaped.min()
    shaped = _safe_divide(shaped, float(shaped.max()))

    to_fill, reference = fill[..., 0] > 1e-6, fill[..., 0] < 1e-3
    if to_fill.any() and reference.any():
        shaped[to_fill] = match_histograms(shaped[to_fill], image[reference])
    return np.clip(image * (1.0 - fill) + shaped * fill, 0.0, 1.0)


def noise_filled(
    canvas: Image.Image, mask: Image.Image, noise_q: float, color_variation: float
) -> Image.Image:
    pixels = np.asarray(canvas.convert("RGB"), dtype=np.float64) / 255.0
    weights = np.asarray(mask.convert("L"), dtype=np.float64) / 255.0
    filled = matched_noise(pixels, weights, noise_q, color_variation)
    return Image.fromarray(np.clip(filled * 255.0, 0, 255).astype(np.uint8), "RGB")


# --- one side -----------------------------------------------------------------------------------------


class Step(NamedTuple):
    """One side's expansion of one picture: the noise-filled canvas and where the job's strip sits."""

    canvas: Image.Image  # noise-filled, rounded up to a multiple of 64
    size: tuple[int, int]  # the grown picture (before rounding)
    strip: tuple[int, int, int, int]  # the box of the canvas the img2img job redraws
    mask: Image.Image  # the job's mask over the strip (white: redraw)
    latent_mask: Image.Image


def _ceil64(value: int) -> int:
    return math.ceil(value / 64) * 64


def plan_step(
    image: Image.Image, side: str, pixels: int, blur: int, limit: tuple[int, int], noise: tuple[float, float]
) -> Step:
    """The canvas, strip and masks for growing `image` by `pixels` on `side`; the strip is no larger than
    `limit` (the job's width and height) and a multiple of 8 on the grown axis."""
    horizontal = side in ("left", "right")
    grow_w, grow_h = (pixels, 0) if horizontal else (0, pixels)
    size = (image.width + grow_w, image.height + grow_h)
    canvas_w, canvas_h = _ceil64(size[0]), _ceil64(size[1])
    canvas = Image.new("RGB", (canvas_w, canvas_h))
    canvas.paste(image, (grow_w if side == "left" else 0, grow_h if side == "up" else 0))

    def kept(inset: int, width: int, height: int) -> tuple[int, int, int, int]:
        return (
            pixels + inset if side == "left" else 0,
            pixels + inset if side == "up" else 0,
            width - pixels - inset if side == "right" else size[0],
            height - pixels - inset if side == "down" else size[1],
        )

    mask = keep_box(Image.new("L", (canvas_w, canvas_h), 255), kept(blur, canvas_w, canvas_h))
    filled = noise_filled(canvas, mask, *noise)

    strip_w = min(limit[0], size[0] // 8 * 8) if horizontal else canvas_w
    strip_h = canvas_h if horizontal else min(limit[1], size[1] // 8 * 8)
    x0 = 0 if side == "left" else canvas_w - strip_w
    y0 = 0 if side == "up" else canvas_h - strip_h
    strip = (x0, y0, x0 + strip_w, y0 + strip_h)
    latent = keep_box(Image.new("L", (strip_w, strip_h), 255), kept(blur * 2, strip_w, strip_h))
    return Step(filled, size, strip, mask.crop(strip), latent)


def finish_step(step: Step, redrawn: Image.Image) -> Image.Image:
    """The grown picture: the job's strip put back on the noise-filled canvas, cut to size."""
    canvas = step.canvas.copy()
    canvas.paste(redrawn.convert("RGB"), step.strip[:2])
    return canvas.crop((0, 0, *step.size))


# --- the script ---------------------------------------------------------------------------------------


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any] | None:
        if not is_img2img:
            return None
        import gradio as gr

        info = gr.HTML(INFO)
        pixels, mask_blur = outpaint_sliders(self, mask_blur=8)
        direction = direction_choice(self)
        noise_q = slider(self, "noise_q", "Fall-off exponent (lower=higher detail)", (0.0, 4.0, 0.01), 1.0)
        color_variation = slider(self, "color_variation", "Color variation", (0.0, 1.0, 0.01), 0.05)
        return [info, pixels, mask_blur, direction, noise_q, color_variation]

    def run(
        self,
        p: Any,
        _info: Any = None,
        pixels: Any = 128,
        mask_blur: Any = 8,
        direction: Any = DIRECTIONS,
        noise_q: Any = 1.0,
        color_variation: Any = 0.05,
    ) -> Processed:
        amount = whole(pixels, "Pixels to expand", TITLE, 1, 2048)
        blur = whole(mask_blur, "Mask blur", TITLE, 0, 256)
        noise = (
            number(noise_q, "Fall-off exponent", TITLE, 0.0, 4.0),
            number(color_variation, "Color variation", TITLE, 0.0, 1.0),
        )
        chosen = directions(direction, TITLE)
        original = init_image(p, TITLE)
        app = shared.app()
        fix_seed(p)
        sides = expansion(original.width, original.height, amount, chosen)
        base = job_copy(
            p,
            **mask_blur_everywhere(blur * 4),
            inpaint_full_res=False,
            inpainting_fill=ORIGINAL,
            do_not_save_samples=True,
            do_not_save_grid=True,
            n_iter=1,
        )
        limit = (int(p.width), int(p.height))
        validate_jobs(app, [job_copy(base, init_images=[original])])
        run = _Run()
        size = max(1, int(p.batch_size))
        for batch in range(max(1, int(p.n_iter))):
            pictures = [original] * size
            for side, grow in zip(DIRECTIONS, sides, strict=True):
                if grow and not app.state.interrupted:
                    job = job_copy(base, seed=int(p.seed) + batch * size, batch_size=size)
                    step = _Step(side, grow, blur, limit, noise)
                    pictures = _grow(app, job, pictures, step, run)
            if app.state.interrupted:
                break
            run.pictures += pictures
        return self._result(app, p, run)

    def _result(self, app: Any, p: Any, run: _Run) -> Processed:
        return assembled(app, p, run.pictures, run.first, run.warnings, grid_when_several=True)


@dataclass
class _Run:
    """What the jobs of one script run gave: the grown pictures, the first job's result, warnings."""

    pictures: list[Image.Image] = field(default_factory=list)
    first: Processed | None = None
    warnings: list[str] = field(default_factory=list)


class _Step(NamedTuple):
    side: str
    pixels: int
    blur: int
    limit: tuple[int, int]
    noise: tuple[float, float]


def _grow(app: Any, job: Any, pictures: list[Image.Image], step: _Step, run: _Run) -> list[Image.Image]:
    """Grow every picture of the batch on one side with one img2img job."""
    plans = [plan_step(picture, *step) for picture in pictures]
    first = plans[0]
    job.init_images = [plan.canvas.crop(plan.strip) for plan in plans]
    job.width, job.height = first.strip[2] - first.strip[0], first.strip[3] - first.strip[1]
    job.image_mask, job.mask, job.latent_mask = first.mask, first.mask, first.latent_mask
    processed = app.runner.process(job)
    redrawn, infotexts = generated(processed)
    run.warnings += [w for w in processed.warnings if w not in run.warnings]
    if run.first is None and infotexts:
        run.first = processed
    if len(redrawn) < len(plans):  # interrupted: the noise-filled canvases stand in
        redrawn = redrawn + [plan.canvas.crop(plan.strip) for plan in plans[len(redrawn) :]]
    return [finish_step(plan, image) for plan, image in zip(plans, redrawn, strict=False)]
