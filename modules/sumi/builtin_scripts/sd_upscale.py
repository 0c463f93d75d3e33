"""SD upscale (A1111's built-in img2img script): upscale the picture, then redraw it tile by tile.

The init picture is enlarged by `Scale Factor` with the chosen upscaler (to a multiple of 8, as A1111),
cut into tiles of the job's width and height overlapping by `Tile overlap`, every tile is redrawn by
img2img (`batch size` tiles per job, each tile its own seed), and the tiles are put back with their
overlaps blended. With batch count N the whole picture is done N times from seeds seed, seed+1, ...

Upscalers: `shared.sd_upscalers`, i.e. the App's upscaler registry: None, Lanczos, Nearest, then the
model files of models/ESRGAN, RealESRGAN, SwinIR, DAT and HAT (tiled as the Upscaling settings say).
"""

from __future__ import annotations

import math
from typing import Any

from PIL import Image

import modules.scripts as scripts
from modules import shared
from modules.images import combine_grid, flatten, split_grid
from modules.sumi.builtin_scripts.support.img2img import (
    assembled,
    init_image,
    number,
    slider,
    upscaler_named,
    whole,
)
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs.processing import Processed
from modules.sumi.services.jobs.script_jobs import fix_seed, generated, job_copy, validate_jobs
from modules.upscaler import UpscalerData

TITLE = "SD upscale"
INFO = (
    '<p style="margin-bottom:0.75em">Will upscale the image by the selected scale factor; '
    "use width and height sliders to set tile size</p>"
)


def upscalers() -> list[UpscalerData]:
    """The choices, in A1111's order (`shared.sd_upscalers`): None, Lanczos, Nearest, then the model
    files of the upscaler folders."""
    return list(shared.sd_upscalers)


def find_upscaler(value: Any, choices: list[UpscalerData]) -> UpscalerData:
    """A1111's `upscaler_index` (the radio is type="index"), or an upscaler's name as A1111 also accepts."""
    if isinstance(value, str) and not value.strip().isdigit():
        return upscaler_named(value, choices, TITLE)
    return choices[whole(value, "Upscaler", TITLE, 0, len(choices) - 1)]


def upscaled(image: Image.Image, data: UpscalerData, scale: float) -> Image.Image:
    if data.name == "None" or data.scaler is None:
        return image
    return data.scaler.upscale(image, scale, data.data_path)


def tile_count(width: int, height: int, tile_w: int, tile_h: int, overlap: int) -> int:
    """How many tiles `split_grid` cuts a picture into (A1111 prints it before starting)."""

    def along(size: int, tile: int) -> int:
        return max(1, math.ceil((size - overlap) / (tile - overlap)))

    return along(width, tile_w) * along(height, tile_h)


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr

        names = [data.name for data in upscalers()]
        info = gr.HTML(INFO)
        overlap = slider(self, "overlap", "Tile overlap", (0, 256, 16), 64)
        scale_factor = slider(self, "scale_factor", "Scale Factor", (1.0, 4.0, 0.05), 2.0)
        upscaler_index = gr.Radio(
            label="Upscaler",
            choices=names,
            value=names[0],
            type="index",
            elem_id=self.elem_id("upscaler_index"),
        )
        return [info, overlap, upscaler_index, scale_factor]

    def run(
        self, p: Any, _info: Any = None, overlap: Any = 64, upscaler_index: Any = 0, scale_factor: Any = 2.0
    ) -> Processed:
        tile_w, tile_h = int(p.width), int(p.height)
        margin = whole(overlap, "Tile overlap", TITLE, 0, 4096)
        if margin >= min(tile_w, tile_h):
            raise InvalidRequestError(
                f"{TITLE}: Tile overlap ({margin}) must be smaller than the tiles "
                f"(the job's width and height, {tile_w}x{tile_h})"
            )
        scale = number(scale_factor, "Scale Factor", TITLE, 0.05, 16.0)
        upscaler = find_upscaler(upscaler_index, upscalers())
        original = init_image(p, TITLE)
        app = shared.app()
        fix_seed(p)
        p.extra_generation_params["SD upscale overlap"] = margin
        p.extra_generation_params["SD upscale upscaler"] = upscaler.name
        picture = upscaled(flatten(original, app.options.img2img_background_color), upscaler, scale)
        tiles = [
            tile for _y, _h, row in split_grid(picture, tile_w, tile_h, margin).tiles for _x, _w, tile in row
        ]
        size = max(1, int(p.batch_size))
        base = job_copy(p, n_iter=1, do_not_save_grid=True, do_not_save_samples=True)
        chunks = [tiles[i : i + size] for i in range(0, len(tiles), size)]
        validate_jobs(app, [job_copy(base, init_images=chunk, batch_size=len(chunk)) for chunk in chunks[:1]])
        first, warnings, results = None, [], []
        for n in range(max(1, int(p.n_iter))):
            redrawn: list[Image.Image] = []
            for i, chunk in enumerate(chunks):
                job = job_copy(
                    base, init_images=chunk, batch_size=len(chunk), seed=int(p.seed) + n + i * size
                )
                processed = app.runner.process(job)
                images, _infotexts = generated(processed)
                warnings += [w for w in processed.warnings if w not in warnings]
                first = first or (processed if images else None)
                redrawn += images
                if app.state.interrupted:
                    break
            grid = split_grid(picture, tile_w, tile_h, margin)
            for _y, _h, row in grid.tiles:  # a tile that was not redrawn (interrupted) keeps the upscale
                for tile in row:
                    if redrawn:
                        tile[2] = redrawn.pop(0)
            results.append(combine_grid(grid))
            if app.state.interrupted:
                break
        return assembled(app, p, results, first, warnings, grid_when_several=False)
