"""Finding upscaler model files and naming them as A1111 does, without loading any weights.

A1111 lists every file of models/ESRGAN, models/SwinIR, models/DAT and models/HAT under its file name
without the extension (`modelloader.friendly_name`), and knows the official Real-ESRGAN and DAT files
by their own names ("R-ESRGAN 4x+", "DAT x4", ...), shown when the setting `realesrgan_enabled_models`
/ `dat_enabled_models` selects them. Sumi lists only files that are present (it never downloads);
other files in models/RealESRGAN are listed by their file name too (A1111 skips them). The scale is
the folder's default (4), or the one in the name ("4x", "x2": A1111's regex for "Scale by"), and
becomes the model's own once it has been loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from modules.sumi.services.upscalers.entry import UpscalerEntry

MODEL_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin")
FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT")

# A1111's known files: file name -> (name shown, scale)
REALESRGAN_KNOWN: dict[str, tuple[str, int]] = {
    "realesr-general-x4v3.pth": ("R-ESRGAN General 4xV3", 4),
    "realesr-general-wdn-x4v3.pth": ("R-ESRGAN General WDN 4xV3", 4),
    "realesr-animevideov3.pth": ("R-ESRGAN AnimeVideo", 4),
    "RealESRGAN_x4plus.pth": ("R-ESRGAN 4x+", 4),
    "RealESRGAN_x4plus_anime_6B.pth": ("R-ESRGAN 4x+ Anime6B", 4),
    "RealESRGAN_x2plus.pth": ("R-ESRGAN 2x+", 2),
}
DAT_KNOWN: dict[str, tuple[str, int]] = {
    "DAT_x2.pth": ("DAT x2", 2),
    "DAT_x3.pth": ("DAT x3", 3),
    "DAT_x4.pth": ("DAT x4", 4),
}
KNOWN = {"RealESRGAN": REALESRGAN_KNOWN, "DAT": DAT_KNOWN}
_SCALE_IN_NAME = re.compile(r"(\d)[xX]|[xX](\d)")  # A1111's "set_scale_by_when_changing_upscaler"


def scale_from_name(name: str, default: float = 4.0) -> float:
    match = _SCALE_IN_NAME.search(name)
    if not match:
        return default
    value = int(match.group(1) or match.group(2))
    return float(value) if value > 0 else default


def model_files(folder: Path) -> list[Path]:
    """Model files under `folder`, recursively, sorted by their path (hidden folders skipped)."""
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in MODEL_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: str(p.relative_to(folder)).lower())


def scan(
    folders: Sequence[tuple[str, Sequence[Path]]],
    enabled_known: Iterable[str] | None = None,
) -> list[UpscalerEntry]:
    """One entry per model file of each (kind, folders) pair, sorted by name as A1111 sorts
    `shared.sd_upscalers`. `enabled_known`: the known names to show (None: all)."""
    enabled = None if enabled_known is None else set(enabled_known)
    entries: list[UpscalerEntry] = []
    seen_paths: set[Path] = set()
    for kind, dirs in folders:
        for folder in dict.fromkeys(dirs):
            for path in model_files(folder):
                real = path.resolve()
                if real in seen_paths:
                    continue
                seen_paths.add(real)
                entry = _entry(kind, folder, path, enabled)
                if entry is not None:
                    entries.append(entry)
    return _unique_names(sorted(entries, key=lambda e: e.name.lower()))


def _entry(kind: str, folder: Path, path: Path, enabled: set[str] | None) -> UpscalerEntry | None:
    known = KNOWN.get(kind, {}).get(path.name)
    if known is not None:
        name, scale = known
        if enabled is not None and name not in enabled:
            return None
        return UpscalerEntry(name, "model", path, float(scale), kind)
    return UpscalerEntry(path.stem, "model", path, scale_from_name(path.stem), kind)


def _unique_names(entries: list[UpscalerEntry]) -> list[UpscalerEntry]:
    """Two files with the same name (in different sub-folders or folders): the later ones are named
    by their folder too ("ESRGAN/sub/4x-Foo"), so each name picks one file."""
    out: list[UpscalerEntry] = []
    taken: set[str] = {"none", "lanczos", "nearest"}
    for entry in entries:
        name = entry.name
        if name.lower() in taken and entry.path is not None:
            name = f"{entry.folder}/{entry.path.parent.name}/{entry.path.stem}"
            if name.lower() in taken:
                name = f"{entry.folder}:{entry.path}"
        taken.add(name.lower())
        out.append(
            entry
            if name == entry.name
            else UpscalerEntry(name, entry.kind, entry.path, entry.scale, entry.folder)
        )
    return out
