"""The face restorers a user has: GFPGAN from `models/GFPGAN`, CodeFormer from `models/Codeformer`
(A1111's folders and names; `--gfpgan-models-path`, `--codeformer-models-path` move them), and the
RetinaFace detector (`detection_Resnet50_Final.pth`, which A1111 downloads next to the GFPGAN weights).

Nothing is downloaded: a restorer is listed when its weights are in its folder, and restoring with a
missing file is a FaceRestorationUnavailable error that says which file to put where. Models load on
first use and stay cached (`face_restoration_unload` moves them back to the CPU after each use).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.faces.detect import Face, detect_faces
from modules.sumi.engine.faces.restore import RestoreResult, codeformer_call, gfpgan_call, restore_faces
from modules.sumi.engine.faces.retinaface import RetinaFace
from modules.sumi.engine.files import PICKLE_SUFFIXES
from modules.sumi.engine.upscalers.spandrel_loader import load_model, read_weights

GFPGAN = "GFPGAN"
CODEFORMER = "CodeFormer"
DETECTOR_FILE = "detection_Resnet50_Final.pth"
WEIGHT_SUFFIXES = (*PICKLE_SUFFIXES, ".safetensors")
# how each restorer's files are named (A1111: GFPGANv1.4.pth, codeformer-v0.1.0.pth) and the
# file a user is told to get when there is none
_MARKERS = {GFPGAN: "gfpgan", CODEFORMER: "codeformer"}
_EXAMPLES = {GFPGAN: "GFPGANv1.4.pth", CODEFORMER: "codeformer-v0.1.0.pth"}
_ARCHITECTURES = {GFPGAN: "GFPGAN", CODEFORMER: "CodeFormer"}


class FaceRestorationUnavailable(InvalidRequestError):
    """A restorer or the detector has no weights file; the message names the file and the folder."""


@dataclass(frozen=True)
class RestorerEntry:
    """One restorer a user can pick (A1111's `FaceRestoration`): its name, weights and folder."""

    name: str
    path: Path
    folder: Path


class FaceRestorers:
    """Lists, loads and runs the face restorers. `restore` is what every caller uses (jobs, Extras,
    the A1111 facades)."""

    def __init__(
        self,
        gfpgan_dir: Path,
        codeformer_dir: Path,
        *,
        device: Callable[[], torch.device | str] = lambda: "cpu",
        unload_after_use: Callable[[], bool] = lambda: False,
        allow_unsafe_pickle: bool = False,
    ) -> None:
        self.folders = {GFPGAN: Path(gfpgan_dir), CODEFORMER: Path(codeformer_dir)}
        self._device = device
        self._unload_after_use = unload_after_use
        self._allow_unsafe_pickle = allow_unsafe_pickle
        self._lock = threading.RLock()
        self._models: dict[Path, tuple[float, Any]] = {}
        self._detector: tuple[Path, float, RetinaFace] | None = None

    # -- listing ------------------------------------------------------------------------------------
    def entries(self) -> list[RestorerEntry]:
        """The restorers whose weights are present, CodeFormer first (A1111's order), read from the
        folders on each call so a file dropped in appears without a restart."""
        found = []
        for name in (CODEFORMER, GFPGAN):
            path = self._weights(name)
            if path is not None:
                found.append(RestorerEntry(name, path, self.folders[name]))
        return found

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def setting_choices(self) -> dict[str, Any]:
        """The `face_restoration_model` radio: the restorers found (A1111's two names when none is,
        so the setting still shows what can be installed)."""
        return {"choices": self.names() or [CODEFORMER, GFPGAN]}

    def find(self, name: str | None) -> RestorerEntry:
        """The restorer called `name` (case-insensitive); None or "" picks the first available. A name
        without weights is a FaceRestorationUnavailable saying where the file goes."""
        entries = self.entries()
        if not name:
            if not entries:
                raise FaceRestorationUnavailable(self.missing_message())
            return entries[0]
        wanted = str(name).strip().lower()
        for entry in entries:
            if entry.name.lower() == wanted:
                return entry
        for known in (CODEFORMER, GFPGAN):
            if known.lower() == wanted:
                raise FaceRestorationUnavailable(self.missing_message(known))
        choices = ", ".join(e.name for e in entries) or "none installed"
        raise InvalidRequestError(f"face restorer {name!r} not found; choose from {choices}")

    def missing_message(self, name: str | None = None) -> str:
        """What to do when a restorer has no weights (both when `name` is None)."""
        wanted = [name] if name else [CODEFORMER, GFPGAN]
        where = " or ".join(f"{_EXAMPLES[n]} in {self.folders[n]}" for n in wanted)
        return f"Face restoration: no {' or '.join(wanted)} model found; put {where}"

    def detector_path(self) -> Path | None:
        """`detection_Resnet50_Final.pth` in the GFPGAN folder (where A1111 keeps it), else in the
        CodeFormer folder."""
        for folder in (self.folders[GFPGAN], self.folders[CODEFORMER]):
            candidate = folder / DETECTOR_FILE
            if candidate.is_file():
                return candidate
        return None

    def problem(self, name: str | None = None) -> str | None:
        """Why `restore(name)` cannot run (no restorer weights, or no detector), or None if it can."""
        try:
            self.find(name)
        except InvalidRequestError as exc:
            return str(exc)
        if self.detector_path() is None:
            return self._detector_message()
        return None

    # -- restoring ----------------------------------------------------------------------------------
    def restore(self, image: np.ndarray, name: str | None = None, weight: float = 0.5) -> RestoreResult:
        """Restore the faces of an RGB uint8 picture with restorer `name`; `weight` is CodeFormer's
        fidelity (ignored by GFPGAN, which has none)."""
        entry = self.find(name)
        with self._lock:
            device = self._device()
            detector = self._load_detector().to(device)
            net = self._load(entry).to(device)
            call = gfpgan_call(net) if entry.name == GFPGAN else codeformer_call(net, weight)
            try:
                return restore_faces(image, detector, call, device)
            finally:
                if self._unload_after_use():
                    net.to("cpu")
                    detector.to("cpu")

    def find_faces(self, image_rgb: np.ndarray) -> list[Face]:
        """The faces RetinaFace finds in an RGB uint8 picture (its own pixel coordinates), on the
        restorers' device; FaceRestorationUnavailable when the detector file is missing."""
        with self._lock:
            device = self._device()
            detector = self._load_detector().to(device)
            try:
                bgr = np.ascontiguousarray(image_rgb[:, :, 2::-1])
                return detect_faces(detector, bgr, device)
            finally:
                if self._unload_after_use():
                    detector.to("cpu")

    def detector(self) -> RetinaFace:
        """The RetinaFace detector (loaded once); FaceRestorationUnavailable when its file is missing."""
        with self._lock:
            return self._load_detector()

    def unload(self) -> None:
        """Forget the loaded models (they reload on next use)."""
        with self._lock:
            self._models.clear()
            self._detector = None

    # -- internals ----------------------------------------------------------------------------------
    def _weights(self, name: str) -> Path | None:
        folder = self.folders[name]
        if not folder.is_dir():
            return None
        marker = _MARKERS[name]
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES and marker in p.name.lower()
        )
        return files[0] if files else None

    def _load(self, entry: RestorerEntry) -> torch.nn.Module:
        mtime = entry.path.stat().st_mtime
        cached = self._models.get(entry.path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        descriptor = load_model(entry.path, allow_unsafe_pickle=self._allow_unsafe_pickle)
        expected = _ARCHITECTURES[entry.name]
        if descriptor.architecture.id != expected:
            raise InvalidRequestError(
                f"{entry.path}: holds a {descriptor.architecture.id} model, not {expected}"
            )
        net = descriptor.model.eval()
        self._models[entry.path] = (mtime, net)
        return net

    def _load_detector(self) -> RetinaFace:
        path = self.detector_path()
        if path is None:
            raise FaceRestorationUnavailable(self._detector_message())
        mtime = path.stat().st_mtime
        if self._detector is not None and self._detector[:2] == (path, mtime):
            return self._detector[2]
        state = read_weights(path, allow_unsafe_pickle=self._allow_unsafe_pickle)
        model = RetinaFace.from_state_dict(state, str(path))
        self._detector = (path, mtime, model)
        return model

    def _detector_message(self) -> str:
        return (
            f"Face restoration needs the RetinaFace face detector: put {DETECTOR_FILE} (facexlib's "
            f"weights, which A1111 downloads next to GFPGAN) in {self.folders[GFPGAN]}"
        )
