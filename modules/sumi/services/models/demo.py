"""A tiny random-weight SD1-family checkpoint, so a fresh install runs end to end with no download.

Its images are noise; it exists to show every part of the app working until the user adds a real
checkpoint. It is written in the real A1111 single-file layout and loaded through the normal path.
"""

from __future__ import annotations

from pathlib import Path

from modules.sumi.engine.tiny_models import demo_sd1, write_checkpoint
from modules.sumi.util.atomic import temp_beside

DEMO_NAME = "sumi-demo-tiny-random.safetensors"


def create_demo_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Write the demo checkpoint into `folder` (once) and return its path."""
    path = Path(folder) / DEMO_NAME
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    components = demo_sd1(seed)
    with temp_beside(path, suffix=".tmp.safetensors") as tmp:
        metadata = {"sumi_demo": "true", "description": "tiny random weights: images are noise"}
        write_checkpoint(tmp, components, metadata=metadata)
        tmp.replace(path)
    return path
