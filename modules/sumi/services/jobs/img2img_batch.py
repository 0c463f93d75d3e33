"""img2img's Batch tab (A1111's `modules.img2img.process_batch`): every image of an input folder through
the same img2img job, with a mask from a mask folder (the one mask, or the mask named like the image)
and, optionally, the prompt, seed, CFG scale, sampler and steps read from the image's PNG info.

With an output folder the results are written there as `<image name>.<format>` (`-1`, `-2`... for
more than one image per input), with their infotext; without one they are saved as any img2img job's.
The output folder is a place Sumi writes to, so it must be inside the data folder (or a folder allowed
with --gradio-allowed-path), as every path setting.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.saving import (
    SaveSettings,
    encode_image,
    fitting_extension,
    read_infotext_from_image,
    save_jpg_copy,
)
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessingImg2Img, fix_seed
from modules.sumi.util.atomic import write_atomic

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
PNG_INFO_PROPS = ["Prompt", "Negative prompt", "Seed", "CFG scale", "Sampler", "Steps"]


@dataclass
class BatchFolders:
    """Where a batch reads and writes (A1111's Batch tab fields)."""

    input_dir: str | Path | Sequence[str | Path]  # a folder, or a list of image files (uploads)
    output_dir: str = ""
    inpaint_mask_dir: str = ""
    to_scale: bool = False
    scale_by: float = 1.0
    use_png_info: bool = False
    png_info_props: list[str] = field(default_factory=lambda: list(PNG_INFO_PROPS))
    png_info_dir: str = ""


def image_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The images of a folder (sub-folders too, sorted), or the given files."""
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise InvalidRequestError(f"the batch input folder {str(source)!r} does not exist")
        return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    return [Path(f) for f in source]


def run_batch(
    p: StableDiffusionProcessingImg2Img,
    folders: BatchFolders,
    args: Sequence[Any],
    *,
    process: Callable[[StableDiffusionProcessingImg2Img], Processed],
    confine: Callable[[str], Path],
    interrupted: Callable[[], bool],
    samples_format: str = "png",
    settings: SaveSettings | None = None,
) -> Processed:
    """Run `p` once per input image (on the job worker); returns all results in one Processed.

    `process` runs one job (the selected script's `run`, else the plain job), `confine` checks the
    output folder (InvalidRequestError outside the data folder), `interrupted` stops between images."""
    output_dir = confine(folders.output_dir.strip()) if folders.output_dir.strip() else None
    fix_seed(p)
    files = image_files(folders.input_dir)
    masks = _mask_files(folders.inpaint_mask_dir)
    p.do_not_save_grid = True
    p.do_not_save_samples = output_dir is not None
    defaults = (p.prompt, p.negative_prompt, p.seed, p.cfg_scale, p.sampler_name, p.steps)
    images: list[Any] = []
    infotexts: list[str] = []
    warnings: list[str] = []
    for position, path in enumerate(files):
        if interrupted():
            break
        p.controlnet_batch_index = position  # a ControlNet batch unit's picture for this image
        try:
            img = ImageOps.exif_transpose(Image.open(path))
        except (UnidentifiedImageError, OSError) as exc:
            warnings.append(f"Skipped {path.name}: not a readable image ({exc})")
            continue
        if folders.to_scale:
            p.width, p.height = _scaled(img.width, folders.scale_by), _scaled(img.height, folders.scale_by)
        p.init_images = [img] * p.batch_size
        if masks:
            mask = _mask_for(path, masks)
            if mask is None:
                warnings.append(f"Skipped {path.name}: no mask named like it in {folders.inpaint_mask_dir}")
                continue
            p.image_mask = Image.open(mask)
        if folders.use_png_info:
            _apply_png_info(p, img, path, folders, defaults)
        p.overlay_images = None  # each image is prepared afresh
        processed = process(p)
        for n, (image, text) in enumerate(zip(processed.images, processed.infotexts, strict=False)):
            if output_dir is not None:
                name = path.stem + (f"-{n}" if n else "")
                write_result(
                    output_dir / path.parent.relative_to(_root(folders.input_dir, path)),
                    name,
                    image,
                    text,
                    samples_format,
                    settings,
                )
            images.append(image)
            infotexts.append(text)
        warnings.extend(w for w in processed.warnings if w not in warnings)
    p.controlnet_batch_index = None
    return Processed(
        p, images, p.seed, infotexts[0] if infotexts else "", infotexts=infotexts, warnings=warnings
    )


def _scaled(side: int, scale: float) -> int:
    """A1111 scales to `int(side * scale)`; Sumi keeps it a multiple of 8, as every job size."""
    return max(64, int(side * scale) // 8 * 8)


def _root(source: Any, path: Path) -> Path:
    return Path(source) if isinstance(source, (str, Path)) else path.parent


def _mask_files(folder: str) -> list[Path]:
    if not folder or not folder.strip():
        return []
    directory = Path(folder.strip())
    if not directory.is_dir():
        raise InvalidRequestError(f"the batch mask folder {folder!r} does not exist")
    return sorted(f for f in directory.iterdir() if f.is_file())


def _mask_for(image: Path, masks: list[Path]) -> Path | None:
    """A1111: a single mask is every image's; otherwise the mask whose name (without extension) is the image's."""
    if len(masks) == 1:
        return masks[0]
    return next((m for m in masks if m.stem == image.stem), None)


def _apply_png_info(
    p: StableDiffusionProcessingImg2Img, img: Image.Image, path: Path, folders: BatchFolders, defaults: tuple
) -> None:
    """A1111: the image's own infotext (or that of the same-named file in `png_info_dir`) adds to the
    prompts and replaces seed, CFG scale, sampler and steps, for the properties chosen."""
    prompt, negative, seed, cfg_scale, sampler, steps = defaults
    try:
        source = Image.open(Path(folders.png_info_dir) / path.name) if folders.png_info_dir else img
        params = parse_infotext(read_infotext_from_image(source) or "")
        params = {k: v for k, v in params.items() if k in (folders.png_info_props or [])}
    except (OSError, ValueError):
        params = {}
    p.prompt = prompt + (" " + params["Prompt"] if "Prompt" in params else "")
    p.negative_prompt = negative + (" " + params["Negative prompt"] if "Negative prompt" in params else "")
    try:
        p.seed = int(params.get("Seed") or seed)
        p.cfg_scale = float(params.get("CFG scale") or cfg_scale)
        p.steps = int(params.get("Steps") or steps)
    except ValueError:
        p.seed, p.cfg_scale, p.steps = seed, cfg_scale, steps
    p.sampler_name = params.get("Sampler", sampler)


def write_result(
    directory: Path,
    name: str,
    image: Any,
    infotext: str,
    extension: str,
    settings: SaveSettings | None = None,
) -> None:
    """`<directory>/<name>.<extension>` with the infotext, atomically (RGBA saved as RGB), encoded with
    the saving `settings`; a file of that name is replaced (A1111 does so in batch folders)."""
    settings = dataclasses.replace(settings or SaveSettings(), replace=True)
    directory.mkdir(parents=True, exist_ok=True)
    if image.mode == "RGBA":
        image = image.convert("RGB")
    ext = fitting_extension(image, extension)
    data = encode_image(image, ext, infotext, **settings.encoding())
    path = write_atomic(directory / f"{name}.{ext}", data)
    save_jpg_copy(image, path, len(data), infotext, settings)
