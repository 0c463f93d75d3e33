"""Shared pytest fixtures. Tiny checkpoints are written once per session and must not be modified."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tiny_models import SD2_V_YAML, write_tiny_checkpoint


def _tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, name: str, family: str, **kwargs):
    path = Path(tmp_path_factory.mktemp(name)) / f"{name}.safetensors"
    return path, write_tiny_checkpoint(path, family, **kwargs)


@pytest.fixture(scope="session")
def tiny_sd1_ckpt(tmp_path_factory):
    """(path, components) of a tiny SD1 .safetensors checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, "tiny_sd1", "SD1")


@pytest.fixture(scope="session")
def tiny_sd2v_ckpt(tmp_path_factory):
    """(path, components) of a tiny SD2 checkpoint with a `<stem>.yaml` saying v-prediction."""
    return _tiny_checkpoint(tmp_path_factory, "tiny_sd2v", "SD2", yaml=SD2_V_YAML, v_prediction=True)


@pytest.fixture(scope="session")
def tiny_sdxl_ckpt(tmp_path_factory):
    """(path, components) of a tiny SDXL .safetensors checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, "tiny_sdxl", "SDXL")
