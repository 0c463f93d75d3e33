"""A checkpoint's trained size comes from its `modelspec.resolution` metadata; anything else is 512x512."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from modules.sumi.services.models.native_size import DEFAULT_SIZE, native_size


def _file(tmp_path, metadata: dict[str, str] | None, name: str = "m.safetensors"):
    path = tmp_path / name
    save_file({"x": torch.zeros(1)}, path, metadata=metadata)
    return path


@pytest.mark.parametrize(
    ("resolution", "expected"),
    [("1024x1024", (1024, 1024)), ("768x512", (768, 512)), (" 128 X 128 ", (128, 128))],
)
def test_the_size_is_read_from_the_model_spec(tmp_path, resolution, expected):
    assert native_size(_file(tmp_path, {"modelspec.resolution": resolution})) == expected


@pytest.mark.parametrize("resolution", ["", "big", "1024", "10x10", "99999x99999", "-512x512"])
def test_a_missing_or_odd_resolution_gives_a1111s_default(tmp_path, resolution):
    assert native_size(_file(tmp_path, {"modelspec.resolution": resolution})) == DEFAULT_SIZE


def test_files_that_cannot_say_give_the_default(tmp_path):
    assert native_size(_file(tmp_path, None)) == DEFAULT_SIZE
    assert native_size(None) == DEFAULT_SIZE
    assert native_size(tmp_path / "missing.safetensors") == DEFAULT_SIZE
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    assert native_size(broken) == DEFAULT_SIZE
    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(b"")
    assert native_size(ckpt) == DEFAULT_SIZE
