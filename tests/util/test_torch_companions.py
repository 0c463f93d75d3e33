"""The torchvision release built for a torch release (issue 15, point 5)."""

from __future__ import annotations

import pytest

from modules.sumi.util.torch_companions import torchvision_for_torch


@pytest.mark.parametrize(
    ("torch_version", "torchvision"),
    [
        ("2.13.0+cpu", "0.28.0+cpu"),  # the dev/CI machines
        ("2.13.1+cu128", "0.28.1+cu128"),
        ("2.13.0", "0.28.0"),
        ("2.5.1+rocm6.2", "0.20.1+rocm6.2"),
        ("2.1.2", "0.16.2"),
        ("2.0.1", "0.15.2"),  # 2.0 is the one release whose patch numbers differ
        ("1.13.1+cu117", "0.14.1+cu117"),
        ("2.14.0.dev20260101+cpu", "0.29.0+cpu"),  # newer than the table: the 2.x rule
        ("3.0.0", None),
        ("1.9.0", None),
        ("not a version", None),
    ],
)
def test_torchvision_is_the_build_made_for_the_running_torch(torch_version, torchvision):
    assert torchvision_for_torch(torch_version) == torchvision
