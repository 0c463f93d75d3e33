"""The demo model: a small SD1-family checkpoint Sumi trained itself (tools/demo_model), so a fresh install
draws what the prompt says with no download.

It draws one coloured shape (circle, square, triangle, star) at a position on a plain background, at
128x128: "a red star on the left, blue background". It ships with Sumi and is copied into the first
checkpoint folder when that has no checkpoint, then loads through the normal path like any user's file.
Its canny ControlNet (also trained by Sumi) is copied into the ControlNet folder beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from modules.sumi.util.atomic import temp_beside

DEMO_NAME = "sumi-demo-shapes.safetensors"
SHIPPED_DEMO = Path(__file__).resolve().parents[2] / "assets" / DEMO_NAME
DEMO_SIZE = 128  # the side it was trained at (its metadata's modelspec.resolution)
DEMO_CONTROLNET_NAME = "control_sumi-demo_canny.safetensors"
SHIPPED_DEMO_CONTROLNET = SHIPPED_DEMO.with_name(DEMO_CONTROLNET_NAME)
OLD_RANDOM_DEMO = "sumi-demo-tiny-random.safetensors"  # what Sumi made before: random weights, noise
EXAMPLE_PROMPT = "a red star on the left, blue background"


def create_demo_checkpoint(folder: Path) -> Path:
    """Copy the demo checkpoint into `folder` (once) and return its path."""
    return _install(SHIPPED_DEMO, Path(folder))


def create_demo_controlnet(folder: Path) -> Path:
    """Copy the demo's canny ControlNet into `folder` (once) and return its path."""
    return _install(SHIPPED_DEMO_CONTROLNET, Path(folder))


def _install(shipped: Path, folder: Path) -> Path:
    path = folder / shipped.name
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with temp_beside(path, suffix=".tmp.safetensors") as tmp:
        shutil.copyfile(shipped, tmp)
        tmp.replace(path)
    return path


def is_only_the_old_demo(files: list[Path]) -> bool:
    """True when the folder's only checkpoint is the random demo an older Sumi made (replaced by this one)."""
    return len(files) == 1 and files[0].name == OLD_RANDOM_DEMO
