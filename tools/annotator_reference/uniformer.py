"""Compare Sumi's seg_ufade20k with sd-webui-controlnet's own UniFormer code on one random full-size file.

The extension's annotator runs on its bundled mmcv/mmseg copy (`annotator/mmpkg`), which needs `addict`
and `yapf` (pip install them into a scratch environment, not Sumi's). torchvision and timm are only
imported for helpers the UniFormer path does not call, so small stand-ins take their place here.

    python tools/annotator_reference/uniformer.py /path/to/sd-webui-controlnet

prints, for a few picture sizes, the share of pixels whose colour both draw alike (1.00000 = all).
Run on 2026-12-05 against sd-webui-controlnet's main: 1.00000 for 512x640, 256x320 and 640x2400.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

SUMI = Path(__file__).resolve().parents[2]


def _stand_ins() -> None:
    """torchvision and timm.models.layers as far as the extension's UniFormer imports them."""
    vision = types.ModuleType("torchvision")
    vision.__path__ = []
    for name in ("models", "transforms", "ops", "utils", "datasets", "io"):
        sys.modules[f"torchvision.{name}"] = types.ModuleType(f"torchvision.{name}")
    sys.modules["torchvision"] = vision
    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = lambda *_a, **_k: nn.Identity()  # type: ignore[attr-defined]
    layers.to_2tuple = lambda x: x if isinstance(x, tuple) else (x, x)  # type: ignore[attr-defined]
    layers.trunc_normal_ = lambda t, std=1.0: nn.init.normal_(t, std=std)  # type: ignore[attr-defined]
    for name in ("timm", "timm.models"):
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].__path__ = []  # type: ignore[attr-defined]
    sys.modules["timm.models.layers"] = layers


def _randomised(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(1)
    for key, value in model.state_dict().items():
        if key.endswith("running_var"):
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
        elif key.endswith("running_mean"):
            value.copy_(torch.randn(value.shape, generator=generator) * 0.1)


def _picture(height: int, width: int) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width]
    picture = np.stack([columns * 255 // width, rows * 255 // height, (rows + columns) % 97 * 2], -1)
    picture[height // 4 : height // 2, width // 3 : width // 2] = (200, 30, 60)
    return picture.astype(np.uint8)


def main(extension: Path, scratch: Path) -> None:
    _stand_ins()
    sys.path[:0] = [str(extension), str(SUMI)]
    (extension / "annotator" / "uniformer" / "__init__.py").write_text("")  # it reads the webui's paths
    get_palette = importlib.import_module("annotator.mmpkg.mmseg.core.evaluation").get_palette
    importlib.import_module("annotator.uniformer.uniformer")  # registers the backbone with mmseg
    inference = importlib.import_module("annotator.uniformer.inference")

    from modules.sumi.engine.controlnet.annotators.uniformer import ade20k_segments, load_uniformer

    torch.manual_seed(0)
    config = extension / "annotator" / "uniformer" / "upernet_global_small.py"
    theirs = inference.init_segmentor(str(config), None, device="cpu")
    _randomised(theirs)
    theirs.CLASSES, theirs.PALETTE = tuple(range(150)), get_palette("ade")  # what the file's meta gives it
    path = scratch / "upernet_global_small.pth"
    torch.save({"meta": {"CLASSES": tuple(range(150))}, "state_dict": theirs.state_dict()}, path)
    ours = load_uniformer(path)
    for height, width in ((512, 640), (256, 320), (640, 2400)):
        picture = _picture(height, width)
        result = inference.inference_segmentor(theirs, picture)
        expected = inference.show_result_pyplot(theirs, picture, result, get_palette("ade"), opacity=1)
        drawn = ade20k_segments(ours, picture, torch.device("cpu"))
        print((height, width), f"same pixels {(expected == drawn).all(-1).mean():.5f}")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        main(Path(sys.argv[1]).resolve(), Path(scratch))
