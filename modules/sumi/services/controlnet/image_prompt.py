"""IP-Adapter units for a job: find and load the CLIP vision encoder, encode the unit's picture, and
hand the engine the adapter's image tokens.

Encoders are looked for where sd-webui-controlnet keeps them (`<annotator folder>/clip_vision/clip_h.pth`
and `clip_g.pth`, also directly in the annotator folder) and in `models/clip_vision` (ComfyUI's and
Forge's folder), where a file is told by its name: `clip_h`, `vit-h`, `vith` for ViT-H/14, `clip_g`,
`bigg`, `vit-g` for ViT-bigG/14 (any case; ComfyUI's `CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors`).
`ip-adapter-auto` runs the encoder the adapter reads: by the feature width it expects (1024 / 1280
image embeddings, 1280 / 1664 hidden states), else the first encoder found whose width fits.
Loaded encoders share the annotator networks' cache; features of the last pictures are kept, so X/Y/Z
cells and repeated jobs encode a picture once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import torch
from transformers import CLIPVisionModelWithProjection

from modules.sumi.engine.controlnet.annotators.dwpose import OnnxNetwork, load_onnx
from modules.sumi.engine.controlnet.annotators.runtime import NetworkCache
from modules.sumi.engine.controlnet.clip_vision import ClipImageFeatures, encode_pictures, load_clip_vision
from modules.sumi.engine.controlnet.insightface import largest_face_embedding
from modules.sumi.engine.controlnet.instant_id import instant_id_embedding
from modules.sumi.engine.controlnet.ip_adapter import (
    FACE_PREPROCESSORS,
    ImagePromptUnit,
    IPAdapterNetwork,
    IPAdapterShape,
    check_face_plus,
    face_plus_tokens,
    face_tokens,
)
from modules.sumi.engine.controlnet.preprocessors import (
    ANTELOPEV2_DETECTOR,
    ANTELOPEV2_RECOGNIZER,
    CLIP_ENCODER_FILES,
    Preprocessor,
    get_preprocessor,
)
from modules.sumi.engine.controlnet.style_adapter import StyleAdapterNetwork, StyleTokensUnit
from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError, UnsafeFileError
from modules.sumi.services.controlnet.detections import picture_key
from modules.sumi.services.controlnet.units import ControlNetUnit

ENCODER_NAMES = {
    "clip_h": ("clip_h", "vit-h", "vith"),
    "clip_g": ("clip_g", "bigg", "vit-g"),
    "clip_vitl": ("clip_vitl", "vit-l", "vitl"),
}
ENCODER_LABELS = {"clip_h": "CLIP ViT-H/14", "clip_g": "CLIP ViT-bigG/14", "clip_vitl": "CLIP ViT-L/14"}
# The encoder a released adapter reads, by the width of the features it takes in.
_PLAIN_WIDTHS = {1024: "clip_h", 1280: "clip_g"}  # image embeddings (projection width)
_HIDDEN_WIDTHS = {1280: "clip_h", 1664: "clip_g"}  # hidden states
_MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
FEATURE_CACHE_SIZE = 8
_CLIP_H_READER = get_preprocessor("ip-adapter_clip_h")  # FaceID Plus's picture features: CLIP ViT-H
INSIGHTFACE = "insightface"  # the FaceID preprocessor's encoder: InsightFace's face identity
INSIGHTFACE_CLIP_H = "insightface_clip_h"  # FaceID Plus: the face identity and CLIP ViT-H hidden states
ANTELOPEV2 = "antelopev2"  # InstantID: antelopev2's unnormalised face identity
# what ip-adapter-auto runs for each face-reading adapter kind: what that kind's own preprocessor runs
_AUTO_FACE_ENCODERS = {
    kind: get_preprocessor(name).image_encoder for kind, name in FACE_PREPROCESSORS.items()
}


@dataclass(frozen=True)
class FacePack:
    """An InsightFace model pack: its folder (under the annotator folder, or beside models/clip_vision as
    `models/insightface/...`), its detector and recognizer files, where to get them, and how a picture's
    identity is read with them."""

    folder: Path
    files: tuple[str, str]
    url: str
    purpose: str
    embed: Callable[[OnnxNetwork, OnnxNetwork, np.ndarray], np.ndarray]


BUFFALO_L = FacePack(
    Path("insightface") / "models" / "buffalo_l",
    ("det_10g.onnx", "w600k_r50.onnx"),
    "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip (unzip it there)",
    "FaceID",
    largest_face_embedding,
)
ANTELOPEV2_PACK = FacePack(
    Path(ANTELOPEV2_DETECTOR.path).parent,
    (Path(ANTELOPEV2_DETECTOR.path).name, Path(ANTELOPEV2_RECOGNIZER.path).name),
    f"{ANTELOPEV2_DETECTOR.url} and {ANTELOPEV2_RECOGNIZER.url}",
    "InstantID",
    instant_id_embedding,
)


class ImagePrompts:
    """Turns an enabled unit with an IP-Adapter model into the engine's `ImagePromptUnit`."""

    def __init__(
        self,
        annotator_dir: Callable[[], Path],
        clip_vision_dirs: Sequence[Path],
        cache: NetworkCache,
        allow_unsafe_pickle: Callable[[], bool],
    ) -> None:
        self.annotator_dir = annotator_dir
        self.clip_vision_dirs = [Path(d) for d in clip_vision_dirs]
        self.cache = cache
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._features: OrderedDict[Hashable, ClipImageFeatures] = OrderedDict()
        self._faces: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def unit(
        self,
        unit: ControlNetUnit,
        preprocessor: Preprocessor,
        adapter: IPAdapterNetwork,
        device: torch.device,
        where: str,
        region_mask: torch.Tensor | None = None,
    ) -> ImagePromptUnit:
        try:
            tokens, negative = self._tokens(unit, preprocessor, adapter, device, where)
        except InvalidRequestError as exc:
            raise InvalidRequestError(
                exc.args[0] if str(exc).startswith(where) else f"{where}: {exc}"
            ) from exc
        if unit.input_mode == "merge":  # Multi-Inputs: one prompt from every picture (the extension's mean)
            tokens = tokens.mean(dim=0, keepdim=True)
        return ImagePromptUnit(
            adapter,
            tokens,
            negative,
            weight=unit.weight,
            guidance_start=unit.guidance_start,
            guidance_end=unit.guidance_end,
            block_weights=tuple(unit.advanced_weighting) if unit.advanced_weighting else None,
            region_mask=region_mask,
        )

    def _tokens(
        self,
        unit: ControlNetUnit,
        preprocessor: Preprocessor,
        adapter: IPAdapterNetwork,
        device: torch.device,
        where: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The adapter's image tokens and negative tokens from what its preprocessor reads ("auto": what
        the adapter reads)."""
        kind, shape = preprocessor.image_encoder, adapter.shape
        if kind == "auto":
            kind = _AUTO_FACE_ENCODERS.get(shape.kind, kind)
        if kind == ANTELOPEV2 or shape.kind == "instantid":
            _check_instant_id(preprocessor, shape)
            return face_tokens(adapter, self.face_embeddings(unit, where, ANTELOPEV2_PACK))
        if kind == INSIGHTFACE_CLIP_H:
            check_face_plus(adapter)  # before the face search: a model that cannot use it is refused at once
            faces = self.face_embeddings(unit, where)
            encoder_path = self.encoder_for(_CLIP_H_READER, shape, device, where)
            return face_plus_tokens(adapter, faces, self.features(encoder_path, unit, device, where))
        if kind == INSIGHTFACE:
            return face_tokens(adapter, self.face_embeddings(unit, where))
        encoder_path = self.encoder_for(preprocessor, shape, device, where)
        return adapter.tokens(self.features(encoder_path, unit, device, where))

    def style_unit(
        self,
        unit: ControlNetUnit,
        preprocessor: Preprocessor,
        adapter: StyleAdapterNetwork,
        device: torch.device,
        where: str,
    ) -> StyleTokensUnit:
        """A T2I style adapter unit: its picture's CLIP ViT-L last hidden states through the adapter."""
        if preprocessor.image_encoder not in ENCODER_NAMES:
            raise InvalidRequestError(f"{where}: the T2I style adapter takes t2ia_style_clipvision")
        path = self.encoder_for(preprocessor, None, device, where)
        features = self.features(path, unit, device, where)
        hidden = features.last_hidden
        assert hidden is not None
        if hidden.shape[-1] != adapter.width:
            raise InvalidRequestError(
                f"{where}: the T2I style adapter reads {adapter.width}-wide CLIP states; {path.name} gives "
                f"{hidden.shape[-1]}: use t2ia_style_clipvision with CLIP ViT-L/14 (clip_vitl.pth)"
            )
        parameter = next(adapter.parameters())
        with torch.no_grad():
            tokens = adapter(hidden.to(device=parameter.device, dtype=parameter.dtype))
        return StyleTokensUnit(
            adapter,
            tokens,
            weight=unit.weight,
            guidance_start=unit.guidance_start,
            guidance_end=unit.guidance_end,
        )

    # -- faces (FaceID) --------------------------------------------------------------------------------

    def face_model_files(self, where: str, pack: FacePack = BUFFALO_L) -> tuple[Path, Path]:
        """An InsightFace pack's detector and recognizer: where the extension keeps them
        (`<annotator folder>/insightface/models/<pack>/`) or ComfyUI's / Forge's `models/insightface`."""
        folders = [
            self.annotator_dir() / pack.folder,
            *(d.parent / pack.folder for d in self.clip_vision_dirs),
        ]
        for folder in folders:
            paths = tuple(folder / name for name in pack.files)
            if all(p.is_file() for p in paths):
                return paths[0], paths[1]
        raise InvalidRequestError(
            f"{where}: {pack.purpose} needs InsightFace's {pack.folder.name} models ({', '.join(pack.files)}) in "
            f"{' or '.join(str(f) for f in folders)}; they are not there. Download {pack.url}"
        )

    def face_embeddings(self, unit: ControlNetUnit, where: str, pack: FacePack = BUFFALO_L) -> torch.Tensor:
        """The largest face's identity in each of the unit's pictures [N, 512] (cached per picture)."""
        detector_path, recognizer_path = self.face_model_files(where, pack)
        embeddings = []
        for picture in unit.images:
            key = ("face", pack.folder.name, picture_key(picture), str(detector_path),
                   detector_path.stat().st_mtime_ns, str(recognizer_path), recognizer_path.stat().st_mtime_ns)  # fmt: skip
            with self._lock:
                found = self._faces.pop(key, None)
            if found is None:
                detector = self._onnx(detector_path, where)
                recognizer = self._onnx(recognizer_path, where)
                try:
                    found = torch.from_numpy(pack.embed(detector, recognizer, picture))
                except InvalidRequestError as exc:
                    raise InvalidRequestError(f"{where}: {exc}") from exc
            with self._lock:
                self._faces[key] = found
                while len(self._faces) > FEATURE_CACHE_SIZE:
                    self._faces.popitem(last=False)
            embeddings.append(found)
        return torch.stack(embeddings)

    def _onnx(self, path: Path, where: str) -> OnnxNetwork:
        try:
            return cast(OnnxNetwork, self.cache.get(path, torch.device("cpu"), load_onnx, False))
        except ModelLoadError as exc:
            raise InvalidRequestError(f"{where}: cannot use {path.name}: {exc}") from exc

    # -- the encoder -----------------------------------------------------------------------------------

    def candidates(self, kind: str) -> list[Path]:
        """The files that hold the `kind` encoder ("clip_h" / "clip_g"), in the order they are preferred."""
        found: list[Path] = []
        extension_file = CLIP_ENCODER_FILES[kind]
        located = extension_file.find(self.annotator_dir())
        if located is not None:
            found.append(located)
        for folder in self.clip_vision_dirs:
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                name = path.name.lower()
                if (
                    path.is_file()
                    and name.endswith(_MODEL_SUFFIXES)
                    and any(n in name for n in ENCODER_NAMES[kind])
                ):
                    found.append(path)
        return found

    def encoder_for(
        self, preprocessor: Preprocessor, shape: IPAdapterShape | None, device: torch.device, where: str
    ) -> Path:
        kind = preprocessor.image_encoder
        if kind in ENCODER_NAMES or shape is None:  # a chosen encoder that does not fit is refused later
            kind = kind if kind in ENCODER_NAMES else "clip_h"
            found = self.candidates(kind)
            if not found:
                raise InvalidRequestError(self._missing([kind], where))
            return found[0]
        kinds = _auto_order(shape)
        tried: list[str] = []
        for candidate_kind in kinds:
            for path in self.candidates(candidate_kind):
                config = self._load(path, device, where).config
                width = int(config.hidden_size if shape.reads_hidden_states else config.projection_dim)
                if width == shape.clip_width:
                    return path
                tried.append(f"{path.name} ({width} wide)")
        if tried:
            raise InvalidRequestError(
                f"{where}: the IP-Adapter reads {shape.clip_width}-wide CLIP features; no image encoder found "
                f"gives them (tried {', '.join(tried)})"
            )
        raise InvalidRequestError(self._missing(kinds, where))

    def _missing(self, kinds: list[str], where: str) -> str:
        wanted = " or ".join(f"{ENCODER_LABELS[k]} ({CLIP_ENCODER_FILES[k].name})" for k in kinds)
        urls = ", ".join(CLIP_ENCODER_FILES[k].url for k in kinds)
        folders = [str(self.annotator_dir() / "clip_vision"), *(str(d) for d in self.clip_vision_dirs)]
        return (
            f"{where}: the IP-Adapter needs the {wanted} image encoder in {' or '.join(folders)}; it is not "
            f"there. Download it from {urls} (save it as {CLIP_ENCODER_FILES[kinds[0]].name})"
        )

    def _load(self, path: Path, device: torch.device, where: str) -> CLIPVisionModelWithProjection:
        try:
            encoder = self.cache.get(path, device, _load_encoder, self.allow_unsafe_pickle())
            return cast(CLIPVisionModelWithProjection, encoder)
        except (ModelLoadError, UnsafeFileError) as exc:
            raise InvalidRequestError(f"{where}: cannot use the image encoder {path.name}: {exc}") from exc

    # -- the features ----------------------------------------------------------------------------------

    def features(self, encoder_path: Path, unit: ControlNetUnit, device: torch.device, where: str):
        masks: list[np.ndarray | None] = [_sized(m, p) for m, p in _mask_pairs(unit)] or [None] * len(
            unit.images
        )
        key = (
            tuple(picture_key(p) for p in unit.images),
            tuple(None if m is None else picture_key(m) for m in masks),
            str(encoder_path),
            encoder_path.stat().st_mtime_ns,
            str(device),
        )
        with self._lock:
            found = self._features.pop(key, None)
            if found is not None:
                self._features[key] = found
                return found
        encoder = self._load(encoder_path, device, where)
        found = encode_pictures(encoder, list(unit.images), masks)
        with self._lock:
            self._features[key] = found
            while len(self._features) > FEATURE_CACHE_SIZE:
                self._features.popitem(last=False)
        return found


def _check_instant_id(preprocessor: Preprocessor, shape: IPAdapterShape) -> None:
    """InstantID's adapter and its embedding preprocessor only go together."""
    if shape.kind != "instantid":
        raise InvalidRequestError(
            f"{preprocessor.label} is for InstantID's IP-Adapter (ip-adapter_instant_id_sdxl); choose "
            f"{FACE_PREPROCESSORS.get(shape.kind, 'ip-adapter-auto')} for this model"
        )
    if preprocessor.image_encoder not in (ANTELOPEV2, "auto"):
        raise InvalidRequestError(
            "this is InstantID's IP-Adapter: it reads antelopev2's face identity; choose the "
            "instant_id_face_embedding preprocessor (or ip-adapter-auto)"
        )


def _load_encoder(path: Path, allow_unsafe_pickle: bool) -> torch.nn.Module:
    return load_clip_vision(path, allow_unsafe_pickle=allow_unsafe_pickle)


def _auto_order(shape: IPAdapterShape) -> list[str]:
    widths = _HIDDEN_WIDTHS if shape.reads_hidden_states else _PLAIN_WIDTHS
    preferred = widths.get(shape.clip_width)
    return [preferred] if preferred else ["clip_h", "clip_g"]


def _mask_pairs(unit: ControlNetUnit) -> list[tuple[np.ndarray, np.ndarray]]:
    if not unit.masks:
        return []
    return [(unit.masks[min(i, len(unit.masks) - 1)], image) for i, image in enumerate(unit.images)]


def _sized(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The mask (HxW, white = left out of the picture) at its picture's size."""
    gray = mask if mask.ndim == 2 else mask[:, :, 0]
    if gray.shape[:2] != image.shape[:2]:
        gray = cv2.resize(gray, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    return gray
