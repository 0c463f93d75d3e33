"""A1111's `modules.deepbooru`: Sumi has no DeepDanbooru interrogator; using `model` raises a clear error."""

from __future__ import annotations

from modules.sumi.util.unsupported import Unsupported

model = Unsupported("deepbooru.model", "Sumi has no DeepDanbooru interrogator")
