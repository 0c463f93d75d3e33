"""OpenPose JSON drawn back into a pose picture: sd-webui-controlnet's `/controlnet/render_openpose_json`
(a pose edited in the openpose editor, or one a client built), drawn as the openpose preprocessors draw.

As the extension reads the JSON: keypoints are flat (x, y, confidence) triples and a point with a
confidence under 1 is missing; coordinates within 0..1 are fractions of the canvas, others pixels; the
body, both hands and the face are drawn. A pose with no people draws its "animals" (AP10k keypoints in
pixels), which the extension's route drops from its body model and so draws as a black canvas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modules.sumi.engine.controlnet.annotators.dwpose import ANIMAL_LIMBS, draw_animals
from modules.sumi.engine.controlnet.annotators.openpose import (
    BODY_PARTS,
    HAND_BONES,
    Person,
    Point,
    draw_people,
)
from modules.sumi.engine.errors import InvalidRequestError

MAX_CANVAS = 8192  # pixels per side
MAX_COORDINATE = 1e5  # beyond it a point is far off any canvas; clipped so drawing stays in int range
HAND_POINTS = HAND_BONES[-1][1] + 1
ANIMAL_POINTS = max(max(limb) for limb in ANIMAL_LIMBS)


def _triples(numbers: Sequence[float] | None, where: str, minimum: int) -> list[tuple[float, float, float]]:
    if not numbers:
        return []
    if len(numbers) % 3:
        raise InvalidRequestError(
            f"{where}: keypoints are (x, y, confidence) triples; got {len(numbers)} numbers"
        )
    if len(numbers) < 3 * minimum:
        raise InvalidRequestError(
            f"{where}: at least {minimum} keypoints ({3 * minimum} numbers); got {len(numbers)}"
        )
    values = np.clip(np.asarray(numbers, dtype=np.float64), -MAX_COORDINATE, MAX_COORDINATE)
    return [(float(x), float(y), float(c)) for x, y, c in values.reshape(-1, 3)]


def _points(numbers: Sequence[float] | None, where: str, minimum: int) -> list[Point | None] | None:
    triples = _triples(numbers, where, minimum)
    return [(x, y) if c >= 1.0 else None for x, y, c in triples] or None


def people_from_json(people: Sequence[Mapping[str, Any]], where: str = "people") -> list[Person]:
    """The people of an OpenPose JSON: 18 body keypoints (COCO order), 21 per hand, the face's."""
    found = []
    for i, person in enumerate(people):
        at = f"{where}[{i}]"
        body = _points(person.get("pose_keypoints_2d"), f"{at}.pose_keypoints_2d", BODY_PARTS)
        found.append(
            Person(
                body=body or [None] * BODY_PARTS,
                left_hand=_points(
                    person.get("hand_left_keypoints_2d"), f"{at}.hand_left_keypoints_2d", HAND_POINTS
                ),
                right_hand=_points(
                    person.get("hand_right_keypoints_2d"), f"{at}.hand_right_keypoints_2d", HAND_POINTS
                ),
                face=_points(person.get("face_keypoints_2d"), f"{at}.face_keypoints_2d", 1),
            )
        )
    return found


def render_pose(pose: Mapping[str, Any], where: str = "pose") -> np.ndarray:
    """One pose JSON (people or animals, canvas_width, canvas_height) as an HxWx3 uint8 RGB picture."""
    width, height = int(pose["canvas_width"]), int(pose["canvas_height"])
    if not (1 <= width <= MAX_CANVAS and 1 <= height <= MAX_CANVAS):
        raise InvalidRequestError(
            f"{where}: the canvas must be 1..{MAX_CANVAS} pixels per side; got {width}x{height}"
        )
    people = people_from_json(pose.get("people") or [], f"{where}.people")
    if people:
        return draw_people(people, height, width, body=True, hands=True, face=True)
    animals = [
        _triples(animal, f"{where}.animals[{i}]", ANIMAL_POINTS)
        for i, animal in enumerate(pose.get("animals") or [])
    ]
    return draw_animals([a for a in animals if a], height, width)
