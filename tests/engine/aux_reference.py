"""controlnet-aux (0.0.10) as the annotator tests' reference: its network modules loaded without the
package's `__init__`, which imports every annotator and their extra dependencies (torchvision, timm,
mediapipe...). controlnet-aux comes from requirements-test-nodeps.txt (installed with --no-deps)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from functools import cache

PACKAGE = "controlnet_aux"


@cache
def aux_module(name: str) -> types.ModuleType:
    """`controlnet_aux.<name>` (e.g. "hed", "util"), imported under a bare stand-in package."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "controlnet-aux is not installed: pip install --no-deps -r requirements-test-nodeps.txt"
            )
        package = types.ModuleType(PACKAGE)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{name}")


class _ToTensor:
    """torchvision's ToTensor for an HxWxC array: CHW, uint8 scaled to 0..1, floats as they are."""

    def __call__(self, picture):
        import torch

        tensor = torch.from_numpy(picture.transpose((2, 0, 1))).contiguous()
        return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor


class _Normalize:
    """torchvision's Normalize: (x - mean) / std per channel, in the tensor's type."""

    def __init__(self, mean, std) -> None:
        self.mean, self.std = mean, std

    def __call__(self, tensor):
        import torch

        mean = torch.as_tensor(self.mean, dtype=tensor.dtype).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype).view(-1, 1, 1)
        return tensor.clone().sub_(mean).div_(std)


class _Compose:
    def __init__(self, steps) -> None:
        self.steps = steps

    def __call__(self, value):
        for step in self.steps:
            value = step(value)
        return value


@contextlib.contextmanager
def _torchvision_stand_in():
    """controlnet-aux's openpose face, normalbae and leres modules import torchvision's transforms at
    import time (only LeReS calls them: ToTensor and Normalize, whose exact steps the stand-ins take);
    PyPI's torchvision does not load against the CPU torch, so a stand-in answers that import and is
    removed again at once (nothing else sees it)."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    vision, transforms = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    transforms.ToPILImage = object  # type: ignore[attr-defined]
    transforms.ToTensor, transforms.Normalize, transforms.Compose = _ToTensor, _Normalize, _Compose  # type: ignore[attr-defined]
    transforms.transforms = transforms  # type: ignore[attr-defined]  # `from torchvision.transforms import transforms`
    vision.transforms = transforms  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": vision, "torchvision.transforms": transforms})
    try:
        yield
    finally:
        del sys.modules["torchvision"], sys.modules["torchvision.transforms"]


@cache
def aux_module_without_torchvision(name: str) -> types.ModuleType:
    """`controlnet_aux.<name>` for modules that import torchvision but whose networks do not use it."""
    with _torchvision_stand_in():
        return aux_module(name)


def aux_openpose() -> types.ModuleType:
    """`controlnet_aux.open_pose` (OpenposeDetector, Body, Hand, Face)."""
    return aux_module_without_torchvision("open_pose")


class _Anything:
    """Whatever timm's import-time code asks of torchvision (names, enum members, base classes)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()

    def __call__(self, *args, **kwargs) -> _Anything:
        return _Anything()

    def __iter__(self):
        return iter(())

    def __mro_entries__(self, bases):
        return (object,)


class _AnyModule(types.ModuleType):
    def __getattr__(self, name: str) -> _Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything()


class _TorchvisionFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers `import torchvision...` with permissive stand-in modules."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _AnyModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


@contextlib.contextmanager
def _permissive_torchvision():
    """timm imports much of torchvision at import time (transforms, ops) but its ViT-R50 never calls it;
    while the block runs, any torchvision name is a stand-in. transformers is imported first and the
    stand-ins are removed after, so nothing else believes torchvision is installed."""
    import transformers  # noqa: F401  (it checks for torchvision once, at import)

    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    finder = _TorchvisionFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]


def aux_midas_network(seed: int = 0):
    """controlnet-aux's MiDaS DPT-Hybrid (`DPTDepthModel`, timm's ViT-R50 inside), random weights."""
    import torch

    with _permissive_torchvision():
        dpt = aux_module("midas.midas.dpt_depth")
        torch.manual_seed(seed)
        network = dpt.DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True).eval()
    with torch.no_grad():
        for value in network.parameters():
            value.add_(torch.randn_like(value) * 0.02)  # no all-zero layers: every path matters
    return network


def aux_midas_detector(network):
    """controlnet-aux's MidasDetector around `network` (its map steps: depth and normals)."""
    with _permissive_torchvision():
        midas = aux_module("midas")
    detector = midas.MidasDetector.__new__(midas.MidasDetector)
    detector.model = network
    return detector


def aux_zoe_network(seed: int = 0, width: int = 32, heads: int = 2):
    """controlnet-aux's ZoeDepth (ZoeD_N, the extension's depth_zoe network: MiDaS' BEiT-L/16 under the
    metric-bins head) with a narrow BEiT (`width` wide, `heads` heads, BEiT-L's 24 blocks for its hooks),
    random weights. Its MiDaS normalisation is torchvision's Normalize: the stand-in's exact steps."""
    import os

    import torch

    with _permissive_torchvision():
        import timm

        aux_module("util")  # the stand-in package, whose path is controlnet-aux's folder
        midas_repo = os.path.join(
            sys.modules[PACKAGE].__path__[0], "zoe/zoedepth/models/base_models/midas_repo"
        )
        if midas_repo not in sys.path:
            sys.path.insert(0, midas_repo)
        blocks = importlib.import_module("midas.blocks")
        beit = importlib.import_module("midas.backbones.beit")

        def narrow_beit_large(pretrained, use_readout="ignore", hooks=None, enable_attention_hooks=False):
            model = timm.create_model(
                "beit_large_patch16_384", pretrained_cfg=None, embed_dim=width, num_heads=heads
            )
            return beit._make_beit_backbone(
                model,
                features=[256, 512, 1024, 1024],
                hooks=[5, 11, 17, 23],
                vit_features=width,
                use_readout=use_readout,
            )

        blocks._make_pretrained_beitl16_384 = narrow_beit_large
        zoe = aux_module("zoe.zoedepth.models.zoedepth.zoedepth_v1")
        aux_module("zoe.zoedepth.models.base_models.midas").Normalize = _Normalize
        config = aux_module("zoe.zoedepth.utils.config").get_config("zoedepth", "infer")
        torch.manual_seed(seed)
        network = zoe.ZoeDepth.build_from_config(config).eval()
    with torch.no_grad():
        for value in network.parameters():
            value.add_(torch.randn_like(value) * 0.02)
    return network


def aux_depth_merger(state: dict):
    """controlnet-aux's Pix2Pix4DepthModel (depth_leres++'s merging network) holding `state`, on the CPU;
    its options parser reads the command line, so the model is assembled without it."""
    import torch

    networks = aux_module_without_torchvision("leres.pix2pix.models.networks")
    model_class = aux_module_without_torchvision(
        "leres.pix2pix.models.pix2pix4depth_model"
    ).Pix2Pix4DepthModel
    model = model_class.__new__(model_class)
    width = state["model.model.0.weight"].shape[0]
    model.netG = networks.UnetGenerator(2, 1, 10, width, norm_layer=networks.get_norm_layer("none"))
    model.netG.load_state_dict(state)
    model.netG.eval()
    model.device, model.visual_names = torch.device("cpu"), ["fake_B"]
    return model
