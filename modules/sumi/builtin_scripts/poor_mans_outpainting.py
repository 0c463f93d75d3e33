"""Poor man's outpainting (A1111's built-in img2img script): grow the picture, then inpaint it tile by tile.

The picture is put on a canvas `Pixels to expand` larger on each chosen side (rounded up to a multiple
of 64 as A1111 does); the canvas is cut into tiles of the job's width and height overlapping by
`Pixels to expand`, and every tile that reaches into the new part is inpainted with the chosen
`Masked content`, one job per tile with the next seed. The tiles are put back together with their
overlaps blended. The mask keeps the old picture less 2x `Mask blur` at the seam (blurred by 2x it).
"""

from __future__ import annotations

import re
from typing import Any

from PIL import Image

import modules.scripts as scripts
from modules import shared
from modules.images import combine_grid, split_grid
from modules.sumi.builtin_scripts.support.img2img import (
    DIRECTIONS,
    Sides,
    assembled,
    direction_choice,
    directions,
    expansion,
    init_image,
    keep_box,
    mask_blur_everywhere,
    outpaint_sliders,
    whole,
)
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs.processing import Processed
from modules.sumi.services.jobs.script_jobs import fix_seed, generated, job_copy, validate_jobs

TITLE = "Poor man's outpainting"
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")


def masked_content(value: Any) -> int:
    """A1111's Masked content radio (type="index"): its index, or one of its names from an API client."""
    if isinstance(value, str) and not value.strip().isdigit():
        name = value.strip().lower()
        if name not in MASKED_CONTENT:
            raise InvalidRequestError(f"{TITLE}: Masked content must be one of {', '.join(MASKED_CONTENT)}")
        return MASKED_CONTENT.index(name)
    return whole(value, "Masked content", TITLE, 0, len(MASKED_CONTENT) - 1)


def _keep_mask(size: tuple[int, int], sides: Sides, inset: int) -> Image.Image:
    """White (redraw) everywhere but the old picture, less `inset` pixels on each grown side."""
    box = (
        sides.left + (inset if sides.left else 0),
        sides.up + (inset if sides.up else 0),
        size[0] - sides.right - (inset if sides.right else 0),
        size[1] - sides.down - (inset if sides.down else 0),
    )
    return keep_box(Image.new("L", size, 255), box)


def canvas_and_masks(
    image: Image.Image, sides: Sides, blur: int
) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The grown canvas (the picture on black), the job's mask and its latent mask."""
    size = (image.width + sides.left + sides.right, image.height + sides.up + sides.down)
    canvas = Image.new("RGB", size)
    canvas.paste(image.convert("RGB"), (sides.left, sides.up))
    return canvas, _keep_mask(size, sides, blur * 2), _keep_mask(size, sides, blur // 2)


def tiles_to_redraw(grid: Any, sides: Sides) -> list[tuple[int, int]]:
    """(row, column) of every tile that reaches outside the old picture."""
    found = []
    for r, (y, h, row) in enumerate(grid.tiles):
        for c, (x, w, _tile) in enumerate(row):
            inside = (
                x >= sides.left
                and x + w <= grid.image_w - sides.right
                and y >= sides.up
                and y + h <= grid.image_h - sides.down
            )
            if not inside:
                found.append((r, c))
    return found


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def elem_id(self, item_id: str) -> str:
        """A1111's own ids for this script: `img2img_script_poor_mans_outpainting_<item>`."""
        tab = "img2img" if self.is_img2img else "txt2txt"  # A1111's spelling
        title = re.sub(r"\s", "_", self.title().lower())
        raw = f"{tab}_script_{title}_{item_id}"
        return re.sub(r"[^a-z_0-9]", "", raw)

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any] | None:
        if not is_img2img:
            return None
        import gradio as gr

        pixels, mask_blur = outpaint_sliders(self, mask_blur=4)
        inpainting_fill = gr.Radio(
            label="Masked content",
            choices=list(MASKED_CONTENT),
            value="fill",
            type="index",
            elem_id=self.elem_id("inpainting_fill"),
        )
        direction = direction_choice(self)
        return [pixels, mask_blur, inpainting_fill, direction]

    def run(
        self,
        p: Any,
        pixels: Any = 128,
        mask_blur: Any = 4,
        inpainting_fill: Any = 0,
        direction: Any = DIRECTIONS,
    ) -> Processed:
        amount = whole(pixels, "Pixels to expand", TITLE, 1, 2048)
        blur = whole(mask_blur, "Mask blur", TITLE, 0, 256)
        fill = masked_content(inpainting_fill)
        chosen = directions(direction, TITLE)
        original = init_image(p, TITLE)
        if amount >= min(int(p.width), int(p.height)):
            raise InvalidRequestError(
                f"{TITLE}: the tiles (the job's width and height, {p.width}x{p.height}) must be larger than "
                f"Pixels to expand ({amount}), which is also their overlap"
            )
        app = shared.app()
        fix_seed(p)
        sides = expansion(original.width, original.height, amount, chosen)
        canvas, mask, latent_mask = canvas_and_masks(original, sides, blur)
        grids = [
            split_grid(image, int(p.width), int(p.height), amount) for image in (canvas, mask, latent_mask)
        ]
        work = tiles_to_redraw(grids[0], sides)
        base = job_copy(
            p,
            **mask_blur_everywhere(blur * 2),
            inpainting_fill=fill,
            inpaint_full_res=False,
            n_iter=1,
            batch_size=1,
            do_not_save_grid=True,
            do_not_save_samples=True,
        )
        jobs = []
        for r, c in work:
            tile, tile_mask, tile_latent = (grid.tiles[r][2][c][2] for grid in grids)
            jobs.append(
                job_copy(
                    base, init_images=[tile], image_mask=tile_mask, mask=tile_mask, latent_mask=tile_latent
                )
            )
        validate_jobs(app, jobs)
        first, warnings, seed = None, [], int(p.seed)
        for (r, c), job in zip(work, jobs, strict=True):
            job.seed = seed
            processed = app.runner.process(job)
            redrawn, infotexts = generated(processed)
            warnings += [w for w in processed.warnings if w not in warnings]
            if redrawn:
                first = first or processed
                grids[0].tiles[r][2][c][2] = redrawn[0]
            seed = int(processed.seed) + 1
            if app.state.interrupted:
                break
        return assembled(app, p, [combine_grid(grids[0])], first, warnings, grid_when_several=False)
