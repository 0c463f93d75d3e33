"""What the built-in img2img scripts (Loopback, Outpainting mk2, Poor man's outpainting, SD upscale) share:
checking the job they are given, how far each side of an outpainted picture grows, and saving the
pictures they assemble themselves into the img2img folders with A1111's names.

It sits in a package of its own, so the script loader never imports it as a script.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

from PIL import Image, ImageDraw

from modules import images
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.saving import image_grid
from modules.sumi.services.jobs.processing import Processed
from modules.sumi.services.jobs.script_jobs import Collected

log = logging.getLogger(__name__)

DIRECTIONS = ("left", "right", "up", "down")


def init_image(p: Any, title: str) -> Image.Image:
    """The first init image of an img2img job; a clear error for a job without one."""
    found = list(getattr(p, "init_images", None) or [])
    if not found or found[0] is None:
        raise InvalidRequestError(f"{title}: the script needs an init image (img2img)")
    return found[0]


def slider(script: Any, key: str, label: str, bounds: tuple[float, float, float], value: float) -> Any:
    """A script's slider with A1111's element id (`script.elem_id(key)`); `bounds`: min, max, step."""
    import gradio as gr

    low, high, step = bounds
    return gr.Slider(
        minimum=low, maximum=high, step=step, label=label, value=value, elem_id=script.elem_id(key)
    )


def mask_blur_everywhere(value: int) -> dict[str, int]:
    """A job's mask blur set on all three of A1111's fields (`mask_blur` and its x and y)."""
    return {"mask_blur": value, "mask_blur_x": value, "mask_blur_y": value}


def outpaint_sliders(script: Any, mask_blur: int) -> tuple[Any, Any]:
    """The "Pixels to expand" and "Mask blur" sliders both outpainting scripts start with (A1111's ids)."""
    pixels = slider(script, "pixels", "Pixels to expand", (8, 256, 8), 128)
    return pixels, slider(script, "mask_blur", "Mask blur", (0, 64, 1), mask_blur)


def direction_choice(script: Any) -> Any:
    """The outpainting scripts' "Outpainting direction" checkboxes (every side ticked)."""
    import gradio as gr

    return gr.CheckboxGroup(
        label="Outpainting direction",
        choices=list(DIRECTIONS),
        value=list(DIRECTIONS),
        elem_id=script.elem_id("direction"),
    )


def directions(value: Any, title: str) -> list[str]:
    """The outpainting directions of a CheckboxGroup value (or "left, up" from an API client)."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    chosen = [str(item).strip().lower() for item in items if str(item).strip()]
    unknown = [item for item in chosen if item not in DIRECTIONS]
    if unknown:
        raise InvalidRequestError(
            f"{title}: unknown outpainting direction {unknown[0]!r}; choose from {', '.join(DIRECTIONS)}"
        )
    if not chosen:
        raise InvalidRequestError(f"{title}: choose at least one outpainting direction")
    return chosen


def whole(value: Any, name: str, title: str, low: int, high: int) -> int:
    """An integer control value within [low, high] (sliders send floats: 128.0 is 128)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{title}: {name} must be a number, got {value!r}") from None
    if not number.is_integer() or not low <= number <= high:
        raise InvalidRequestError(
            f"{title}: {name} must be a whole number from {low} to {high}, got {value!r}"
        )
    return int(number)


def number(value: Any, name: str, title: str, low: float, high: float) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{title}: {name} must be a number, got {value!r}") from None
    if not low <= result <= high:
        raise InvalidRequestError(f"{title}: {name} must be from {low:g} to {high:g}, got {value!r}")
    return result


class Sides(NamedTuple):
    """How many pixels each side of the picture grows."""

    left: int
    right: int
    up: int
    down: int


def expansion(width: int, height: int, pixels: int, chosen: Iterable[str]) -> Sides:
    """A1111's outpainting sizes: `pixels` on each chosen side, then the new width and height rounded up
    to a multiple of 64, the rounding shared between the two sides of an axis (the first one by its
    share, the second one the rest)."""
    chosen = set(chosen)

    def axis(size: int, first: bool, second: bool) -> tuple[int, int]:
        a, b = (pixels if first else 0), (pixels if second else 0)
        if not a and not b:
            return 0, 0
        grown = math.ceil((size + a + b) / 64) * 64 - size
        a = a * grown // (a + b)
        return a, grown - a if b else 0

    left, right = axis(width, "left" in chosen, "right" in chosen)
    up, down = axis(height, "up" in chosen, "down" in chosen)
    return Sides(left, right, up, down)


def keep_box(mask: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """`mask` with the box (PIL's: both corners included) black, i.e. kept; an empty box (a seam
    wider than the strip) keeps nothing."""
    x0, y0, x1, y1 = box
    if x1 >= x0 and y1 >= y0:
        ImageDraw.Draw(mask).rectangle(box, fill=0)
    return mask


def _samples_dir(p: Any, o: Any) -> str:
    return p.outpath_samples or o.outdir_samples or o.outdir_img2img_samples


def _grids_dir(p: Any, o: Any) -> str:
    return p.outpath_grids or o.outdir_grids or o.outdir_img2img_grids


def save_sample(o: Any, p: Any, image: Image.Image, seed: Any, infotext: str, warnings: list[str]) -> None:
    """Save a picture the script assembled (as A1111: in the img2img samples folder, opt `samples_save`)."""
    if p.do_not_save_samples or not o.samples_save:  # an API request without save_images saves nothing
        return
    _save(warnings, image, _samples_dir(p, o), "", seed, p, infotext, extension=o.samples_format)


def save_grid(o: Any, p: Any, grid: Image.Image, seed: Any, infotext: str, warnings: list[str]) -> None:
    """Save a script's grid as A1111's `grid-NNNN` in the img2img grids folder (opt `grid_save`)."""
    if p.do_not_save_grid or not o.grid_save:
        return
    short = not getattr(o, "grid_extended_filename", False)
    _save(
        warnings,
        grid,
        _grids_dir(p, o),
        "grid",
        seed,
        p,
        infotext,
        extension=o.grid_format,
        grid=True,
        short_filename=short,
    )


def _save(
    warnings: list[str], image: Image.Image, path: str, basename: str, seed: Any, p: Any, info: str, **kw: Any
) -> None:
    """A file that cannot be written (full disk, no permission) loses nothing: the picture is still
    returned, and the reason is logged and added to the job's warnings."""
    prompt = p.all_prompts[0] if getattr(p, "all_prompts", None) else p.prompt
    try:
        images.save_image(image, path, basename, seed, prompt, info=info, p=p, **kw)
    except Exception as exc:
        message = f"Could not save an image to {path}: {type(exc).__name__}: {exc}; it is still returned"
        log.warning(message)
        if message not in warnings:
            warnings.append(message)


def assembled(
    app: Any,
    p: Any,
    pictures: list[Image.Image],
    first: Processed | None,
    warnings: list[str],
    grid_when_several: bool,
) -> Processed:
    """The pictures a script put together (saved as samples, as A1111), with a grid of them in front when
    there are several; each carries the first job's infotext, the seed is the first job's."""
    seed = int(first.seed) if first is not None else int(p.seed)
    info = first.infotexts[first.index_of_first_image] if first is not None and first.infotexts else ""
    template = first.p if first is not None else p
    for picture in pictures:
        save_sample(app.options, p, picture, seed, info, warnings)
    result = Collected(warnings=warnings)
    for picture in pictures:
        result.add_image(picture, info, template)
    grids = []
    if grid_when_several and len(pictures) > 1:
        grid = image_grid(pictures)
        save_grid(app.options, p, grid, seed, info, warnings)
        if app.options.return_grid:
            grids.append((grid, info))
    return result.processed(p, grids)


def upscaler_named(name: str, choices: Iterable[Any], title: str) -> Any:
    """The upscaler called `name` (any case) among `choices` (`shared.sd_upscalers`), else a 400 listing them."""
    choices = list(choices)
    for data in choices:
        if data.name.lower() == str(name).strip().lower():
            return data
    names = ", ".join(data.name for data in choices)
    raise InvalidRequestError(f"{title}: upscaler {name!r} not found; choose from {names}")


def switched_on(value: Any) -> bool:
    """A checkbox arg as the API may send it (true, "true", 1)."""
    return value not in (False, None, 0, "", "false", "False")
