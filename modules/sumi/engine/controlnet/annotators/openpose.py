"""OpenPose: people's body, hand and face keypoints, drawn as the coloured stick figures ControlNet's
openpose models were trained on, and written as OpenPose JSON (what `/controlnet/detect` returns).

Reading a body follows CMU's bottom-up method as sd-webui-controlnet runs it: the body network at one
scale (368 * 0.5 pixels high) gives 18 part heatmaps and 19 limb fields; parts are the heatmaps' local
maxima over 0.1 after a blur; each limb joins the part pairs whose field points along the line between
them, best first; joined limbs grow into people, and people with fewer than 4 parts or a mean score
under 0.4 are dropped. A hand is looked for in a square past each wrist (sized from the forearm and
upper arm), at four scales; a face in a square around the nose sized from the eyes and ears.

Coordinates are kept as the extension keeps them, so maps and JSON equal its own: body keypoints as
fractions of the picture, hand and face keypoints likewise in float32, a keypoint the hand network
could not place at -1 / size.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from modules.sumi.engine.controlnet.annotators.pose_networks import PoseMachine

BOX, STRIDE, PAD_VALUE = 368, 8, 128
BODY_SCALE = 0.5
HAND_SIZES = (184.0, 368.0, 552.0, 736.0)
HAND_MAP, FACE_INPUT = 128, 384
PART_THRESHOLD, FIELD_THRESHOLD, HAND_THRESHOLD, FACE_THRESHOLD = 0.1, 0.05, 0.05, 0.05
LIMB_SAMPLES, MIN_BOX = 10, 20
BODY_PARTS, PERSON_COLUMNS = 18, 20  # a person: 18 candidate ids, total score, part count

# The 19 limbs as (part, part), and the limb field's (x, y) channels for each.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)  # fmt: skip
FIELDS = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7),
    (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27),
)  # fmt: skip
DRAWN_LIMBS = 17  # the last two limbs (ear to shoulder) join people but are not drawn
COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
HAND_BONES = tuple((0 if i % 4 == 0 else i, i + 1) for i in range(20))
EPS = 0.01

Point = tuple[Any, Any]  # (x, y): float64 for bodies, float32 for hands and faces


@dataclass(frozen=True)
class Person:
    """One person: 18 body keypoints (None where not found) and hands and face when read."""

    body: Sequence[Point | None]
    left_hand: Sequence[Point | None] | None = None
    right_hand: Sequence[Point | None] | None = None
    face: Sequence[Point | None] | None = None


# --- resizing as the original code does -------------------------------------------------------------


def _resize(x: np.ndarray, height: float, width: float) -> np.ndarray:
    """To int(height) x int(width): area when shrinking (by the sum of sides), Lanczos when growing;
    maps with other than 1 or 3 channels one channel at a time."""
    if x.ndim == 3 and x.shape[2] not in (1, 3):
        return np.stack([_resize(x[:, :, c], height, width) for c in range(x.shape[2])], axis=2)
    shrink = (height + width) / float(x.shape[0] + x.shape[1]) < 1
    return cv2.resize(
        x, (int(width), int(height)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4
    )


def _scaled(x: np.ndarray, factor: float) -> np.ndarray:
    return _resize(x, x.shape[0] * factor, x.shape[1] * factor)


def _network_maps(network: PoseMachine, bgr: np.ndarray, device: torch.device) -> list[np.ndarray]:
    """The network's maps (HxWxC float32) at the picture's size: padded right and down to the stride
    with grey, run, scaled up by the stride and the padding cut off."""
    height, width = bgr.shape[:2]
    pad_down, pad_right = -height % STRIDE, -width % STRIDE
    padded = np.pad(bgr, [(0, pad_down), (0, pad_right), (0, 0)], constant_values=PAD_VALUE)
    batch = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))[None]).to(device, torch.float32)
    with torch.no_grad():
        outputs = network(batch / 256 - 0.5)
    maps = []
    for output in outputs:
        full = _scaled(output[0].float().cpu().numpy().transpose(1, 2, 0), STRIDE)
        maps.append(full[: padded.shape[0] - pad_down, : padded.shape[1] - pad_right])
    return maps


# --- bodies -------------------------------------------------------------------------------------------


def _body_parts(heatmaps: np.ndarray) -> list[np.ndarray]:
    """Per part, its peaks as rows (x, y, score, id); ids count on across parts."""
    parts, next_id = [], 0
    for part in range(BODY_PARTS):
        raw = heatmaps[:, :, part]
        smooth = ndimage.gaussian_filter(raw, sigma=3)
        framed = np.pad(smooth, 1)
        peak = smooth > PART_THRESHOLD
        for shifted in (framed[:-2, 1:-1], framed[2:, 1:-1], framed[1:-1, :-2], framed[1:-1, 2:]):
            peak &= smooth >= shifted
        ys, xs = np.nonzero(peak)
        ids = np.arange(next_id, next_id + len(xs))
        parts.append(np.stack([xs, ys, raw[ys, xs], ids], axis=-1).astype(np.float64).reshape(-1, 4))
        next_id += len(xs)
    return parts


def _limb_score(fields: np.ndarray, channels: tuple[int, int], a: np.ndarray, b: np.ndarray, height: int):
    """How well the limb field runs from part a to part b, with the prior against long limbs; None
    when fewer than 80 % of the samples along the line agree."""
    direction = b[:2] - a[:2]
    norm = max(0.001, math.sqrt(direction[0] * direction[0] + direction[1] * direction[1]))
    direction = direction / norm
    xs = np.rint(np.linspace(a[0], b[0], num=LIMB_SAMPLES)).astype(int)
    ys = np.rint(np.linspace(a[1], b[1], num=LIMB_SAMPLES)).astype(int)
    along = fields[ys, xs, channels[0]] * direction[0] + fields[ys, xs, channels[1]] * direction[1]
    score = sum(along) / len(along) + min(0.5 * height / norm - 1, 0)
    if np.count_nonzero(along > FIELD_THRESHOLD) > 0.8 * len(along) and score > 0:
        return score
    return None


def _limb_connections(fields: np.ndarray, parts: list[np.ndarray], height: int) -> list[np.ndarray | None]:
    """Per limb, rows (id a, id b, score, index a, index b), each part used once, best first."""
    connections: list[np.ndarray | None] = []
    for (part_a, part_b), channels in zip(LIMBS, FIELDS, strict=True):
        found_a, found_b = parts[part_a], parts[part_b]
        if not len(found_a) or not len(found_b):
            connections.append(None)
            continue
        candidates = []
        for i, a in enumerate(found_a):
            for j, b in enumerate(found_b):
                score = _limb_score(fields, channels, a, b, height)
                if score is not None:
                    candidates.append((i, j, score))
        chosen: list[list[float]] = []
        for i, j, score in sorted(candidates, key=lambda c: c[2], reverse=True):
            if all(i != row[3] and j != row[4] for row in chosen):
                chosen.append([found_a[i][3], found_b[j][3], score, i, j])
                if len(chosen) >= min(len(found_a), len(found_b)):
                    break
        connections.append(np.array(chosen, dtype=np.float64).reshape(-1, 5))
    return connections


def _assemble(connections: list[np.ndarray | None], scores: np.ndarray) -> np.ndarray:
    """People as rows of PERSON_COLUMNS: the candidate id of each part (-1: none), score, count."""
    people = -np.ones((0, PERSON_COLUMNS))
    for limb, joined in enumerate(connections):
        if joined is None:
            continue
        part_a, part_b = LIMBS[limb]
        for id_a, id_b, score, *_ in joined:
            owners = [
                p for p in range(len(people)) if people[p][part_a] == id_a or people[p][part_b] == id_b
            ][:2]
            if len(owners) == 2 and not np.any(((people[owners[0]] >= 0) & (people[owners[1]] >= 0))[:-2]):
                first, second = owners
                people[first][:-2] += people[second][:-2] + 1
                people[first][-2:] += people[second][-2:]
                people[first][-2] += score
                people = np.delete(people, second, 0)
            elif owners:
                person = people[owners[0]]
                if len(owners) == 2 or person[part_b] != id_b:
                    person[part_b] = id_b
                    person[-1] += 1
                    person[-2] += scores[int(id_b)] + score
            elif limb < DRAWN_LIMBS:
                person = -np.ones(PERSON_COLUMNS)
                person[part_a], person[part_b] = id_a, id_b
                person[-1] = 2
                person[-2] = scores[int(id_a)] + scores[int(id_b)] + score
                people = np.vstack([people, person])
    keep = [p for p in range(len(people)) if not (people[p][-1] < 4 or people[p][-2] / people[p][-1] < 0.4)]
    return people[keep]


def read_bodies(network: PoseMachine, bgr: np.ndarray, device: torch.device) -> list[list[Point | None]]:
    """Each person's 18 body keypoints in pixels (None where a part was not joined)."""
    height = bgr.shape[0]
    scale = BODY_SCALE * BOX / height
    scaled = _resize(bgr, height * scale, bgr.shape[1] * scale)
    fields, heatmaps = (
        _resize(m, bgr.shape[0], bgr.shape[1]).astype(np.float64)
        for m in _network_maps(network, scaled, device)
    )
    parts = _body_parts(heatmaps)
    candidates = np.concatenate(parts)
    people = _assemble(_limb_connections(fields, parts, height), candidates[:, 2])
    return [
        [
            None if index == -1 else (candidates[index][0], candidates[index][1])
            for index in person[:BODY_PARTS].astype(int)
        ]
        for person in people
    ]


# --- hands and faces ----------------------------------------------------------------------------------


def _hand_boxes(body: list[Point | None], height: int, width: int) -> list[tuple[int, int, int, bool]]:
    """(x, y, side, is_left) of a square past each wrist whose arm was found, at least 20 pixels."""
    boxes = []
    for shoulder, elbow, wrist, is_left in ((5, 6, 7, True), (2, 3, 4, False)):
        arm = (body[shoulder], body[elbow], body[wrist])
        if any(point is None for point in arm):
            continue
        (x1, y1), (x2, y2), (x3, y3) = arm  # type: ignore[misc]
        x, y = x3 + 0.33 * (x3 - x2), y3 + 0.33 * (y3 - y2)
        forearm = math.sqrt((x3 - x2) ** 2 + (y3 - y2) ** 2)
        upper_arm = math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
        side = 1.5 * max(forearm, 0.9 * upper_arm)
        x, y = max(x - side / 2, 0), max(y - side / 2, 0)
        side = min(width - x if x + side > width else side, height - y if y + side > height else side)
        if side >= MIN_BOX:
            boxes.append((int(x), int(y), int(side), is_left))
    return boxes


def _hand_points(network: PoseMachine, crop: np.ndarray, device: torch.device) -> np.ndarray:
    """21 (x, y) joints in the crop's pixels, [0, 0] for a joint not seen, from four scales."""
    blurred = cv2.GaussianBlur(crop, (0, 0), 0.8)
    average = np.zeros((HAND_MAP, HAND_MAP, 22))
    for size in HAND_SIZES:
        (heat,) = _network_maps(network, _resize(blurred, size, size), device)
        average += _resize(heat, HAND_MAP, HAND_MAP) / len(HAND_SIZES)
    points = []
    for joint in range(21):
        raw = average[:, :, joint]
        above = ndimage.gaussian_filter(raw, sigma=3) > HAND_THRESHOLD
        if not above.any():
            points.append([0, 0])
            continue
        labels, count = ndimage.label(above, structure=np.ones((3, 3)))  # type: ignore[misc]
        best = np.argmax([np.sum(raw[labels == label]) for label in range(1, count + 1)]) + 1
        raw[labels != best] = 0
        y, x = np.unravel_index(np.argmax(raw), raw.shape)
        points.append([int(float(x) * crop.shape[1] / HAND_MAP), int(float(y) * crop.shape[0] / HAND_MAP)])
    return np.array(points)


def _face_box(body: list[Point | None], height: int, width: int) -> tuple[int, int, int] | None:
    """(x, y, side) of a square around the nose sized by the eyes (x3) and ears (x1.5)."""
    nose = body[0]
    around = [(body[i], factor) for i, factor in ((14, 3.0), (15, 3.0), (16, 1.5), (17, 1.5))]
    if nose is None or all(point is None for point, _ in around):
        return None
    side = 0.0
    for point, factor in around:
        if point is not None:
            side = max(side, max(abs(nose[0] - point[0]), abs(nose[1] - point[1])) * factor)
    x, y = max(nose[0] - side, 0), max(nose[1] - side, 0)
    # As the original: the box is 2 * side wide, but is clipped as if it were side wide.
    wide = min(width - x if x + side > width else side * 2, height - y if y + side > height else side * 2)
    return (int(x), int(y), int(wide)) if wide >= MIN_BOX else None


def _face_points(network: PoseMachine, crop: np.ndarray, device: torch.device) -> np.ndarray:
    """(x, y) of each landmark map's maximum over 0.05, in the crop's pixels (maps without are left out)."""
    scaled = _resize(crop, FACE_INPUT, FACE_INPUT)
    batch = torch.from_numpy(np.ascontiguousarray(scaled)).permute(2, 0, 1)[None].to(device) / 256.0 - 0.5
    with torch.no_grad():
        (maps,) = network(batch)
        maps = (
            F.interpolate(maps.float(), crop.shape[:2], mode="bilinear", align_corners=True)[0].cpu().numpy()
        )
    points = []
    for landmark in maps:
        if (landmark > FACE_THRESHOLD).any():
            y, x = np.unravel_index(np.argmax(landmark), landmark.shape)
            points.append([x, y])
    return np.array(points)


def _placed(points: np.ndarray, x: int, y: int, height: int, width: int) -> list[Point] | None:
    """Crop points as float32 fractions of the picture; a point at 0 becomes -1 / size."""
    if points.ndim != 2 or points.shape[1] != 2:
        return None
    points = points.astype(np.float32)
    xs = np.where(points[:, 0] < 1e-6, -1, points[:, 0] + x) / float(width)
    ys = np.where(points[:, 1] < 1e-6, -1, points[:, 1] + y) / float(height)
    return list(zip(xs.astype(np.float32), ys.astype(np.float32), strict=True))


@dataclass(frozen=True)
class PoseNetworks:
    body: PoseMachine
    hand: PoseMachine | None = None
    face: PoseMachine | None = None


def read_people(networks: PoseNetworks, rgb: np.ndarray, device: torch.device) -> list[Person]:
    """Everyone in an RGB picture: bodies, and hands and faces where their networks are given."""
    bgr = rgb[:, :, ::-1].copy()
    height, width = bgr.shape[:2]
    people = []
    for body in read_bodies(networks.body, bgr, device):
        hands: dict[bool, list[Point] | None] = {True: None, False: None}
        if networks.hand is not None:
            for x, y, side, is_left in _hand_boxes(body, height, width):
                points = _hand_points(networks.hand, bgr[y : y + side, x : x + side], device)
                hands[is_left] = _placed(points, x, y, height, width) or hands[is_left]
        face = None
        if networks.face is not None and (box := _face_box(body, height, width)) is not None:
            x, y, side = box
            face = _placed(
                _face_points(networks.face, bgr[y : y + side, x : x + side], device), x, y, height, width
            )
        fractions = [None if p is None else (p[0] / float(width), p[1] / float(height)) for p in body]
        people.append(Person(fractions, hands[True], hands[False], face))
    return people


# --- drawing and JSON ---------------------------------------------------------------------------------


def _scale(canvas: np.ndarray, points: Sequence[Point | None]) -> tuple[float, float]:
    """(height, width) to multiply keypoints by: the canvas size for fractions, 1 for pixels (DW Pose
    keeps pixels); the extension tells them apart by every point lying within 0..1 (in absolute value)."""
    found = [p for p in points if p is not None]
    if found and all(abs(p[0]) <= 1 and abs(p[1]) <= 1 for p in found):
        return float(canvas.shape[0]), float(canvas.shape[1])
    return 1.0, 1.0


def _draw_body(canvas: np.ndarray, body: Sequence[Point | None]) -> None:
    height, width = _scale(canvas, body)
    for (a, b), colour in zip(LIMBS[:DRAWN_LIMBS], COLOURS, strict=False):
        if body[a] is None or body[b] is None:
            continue
        xs = np.array([body[a][0], body[b][0]]) * float(width)  # type: ignore[index]
        ys = np.array([body[a][1], body[b][1]]) * float(height)  # type: ignore[index]
        length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        centre = (int(np.mean(xs)), int(np.mean(ys)))
        polygon = cv2.ellipse2Poly(centre, (int(length / 2), 4), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, [int(float(c) * 0.6) for c in colour])  # type: ignore[call-overload]
    for point, colour in zip(body, COLOURS, strict=False):
        if point is not None:
            cv2.circle(canvas, (int(point[0] * width), int(point[1] * height)), 4, colour, thickness=-1)


def _draw_hand(canvas: np.ndarray, hand: Sequence[Point | None] | None) -> None:
    if not hand:
        return
    height, width = _scale(canvas, hand)
    pixels = [None if p is None else (int(p[0] * width), int(p[1] * height)) for p in hand]
    for bone, (a, b) in enumerate(HAND_BONES):
        first, second = pixels[a], pixels[b]
        if first is None or second is None:
            continue
        (x1, y1), (x2, y2) = first, second
        if x1 > EPS and y1 > EPS and x2 > EPS and y2 > EPS:
            colour = [c * 255 for c in colorsys.hsv_to_rgb(bone / float(len(HAND_BONES)), 1.0, 1.0)]
            cv2.line(canvas, (x1, y1), (x2, y2), colour, thickness=2)
    for point in pixels:
        if point is not None and point[0] > EPS and point[1] > EPS:
            cv2.circle(canvas, point, 4, (0, 0, 255), thickness=-1)


def _draw_face(canvas: np.ndarray, face: Sequence[Point | None] | None) -> None:
    if not face:
        return
    height, width = _scale(canvas, face)
    for point in face:
        if point is None:
            continue
        x, y = int(point[0] * width), int(point[1] * height)
        if x > EPS and y > EPS:
            cv2.circle(canvas, (x, y), 3, (255, 255, 255), thickness=-1)


def draw_people(
    people: list[Person], height: int, width: int, body: bool = True, hands: bool = False, face: bool = False
) -> np.ndarray:
    """The stick figures (HxWx3 uint8 RGB) on black."""
    canvas = np.zeros((height, width, 3), np.uint8)
    for person in people:
        if body:
            _draw_body(canvas, person.body)
        if hands:
            _draw_hand(canvas, person.left_hand)
            _draw_hand(canvas, person.right_hand)
        if face:
            _draw_face(canvas, person.face)
    return canvas


def _flat(points: Sequence[Point | None] | None) -> list[float] | None:
    if not points:
        return None
    return [v for p in points for v in ((0.0, 0.0, 0.0) if p is None else (float(p[0]), float(p[1]), 1.0))]


def pose_json(
    people: list[Person], height: int, width: int, animals: Sequence[Sequence[Point]] = ()
) -> dict[str, Any]:
    """OpenPose's JSON as the extension writes it: keypoints as flat (x, y, confidence) triples (fractions
    for OpenPose, pixels for DW Pose and animals)."""
    return {
        "people": [
            {
                "pose_keypoints_2d": _flat(person.body),
                "face_keypoints_2d": _flat(person.face),
                "hand_left_keypoints_2d": _flat(person.left_hand),
                "hand_right_keypoints_2d": _flat(person.right_hand),
            }
            for person in people
        ],
        "animals": [_flat(animal) for animal in animals],
        "canvas_height": height,
        "canvas_width": width,
    }
