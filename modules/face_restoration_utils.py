"""A1111's `modules.face_restoration_utils`: `CommonFaceRestoration` (the base of GFPGAN and CodeFormer,
which extensions subclass) and the tensor helpers. Detection, alignment and paste-back run in Sumi's
engine (`modules.sumi.engine.faces`) with the RetinaFace weights from models/GFPGAN; facexlib's
`FaceRestoreHelper` itself is not available."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

from modules.face_restoration import FaceRestoration
from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.faces.restore import restore_faces as _restore_with_detector
from modules.sumi.util.unsupported import NotSupportedInSumi

logger = logging.getLogger(__name__)


def bgr_image_to_rgb_tensor(img: np.ndarray) -> torch.Tensor:
    """A BGR image in 0..1 as an RGB float32 (3, H, W) tensor."""
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    return torch.from_numpy(cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1).copy()).float()


def rgb_tensor_to_bgr_image(tensor: torch.Tensor, *, min_max: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """An RGB tensor with values in `min_max` as a BGR image in 0..1."""
    tensor = tensor.squeeze(0).float().detach().cpu().clamp_(*min_max)
    tensor = (tensor - min_max[0]) / (min_max[1] - min_max[0])
    img = tensor.numpy().transpose(1, 2, 0)
    return np.squeeze(img, axis=2) if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)


def create_face_helper(device: Any) -> Any:
    raise NotSupportedInSumi(
        "face_restoration_utils.create_face_helper: facexlib's FaceRestoreHelper is not available in "
        "Sumi; subclass CommonFaceRestoration and call restore_with_helper instead"
    )


class CommonFaceRestoration(FaceRestoration):
    """A1111's base: `load_net()` gives the network, `restore_with_helper(np_image, restore_face)` finds
    the faces, calls `restore_face` on each 512 px face tensor in [-1, 1] and pastes the results back."""

    net: Any = None

    def __init__(self, model_path: str) -> None:
        super().__init__()
        self.net = None
        self.model_path = model_path

    def get_device(self) -> Any:
        from modules import devices

        return devices.device_codeformer

    def load_net(self) -> torch.nn.Module:
        raise NotImplementedError("load_net must be implemented by subclasses")

    def send_model_to(self, device: Any) -> None:
        if self.net is not None:
            self.net.to(device)

    def restore_with_helper(
        self, np_image: np.ndarray, restore_face: Callable[[torch.Tensor], torch.Tensor]
    ) -> np.ndarray:
        from modules import shared

        try:
            if self.net is None:
                self.net = self.load_net()
            detector = shared.app().faces.detector()
        except (EngineError, NotImplementedError, OSError) as exc:
            logger.warning("Unable to load face-restoration model: %s", exc)
            return np_image
        device = self.get_device()
        self.send_model_to(device)
        try:
            return _restore_with_detector(np_image, detector.to(device), restore_face, device).image
        finally:
            if shared.opts.face_restoration_unload:
                self.send_model_to("cpu")


class SumiFaceRestorer(FaceRestoration):
    """GFPGAN or CodeFormer as found by Sumi (one object per name, so `shared.face_restorers` keeps its
    items); `restore` runs Sumi's restorer service."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.takes_weight = name == "CodeFormer"

    def name(self) -> str:
        return self._name

    def restore(self, np_image: Any, w: float | None = None) -> Any:
        from modules import shared

        if w is None:
            w = float(getattr(shared.opts, "code_former_weight", 0.5))
        try:
            return shared.app().faces.restore(np.asarray(np_image), self._name, w).image
        except EngineError as exc:
            logger.warning("%s: %s; the image is unchanged", self._name, exc)
            return np_image


_BUILTIN: dict[str, SumiFaceRestorer] = {}
_LIVE: list[Any] = []


def live_restorers(names: list[str]) -> list[Any]:
    """The one `shared.face_restorers` list: Sumi's restorers for `names` (those installed now) plus
    anything extensions appended to it."""
    for name in names:
        _BUILTIN.setdefault(name, SumiFaceRestorer(name))
    wanted = [_BUILTIN[n] for n in names]
    _LIVE[:] = [r for r in _LIVE if not isinstance(r, SumiFaceRestorer) or r in wanted]
    for restorer in wanted:
        if restorer not in _LIVE:
            _LIVE.insert(wanted.index(restorer), restorer)
    return _LIVE


def builtin_restorer(name: str) -> SumiFaceRestorer | None:
    """Sumi's restorer called `name` when its weights are installed, else None."""
    from modules import shared

    return next(
        (r for r in shared.face_restorers if isinstance(r, SumiFaceRestorer) and r.name() == name), None
    )
