"""DeepDanbooru, the tagger A1111 ships as `model-resnet_custom_v3.pt`: a deep bottleneck ResNet that
scores each of its tags for a 512x512 RGB picture.

The file is a state dict whose convolutions are numbered in the order the original (Keras) graph ran
them, `n_Conv_0` ... `n_Conv_178`, plus `tags`, the list of tag names. `LAYOUT` says how those
numbers form the network: a 7x7 stem and max pool, six stages of bottleneck blocks (the first block of
each projects its shortcut, before its own three convolutions in the numbering, except in stage four
where it comes after them), and a 1x1 head with one output per tag, averaged over the picture. Widths
are read from the weights, so smaller files of the same layout load too. Padding follows the original's
TensorFlow "same" rule: 3x3 convolutions pad one pixel all round, or only right and bottom when they
stride by two.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modules.sumi.engine.errors import ModelLoadError


@dataclass(frozen=True)
class Stage:
    blocks: int
    stride: int
    shortcut_last: bool = False  # the projecting block's shortcut is numbered after its convolutions


LAYOUT = (Stage(3, 1), Stage(8, 2), Stage(20, 2), Stage(20, 2, shortcut_last=True), Stage(3, 2), Stage(3, 2))
STEM, HEAD = 0, 178  # n_Conv_0 and n_Conv_178
INPUT_SIZE = 512


class DeepDanbooruError(ModelLoadError):
    """The file is not a DeepDanbooru state dict of this layout (the message names what is wrong)."""


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided in a stage's first block), 1x1 expand, plus the input or its projection."""

    def __init__(self, widths: tuple[int, int, int], stride: int, project: bool) -> None:
        super().__init__()
        cin, width, cout = widths
        self.reduce = nn.Conv2d(cin, width, 1)
        self.conv = nn.Conv2d(width, width, 3, stride)
        self.expand = nn.Conv2d(width, cout, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if project else None
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.reduce(x))
        y = F.pad(y, [0, 1, 0, 1] if self.stride == 2 else [1, 1, 1, 1])
        y = self.expand(F.relu(self.conv(y)))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class DeepDanbooru(nn.Module):
    """Tag probabilities (N, tags) for pictures (N, H, W, 3) with values in [0, 1], as A1111 feeds them."""

    def __init__(self, shapes: Mapping[int, tuple[int, int]], tags: list[str]) -> None:
        """`shapes[i]` is (out, in) channels of `n_Conv_i`."""
        super().__init__()
        self.tags = list(tags)
        self.stem = nn.Conv2d(shapes[STEM][1], shapes[STEM][0], 7, 2)
        blocks = []
        for stage_index, stage in enumerate(LAYOUT):
            for block_index, numbers in enumerate(_stage_numbers(stage_index)):
                first = block_index == 0
                reduce, expand = shapes[numbers["reduce"]], shapes[numbers["expand"]]
                stride = stage.stride if first else 1
                blocks.append(Bottleneck((reduce[1], reduce[0], expand[0]), stride, "shortcut" in numbers))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(shapes[HEAD][1], shapes[HEAD][0], 1, bias=False)

    def forward(self, pictures: torch.Tensor) -> torch.Tensor:
        x = F.pad(pictures.permute(0, 3, 1, 2), [2, 3, 2, 3])
        x = F.relu(self.stem(x.to(self.stem.weight.dtype)))
        x = F.max_pool2d(F.pad(x, [0, 1, 0, 1], value=float("-inf")), 3, 2)
        x = self.head(self.blocks(x))
        return torch.sigmoid(x.mean(dim=(2, 3)))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, object], name: str = "DeepDanbooru") -> DeepDanbooru:
        """Build from a `model-resnet_custom_v3.pt` state dict (its `tags` and numbered convolutions)."""
        tags = state.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise DeepDanbooruError(f"{name}: no `tags` list of tag names; not a DeepDanbooru file")
        weights = {k: v for k, v in state.items() if k != "tags" and isinstance(v, torch.Tensor)}
        shapes = _conv_shapes(weights, name)
        if shapes[HEAD][0] != len(tags):
            raise DeepDanbooruError(f"{name}: {shapes[HEAD][0]} outputs but {len(tags)} tags")
        model = cls(shapes, tags)
        renamed = dict(_renamed(weights))
        missing, unexpected = model.load_state_dict(renamed, strict=False)
        if missing or unexpected:
            raise DeepDanbooruError(
                f"{name}: weights do not fit the layout (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        return model.eval()


def _stage_numbers(stage_index: int) -> Iterator[dict[str, int]]:
    """For each block of a stage: which `n_Conv_*` number is its reduce, conv, expand (and shortcut)."""
    number = 1 + sum(4 + (s.blocks - 1) * 3 for s in LAYOUT[:stage_index])
    stage = LAYOUT[stage_index]
    for block in range(stage.blocks):
        if block == 0 and stage.shortcut_last:
            names = ("reduce", "conv", "expand", "shortcut")
        elif block == 0:
            names = ("shortcut", "reduce", "conv", "expand")
        else:
            names = ("reduce", "conv", "expand")
        yield {n: number + i for i, n in enumerate(names)}
        number += len(names)


def _module_names() -> Iterator[tuple[int, str]]:
    """(A1111 number, this module's name) for every convolution."""
    yield STEM, "stem"
    index = 0
    for stage_index in range(len(LAYOUT)):
        for numbers in _stage_numbers(stage_index):
            for part, number in numbers.items():
                yield number, f"blocks.{index}.{part}"
            index += 1
    yield HEAD, "head"


def _renamed(weights: Mapping[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor]]:
    for number, module in _module_names():
        for kind in ("weight", "bias"):
            key = f"n_Conv_{number}.{kind}"
            if key in weights:
                yield f"{module}.{kind}", weights[key]


def _conv_shapes(weights: Mapping[str, torch.Tensor], name: str) -> dict[int, tuple[int, int]]:
    shapes = {}
    for number, _ in _module_names():
        weight = weights.get(f"n_Conv_{number}.weight")
        if weight is None or weight.dim() != 4:
            raise DeepDanbooruError(
                f"{name}: no n_Conv_{number}.weight; not a DeepDanbooru file of this layout"
            )
        shapes[number] = (int(weight.shape[0]), int(weight.shape[1]))
    return shapes


@torch.no_grad()
def tag_probabilities(model: DeepDanbooru, pictures: torch.Tensor) -> torch.Tensor:
    """(N, tags) probabilities for (N, 512, 512, 3) pictures in [0, 1] on the model's device."""
    param = next(model.parameters())
    return model(pictures.to(param.device, param.dtype)).float().cpu()
