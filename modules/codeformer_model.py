"""A1111's `modules.codeformer_model`: `codeformer` is the CodeFormer restorer (`restore(np_image,
w=None)`) when codeformer-v0.1.0.pth is in models/Codeformer, else None as in A1111 before setup."""

from __future__ import annotations

from typing import Any

from modules import face_restoration_utils


def __getattr__(name: str) -> Any:
    if name == "codeformer":
        return face_restoration_utils.builtin_restorer("CodeFormer")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def setup_model(dirname: str) -> None:
    """A1111 loads the CodeFormer model here; Sumi finds it in models/Codeformer (--codeformer-models-path)."""
