"""A1111's `modules.codeformer_model`: `codeformer` is None, as in A1111 before its model is set up
(Sumi has no face restoration models)."""

from __future__ import annotations

from typing import Any

codeformer: Any = None


def setup_model(dirname: str) -> None:
    """A1111 loads the CodeFormer model here; Sumi has none to load."""
