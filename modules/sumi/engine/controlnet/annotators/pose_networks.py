"""OpenPose's three networks (CMU's convolutional pose machines) as sd-webui-controlnet downloads them:
`openpose/body_pose_model.pth`, `openpose/hand_pose_model.pth` and `openpose/facenet.pth`.

Each is a VGG-19 trunk at 1/8 of the input size, a first stage of 1x1 convolutions, and five refining
stages of 7x7 convolutions that each see the previous stage's maps beside the trunk's features. The body
network has two branches per stage: 38 part-affinity fields (`_L1`, the limbs' directions) and 19 part
heatmaps (`_L2`); the hand network 22 heatmaps and the face network 71.

The published files keep every convolution at the top level under its Caffe name (`conv1_1.weight`,
`Mconv3_stage4_L2.bias`, `conv6_2_CPM.weight`), which is how these networks register them, so the files
load as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network

POOL = None  # a 2x2 max pool in a layer list
Layer = tuple[str, int, int, int] | None  # (name, inputs, outputs, kernel) or POOL

VGG_TRUNK: tuple[Layer, ...] = (
    ("conv1_1", 3, 64, 3),
    ("conv1_2", 64, 64, 3),
    POOL,
    ("conv2_1", 64, 128, 3),
    ("conv2_2", 128, 128, 3),
    POOL,
    ("conv3_1", 128, 256, 3),
    ("conv3_2", 256, 256, 3),
    ("conv3_3", 256, 256, 3),
    ("conv3_4", 256, 256, 3),
    POOL,
    ("conv4_1", 256, 512, 3),
    ("conv4_2", 512, 512, 3),
)
BODY_TRUNK = (*VGG_TRUNK, ("conv4_3_CPM", 512, 256, 3), ("conv4_4_CPM", 256, 128, 3))
HAND_FACE_TRUNK = (
    *VGG_TRUNK,
    ("conv4_3", 512, 512, 3),
    ("conv4_4", 512, 512, 3),
    ("conv5_1", 512, 512, 3),
    ("conv5_2", 512, 512, 3),
    ("conv5_3_CPM", 512, 128, 3),
)
FEATURES = 128
STAGES = 6


def _refine_stage(stage: int, inputs: int, outputs: int, suffix: str = "") -> tuple[Layer, ...]:
    widths = (inputs, *(FEATURES,) * 6, outputs)
    kernels = (7, 7, 7, 7, 7, 1, 1)
    return tuple(
        (f"Mconv{index + 1}_stage{stage}{suffix}", widths[index], widths[index + 1], kernels[index])
        for index in range(7)
    )


class PoseMachine(nn.Module):
    """A trunk, then per stage one chain of convolutions per branch; every convolution but each
    branch's last is followed by a ReLU (except those named in `relu_after_last`)."""

    def __init__(
        self,
        trunk: tuple[Layer, ...],
        stages: Sequence[Sequence[tuple[Layer, ...]]],
        relu_after_last: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.trunk = self._chain(trunk, relu_last=True)
        self.stages = [[self._chain(branch, relu_after_last) for branch in stage] for stage in stages]

    def _chain(self, layers: tuple[Layer, ...], relu_last: bool | frozenset[str]) -> list[tuple[str, bool]]:
        """Register the chain's convolutions under their own names; (name or "" for a pool, ReLU after)."""
        chain = []
        for position, layer in enumerate(layers):
            if layer is None:  # POOL
                chain.append(("", False))
                continue
            name, inputs, outputs, kernel = layer
            self.add_module(name, nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2))
            last = position == len(layers) - 1
            relu = (not last) or (relu_last if isinstance(relu_last, bool) else name in relu_last)
            chain.append((name, relu))
        return chain

    def _run(self, chain: list[tuple[str, bool]], x: Tensor) -> Tensor:
        for name, relu in chain:
            if not name:
                x = nn.functional.max_pool2d(x, 2, 2)
                continue
            x = getattr(self, name)(x)
            if relu:
                x = torch.relu(x)
        return x

    def forward(self, image: Tensor) -> list[Tensor]:
        """The last stage's maps, one per branch, at 1/8 of the input size."""
        features = self._run(self.trunk, image)
        maps = [self._run(branch, features) for branch in self.stages[0]]
        for stage in self.stages[1:]:
            joined = torch.cat([*maps, features], dim=1)
            maps = [self._run(branch, joined) for branch in stage]
        return maps


def _body_first_stage(branch: str, outputs: int) -> tuple[Layer, ...]:
    return (
        (f"conv5_1_CPM_{branch}", FEATURES, FEATURES, 3),
        (f"conv5_2_CPM_{branch}", FEATURES, FEATURES, 3),
        (f"conv5_3_CPM_{branch}", FEATURES, FEATURES, 3),
        (f"conv5_4_CPM_{branch}", FEATURES, 512, 1),
        (f"conv5_5_CPM_{branch}", 512, outputs, 1),
    )


def body_network() -> PoseMachine:
    """38 limb fields and 19 heatmaps. The last stage's heatmaps pass a ReLU (the original network's
    layer list names the fields' last layer twice and the heatmaps' not at all)."""
    joined = 38 + 19 + FEATURES
    stages: list[list[tuple[Layer, ...]]] = [[_body_first_stage("L1", 38), _body_first_stage("L2", 19)]]
    for stage in range(2, STAGES + 1):
        stages.append([_refine_stage(stage, joined, 38, "_L1"), _refine_stage(stage, joined, 19, "_L2")])
    return PoseMachine(BODY_TRUNK, stages, relu_after_last=frozenset({"Mconv7_stage6_L2"}))


def _keypoint_network(outputs: int) -> PoseMachine:
    first = (("conv6_1_CPM", FEATURES, 512, 1), ("conv6_2_CPM", 512, outputs, 1))
    stages: list[list[tuple[Layer, ...]]] = [[first]]
    for stage in range(2, STAGES + 1):
        stages.append([_refine_stage(stage, outputs + FEATURES, outputs)])
    return PoseMachine(HAND_FACE_TRUNK, stages)


def hand_network() -> PoseMachine:
    """22 heatmaps: 21 hand joints and the background."""
    return _keypoint_network(22)


def face_network() -> PoseMachine:
    """71 heatmaps: 70 face landmarks and the background."""
    return _keypoint_network(71)


def load_body(path: Path, allow_unsafe_pickle: bool = False) -> PoseMachine:
    return load_network(path, body_network, "OpenPose body", allow_unsafe_pickle)


def load_hand(path: Path, allow_unsafe_pickle: bool = False) -> PoseMachine:
    return load_network(path, hand_network, "OpenPose hand", allow_unsafe_pickle)


def load_face(path: Path, allow_unsafe_pickle: bool = False) -> PoseMachine:
    return load_network(path, face_network, "OpenPose face", allow_unsafe_pickle)
