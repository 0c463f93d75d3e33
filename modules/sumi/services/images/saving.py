"""Saving, gridding and reading images the way A1111 does, with the infotext embedded.

Files are named like A1111's (`00012-1234567.png`, `00012-1234567-a cat.png` without date folders):
a 5-digit counter that is one past the highest in the folder, then the filename pattern. Every write
goes to a temporary file first and is then linked or renamed into place, so a crash never leaves
half an image and two concurrent saves never take the same name.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import math
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, PngImagePlugin

from modules.sumi.util.atomic import write_atomic, write_unique

log = logging.getLogger(__name__)

INVALID_FILENAME_CHARS = '#<>:"/\\|?*\n\r\t'
MAX_FILENAME_PART_LENGTH = 128
MAX_FILENAME_BYTES = 200  # below the usual 255-byte limit, leaving room for ".txt" and temp names
MAX_PROMPT_WORDS = 8
DEFAULT_PATTERN = "[seed]-[prompt_spaces]"
RE_NONLETTERS = re.compile(r"[\s" + re.escape(string.punctuation) + "]+")
RE_PATTERN = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|\Z)", re.DOTALL)
EXIF_UNICODE_PREFIX = b"UNICODE\x00"
EXIF_ASCII_PREFIX = b"ASCII\x00\x00\x00"
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF", "avif": "AVIF"}
MAX_SIDE = {"JPEG": 65535, "WEBP": 16383}  # larger pictures are saved as PNG, as A1111
REPLACE, ADD_NUMBER_SUFFIX = "Replace", "Add number suffix"  # opt save_images_replace_action
MAX_NUMBER_SUFFIX = 500
IGNORED_INFO_KEYS = {
    "jfif",
    "jfif_version",
    "jfif_unit",
    "jfif_density",
    "dpi",
    "exif",
    "loop",
    "background",
    "timestamp",
    "duration",
    "progressive",
    "progression",
    "icc_profile",
    "chromaticity",
    "photoshop",
}
NOVELAI_SAMPLERS = {
    "k_euler_ancestral": "Euler a",
    "k_euler": "Euler",
    "k_lms": "LMS",
    "k_heun": "Heun",
    "k_dpm_2": "DPM2",
    "k_dpm_2_ancestral": "DPM2 a",
    "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_sde": "DPM++ SDE",
    "k_dpmpp_2s_a": "DPM++ 2S a",
    "ddim": "DDIM",
}


# --- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveSettings:
    """How image files are encoded and what else is written beside them (A1111's saving settings).

    The defaults are those of a file written without the App's settings; `from_options` reads the
    settings (where A1111's `export_for_4chan` is on by default)."""

    quality: int = 80  # opt jpeg_quality: jpg, lossy webp and avif
    webp_lossless: bool = False  # opt webp_lossless
    jpg_copy: bool = False  # opt export_for_4chan: a .jpg copy of a large image...
    jpg_copy_over_mb: float = 4.0  # opt img_downscale_threshold: ...when the file is larger (MB)...
    jpg_copy_side: int = 4000  # opt target_side_length: ...or a side is longer, then scaled down to it
    replace: bool = True  # opt save_images_replace_action: replace a file of the same name, or add -1, -2

    @classmethod
    def from_options(cls, options: Any) -> SaveSettings:
        """The settings of `options` (the App's, or a job's view); missing or odd values keep A1111's."""

        def read(key: str, default: Any, kind: type) -> Any:
            try:
                return kind(getattr(options, key, default))
            except (TypeError, ValueError):
                return default

        return cls(
            quality=min(100, max(1, read("jpeg_quality", 80, int))),
            webp_lossless=read("webp_lossless", False, bool),
            jpg_copy=read("export_for_4chan", True, bool),
            jpg_copy_over_mb=max(0.0, read("img_downscale_threshold", 4.0, float)),
            jpg_copy_side=max(1, read("target_side_length", 4000, int)),
            replace=str(getattr(options, "save_images_replace_action", REPLACE)) != ADD_NUMBER_SUFFIX,
        )

    def encoding(self) -> dict[str, Any]:
        """`encode_image`'s keyword arguments for these settings."""
        return {"quality": self.quality, "lossless": self.webp_lossless}


# --- file names ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilenameRules:
    """What a file-name part may hold: A1111's `--unix-filenames-sanitization` (only `/` is replaced,
    so `:`, `?`, `*`, `|`, `"` ... stay, as Linux allows) and `--filenames-max-length` (of each part taken
    from the job: the prompt, a field). Control characters are always replaced."""

    invalid_chars: str = INVALID_FILENAME_CHARS
    max_part_length: int = MAX_FILENAME_PART_LENGTH

    @classmethod
    def from_flags(cls, unix: bool = False, max_length: int | None = None) -> FilenameRules:
        if max_length is not None and max_length < 1:
            raise ValueError(f"--filenames-max-length must be at least 1, not {max_length}")
        return cls("/" if unix else INVALID_FILENAME_CHARS, max_length or MAX_FILENAME_PART_LENGTH)


# Process-wide, as the A1111 flags they come from: extensions calling `modules.images` get them too.
_rules = FilenameRules()


def use_filename_rules(rules: FilenameRules) -> None:
    """Set by the App from its flags at start, and back to the defaults when it shuts down."""
    global _rules
    _rules = rules


def sanitize_filename_part(text: str, replace_spaces: bool = True, max_length: int | None = None) -> str:
    """Text made safe for a file name: no path separators, reserved (unless --unix-filenames-sanitization)
    or control characters, at most `max_length` (--filenames-max-length, 128) characters."""
    rules = _rules
    if replace_spaces:
        text = text.replace(" ", "_")
    text = "".join("_" if ch in rules.invalid_chars or ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    return text.lstrip(" ")[: max_length or rules.max_part_length].rstrip(" .")


def prompt_words(prompt: str, max_words: int = MAX_PROMPT_WORDS) -> str:
    words = [w for w in RE_NONLETTERS.split(prompt) if w] or ["empty"]
    return sanitize_filename_part(" ".join(words[:max_words]), replace_spaces=False)


def apply_filename_pattern(
    pattern: str,
    *,
    seed: int | None = None,
    prompt: str = "",
    when: dt.datetime | None = None,
    fields: Mapping[str, object] | None = None,
) -> str:
    """Expand A1111 filename tokens: [seed], [prompt], [prompt_spaces], [prompt_words], [date],
    [datetime], and any key of `fields` (e.g. [steps], [model_name]); unknown tokens stay as written."""
    when = when or dt.datetime.now()
    values: dict[str, object | None] = {
        "seed": seed,
        "prompt": sanitize_filename_part(prompt),
        "prompt_spaces": sanitize_filename_part(prompt, replace_spaces=False),
        "prompt_words": prompt_words(prompt),
        "date": when.strftime("%Y-%m-%d"),
        "datetime": when.strftime("%Y%m%d%H%M%S"),
    }
    values.update(
        {k.lower(): sanitize_filename_part(str(v), replace_spaces=False) for k, v in (fields or {}).items()}
    )
    out = []
    for text, token in RE_PATTERN.findall(pattern):
        value = values.get(token.lower()) if token else None
        out.append(text + (str(value) if value is not None else (f"[{token}]" if token else "")))
    return sanitize_path_text("".join(out))


def sanitize_path_text(text: str) -> str:
    """Expanded pattern text made safe as a single path component."""
    return sanitize_filename_part(text, replace_spaces=False, max_length=10_000)


def default_filename_pattern(samples_filename_pattern: str, save_to_dirs: bool) -> str:
    """A1111's pattern when opt `samples_filename_pattern` is empty: [seed] in date folders, else seed and prompt."""
    if samples_filename_pattern:
        return samples_filename_pattern
    return "[seed]" if save_to_dirs else DEFAULT_PATTERN


def dated_dir(base: str | Path, when: dt.date | None = None) -> Path:
    """`base/YYYY-MM-DD` (A1111's default `[date]` subfolder)."""
    return Path(base) / (when or dt.date.today()).strftime("%Y-%m-%d")


def next_sequence_number(directory: str | Path, basename: str = "") -> int:
    """One past the highest leading counter among the files in `directory` (A1111's numbering)."""
    prefix = f"{basename}-" if basename else ""
    highest = -1
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(prefix):
            first = os.path.splitext(name[len(prefix) :])[0].split("-")[0]
            if first.isdigit():
                highest = max(highest, int(first))
    return highest + 1


def _truncate_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore").rstrip(" .")


def same_name_candidates(stem: str, ext: str, replace: bool = True) -> list[str]:
    """The names a file called `stem` may take: itself (replaced), or with opt
    `save_images_replace_action` "Add number suffix" the first free of `stem`, `stem-1`, `stem-2`..."""
    if replace:
        return [f"{stem}.{ext}"]
    return [f"{stem}.{ext}", *(f"{stem}-{n}.{ext}" for n in range(1, MAX_NUMBER_SUFFIX))]


def write_named(directory: Path, stem: str, ext: str, data: bytes, replace: bool = True) -> Path:
    """Write `data` as `directory/stem.ext`, replacing a file of that name or, with `replace` False,
    under the first free numbered name (A1111's `save_images_replace_action`)."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_unique(directory, same_name_candidates(stem, ext, replace), data, overwrite=replace)


def _candidate_names(
    directory: Path, basename: str, decoration: str, ext: str, add_number: bool, replace: bool = True
) -> list[str]:
    if not add_number and decoration:
        return same_name_candidates(decoration, ext, replace)
    start = next_sequence_number(directory, basename)
    suffix = f"-{decoration}" if decoration else ""
    counters = (f"{n:05}" if not basename else f"{basename}-{n:04}" for n in range(start, start + 500))
    return [f"{counter}{suffix}.{ext}" for counter in counters]


# --- encoding --------------------------------------------------------------------------------------


def _format_for(extension: str) -> tuple[str, str]:
    ext = extension.lower().lstrip(".")
    fmt = FORMATS.get(ext) or Image.registered_extensions().get("." + ext)
    Image.init()
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"unknown image format {extension!r}; use png, jpg or webp")
    return ext, fmt


def exif_with_comment(text: str) -> Image.Exif:
    """EXIF holding `text` as UserComment in the "unicode" encoding A1111 (piexif) writes and reads."""
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = EXIF_UNICODE_PREFIX + text.encode(
        "utf-16-be"
    )
    return exif


def _pnginfo(
    infotext: str | None, existing_info: Mapping[str, object] | None
) -> PngImagePlugin.PngInfo | None:
    items = {
        k: v for k, v in (existing_info or {}).items() if isinstance(v, str) and k not in IGNORED_INFO_KEYS
    }
    if infotext is not None:
        items["parameters"] = infotext
    if not items:
        return None
    info = PngImagePlugin.PngInfo()
    for key, value in items.items():
        info.add_text(key, value)  # falls back to iTXt for text outside latin-1
    return info


def encode_image(
    image: Image.Image,
    extension: str = "png",
    infotext: str | None = None,
    *,
    existing_info: Mapping[str, object] | None = None,
    quality: int = 80,
    lossless: bool = False,
) -> bytes:
    """The image file's bytes, with the infotext as PNG text `parameters` or EXIF UserComment (jpg/webp/avif).

    `quality` (opt `jpeg_quality`, 1-100) is that of jpg, avif and lossy webp; `lossless` (opt
    `webp_lossless`) makes webp lossless, as A1111."""
    ext, fmt = _format_for(extension)
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, format=fmt, pnginfo=_pnginfo(infotext, existing_info))
    elif fmt in ("JPEG", "WEBP", "AVIF"):
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        kwargs: dict[str, Any] = {"exif": exif_with_comment(infotext)} if infotext else {}
        if fmt == "WEBP":
            kwargs["lossless"] = bool(lossless)
        image.save(buf, format=fmt, quality=min(100, max(1, int(quality))), **kwargs)
    elif fmt == "GIF":
        image.save(buf, format=fmt, comment=infotext or "")
    else:
        image.save(buf, format=fmt)
    return buf.getvalue()


def encode_image_base64(
    image: Image.Image,
    infotext: str | None = None,
    extension: str = "png",
    quality: int = 80,
    lossless: bool = False,
) -> str:
    """Base64 text (no `data:` prefix, as A1111's API returns) of the encoded image."""
    data = encode_image(image, extension, infotext, quality=quality, lossless=lossless)
    return base64.b64encode(data).decode("ascii")


API_FORMATS = ("png", "jpg", "jpeg", "webp")  # what A1111's API encodes in (opt samples_format)


def encode_api_image(
    image: Image.Image,
    infotext: str | None,
    samples_format: str,
    settings: SaveSettings,
    existing_info: Mapping[str, object] | None = None,
) -> str:
    """An image as A1111's API returns it (`api.encode_pil_to_base64`): base64 in opt `samples_format`
    when that is png, jpg or webp (with opts `jpeg_quality` and `webp_lossless`), else PNG (A1111
    answers those with an error). A PNG keeps the text items of `existing_info`; jpg and webp hold
    the infotext (or that item's `parameters`) in EXIF."""
    ext = str(samples_format or "png").lower().lstrip(".")
    ext = ext if ext in API_FORMATS else "png"
    if infotext is None and ext != "png" and isinstance((existing_info or {}).get("parameters"), str):
        infotext = str((existing_info or {})["parameters"])
    data = encode_image(image, ext, infotext, existing_info=existing_info, **settings.encoding())
    return base64.b64encode(data).decode("ascii")


def encode_png_base64(image: Image.Image, infotext: str | None = None) -> str:
    return encode_image_base64(image, infotext, "png")


# --- saving ----------------------------------------------------------------------------------------


def save_image_file(
    image: Image.Image,
    directory: str | Path,
    *,
    seed: int | None,
    prompt: str,
    infotext: str | None,
    extension: str = "png",
    basename_prefix: str = "",
    pnginfo_enabled: bool = True,
    save_txt: bool = False,
    pattern: str | None = None,
    fields: Mapping[str, object] | None = None,
    add_number: bool = True,
    existing_info: Mapping[str, object] | None = None,
    settings: SaveSettings | None = None,
    when: dt.datetime | None = None,
    suffix: str = "",
) -> Path:
    """Save `image` as `directory/NNNNN-<pattern><suffix>.<ext>` and return its path.

    `pattern` defaults to `[seed]-[prompt_spaces]`; with `seed=None` the name is the counter alone.
    `basename_prefix` gives `prefix-NNNN-...` as A1111 does for grids. The infotext is embedded when
    `pnginfo_enabled` (opt `enable_pnginfo`) and also written to a `.txt` beside it with `save_txt`.
    `settings` give the quality, the name taken when `add_number` is off, and the .jpg copy of a large
    image (`SaveSettings`).
    """
    settings = settings or SaveSettings()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ext = fitting_extension(image, extension)
    text = infotext if pnginfo_enabled else None
    data = encode_image(image, ext, text, existing_info=existing_info, **settings.encoding())
    decoration = (
        ""
        if seed is None
        else apply_filename_pattern(
            pattern or DEFAULT_PATTERN, seed=seed, prompt=prompt, when=when, fields=fields
        )
    )
    room = MAX_FILENAME_BYTES - len(basename_prefix.encode()) - len(suffix.encode()) - 16
    decoration = _truncate_bytes(decoration, room) + sanitize_path_text(suffix)
    prefix = sanitize_path_text(basename_prefix)
    names = _candidate_names(directory, prefix, decoration, ext, add_number, settings.replace)
    overwrite = not add_number and bool(decoration) and settings.replace
    path = write_unique(directory, names, data, overwrite=overwrite)
    save_jpg_copy(image, path, len(data), text, settings)
    if save_txt and infotext:
        write_atomic(path.with_suffix(".txt"), infotext.encode("utf-8"))
    return path


def fitting_extension(image: Image.Image, extension: str) -> str:
    """`extension`, or png for a picture wider or taller than jpg (65535) or webp (16383) can hold."""
    ext, fmt = _format_for(extension)
    limit = MAX_SIDE.get(fmt)
    if limit is not None and max(image.size) > limit:
        log.warning("%dx%d is too large for %s; saving as PNG", image.width, image.height, ext)
        return "png"
    return ext


def save_jpg_copy(
    image: Image.Image, saved: Path, size: int, infotext: str | None, settings: SaveSettings
) -> Path | None:
    """A1111's `export_for_4chan`: when the file just saved is larger than `jpg_copy_over_mb` or a side
    is longer than `jpg_copy_side`, a .jpg copy beside it (scaled down to that side, infotext in its
    EXIF). A file that is a jpg already gets none (A1111 would write over it). Returns the copy's path."""
    if not settings.jpg_copy or saved.suffix.lower() in (".jpg", ".jpeg"):
        return None
    side = settings.jpg_copy_side
    oversize = max(image.size) > side
    if not oversize and size <= settings.jpg_copy_over_mb * 1024 * 1024:
        return None
    if oversize:
        scale = side / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        try:
            image = image.resize(target, Image.Resampling.LANCZOS)
        except ValueError:  # modes LANCZOS cannot resample (I;16)
            image = image.resize(target)
    data = encode_image(image, "jpg", infotext, quality=settings.quality)
    return write_named(saved.parent, saved.stem, "jpg", data, settings.replace)


# --- grids -----------------------------------------------------------------------------------------


def grid_rows(count: int, batch_size: int = 1, n_rows: int = -1, prevent_empty_spots: bool = False) -> int:
    """A1111's row count: opt `n_rows` if > 0, batch size if 0, else about sqrt(count)."""
    if n_rows > 0:
        rows = n_rows
    elif n_rows == 0:
        rows = batch_size
    elif prevent_empty_spots:
        rows = max(1, math.floor(math.sqrt(count)))
        while count % rows != 0:
            rows -= 1
    else:
        rows = max(1, round(math.sqrt(count)))
    return max(1, min(rows, count))


def image_grid(
    imgs: Sequence[Image.Image],
    batch_size: int = 1,
    rows: int | None = None,
    *,
    n_rows: int = -1,
    prevent_empty_spots: bool = False,
    background: str | tuple[int, int, int] = "black",
    layout: Callable[[list, int, int], tuple[list, int, int]] | None = None,
) -> Image.Image:
    """Images laid out row by row in cells of the largest image's size; smaller ones are centred.
    `layout(imgs, cols, rows)` may change the pictures and the grid's shape first (A1111's
    `on_image_grid` callbacks; `scripts.callbacks.grid_layout`)."""
    if not imgs:
        raise ValueError("image_grid needs at least one image")
    rows = (
        grid_rows(len(imgs), batch_size, n_rows, prevent_empty_spots)
        if rows is None
        else max(1, min(rows, len(imgs)))
    )
    cols = math.ceil(len(imgs) / rows)
    if layout is not None:
        imgs, cols, rows = _checked_layout(layout, list(imgs), cols, rows)
    w = max(img.width for img in imgs)
    h = max(img.height for img in imgs)
    grid = Image.new("RGB", (cols * w, rows * h), color=background)
    for i, img in enumerate(imgs):
        x = i % cols * w + (w - img.width) // 2
        y = i // cols * h + (h - img.height) // 2
        grid.paste(img, (x, y))
    return grid


def _checked_layout(
    layout: Callable[[list, int, int], tuple[list, int, int]], imgs: list, cols: int, rows: int
) -> tuple[list, int, int]:
    """The layout's pictures and shape, or the given ones where it left nothing usable (no picture, a
    count under 1 or one that is not a number)."""
    new_imgs, new_cols, new_rows = layout(imgs, cols, rows)
    pictures = [i for i in new_imgs if isinstance(i, Image.Image)]
    try:
        new_cols, new_rows = int(new_cols), int(new_rows)
    except (TypeError, ValueError):
        new_cols, new_rows = cols, rows
    if not pictures or new_cols < 1 or new_rows < 1 or new_cols * new_rows > 65536:
        log.warning(
            "An on_image_grid callback left no usable grid (%s x %s); the grid is drawn as it was",
            new_cols,
            new_rows,
        )
        return imgs, cols, rows
    return pictures, new_cols, new_rows


# --- reading ---------------------------------------------------------------------------------------


def decode_exif_comment(raw: bytes | str) -> str:
    """Text of an EXIF UserComment (unicode, ascii or undefined encoding)."""
    if isinstance(raw, str):
        return raw
    if raw.startswith(EXIF_UNICODE_PREFIX):
        body = raw[len(EXIF_UNICODE_PREFIX) :]
        little_endian = len(body) >= 2 and body[0] != 0 and body[1] == 0
        return body.decode("utf-16-le" if little_endian else "utf-16-be", errors="ignore")
    if raw.startswith(EXIF_ASCII_PREFIX):
        return raw[len(EXIF_ASCII_PREFIX) :].decode("ascii", errors="ignore")
    return (
        raw[8:].decode("utf-8", errors="ignore")
        if raw[:8] == b"\x00" * 8
        else raw.decode("utf-8", errors="ignore")
    )


def _exif_comment(image: Image.Image) -> str | None:
    try:
        raw = image.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
    except Exception:  # broken EXIF must not stop PNG Info from showing the rest
        return None
    text = decode_exif_comment(raw).rstrip("\x00") if raw else ""
    return text or None


def read_info_from_image(image: Image.Image) -> tuple[str | None, dict[str | tuple[int, int], object]]:
    """(infotext, other info items) as A1111's PNG Info shows them; NovelAI images are converted."""
    items = dict(image.info or {})
    infotext = items.pop("parameters", None)
    if "exif" in items:
        infotext = _exif_comment(image) or infotext
    elif "comment" in items:
        comment = items["comment"]
        infotext = comment.decode("utf-8", errors="ignore") if isinstance(comment, bytes) else comment
    for key in IGNORED_INFO_KEYS:
        items.pop(key, None)
    if items.get("Software") == "NovelAI":
        infotext = _novelai_infotext(image, items) or infotext
    return (str(infotext) if infotext else None), items


def read_infotext_from_image(image: Image.Image) -> str | None:
    return read_info_from_image(image)[0]


def _novelai_infotext(image: Image.Image, items: Mapping[str | tuple[int, int], object]) -> str | None:
    try:
        info = json.loads(str(items["Comment"]))
        sampler = NOVELAI_SAMPLERS.get(info["sampler"], "Euler a")
        return (
            f"{items['Description']}\nNegative prompt: {info['uc']}\n"
            f"Steps: {info['steps']}, Sampler: {sampler}, CFG scale: {info['scale']}, Seed: {info['seed']}, "
            f"Size: {image.width}x{image.height}, Clip skip: 2, ENSD: 31337"
        )
    except (KeyError, ValueError, TypeError):
        return None
