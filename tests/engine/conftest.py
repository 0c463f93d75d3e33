"""Fixtures the engine tests share."""

from __future__ import annotations

import pytest

from modules.sumi.engine.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def model(tiny_sd1_ckpt):
    """The tiny SD1 checkpoint through the real loader, in eval mode; one per test module, as tests patch
    and hook it. A module that needs another model defines its own `model`."""
    model = load_checkpoint(tiny_sd1_ckpt[0])
    for module in model.modules():
        module.eval()
    return model
