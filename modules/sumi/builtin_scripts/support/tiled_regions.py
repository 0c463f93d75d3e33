"""Tiled Diffusion's region prompt control as the extension's args carry it: after its 21 args come
`MAX_REGIONS` groups of ten (enable, x, y, w, h, prompt, negative prompt, type, feather, seed); reading
them into engine regions with clear errors, writing them into the infotext as the extension does, the
picture of the regions over the canvas the UI shows, and the extension's region config files
(`region_configs/NAME.json`: `{"bbox_controls": [{...}, ...]}`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from modules.sumi.builtin_scripts.support.img2img import number, switched_on
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.tiled_regions import BLEND_MODES, Region
from modules.sumi.services.jobs.processing import get_fixed_seed
from modules.sumi.services.networks.registry import parse_prompt
from modules.sumi.services.settings.limits import MAX_SEED
from modules.sumi.util.atomic import is_plain_file_name, save_atomic

MAX_REGIONS = 8  # the regions the UI shows: the extension's default (--md-max-regions)
MOST_REGIONS = 16  # enabled regions a job may have: the extension's ceiling
FIELDS: tuple[str, ...] = (
    "enable",
    "x",
    "y",
    "w",
    "h",
    "prompt",
    "neg_prompt",
    "blend_mode",
    "feather_ratio",
    "seed",
)
DEFAULT = (False, 0.4, 0.4, 0.2, 0.2, "", "", "Background", 0.2, -1)
COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")


def read_regions(values: list[Any], title: str) -> list[tuple[int, Region]]:
    """The enabled regions (number from 1, region) of the args' groups; seeds of -1 drawn now. More
    than `MOST_REGIONS` enabled is refused (each costs a UNet call per step)."""
    found = []
    for start in range(0, len(values) - len(values) % len(FIELDS), len(FIELDS)):
        group = dict(zip(FIELDS, values[start : start + len(FIELDS)], strict=True))
        if switched_on(group["enable"]):
            number_ = start // len(FIELDS) + 1
            found.append((number_, _region(group, f"{title}: Region {number_}")))
            if len(found) > MOST_REGIONS:
                raise InvalidRequestError(f"{title}: at most {MOST_REGIONS} regions can be enabled")
    return found


def _region(group: dict[str, Any], where: str) -> Region:
    x, y = number(group["x"], "x", where, 0.0, 1.0), number(group["y"], "y", where, 0.0, 1.0)
    w, h = number(group["w"], "w", where, 0.0, 1.0), number(group["h"], "h", where, 0.0, 1.0)
    if w <= 0 or h <= 0 or x >= 1 or y >= 1:
        raise InvalidRequestError(
            f"{where} lies outside the canvas or has no size (x={x}, y={y}, w={w}, h={h})"
        )
    texts = [str(group[key] or "") for key in ("prompt", "neg_prompt")]
    for text in texts:
        _check_text(text, where)
    mode = str(group["blend_mode"] or "Background")
    if mode not in BLEND_MODES:
        raise InvalidRequestError(f"{where}: type {mode!r} is not one of {', '.join(BLEND_MODES)}")
    feather = number(
        group["feather_ratio"] if group["feather_ratio"] is not None else 0.2, "feather", where, 0, 1
    )
    try:
        seed = int(float(group["seed"])) if group["seed"] not in (None, "") else -1
    except (TypeError, ValueError, OverflowError):
        raise InvalidRequestError(f"{where}: seed must be a whole number, got {group['seed']!r}") from None
    if not -1 <= seed <= MAX_SEED:
        raise InvalidRequestError(f"{where}: seed must be -1 (random) or from 0 to {MAX_SEED}, got {seed}")
    return Region(x, y, w, h, texts[0], texts[1], mode, feather, get_fixed_seed(seed))


def _check_text(text: str, where: str) -> None:
    """Region texts are appended to the batch's encoded prompts: networks and AND cannot act there."""
    stripped, networks = parse_prompt(text)
    if any(networks.values()):
        raise InvalidRequestError(
            f"{where}: extra networks (<lora:...>, <hypernet:...>) cannot act on one region; "
            "put them in the main prompt"
        )
    if " AND " in f" {stripped} ":
        raise InvalidRequestError(
            f"{where}: a region prompt cannot use AND; the main prompt's AND parts carry it"
        )


def _backdrop(picture: Image.Image, width: float, height: float) -> str:
    """The picture, shrunk to the preview, as an SVG image (JPEG data URL)."""
    small = picture.convert("RGB")
    small.thumbnail((int(width), int(height) + 1))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=75)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<image href="data:image/jpeg;base64,{data}" width="{width:.0f}" height="{height:.0f}" '
        'preserveAspectRatio="none" opacity="0.8" />'
    )


def infotext(regions: list[tuple[int, Region]], draw_background: bool) -> dict[str, Any]:
    """The extension's "Region control" entry (with the seeds drawn), and whether the background is drawn."""
    return {
        "Region control": {
            f"Region {number_}": {
                "enable": True,
                "x": r.x,
                "y": r.y,
                "w": r.width,
                "h": r.height,
                "prompt": r.prompt,
                "neg_prompt": r.negative_prompt,
                "blend_mode": r.blend_mode,
                "feather_ratio": r.feather,
                "seed": r.seed,
            }
            for number_, r in regions
        },
        "Draw background": draw_background,
    }


def preview_svg(values: list[Any], width: float, height: float, picture: Image.Image | None = None) -> str:
    """The enabled regions of the UI's groups as numbered boxes over a width x height canvas (dashed:
    foreground), or over `picture` (img2img: its shape, and the picture itself beneath); a region that
    cannot be read is named instead."""
    if picture is not None:
        width, height = picture.size
    width, height = max(float(width or 0), 8.0), max(float(height or 0), 8.0)
    view_w = 480.0
    view_h = view_w * height / width
    shapes = [] if picture is None else [_backdrop(picture, view_w, view_h)]
    for start in range(0, len(values) - len(values) % len(FIELDS), len(FIELDS)):
        group = dict(zip(FIELDS, values[start : start + len(FIELDS)], strict=True))
        if not switched_on(group["enable"]):
            continue
        index = start // len(FIELDS)
        try:
            region = _region({**group, "seed": 0}, f"Region {index + 1}")
        except InvalidRequestError as exc:
            return f'<p class="error">{html.escape(str(exc))}</p>'
        colour = COLOURS[index % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if region.foreground else ""
        x, y = region.x * view_w, region.y * view_h
        w, h = min(region.width * view_w, view_w - x), min(region.height * view_h, view_h - y)
        label = html.escape(f"{index + 1}: {region.prompt or '(main prompt)'}"[:60])
        where = (  # the region's own fractions, for moving and resizing it by drag (tiledRegions.js)
            f'data-region="{index}" data-x="{region.x:.4f}" data-y="{region.y:.4f}" '
            f'data-w="{region.width:.4f}" data-h="{region.height:.4f}"'
        )
        shapes.append(
            f'<rect class="md-region" {where} x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="{colour}33" stroke="{colour}" stroke-width="2"{dash}><title>{label}</title></rect>'
            f'<text x="{x + 4:.1f}" y="{y + 14:.1f}" font-size="12" fill="{colour}" pointer-events="none">'
            f"{index + 1}</text>"
        )
    return (
        f'<svg class="md-region-preview" viewBox="0 0 {view_w:.0f} {view_h:.0f}" width="100%" role="img" '
        f'aria-label="regions over the canvas" style="max-height:360px;cursor:crosshair;touch-action:none">'
        f'<rect width="{view_w:.0f}" height="{view_h:.0f}" fill="#8882" stroke="#888" />{"".join(shapes)}</svg>'
    )


def save_config(folder: Path, name: str, values: list[Any]) -> str:
    """The enabled regions of the UI's groups into `folder/name` as the extension's JSON; what happened."""
    path = _config_path(folder, name)
    groups = [
        dict(zip(FIELDS, values[i : i + len(FIELDS)], strict=True))
        for i in range(0, len(values), len(FIELDS))
    ]
    kept = [g for g in groups if switched_on(g["enable"])]
    for number_, group in enumerate(kept, 1):
        _region({**group, "seed": 0}, f"Region {number_}")  # refuse what a job would refuse
    text = json.dumps({"bbox_controls": kept}, indent=2, ensure_ascii=False)
    folder.mkdir(parents=True, exist_ok=True)
    save_atomic(path, lambda target: Path(target).write_text(text, encoding="utf-8"))
    return f"Saved {len(kept)} region(s) to {path.name}"


def load_config(folders: list[Path], name: str) -> tuple[list[Any], str]:
    """The UI's groups from the first `folder/name` that exists: its regions in order, the rest default
    (the extension's Load), and what happened; ValueError saying what is wrong."""
    for folder in folders:
        path = _config_path(folder, name)
        if path.is_file():
            break
    else:
        raise ValueError(f"no region config {name!r} in {', '.join(str(f) for f in folders)}")
    try:
        regions = json.loads(path.read_text(encoding="utf-8"))["bbox_controls"]
        if not isinstance(regions, list) or not all(isinstance(r, dict) for r in regions):
            raise TypeError("bbox_controls is not a list of regions")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path.name} is not a region config: {exc}") from None
    values: list[Any] = []
    for index in range(MAX_REGIONS):
        region = regions[index] if index < len(regions) else {}
        values += [region.get(field, default) for field, default in zip(FIELDS, DEFAULT, strict=True)]
    left = (
        f"; the {len(regions) - MAX_REGIONS} after the first {MAX_REGIONS} were left out"
        if len(regions) > MAX_REGIONS
        else ""
    )
    return values, f"Loaded {min(len(regions), MAX_REGIONS)} region(s) from {path}{left}"


def _config_path(folder: Path, name: str) -> Path:
    name = (name or "").strip()
    if not is_plain_file_name(name):
        raise ValueError(f"{name!r} is not a plain file name")
    return folder / (name if name.lower().endswith(".json") else name + ".json")
