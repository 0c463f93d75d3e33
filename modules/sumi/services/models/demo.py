"""The demo model: a small SD1-family checkpoint Sumi trained itself (tools/demo_model), so a fresh install
draws what the prompt says with no download.

It draws one coloured shape (circle, square, triangle, star) at a position on a plain background, at
128x128: "a red star on the left, blue background". It ships with Sumi and is copied into the first
checkpoint folder when that has no checkpoint, then loads through the normal path like any user's file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from modules.sumi.util.atomic import temp_beside

DEMO_NAME = "sumi-demo-shapes.safetensors"
SHIPPED_DEMO = Path(__file__).resolve().parents[2] / "assets" / DEMO_NAME
DEMO_SIZE = 128  # the side it was trained at (its metadata's modelspec.resolution)
OLD_RANDOM_DEMO = "sumi-demo-tiny-random.safetensors"  # what Sumi made before: random weights, noise
EXAMPLE_PROMPT = "a red star on the left, blue background"


def create_demo_checkpoint(folder: Path) -> Path:
    """Copy the demo checkpoint into `folder` (once) and return its path."""
    path = Path(folder) / DEMO_NAME
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with temp_beside(path, suffix=".tmp.safetensors") as tmp:
        shutil.copyfile(SHIPPED_DEMO, tmp)
        tmp.replace(path)
    return path


def is_only_the_old_demo(files: list[Path]) -> bool:
    """True when the folder's only checkpoint is the random demo an older Sumi made (replaced by this one)."""
    return len(files) == 1 and files[0].name == OLD_RANDOM_DEMO
