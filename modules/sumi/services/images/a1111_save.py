"""Saving an image the way A1111's `images.save_image` does, for extensions (and `FilenameGenerator`).

`save_image` follows A1111's naming (folder pattern, `NNNNN-<pattern><suffix>.<ext>`, `basename-NNNN`
for grids, `forced_filename`) with the running App's settings, runs the `on_before_image_saved` and
`on_image_saved` callbacks, and writes through Sumi's own `images.save_image_file` with the saving
settings (`SaveSettings`: quality, lossless webp, the .jpg copy of large images, replace or number a
file of the same name). Relative folders are under the data folder, like Sumi's output settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from modules.sumi.services.images import saving as image_files
from modules.sumi.services.images.namegen import FilenameGenerator
from modules.sumi.services.scripts.callbacks import CallbackRegistry, ImageSaveParams
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.util.atomic import write_atomic


def save_image(
    options: Options,
    paths: DataPaths,
    callbacks: CallbackRegistry,
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
    """A1111's `images.save_image` with the App's settings, folders and callbacks passed in: saves and
    returns (file path, path of the .txt beside it or None)."""
    o = options
    namegen = FilenameGenerator(p, seed, prompt, image, basename=basename)
    directory = paths.resolve(path)
    if save_to_dirs is None:
        save_to_dirs = o.grid_save_to_dirs if grid else o.save_to_dirs and not no_prompt
    if save_to_dirs:
        directory = directory / namegen.apply(o.directories_filename_pattern or "[prompt_words]").strip(
            " \\/"
        )
    pnginfo = {**(existing_info or {}), **({pnginfo_section_name: info} if info is not None else {})}
    params = ImageSaveParams(image, p, str(directory), pnginfo)
    callbacks.call("before_image_saved", params)
    infotext = params.pnginfo.get(pnginfo_section_name)
    others = {k: v for k, v in params.pnginfo.items() if k != pnginfo_section_name}
    settings = image_files.SaveSettings.from_options(o)
    if forced_filename is not None:
        ext = image_files.fitting_extension(params.image, extension)
        text = infotext if o.enable_pnginfo else None
        data = image_files.encode_image(params.image, ext, text, existing_info=others, **settings.encoding())
        target = Path(directory) / forced_filename  # A1111 allows sub-folders in the name
        saved = image_files.write_named(target.parent, target.name, ext, data, settings.replace)
        image_files.save_jpg_copy(params.image, saved, len(data), text, settings)
        if o.save_txt and infotext:
            write_atomic(saved.with_suffix(".txt"), infotext.encode("utf-8"))
    else:
        named = not short_filename and seed is not None
        pattern = o.samples_filename_pattern or ("[seed]" if o.save_to_dirs else "[seed]-[prompt_spaces]")
        # A1111: the pattern expanded by FilenameGenerator, then the suffix as given
        decoration = (namegen.apply(pattern) if named else "") + suffix
        saved = image_files.save_image_file(
            params.image,
            directory,
            seed=0 if decoration else None,  # no decoration: the counter only
            prompt=prompt if isinstance(prompt, str) else "",
            infotext=infotext,
            extension=extension,
            basename_prefix=basename,
            pnginfo_enabled=o.enable_pnginfo,
            save_txt=o.save_txt,
            pattern=decoration,
            add_number=o.save_images_add_number,
            existing_info=others,
            settings=settings,
        )
    params.filename = str(saved)
    callbacks.call("image_saved", params)
    txt = Path(saved).with_suffix(".txt")
    return str(saved), str(txt) if o.save_txt and infotext and txt.exists() else None
