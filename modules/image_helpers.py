"""A1111's image helpers that extensions call from `modules.images` (which re-exports them):
`save_image` with A1111's signature, `FilenameGenerator`, `resize_image` and `flatten`.

`save_image` follows A1111's naming (folder pattern, `NNNNN-<pattern><suffix>.<ext>`, `basename-NNNN`
for grids, `forced_filename`) with the running App's settings, runs the `on_before_image_saved` and
`on_image_saved` callbacks, and writes through Sumi's own `images.save_image_file`. Relative folders
are under the data folder, like Sumi's output settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from modules import images as image_files

LANCZOS = Image.Resampling.LANCZOS


class FilenameGenerator:
    """Expands A1111's file-name patterns ("[seed]-[prompt_spaces]", "[date]", "[model_name]", ...)."""

    def __init__(
        self, p: Any, seed: Any, prompt: Any, image: Any = None, zip: bool = False, basename: str = ""
    ):  # noqa: A002
        self.p, self.seed, self.prompt, self.image, self.zip, self.basename = (
            p,
            seed,
            prompt,
            image,
            zip,
            basename,
        )

    def fields(self) -> dict[str, object]:
        p = self.p
        if p is None:
            return {"none": "", "basename": self.basename}
        return {
            "steps": p.steps,
            "cfg": p.cfg_scale,
            "width": getattr(self.image, "width", p.width),
            "height": getattr(self.image, "height", p.height),
            "styles": ", ".join(p.styles or []) or "None",
            "sampler": p.sampler_name,
            "scheduler": p.scheduler,
            "model_name": p.sd_model_name,
            "model_hash": p.sd_model_hash,
            "job_timestamp": p.job_timestamp,
            "clip_skip": p.clip_skip,
            "denoising": p.denoising_strength,
            "batch_size": p.batch_size,
            "none": "",
            "basename": self.basename,
        }

    def apply(self, x: str) -> str:
        prompt = self.prompt if isinstance(self.prompt, str) else ""
        return image_files.apply_filename_pattern(x, seed=self.seed, prompt=prompt, fields=self.fields())


def save_image(
    image: Image.Image,
    path: str,
    basename: str,
    seed: Any = None,
    prompt: Any = None,
    extension: str = "png",
    info: str | None = None,
    short_filename: bool = False,
    no_prompt: bool = False,
    grid: bool = False,
    pnginfo_section_name: str = "parameters",
    p: Any = None,
    existing_info: dict[str, Any] | None = None,
    forced_filename: str | None = None,
    suffix: str = "",
    save_to_dirs: bool | None = None,
) -> tuple[str, str | None]:
    """A1111's `images.save_image`: saves and returns (file path, path of the .txt beside it or None)."""
    from modules import shared
    from modules.callbacks import ImageSaveParams

    app = shared.app()
    o = app.options
    namegen = FilenameGenerator(p, seed, prompt, image, basename=basename)
    directory = app.paths.resolve(path)
    if save_to_dirs is None:
        save_to_dirs = o.grid_save_to_dirs if grid else o.save_to_dirs and not no_prompt
    if save_to_dirs:
        directory = directory / namegen.apply(o.directories_filename_pattern or "[prompt_words]").strip(
            " \\/"
        )
    pnginfo = {**(existing_info or {}), **({pnginfo_section_name: info} if info is not None else {})}
    params = ImageSaveParams(image, p, str(directory), pnginfo)
    app.callbacks.call("before_image_saved", params)
    infotext = params.pnginfo.get(pnginfo_section_name)
    others = {k: v for k, v in params.pnginfo.items() if k != pnginfo_section_name}
    if forced_filename is not None:
        target = Path(directory) / f"{forced_filename}.{extension}"
        data = image_files.encode_image(
            params.image, extension, infotext if o.enable_pnginfo else None, existing_info=others
        )
        saved = image_files.write_atomic(target, data)
        if o.save_txt and infotext:
            image_files.write_atomic(target.with_suffix(".txt"), infotext.encode("utf-8"))
    else:
        named = not short_filename and seed is not None
        pattern = (
            (o.samples_filename_pattern or ("[seed]" if o.save_to_dirs else "[seed]-[prompt_spaces]"))
            if named
            else ""
        )
        saved = image_files.save_image_file(
            params.image,
            directory,
            seed=seed if named else (0 if suffix else None),  # no seed: the counter (and suffix) only
            prompt=prompt if isinstance(prompt, str) else "",
            infotext=infotext,
            extension=extension,
            basename_prefix=basename,
            pnginfo_enabled=o.enable_pnginfo,
            save_txt=o.save_txt,
            pattern=pattern + suffix,
            fields=namegen.fields(),
            add_number=o.save_images_add_number,
            existing_info=others,
        )
    params.filename = str(saved)
    app.callbacks.call("image_saved", params)
    txt = Path(saved).with_suffix(".txt")
    return str(saved), str(txt) if o.save_txt and infotext and txt.exists() else None


def flatten(img: Image.Image, bgcolor: str) -> Image.Image:
    """An RGB image with transparent parts filled with `bgcolor` (A1111)."""
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, bgcolor)
        background.paste(img, mask=img)
        img = background
    return img.convert("RGB")


def resize_image(
    resize_mode: int, im: Image.Image, width: int, height: int, upscaler_name: str | None = None
) -> Image.Image:
    """A1111's resize modes: 0 (and 3) stretch to the size, 1 crop to fill it, 2 fit inside it and fill
    the bars by stretching the image's edges. Sumi resizes with Lanczos (it has no upscaler models)."""
    if resize_mode not in (1, 2):
        return im.resize((width, height), LANCZOS)
    ratio, src_ratio = width / height, im.width / im.height
    crop = resize_mode == 1
    if (ratio > src_ratio) == crop:
        src_w, src_h = width, im.height * width // im.width
    else:
        src_w, src_h = im.width * height // im.height, height
    resized = im.resize((src_w, src_h), LANCZOS)
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
