"""Which torchvision release was built for a given torch release.

torchvision wheels are built against one torch release (their metadata says `torch==X.Y.Z`), and a
build's native operators only load next to a torch of the same kind: PyPI's Linux torchvision is a
CUDA build and fails with "operator torchvision::nms does not exist" next to a CPU-only torch. So the
release is derived from the torch version, and the local label (`+cpu`, `+cu128`, `+rocm6.4`) is
carried over: torch `2.13.0+cpu` -> torchvision `0.28.0+cpu`.

Table of torch minor release -> torchvision minor release (and patch offset); every 2.x release since
2.1 follows "torchvision 0.(minor + 15).patch", which is used for 2.x releases newer than the table.
"""

from __future__ import annotations

import re

# (torch major, minor) -> (torchvision minor, patch offset); torchvision major is always 0 so far.
TORCHVISION_FOR_TORCH: dict[tuple[int, int], tuple[int, int]] = {
    (1, 11): (12, 0),
    (1, 12): (13, 0),
    (1, 13): (14, 0),
    (2, 0): (15, 1),  # torch 2.0.0 -> 0.15.1, 2.0.1 -> 0.15.2
    **{(2, minor): (minor + 15, 0) for minor in range(1, 14)},  # 2.1 -> 0.16 ... 2.13 -> 0.28
}
_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?[^+\s]*(?:\+(\S+))?\s*$")


def torchvision_for_torch(torch_version: str) -> str | None:
    """The torchvision version built for `torch_version` ("2.13.0+cpu" -> "0.28.0+cpu"); None if unknown."""
    match = _VERSION.match(torch_version or "")
    if match is None:
        return None
    major, minor, patch = int(match[1]), int(match[2]), int(match[3] or 0)
    entry = TORCHVISION_FOR_TORCH.get((major, minor))
    if entry is None and major == 2 and minor > max(m for (M, m) in TORCHVISION_FOR_TORCH if M == 2):
        entry = (minor + 15, 0)  # the rule every 2.x release has followed since 2.1
    if entry is None:
        return None
    vision_minor, offset = entry
    label = f"+{match[4]}" if match[4] else ""
    return f"0.{vision_minor}.{patch + offset}{label}"
