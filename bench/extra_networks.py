"""The Lora tab of a big library: N LoRA files in 20 folders, each with a Civitai-sized preview picture.

Times what the server does for the tab's cards with an empty search (every card shown), the first time
(no thumbnail made yet) and again, the size of the cards' HTML, and what the browser then asks for: the
thumbnails of the cards on the first screen (30), made and sent one by one.

    python bench/extra_networks.py [--loras 10000] [--side 768]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from modules.sumi.frontends.gradio import extra_networks as en  # noqa: E402
from modules.sumi.services.files import thumbnails  # noqa: E402
from modules.sumi.services.networks.files import LORA_EXTENSIONS, NetworkFileRegistry  # noqa: E402

FOLDERS = 20
FIRST_SCREEN = 30
EMPTY_SAFETENSORS = (8).to_bytes(8, "little") + b"{}      "  # a header and no tensors


def write_library(root: Path, count: int, side: int) -> NetworkFileRegistry:
    """`count` LoRA files (a few bytes: the cards never open them) with a `side`-pixel preview each."""
    picture = io.BytesIO()
    Image.radial_gradient("L").resize((side, side * 4 // 3)).convert("RGB").save(picture, "PNG")
    for i in range(count):
        folder = root / f"set_{i % FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"lora_{i:05d}.safetensors").write_bytes(EMPTY_SAFETENSORS)
        (folder / f"lora_{i:05d}.preview.png").write_bytes(picture.getvalue())
    registry = NetworkFileRegistry([root], LORA_EXTENSIONS)
    registry.refresh()
    return registry


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loras", type=int, default=10_000)
    parser.add_argument("--side", type=int, default=768, help="preview width in pixels (height 4/3 of it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = SimpleNamespace(loras=write_library(Path(folder), args.loras, args.side))
        thumbnails.clear_thumbnails()
        page, cold = timed(lambda: en.render_tab(app, "lora"))
        again, warm = timed(lambda: en.render_tab(app, "lora"))
        print(f"{args.loras} LoRAs with {args.side}x{args.side * 4 // 3} previews, empty search")
        print(f"  cards, first time: {cold:.2f} s; again: {warm:.2f} s; HTML {len(page) / 1e6:.1f} MB")
        shown = [info.path for info in app.loras.list()[:FIRST_SCREEN]]
        previews = [en.find_preview(p) for p in shown]
        sent, made = timed(lambda: [thumbnails.thumbnail_jpeg(p) for p in previews if p is not None])
        size = sum(map(len, sent)) / 1e3
        print(f"  first screen: {len(sent)} thumbnails made in {made:.2f} s, {size:.0f} KB sent")


if __name__ == "__main__":
    main()
