"""sd-webui-controlnet's `mediapipe_face`: the face mesh MediaPipe finds, drawn as the LAION face ControlNet
was trained on (control_v2p_sd15_mediapipe_face).

MediaPipe's FaceMesh (static pictures, refined eyes and irises, the Max Faces and Min Face Confidence
sliders) gives each face's 478 landmarks in 0..1 picture coordinates. Faces whose landmark box is under
64 pixels on its short side are dropped. Each face's oval, eyes, eyebrows and lips are drawn as 2-pixel
lines in the extension's colours (MediaPipe's drawing rules: a landmark counts when both coordinates lie
in 0..1, at floor(coordinate x size), clamped to the last pixel), then the two pupils (landmarks 468 and
473) as 4x4 squares. The extension draws in BGR and flips to RGB at the end; so does this.

The model files are inside the `mediapipe` package (0.10.x up to 0.10.21 has the face mesh solution),
which Sumi does not require: without it the preprocessor says how to install it.
"""

from __future__ import annotations

import importlib
import math
import threading
from dataclasses import dataclass
from types import ModuleType

import cv2
import numpy as np

from modules.sumi.engine.controlnet.image_fit import PreprocessorError

MIN_FACE_PIXELS = 64
LINE_THICKNESS = 2
PUPIL_HALF_WIDTH = 2
PUPILS = {468: (10, 200, 250), 473: (250, 200, 10)}  # right, left (BGR)
# MediaPipe's FaceMesh connection sets (attribute names) and the extension's colours for them (BGR)
PART_COLOURS = (
    ("FACEMESH_FACE_OVAL", (10, 200, 10)),
    ("FACEMESH_LEFT_EYE", (180, 200, 10)),
    ("FACEMESH_LEFT_EYEBROW", (180, 220, 10)),
    ("FACEMESH_RIGHT_EYE", (10, 200, 180)),
    ("FACEMESH_RIGHT_EYEBROW", (10, 220, 180)),
    ("FACEMESH_LIPS", (10, 180, 10)),
)
INSTALL = 'pip install --no-deps mediapipe==0.10.14 && pip install attrs flatbuffers matplotlib "protobuf<7"'
_LOCK = threading.Lock()  # a MediaPipe graph runs one picture at a time


@dataclass(frozen=True)
class FaceLandmarks:
    """One face: landmark coordinates [n, 2] in 0..1 (x, y) and whether MediaPipe's drawing counts each
    (no visibility or presence below its threshold)."""

    points: np.ndarray
    drawable: np.ndarray
    pupil_drawable: np.ndarray


def _face_mesh_module() -> ModuleType:
    """mediapipe's face mesh solution, or a clear error saying what to install."""
    try:
        _allow_protobuf_5_and_6()
        return importlib.import_module("mediapipe.python.solutions.face_mesh")
    except ImportError as exc:
        raise PreprocessorError(
            "Preprocessor 'mediapipe_face' needs the mediapipe package with its face mesh (mediapipe 0.10.x, "
            f"up to 0.10.21), which is not installed ({exc}). Install it into Sumi's Python: {INSTALL}"
        ) from exc


def _allow_protobuf_5_and_6() -> None:
    """mediapipe 0.10.x reads its results through SymbolDatabase.GetPrototype, which protobuf 5 removed
    (GetMessageClass is its replacement); give it back so mediapipe runs beside protobuf 5 and 6."""
    try:
        from google.protobuf import message_factory, symbol_database
    except ImportError:
        return
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is None:
        return  # protobuf 4 and older still have GetPrototype
    for cls in (message_factory.MessageFactory, symbol_database.SymbolDatabase):
        if not hasattr(cls, "GetPrototype"):
            cls.GetPrototype = lambda self, descriptor: get_class(descriptor)  # type: ignore[attr-defined]


def find_faces(rgb: np.ndarray, max_faces: int, min_confidence: float) -> list[FaceLandmarks]:
    """MediaPipe's FaceMesh landmarks of up to `max_faces` faces in an RGB uint8 picture."""
    face_mesh = _face_mesh_module()
    with _LOCK, _open_mesh(face_mesh, max_faces, min_confidence) as mesh:
        found = mesh.process(np.ascontiguousarray(rgb)).multi_face_landmarks
    return [_landmarks(face.landmark) for face in found or ()]


def _open_mesh(face_mesh: ModuleType, max_faces: int, min_confidence: float):
    try:
        return face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max(1, int(max_faces)),
            refine_landmarks=True,
            min_detection_confidence=float(min_confidence),
        )
    except AttributeError as exc:  # protobuf 7 dropped FieldDescriptor.label, which mediapipe 0.10.x reads
        raise PreprocessorError(
            f"mediapipe cannot run beside this protobuf ({exc}); mediapipe 0.10.x needs protobuf older "
            'than 7: pip install "protobuf<7"'
        ) from exc


def _landmarks(landmarks) -> FaceLandmarks:
    points = np.array([(mark.x, mark.y) for mark in landmarks], dtype=np.float64)
    visibility = np.array([_field(mark, "visibility") for mark in landmarks])
    presence = np.array([_field(mark, "presence") for mark in landmarks])
    return FaceLandmarks(
        points,
        drawable=~((visibility < 0.5) | (presence < 0.5)),
        pupil_drawable=~((visibility < 0.9) | (presence < 0.5)),
    )


def _field(landmark, name: str) -> float:
    """A landmark's optional value, NaN (never below a threshold) when MediaPipe did not set it."""
    return float(getattr(landmark, name)) if landmark.HasField(name) else float("nan")


def large_enough(face: FaceLandmarks, width: int, height: int) -> bool:
    """The extension drops faces whose landmark box is under 64 pixels on its short side."""
    low, high = face.points.min(axis=0), face.points.max(axis=0)
    size = (high - low) * (width, height)
    return float(min(size)) >= MIN_FACE_PIXELS


def draw_faces(height: int, width: int, faces: list[FaceLandmarks]) -> np.ndarray:
    """The extension's face map (RGB) for the faces found in a picture of that size."""
    from mediapipe.python.solutions import face_mesh_connections as parts  # the sets MediaPipe draws

    canvas = np.zeros((height, width, 3), np.uint8)
    colours: dict[tuple[int, int], tuple[int, int, int]] = {}
    for attribute, colour in PART_COLOURS:
        for edge in getattr(parts, attribute):
            colours[edge] = colour
    for face in faces:
        pixels = _pixels(face, width, height)
        for (start, end), colour in colours.items():
            if start in pixels and end in pixels:
                cv2.line(canvas, pixels[start], pixels[end], colour, LINE_THICKNESS)
        _draw_pupils(canvas, face)
    return canvas[:, :, ::-1].copy()


def _pixels(face: FaceLandmarks, width: int, height: int) -> dict[int, tuple[int, int]]:
    """The pixel of each landmark MediaPipe's drawing draws, by landmark index."""
    pixels: dict[int, tuple[int, int]] = {}
    for index, ((x, y), drawable) in enumerate(
        zip(face.points.tolist(), face.drawable.tolist(), strict=True)
    ):
        if drawable and _in_unit_range(x) and _in_unit_range(y):
            pixels[index] = (min(math.floor(x * width), width - 1), min(math.floor(y * height), height - 1))
    return pixels


def _in_unit_range(value: float) -> bool:
    return (value > 0 or math.isclose(0, value)) and (value < 1 or math.isclose(1, value))


def _draw_pupils(canvas: np.ndarray, face: FaceLandmarks) -> None:
    height, width = canvas.shape[:2]
    half = PUPIL_HALF_WIDTH
    for index, colour in PUPILS.items():
        if index >= len(face.points) or not face.pupil_drawable[index]:
            continue
        x, y = face.points[index]
        if not (0 <= x < 1 and 0 <= y < 1):
            continue
        px, py = int(width * x), int(height * y)
        canvas[py - half : py + half, px - half : px + half, :] = colour


def face_mesh_map(rgb: np.ndarray, max_faces: int, min_confidence: float) -> np.ndarray:
    """The `mediapipe_face` map of an RGB picture (at the size given); black where no face is found."""
    height, width = rgb.shape[:2]
    faces = [f for f in find_faces(rgb, max_faces, min_confidence) if large_enough(f, width, height)]
    return draw_faces(height, width, faces)
