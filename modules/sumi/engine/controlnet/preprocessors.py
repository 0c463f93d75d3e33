"""ControlNet preprocessors ("annotators") under sd-webui-controlnet's names, labels and sliders.

Every preprocessor of the extension (v1.1.455) that turns an image into a control map is registered
here with its label, its sliders and the weight files it needs, in the order the extension lists them.
The model-free ones run (and give the extension's maps pixel for pixel); the ones that need a network
check their weight files and say which file is missing and where to download it. With the files present
the networks Sumi implements run (`annotators/`: HED, PiDiNet, TEED, lineart, lineart_anime); the others raise a clear error.

Slider values follow the extension's unit rules: a value outside the slider's range (the API's -1
included) means the slider's default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from modules.sumi.engine.controlnet.annotators import detectors
from modules.sumi.engine.controlnet.annotators.detectors import NetworkDetector
from modules.sumi.engine.controlnet.annotators.edges import dark_lines
from modules.sumi.engine.controlnet.annotators.mediapipe_face import face_mesh_map
from modules.sumi.engine.controlnet.annotators.runtime import AnnotatorFiles, AnnotatorRuntime
from modules.sumi.engine.controlnet.detect_args import DetectArgs, Detection
from modules.sumi.engine.controlnet.image_fit import (
    MAX_SIDE,
    PreprocessorError,
    check_size,
    resize_with_pad,
    to_rgb,
)
from modules.sumi.engine.controlnet.instant_id import face_keypoints

__all__ = [
    "RESOLUTION",
    "AnnotatorFile",
    "DetectArgs",
    "Preprocessor",
    "PreprocessorError",
    "Slider",
    "get_preprocessor",
    "list_preprocessors",
]


@dataclass(frozen=True)
class Slider:
    """One of a preprocessor's sliders, as the UI shows it."""

    label: str
    minimum: float
    maximum: float
    default: float
    step: float = 0.01

    def resolve(self, value: float | None) -> float:
        """The value to use: out of range (the API's -1, NaN) or missing means the default."""
        if value is None or not self.minimum <= value <= self.maximum:
            return self.default
        return float(value)


RESOLUTION = Slider("Resolution", 64, 2048, 512, 8)


@dataclass(frozen=True)
class AnnotatorFile:
    """A weight file a preprocessor loads, relative to the annotator folder, and where to get it."""

    path: str
    url: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def find(self, annotator_dir: Path) -> Path | None:
        """The file in its sub-folder (the extension's layout) or directly in the annotator folder."""
        for candidate in (annotator_dir / self.path, annotator_dir / self.name):
            if candidate.is_file():
                return candidate
        return None


Detector = Callable[[np.ndarray, DetectArgs], np.ndarray]


@dataclass(frozen=True)
class Preprocessor:
    """A ControlNet preprocessor. `name` is the extension's internal key, `label` what its UI shows."""

    name: str
    label: str
    detect: Detector | None = field(default=None, repr=False, compare=False)
    network: NetworkDetector | None = field(default=None, repr=False, compare=False)
    resolution: Slider | None = RESOLUTION
    threshold_a: Slider | None = None
    threshold_b: Slider | None = None
    annotator_files: tuple[AnnotatorFile, ...] = ()
    priority: int = 0
    tags: tuple[str, ...] = ()
    uses_mask: bool = False  # inpaint family: the map travels with a mask (masked hint pixels are -1)
    random: bool = False  # the map depends on the job's seed (shuffle)
    post_blend: bool = (
        False  # inpaint_only: the result is blended back with the control image outside the mask
    )
    image_encoder: str | None = None  # IP-Adapter: the CLIP vision encoder it runs ("auto": the model's)
    reference: bool = False  # reference_only / _adain / _adain+attn: no model; the picture steers the UNet
    color_fix: bool = False  # tile_colorfix(+sharp): the prediction's colours are pulled to the picture's
    revision: bool = False  # revision_*: the picture's CLIP-G embedding replaces SDXL's pooled prompt
    package: str | None = None  # a Python package the detector needs that Sumi does not require (mediapipe)

    @property
    def uses_resolution(self) -> bool:
        """Whether the processor resolution changes the map (the UI shows the slider only then)."""
        return self.resolution is not None

    @property
    def model_free(self) -> bool:
        return not self.annotator_files and self.image_encoder is None and self.package is None

    @property
    def feeds_ip_adapter(self) -> bool:
        """An IP-Adapter preprocessor (CLIP features and/or a face identity, not a map)."""
        return self.image_encoder in IP_ADAPTER_ENCODERS and not self.revision

    def resolve(self, resolution: float = -1, threshold_a: float = -1, threshold_b: float = -1) -> DetectArgs:
        """Apply the extension's defaulting to a unit's processor_res / threshold_a / threshold_b."""
        res = self.resolution.resolve(resolution) if self.resolution else RESOLUTION.default
        return DetectArgs(
            int(res), _resolve(self.threshold_a, threshold_a), _resolve(self.threshold_b, threshold_b), 0
        )

    def weight_files(self, annotator_dir: Path | None) -> tuple[Path, ...]:
        """The weight files found for this preprocessor (those that are there)."""
        if annotator_dir is None:
            return ()
        found = (f.find(Path(annotator_dir)) for f in self.annotator_files)
        return tuple(p for p in found if p is not None)

    def missing_files(self, annotator_dir: Path | None) -> tuple[AnnotatorFile, ...]:
        if annotator_dir is None:
            return self.annotator_files
        return tuple(f for f in self.annotator_files if f.find(Path(annotator_dir)) is None)

    def run(
        self,
        image: np.ndarray,
        resolution: float = -1,
        threshold_a: float = -1,
        threshold_b: float = -1,
        *,
        annotator_dir: Path | None = None,
        seed: int = 0,
        exact_resolution: bool = False,
        runtime: AnnotatorRuntime | None = None,
    ) -> np.ndarray:
        """The control map (HxWx3 uint8) for an RGB(A)/gray uint8 image.

        `exact_resolution` takes `resolution` as given (pixel perfect: the extension computes it after
        its range check, so it may lie outside 64..2048). `seed` drives the random preprocessors
        (shuffle): the extension seeds numpy with `(seed + subseed) & 0xFFFFFFFF`; pass that value to get
        its exact map. `runtime` says where a network preprocessor runs (default: the CPU, shared cache).
        """
        return self.analyse(
            image,
            resolution,
            threshold_a,
            threshold_b,
            annotator_dir=annotator_dir,
            seed=seed,
            exact_resolution=exact_resolution,
            runtime=runtime,
        ).map

    def analyse(
        self,
        image: np.ndarray,
        resolution: float = -1,
        threshold_a: float = -1,
        threshold_b: float = -1,
        *,
        annotator_dir: Path | None = None,
        seed: int = 0,
        exact_resolution: bool = False,
        runtime: AnnotatorRuntime | None = None,
    ) -> Detection:
        """`run`'s map with what the detector read beside it (the OpenPose JSON for pose preprocessors)."""
        if self.image_encoder is not None:
            features = {
                "insightface": "a face identity (for a FaceID IP-Adapter)",
                "insightface_clip_h": "a face identity and CLIP image features (for a FaceID Plus IP-Adapter)",
                "antelopev2": "a face identity (for InstantID's IP-Adapter; instant_id_face_keypoints draws the map)",
            }.get(self.image_encoder, "CLIP image features (for an IP-Adapter or the T2I style adapter)")
            raise PreprocessorError(
                f"{self.label} turns the picture into {features}, not into a map: there is nothing to preview; "
                "the picture is used as it is"
            )
        rgb = to_rgb(image)
        args = replace(self.resolve(resolution, threshold_a, threshold_b), seed=int(seed) & 0xFFFFFFFF)
        if exact_resolution:
            args = replace(args, resolution=_exact_resolution(resolution))
        self.check_files(annotator_dir)
        if self.network is not None and annotator_dir is not None:
            paths = tuple(f.find(Path(annotator_dir)) for f in self.annotator_files)
            files = AnnotatorFiles(self.label, tuple(p for p in paths if p), runtime or AnnotatorRuntime())
            found = self.network(rgb, args, files)
            if isinstance(found, Detection):
                return replace(found, map=to_rgb(found.map, "detected map"))
            return Detection(to_rgb(found, "detected map"))
        if self.detect is None and self.uses_mask:  # inpaint_only+lama: LaMa runs in the job
            raise PreprocessorError(
                f"{self.label} fills the masked part with LaMa inside a generation, where the unit's "
                "mask is known; preview the unit with inpaint_only"
            )
        if self.detect is None:
            raise PreprocessorError(
                f"Preprocessor '{self.label}' needs a network that Sumi does not run yet; "
                "choose a model-free preprocessor or 'none' with a ready-made control image"
            )
        return Detection(to_rgb(self.detect(rgb, args), "detected map"))

    def check_files(self, annotator_dir: Path | None) -> None:
        """A clear refusal naming each missing weight file, its folder and where to download it."""
        missing = self.missing_files(annotator_dir)
        if not missing:
            return
        where = str(annotator_dir) if annotator_dir is not None else "the annotator folder (none was set)"
        names = ", ".join(f.path for f in missing)
        urls = ", ".join(f.url for f in missing)
        it, is_ = ("it", "it is") if len(missing) == 1 else ("them", "they are")
        raise PreprocessorError(
            f"Preprocessor '{self.label}' needs {names} in {where}; {is_} not there. "
            f"Download {it} from {urls} and put {it} there."
        )


def _resolve(slider: Slider | None, value: float | None) -> float:
    """A used slider's value, or for an unused one the value as given (no detector reads it)."""
    if slider is not None:
        return slider.resolve(value)
    return -1.0 if value is None else float(value)


def _exact_resolution(resolution: float) -> int:
    if not 1 <= resolution <= MAX_SIDE:
        raise PreprocessorError(f"Processor resolution {resolution} is out of range (1..{MAX_SIDE})")
    return int(resolution)


# --- model-free detectors ---------------------------------------------------------------------------


_VARIATION = Slider("Variation", 3.0, 32.0, 8.0, 1.0)  # tile_colorfix's blur radius in latent pixels


def _identity(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    return image


def _invert(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    return 255 - image


def _canny(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    padded = resize_with_pad(image, args.resolution)
    edges = cv2.Canny(padded.image, int(args.threshold_a), int(args.threshold_b))
    return padded.unpad(cv2.cvtColor(edges, cv2.COLOR_GRAY2RGB))


def _threshold(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    padded = resize_with_pad(image, args.resolution)
    white = np.min(padded.image, axis=2) > args.threshold_a
    return padded.unpad(_mask_to_rgb(white))


def _mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    return np.repeat((mask.astype(np.uint8) * 255)[:, :, None], 3, axis=2)


def _scribble_xdog(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    """Difference of Gaussians (sigma 0.5 and 5), darkest channel, thresholded."""
    padded = resize_with_pad(image, args.resolution)
    pixels = padded.image.astype(np.float32)
    fine = cv2.GaussianBlur(pixels, (0, 0), 0.5)
    coarse = cv2.GaussianBlur(pixels, (0, 0), 5.0)
    dog = (255 - np.min(coarse - fine, axis=2)).clip(0, 255).astype(np.uint8)
    # The extension doubles in uint8, so strengths of 128 and more wrap around; kept for identical maps.
    strength = (2 * (255 - dog).astype(np.uint16)) % 256
    return padded.unpad(_mask_to_rgb(strength > args.threshold_a))


def _lineart_standard(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    """Dark lines on a light background: how much darker each pixel is than its blurred surroundings."""
    return _gray_to_rgb(dark_lines(image, args.resolution))


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _blur_gaussian(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    scaled = resize_with_pad(image, args.resolution)
    return cv2.GaussianBlur(scaled.unpad(scaled.image), (0, 0), float(args.threshold_a))


def _tile_resample(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    """Down-sample by the rate (area), so the tile model sees a blurrier version; below 1.1 unchanged."""
    rate = args.threshold_a
    if rate < 1.1:
        return image
    height, width = image.shape[:2]
    size = (max(1, int(width / rate)), max(1, int(height / rate)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _noise_disk(rng: np.random.RandomState, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth noise in 0..1: a coarse uniform grid (one value per `cell` pixels) upscaled bicubically."""
    coarse = rng.uniform(low=0, high=1, size=(height // cell + 2, width // cell + 2, 1))
    smooth = cv2.resize(coarse, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
    smooth = smooth[cell : cell + height, cell : cell + width]
    smooth = smooth - smooth.min()
    return smooth / max(float(smooth.max()), 1e-12)


def _shuffle(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    """Content shuffle: remap every pixel through a smooth random flow field, seeded by `args.seed`."""
    padded = resize_with_pad(image, args.resolution)
    scaled = padded.unpad(padded.image)
    height, width = scaled.shape[:2]
    rng = np.random.RandomState(args.seed)
    map_x = _noise_disk(rng, height, width, 256) * float(width - 1)
    map_y = _noise_disk(rng, height, width, 256) * float(height - 1)
    return cv2.remap(scaled, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR)


def _color_grid(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    """T2I-Adapter colour grid: one colour per 64x64 cell of the image scaled to the resolution."""
    scaled = _scale_short_side_by_area(image, args.resolution)
    height, width = scaled.shape[:2]
    cells = cv2.resize(scaled, (max(1, width // 64), max(1, height // 64)), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(cells, (width, height), interpolation=cv2.INTER_NEAREST)


def _scale_short_side_by_area(image: np.ndarray, resolution: int) -> np.ndarray:
    """The colour grid's own scaling: area interpolation even when enlarging, long side from the ratio."""
    height, width = image.shape[:2]
    if height < width:
        height, width = resolution, round(width / height * resolution)
    else:
        height, width = round(height / width * resolution), resolution
    check_size(height, width, f"image scaled to processor resolution {resolution}")
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _recolor(channel_of: Callable[[np.ndarray], np.ndarray]) -> Detector:
    """Gray from one channel, gamma-corrected by the slider (recolor models colourise it back)."""

    def detect(image: np.ndarray, args: DetectArgs) -> np.ndarray:
        gray = (channel_of(image).astype(np.float32) / 255.0) ** args.threshold_a
        return _gray_to_rgb((gray * 255.0).clip(0, 255).astype(np.uint8))

    return detect


# The extension converts with the *BGR* codes although its images are RGB; kept for identical maps.
def _lab_lightness(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[:, :, 0]


def _hsv_value(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[:, :, 2]


# --- registry ---------------------------------------------------------------------------------------

_LLLYASVIEL = "https://huggingface.co/lllyasviel/Annotators/resolve/main/"
_CKPTS = "https://huggingface.co/lllyasviel/ControlNet/resolve/main/annotator/ckpts/"
_QINGLONG = "https://huggingface.co/bdsqlsz/qinglong_controlnet-lllite/resolve/main/Annotators/"


def _file(folder: str, name: str, base: str = _LLLYASVIEL) -> AnnotatorFile:
    return AnnotatorFile(f"{folder}/{name}", base + name)


_MIDAS = (_file("midas", "dpt_hybrid-midas-501f0c75.pt", _CKPTS),)
_OPENPOSE = tuple(_file("openpose", n) for n in ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"))
_YOLOX = AnnotatorFile(
    "openpose/yolox_l.onnx", "https://huggingface.co/yzd-v/DWPose/resolve/main/yolox_l.onnx"
)
_DW_POSE = AnnotatorFile(
    "openpose/dw-ll_ucoco_384.onnx", "https://huggingface.co/yzd-v/DWPose/resolve/main/dw-ll_ucoco_384.onnx"
)
_ANIMAL_POSE = _file(
    "openpose", "rtmpose-m_simcc-ap10k_pt-aic-coco_210e-256x256-7a041aa1_20230206.onnx", _QINGLONG
)
_DENSEPOSE = AnnotatorFile(
    "densepose/densepose_r50_fpn_dl.torchscript",
    "https://huggingface.co/LayerNorm/DensePose-TorchScript-with-hint-image/resolve/main/"
    "densepose_r50_fpn_dl.torchscript",
)
_HED = (_file("hed", "ControlNetHED.pth"),)
_PIDINET = (_file("pidinet", "table5_pidinet.pth"),)
_LERES = (_file("leres", "res101.pth"),)
_REMOVE_NEAR = Slider("Remove Near %", 0, 100, 0, 0.1)
_REMOVE_BACKGROUND = Slider("Remove Background %", 0, 100, 0, 0.1)
_SAFE_STEPS = Slider("Safe Steps", 0, 10, 2, 1)
_GAMMA = Slider("Gamma Correction", 0.1, 2.0, 1.0, 0.001)


def _model_free() -> tuple[Preprocessor, ...]:
    return (
        Preprocessor("none", "none", _identity, resolution=None, priority=10),
        Preprocessor(
            "invert",
            "invert (from white bg & black line)",
            _invert,
            resolution=None,
            priority=20,
            tags=("Canny", "Lineart", "Scribble", "MLSD"),
        ),
        Preprocessor(
            "canny",
            "canny",
            _canny,
            priority=100,
            tags=("Canny",),
            threshold_a=Slider("Low Threshold", 1, 255, 100, 1),
            threshold_b=Slider("High Threshold", 1, 255, 200, 1),
        ),
        Preprocessor(
            "threshold",
            "threshold",
            _threshold,
            threshold_a=Slider("Binarization Threshold", 0, 255, 127),
        ),
        Preprocessor(
            "scribble_xdog",
            "scribble_xdog",
            _scribble_xdog,
            tags=("Scribble", "SparseCtrl"),
            threshold_a=Slider("XDoG Threshold", 1, 64, 32),
        ),
        Preprocessor(
            "lineart_standard",
            "lineart_standard (from white bg & black line)",
            _lineart_standard,
            priority=100,
            tags=("Lineart",),
        ),
        Preprocessor(
            "tile_resample",
            "tile_resample",
            _tile_resample,
            resolution=None,
            priority=100,
            tags=("Tile",),
            threshold_a=Slider("Down Sampling Rate", 1.0, 8.0, 1.0, 0.01),
        ),
        # the picture as it is for the tile model; each prediction's low frequencies then become the
        # picture's (engine.controlnet.colorfix), +sharp also sharpens against a blurred negative
        Preprocessor(
            "tile_colorfix",
            "tile_colorfix",
            _identity,
            resolution=None,
            tags=("Tile",),
            threshold_a=_VARIATION,
            color_fix=True,
        ),
        Preprocessor(
            "tile_colorfix+sharp",
            "tile_colorfix+sharp",
            _identity,
            resolution=None,
            tags=("Tile",),
            threshold_a=_VARIATION,
            threshold_b=Slider("Sharpness", 0.0, 2.0, 1.0, 0.01),
            color_fix=True,
        ),
        Preprocessor(
            "blur_gaussian",
            "blur_gaussian",
            _blur_gaussian,
            tags=("Tile",),
            threshold_a=Slider("Sigma", 0.01, 64.0, 9.0),
        ),
        # The extension hides shuffle's resolution slider and always uses 512.
        Preprocessor("shuffle", "shuffle", _shuffle, resolution=None, tags=("Shuffle",), random=True),
        Preprocessor("color", "t2ia_color_grid", _color_grid, tags=("T2I-Adapter",)),
        Preprocessor(
            "recolor_luminance",
            "recolor_luminance",
            _recolor(_lab_lightness),
            resolution=None,
            priority=100,
            tags=("Recolor",),
            threshold_a=_GAMMA,
        ),
        Preprocessor(
            "recolor_intensity",
            "recolor_intensity",
            _recolor(_hsv_value),
            resolution=None,
            tags=("Recolor",),
            threshold_a=_GAMMA,
        ),
    )


def _annotator(name: str, label: str, files: tuple[AnnotatorFile, ...], *tags: str, **kw) -> Preprocessor:
    return Preprocessor(name, label, annotator_files=files, tags=tags, **kw)


def _network(
    name: str, label: str, files: tuple[AnnotatorFile, ...], network: NetworkDetector, *tags: str, **kw
) -> Preprocessor:
    """A preprocessor whose network Sumi runs (see `annotators.detectors`)."""
    return Preprocessor(name, label, annotator_files=files, tags=tags, network=network, **kw)


def _depth_and_normal() -> tuple[Preprocessor, ...]:
    leres_boost = (*_LERES, _file("leres", "latest_net_G.pth"))
    return (
        _network("depth", "depth_midas", _MIDAS, detectors.depth_midas, "Depth", priority=100),
        _network(
            "depth_leres",
            "depth_leres",
            _LERES,
            detectors.leres,
            "Depth",
            threshold_a=_REMOVE_NEAR,
            threshold_b=_REMOVE_BACKGROUND,
        ),
        _network(
            "depth_leres++",
            "depth_leres++",
            leres_boost,
            detectors.leres_boost,
            "Depth",
            threshold_a=_REMOVE_NEAR,
            threshold_b=_REMOVE_BACKGROUND,
        ),
        _network(
            "depth_zoe", "depth_zoe", (_file("zoedepth", "ZoeD_M12_N.pt"),), detectors.depth_zoe, "Depth"
        ),
        _network(
            "depth_anything",
            "depth_anything",
            (
                AnnotatorFile(
                    "depth_anything/depth_anything_vitl14.pth",
                    "https://huggingface.co/spaces/LiheYoung/Depth-Anything/resolve/main/checkpoints/"
                    "depth_anything_vitl14.pth",
                ),
            ),
            detectors.depth_anything,
            "Depth",
        ),
        _network(
            "depth_anything_v2",
            "depth_anything_v2",
            (
                AnnotatorFile(
                    "depth_anything_v2/depth_anything_v2_vitl.safetensors",
                    "https://huggingface.co/MackinationsAi/Depth-Anything-V2_Safetensors/resolve/main/"
                    "depth_anything_v2_vitl.safetensors",
                ),
            ),
            detectors.depth_anything_v2,
            "Depth",
        ),
        _network(
            "normal_map",
            "normal_midas",
            _MIDAS,
            detectors.normal_midas,
            "NormalMap",
            threshold_a=Slider("Normal Background Threshold", 0.0, 1.0, 0.4),
        ),
        _network(
            "normal_bae",
            "normal_bae",
            (_file("normal_bae", "scannet.pt"),),
            detectors.normal_bae,
            "NormalMap",
            priority=100,
        ),
    )


def _poses() -> tuple[Preprocessor, ...]:
    """OpenPose needs only the files of what it reads: the body network always, the hand and face
    networks for the variants that read hands or faces (the extension downloads all three)."""
    body, hand, face = _OPENPOSE
    return (
        _network("openpose", "openpose", (body,), detectors.openpose, "OpenPose"),
        _network("openpose_face", "openpose_face", (body, face), detectors.openpose_face, "OpenPose"),
        _network(
            "openpose_faceonly", "openpose_faceonly", (body, face), detectors.openpose_faceonly, "OpenPose"
        ),
        _network(
            "openpose_full",
            "openpose_full",
            (body, hand, face),
            detectors.openpose_full,
            "OpenPose",
            priority=100,
        ),
        _network("openpose_hand", "openpose_hand", (body, hand), detectors.openpose_hand, "OpenPose"),
        _network(
            "dw_openpose_full", "dw_openpose_full", (_YOLOX, _DW_POSE), detectors.dw_openpose_full, "OpenPose"
        ),
        _network(
            "animal_openpose",
            "animal_openpose",
            (_YOLOX, _ANIMAL_POSE),
            detectors.animal_openpose,
            "OpenPose",
        ),
        _annotator("densepose", "densepose (pruple bg & purple torso)", (_DENSEPOSE,), "OpenPose"),
        _annotator("densepose_parula", "densepose_parula (black bg & blue torso)", (_DENSEPOSE,), "OpenPose"),
    )


def _edges_and_lines() -> tuple[Preprocessor, ...]:
    teed = (_file("TEED", "7_model.pth", _QINGLONG),)
    mteed = (
        AnnotatorFile(
            "TEED/MTEED.pth", "https://huggingface.co/TheMistoAI/MistoLine/resolve/main/Anyline/MTEED.pth"
        ),
    )
    return (
        _network("hed", "softedge_hed", _HED, detectors.hed, "SoftEdge"),
        _network("hed_safe", "softedge_hedsafe", _HED, detectors.hed_safe, "SoftEdge"),
        _network("pidinet", "softedge_pidinet", _PIDINET, detectors.pidinet, "SoftEdge", priority=100),
        _network("pidinet_safe", "softedge_pidisafe", _PIDINET, detectors.pidinet_safe, "SoftEdge"),
        _network("softedge_teed", "softedge_teed", teed, detectors.teed, "SoftEdge", threshold_a=_SAFE_STEPS),
        _network(
            "softedge_anyline",
            "softedge_anyline",
            mteed,
            detectors.anyline,
            "SoftEdge",
            resolution=Slider("Resolution", 64, 2048, 1280, 8),
            threshold_a=_SAFE_STEPS,
        ),
        _network("scribble_hed", "scribble_hed", _HED, detectors.scribble_hed, "Scribble", "SparseCtrl"),
        _network(
            "pidinet_scribble",
            "scribble_pidinet",
            _PIDINET,
            detectors.pidinet_scribble,
            "Scribble",
            "SparseCtrl",
            priority=100,
        ),
        _network("pidinet_sketch", "t2ia_sketch_pidi", _PIDINET, detectors.pidinet_sketch, "T2I-Adapter"),
        _network(
            "lineart", "lineart_realistic", (_file("lineart", "sk_model.pth"),), detectors.lineart, "Lineart"
        ),
        _network(
            "lineart_coarse",
            "lineart_coarse",
            (_file("lineart", "sk_model2.pth"),),
            detectors.lineart,
            "Lineart",
        ),
        _network(
            "lineart_anime",
            "lineart_anime",
            (_file("lineart_anime", "netG.pth"),),
            detectors.lineart_anime,
            "Lineart",
        ),
        _network(
            "lineart_anime_denoise",
            "lineart_anime_denoise",
            (_file("manga_line", "erika.pth"),),
            detectors.lineart_anime_denoise,
            "Lineart",
        ),
        _network(
            "mlsd",
            "mlsd",
            (_file("mlsd", "mlsd_large_512_fp32.pth", _CKPTS),),
            detectors.mlsd,
            "MLSD",
            priority=100,
            threshold_a=Slider("MLSD Value Threshold", 0.01, 2.0, 0.1),
            threshold_b=Slider("MLSD Distance Threshold", 0.01, 20.0, 0.1),
        ),
    )


def _segmentation() -> tuple[Preprocessor, ...]:
    return (
        _network(
            "oneformer_ade20k",
            "seg_ofade20k",
            (_file("oneformer", "250_16_swin_l_oneformer_ade20k_160k.pth"),),
            detectors.oneformer_ade20k,
            "Segmentation",
            priority=100,
        ),
        _network(
            "oneformer_coco",
            "seg_ofcoco",
            (_file("oneformer", "150_16_swin_l_oneformer_coco_100ep.pth"),),
            detectors.oneformer_coco,
            "Segmentation",
        ),
        _network(
            "segmentation",
            "seg_ufade20k",
            (_file("uniformer", "upernet_global_small.pth", _CKPTS),),
            detectors.uniformer_segmentation,
            "Segmentation",
        ),
        _network(
            "anime_face_segment",
            "seg_anime_face",
            (_file("anime_face_segment", "UNet.pth", _QINGLONG),),
            detectors.anime_face_segment,
            "Segmentation",
        ),
    )


def _sorted(preprocessors: tuple[Preprocessor, ...]) -> tuple[Preprocessor, ...]:
    """The extension's order: "none", then by priority and label, both descending."""
    rest = [p for p in preprocessors if p.name != "none"]
    rest.sort(key=lambda p: str(p.priority).zfill(8) + p.label, reverse=True)
    return (next(p for p in preprocessors if p.name == "none"), *rest)


def _mediapipe_face(image: np.ndarray, args: DetectArgs) -> np.ndarray:
    padded = resize_with_pad(image, args.resolution)
    return padded.unpad(face_mesh_map(padded.image, int(args.threshold_a), args.threshold_b))


def _face_mesh() -> tuple[Preprocessor, ...]:
    """MediaPipe's face mesh; its model files come with the mediapipe package (see annotators.mediapipe_face)."""
    return (
        Preprocessor(
            "mediapipe_face",
            "mediapipe_face",
            _mediapipe_face,
            threshold_a=Slider("Max Faces", 1, 10, 1, 1),
            threshold_b=Slider("Min Face Confidence", 0.01, 1.0, 0.5),
            package="mediapipe",
        ),
    )


def _inpaint() -> tuple[Preprocessor, ...]:
    """The extension's inpaint family: the map is the image itself; the mask goes with it (see
    `inpaint_hint`). `inpaint_only+lama` first fills the masked part with the LaMa network (see
    `engine.controlnet.lama`; the ControlNet service runs it with the unit's mask, then uses
    `inpaint_only`); without its file it is refused naming the file."""
    inpaint = {"resolution": None, "tags": ("Inpaint",), "uses_mask": True}
    return (
        Preprocessor("inpaint", "inpaint_global_harmonious", _identity, **inpaint),
        Preprocessor("inpaint_only", "inpaint_only", _identity, priority=100, post_blend=True, **inpaint),
        Preprocessor(
            "inpaint_only+lama",
            "inpaint_only+lama",
            None,
            annotator_files=(_file("lama", "ControlNetLama.pth"),),
            post_blend=True,
            **inpaint,
        ),
    )


CLIP_H = _file(
    "clip_vision", "clip_h.pth", "https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/"
)
CLIP_H = replace(CLIP_H, url=CLIP_H.url + "pytorch_model.bin")  # the extension saves it as clip_h.pth
CLIP_G = _file("clip_vision", "clip_g.pth")
CLIP_VITL = AnnotatorFile(  # the extension saves OpenAI's whole CLIP model as clip_vitl.pth
    "clip_vision/clip_vitl.pth",
    "https://huggingface.co/openai/clip-vit-large-patch14/resolve/main/pytorch_model.bin",
)
CLIP_ENCODER_FILES = {"clip_h": CLIP_H, "clip_g": CLIP_G, "clip_vitl": CLIP_VITL}
# InsightFace's antelopev2 pack (InstantID), where the extension unpacks it in its annotator folder
ANTELOPEV2 = "insightface/models/antelopev2"
_ANTELOPEV2_URL = "https://huggingface.co/DIAMONIK7777/antelopev2/resolve/main/"
ANTELOPEV2_DETECTOR = AnnotatorFile(
    f"{ANTELOPEV2}/scrfd_10g_bnkps.onnx", _ANTELOPEV2_URL + "scrfd_10g_bnkps.onnx"
)
ANTELOPEV2_RECOGNIZER = AnnotatorFile(f"{ANTELOPEV2}/glintr100.onnx", _ANTELOPEV2_URL + "glintr100.onnx")
# What IP-Adapter preprocessors run: "auto" (what the model reads), a CLIP encoder, InsightFace (FaceID),
# or both (FaceID Plus). The style adapter's clip_vitl is not among them.
IP_ADAPTER_ENCODERS = ("auto", "clip_h", "clip_g", "insightface", "insightface_clip_h", "antelopev2")


def _ip_adapter() -> tuple[Preprocessor, ...]:
    """The extension's IP-Adapter preprocessors: a CLIP vision encoder's features of the picture (no map).
    `ip-adapter-auto` runs the encoder the chosen model reads. The encoder files are looked for by the
    ControlNet service (also in models/clip_vision), so they are not `annotator_files` here."""
    ip = {"resolution": None, "tags": ("IP-Adapter",)}
    return (
        Preprocessor("ip-adapter-auto", "ip-adapter-auto", priority=1000, image_encoder="auto", **ip),
        Preprocessor("ip-adapter_clip_sd15", "ip-adapter_clip_h", priority=100, image_encoder="clip_h", **ip),
        Preprocessor("ip-adapter_clip_sdxl", "ip-adapter_clip_g", image_encoder="clip_g", **ip),
        Preprocessor(
            "ip-adapter_clip_sdxl_plus_vith", "ip-adapter_clip_sdxl_plus_vith", image_encoder="clip_h", **ip
        ),
        # FaceID: the largest face's InsightFace identity (buffalo_l, looked for by the ControlNet service)
        Preprocessor("ip-adapter_face_id", "ip-adapter_face_id", image_encoder="insightface", **ip),
        # FaceID Plus / v2: that face identity and CLIP ViT-H's hidden states of the whole picture
        Preprocessor(
            "ip-adapter_face_id_plus", "ip-adapter_face_id_plus", image_encoder="insightface_clip_h", **ip
        ),
        # InstantID: the largest face's antelopev2 identity for its IP-Adapter unit, and its landmarks drawn
        # for its ControlNet unit (which reads the IP-Adapter unit's tokens as its text)
        Preprocessor(
            "instant_id_face_embedding",
            "instant_id_face_embedding",
            resolution=None,
            tags=("Instant-ID",),
            image_encoder="antelopev2",
        ),
        _network(
            "instant_id_face_keypoints",
            "instant_id_face_keypoints",
            (ANTELOPEV2_DETECTOR,),
            face_keypoints,
            "Instant-ID",
            resolution=None,
        ),
        # SDXL Revision (no model): CLIP ViT-bigG's image embedding as the pooled prompt; ignore_prompt
        # also zeroes the text
        *(
            Preprocessor(
                name,
                name,
                resolution=None,
                priority=100 if name == "revision_clipvision" else 0,
                tags=("Revision",),
                threshold_a=Slider("Noise Augmentation", 0.0, 1.0, 0.0, 0.01),
                image_encoder="clip_g",
                revision=True,
            )
            for name in ("revision_clipvision", "revision_ignore_prompt")
        ),
        # The T2I style adapter's: CLIP ViT-L/14's last hidden states (the style adapter turns them to tokens)
        Preprocessor(
            "clip_vision",  # the extension's internal name (its API's module_list and infotexts say it)
            "t2ia_style_clipvision",
            resolution=None,
            tags=("T2I-Adapter",),
            image_encoder="clip_vitl",
        ),
    )


def _reference() -> tuple[Preprocessor, ...]:
    """The extension's reference modes: no model; the map is the picture (its latents steer the UNet)."""
    fidelity = Slider("Style Fidelity (only for Balanced mode)", 0.0, 1.0, 0.5)
    ref = {"resolution": None, "tags": ("Reference",), "threshold_a": fidelity, "reference": True}
    return (
        Preprocessor("reference_only", "reference_only", _identity, priority=100, **ref),
        Preprocessor("reference_adain", "reference_adain", _identity, **ref),
        Preprocessor("reference_adain+attn", "reference_adain+attn", _identity, **ref),
    )


_ALL = _sorted(
    _reference()
    + _model_free()
    + _depth_and_normal()
    + _poses()
    + _face_mesh()
    + _edges_and_lines()
    + _segmentation()
    + _inpaint()
    + _ip_adapter()
)

# Names from older versions of the extension that saved infotexts and API scripts may still use.
_OLD_NAMES = {"fake_scribble": "scribble_hed", "binary": "threshold", "none (no preprocessor)": "none"}


def _index() -> dict[str, Preprocessor]:
    """Lower-cased label, name and old name -> preprocessor; labels win over names, as in the extension."""
    index: dict[str, Preprocessor] = {}
    for key_of in (lambda p: p.label, lambda p: p.name):
        for p in _ALL:
            index.setdefault(key_of(p).lower(), p)
    for old, label in _OLD_NAMES.items():
        index.setdefault(old, index[label])
    return index


_BY_LABEL = {p.label: p for p in _ALL}
_BY_NAME = {p.name: p for p in _ALL}
_BY_KEY = _index()


def list_preprocessors() -> tuple[Preprocessor, ...]:
    """All preprocessors in the extension's dropdown order ("none" first)."""
    return _ALL


# the extension's preprocessors Sumi does not offer, and why (said instead of "unknown")
NOT_OFFERED = {
    "depth_hand_refiner": "its MeshGraphormer hand reconstruction needs mediapipe and the graphormer package",
    "ip-adapter_pulid": "PuLID needs EVA-CLIP, facexlib and insightface's antelopev2 together, not built yet",
    "mobile_sam": "MobileSAM's automatic mask generator is not built yet",
    "normal_dsine": "the DSINE normal estimator is not built yet; use normal_bae",
}


def get_preprocessor(name_or_label: str) -> Preprocessor:
    """Look up by label, then internal name (exact, then any case), then an old name."""
    if isinstance(name_or_label, str):
        key = name_or_label.strip()
        found = _BY_LABEL.get(key) or _BY_NAME.get(key) or _BY_KEY.get(key.lower())
        if found is not None:
            return found
        if key.lower() in NOT_OFFERED:
            raise PreprocessorError(
                f"ControlNet preprocessor {key!r} is not available in Sumi: {NOT_OFFERED[key.lower()]}"
            )
    known = ", ".join(p.label for p in _ALL)
    raise PreprocessorError(f"Unknown ControlNet preprocessor {name_or_label!r}; known: {known}")
