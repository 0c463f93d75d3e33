"""Check Sumi's OneFormer (seg_ofade20k / seg_ofcoco) against sd-webui-controlnet's own detectron2 code.

The extension's OneFormer runs on its bundled detectron2 copy (`annotator/oneformer/detectron2`), which
needs `addict`, `yapf`, `fvcore`, `iopath`, `omegaconf` and `pycocotools` (pip install them into a scratch
environment, not Sumi's); torchvision is imported only for helpers this path does not call, so a
stand-in takes its place. Use a copy of the extension: the package `__init__` that reads the webui's
paths is blanked.

    python tools/annotator_reference/oneformer.py compare /path/to/copy-of-sd-webui-controlnet ade20k|coco

builds the published Swin-L network with random weights, saves it as the published checkpoint, and prints
the largest difference between the class scores both compute for two pictures. Run on 2026-12-05 against
sd-webui-controlnet's main: ADE20K 0.0008 of 179, COCO 0.0006 of 150 (float32 rounding).

    python tools/annotator_reference/oneformer.py fixture /path/to/copy-of-sd-webui-controlnet

writes the fixture `tests/engine/test_controlnet_oneformer.py` reads (see `tests/fixtures/tiny_oneformer.py`):
the small ADE20K-shaped network's tensor layout as the extension builds it, the extension's class map and
best scores for the test's picture with the seeded values, and the published Swin-L network's layout.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

SUMI = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SUMI))

from tests.fixtures.tiny_annotators import edge_photo  # noqa: E402
from tests.fixtures.tiny_oneformer import EXPECTED, LAYOUT, PUBLISHED_LAYOUT, fill, picture  # noqa: E402

CONFIGS = {
    "ade20k": "ade20k/oneformer_swin_large_IN21k_384_bs16_160k.yaml",
    "coco": "coco/oneformer_swin_large_IN21k_384_bs16_100ep.yaml",
}
# the fixture's network: the ADE20K config, narrow and shallow (widths, depths and counts as in the test)
TINY = {
    "MODEL.SWIN.EMBED_DIM": 16,
    "MODEL.SWIN.DEPTHS": [1, 1, 2, 1],
    "MODEL.SWIN.NUM_HEADS": [1, 2, 2, 4],
    "MODEL.SWIN.WINDOW_SIZE": 4,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 32,
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 32,
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 1,
    "MODEL.ONE_FORMER.HIDDEN_DIM": 32,
    "MODEL.ONE_FORMER.DIM_FEEDFORWARD": 48,
    "MODEL.ONE_FORMER.DEC_LAYERS": 3,
    "MODEL.ONE_FORMER.CLASS_DEC_LAYERS": 1,
    "MODEL.ONE_FORMER.NUM_OBJECT_QUERIES": 12,
}


def _stand_ins() -> None:
    """torchvision and timm as far as the extension's detectron2 imports them (nothing OneFormer calls)."""

    def unavailable(*_args, **_kwargs):
        raise RuntimeError("torchvision stand-in")

    class _Anything(types.ModuleType):
        def __getattr__(self, name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return unavailable

    vision = types.ModuleType("torchvision")
    vision.__path__ = []
    vision.__version__ = "0.28.0"  # type: ignore[attr-defined]
    sys.modules["torchvision"] = vision
    for name in ("ops", "transforms", "models", "utils", "io", "datasets"):
        module = _Anything(f"torchvision.{name}")
        module.__path__ = []
        sys.modules[module.__name__] = module
        setattr(vision, name, module)
    for name in ("ops.boxes", "ops.misc", "transforms.functional", "models.resnet", "transforms.v2"):
        sys.modules[f"torchvision.{name}"] = _Anything(f"torchvision.{name}")
    layers = types.ModuleType("timm.models.layers")  # timm's own import reaches for torchvision
    layers.DropPath = lambda *_a, **_k: torch.nn.Identity()  # type: ignore[attr-defined]
    layers.to_2tuple = lambda x: x if isinstance(x, tuple) else (x, x)  # type: ignore[attr-defined]
    layers.trunc_normal_ = lambda t, std=1.0: torch.nn.init.normal_(t, std=std)  # type: ignore[attr-defined]
    for name in ("timm", "timm.models"):
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].__path__ = []  # type: ignore[attr-defined]
    sys.modules["timm.models.layers"] = layers
    from PIL import Image

    Image.LINEAR, Image.CUBIC, Image.ANTIALIAS = Image.BILINEAR, Image.BICUBIC, Image.LANCZOS  # type: ignore[attr-defined]


def _extension_model(extension: Path, dataset: str, overrides: dict):
    """The extension's OneFormer (eval mode, with the fixture's seeded values) and its predictor."""
    oneformer = importlib.import_module("annotator.oneformer.oneformer")
    config = importlib.import_module("annotator.oneformer.detectron2.config")
    deeplab = importlib.import_module("annotator.oneformer.detectron2.projects.deeplab")
    modeling = importlib.import_module("annotator.oneformer.detectron2.modeling")
    transforms = importlib.import_module("annotator.oneformer.detectron2.data.transforms")
    cfg = config.get_cfg()
    for add in (deeplab.add_deeplab_config, oneformer.add_common_config, oneformer.add_swin_config):
        add(cfg)
    oneformer.add_oneformer_config(cfg)
    oneformer.add_dinat_config(cfg)
    cfg.merge_from_file(str(extension / "annotator" / "oneformer" / "configs" / CONFIGS[dataset]))
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    model = modeling.build_model(cfg).eval()
    values = fill({name: [list(v.shape), str(v.dtype)] for name, v in model.state_dict().items()})
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                value.copy_(values[name])
    predictor = importlib.import_module("annotator.oneformer.oneformer.demo.defaults").DefaultPredictor
    run = predictor.__new__(predictor)
    run.cfg, run.model, run.input_format = cfg, model, cfg.INPUT.FORMAT
    run.aug = transforms.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    return model, run


def _their_scores(predictor, picture: np.ndarray) -> torch.Tensor:
    """As the extension's semantic_run calls it: a BGR picture, the task "semantic"."""
    with torch.no_grad():
        return predictor(picture[:, :, ::-1], "semantic")["sem_seg"]


def _prepare(extension: Path) -> None:
    # transformers first: it looks torchvision up by its spec, which the stand-in lacks
    importlib.import_module("modules.sumi.engine.controlnet.annotators.oneformer")
    _stand_ins()
    sys.path.insert(0, str(extension))
    (extension / "annotator" / "oneformer" / "__init__.py").write_text("")  # it reads the webui's paths


def compare(extension: Path, dataset: str, scratch: Path) -> None:
    """The published network's class scores, Sumi's and the extension's, on two pictures."""
    from modules.sumi.engine.controlnet.annotators import oneformer

    model, predictor = _extension_model(extension, dataset, {})
    path = scratch / "oneformer.pth"
    torch.save({"model": model.state_dict(), "iteration": 1}, path)
    ours = oneformer.load_oneformer(path)
    spec = oneformer.ADE20K if dataset == "ade20k" else oneformer.COCO
    for height, width in ((512, 640), (300, 200)):
        photo = edge_photo(height, width)
        theirs = _their_scores(predictor, photo)
        scores = oneformer.semantic_scores(ours, photo, torch.device("cpu"), spec)
        print(
            (height, width),
            f"largest difference {(scores - theirs).abs().max():.6f} of {theirs.abs().max():.1f}",
        )


def _layout(model) -> dict[str, list]:
    return {name: [list(value.shape), str(value.dtype)] for name, value in model.state_dict().items()}


def fixture(extension: Path) -> None:
    """The small network's layout and the extension's answer for the test's picture, and the published
    Swin-L network's layout (tests/fixtures/reference)."""
    published, _ = _extension_model(extension, "ade20k", {})
    PUBLISHED_LAYOUT.write_text(json.dumps(_layout(published), indent=0) + "\n")
    del published
    model, predictor = _extension_model(extension, "ade20k", TINY)
    LAYOUT.write_text(json.dumps(_layout(model), indent=0) + "\n")
    theirs = _their_scores(predictor, picture())
    best, classes = theirs.max(dim=0)
    np.savez_compressed(EXPECTED, classes=classes.numpy().astype(np.uint8), best=best.numpy())
    print("classes drawn:", np.unique(classes.numpy()).tolist())


if __name__ == "__main__":
    import tempfile

    command, extension_dir = sys.argv[1], Path(sys.argv[2]).resolve()
    _prepare(extension_dir)
    if command == "compare":
        with tempfile.TemporaryDirectory() as scratch_dir:
            compare(extension_dir, sys.argv[3], Path(scratch_dir))
    else:
        fixture(extension_dir)
