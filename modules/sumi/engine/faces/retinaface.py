"""RetinaFace (ResNet-50 backbone), the face detector A1111 uses through facexlib, as a plain torch module
that loads facexlib's `detection_Resnet50_Final.pth` by its own keys.

The network: a ResNet-50 trunk (torchvision's module names under `body.`), a three-level feature pyramid
(`fpn`), an SSH context module per level (`ssh1..3`) and per-level 1x1 heads for the face score
(`ClassHead`), the box offsets (`BboxHead`) and the five landmarks (`LandmarkHead`), two anchors per cell.
Widths and block counts are read from the weights, so small test files load too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modules.sumi.engine.errors import ModelLoadError

ANCHORS = 2
MIN_SIZES = ((16, 32), (64, 128), (256, 512))  # anchor sides per pyramid level, in pixels
STEPS = (8, 16, 32)  # pyramid strides
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)  # subtracted from the BGR 0..255 input


def _conv_bn(cin: int, cout: int, kernel: int, leaky: float | None) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ LeakyReLU when `leaky` is not None), keys `.0` and `.1`."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky, inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (stride on the 3x3 conv)."""

    def __init__(self, cin: int, width: int, stride: int, downsample: bool) -> None:
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if downsample
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + identity)


class ResNetBody(nn.Module):
    """The ResNet trunk up to layer4; returns the outputs of layer2, layer3 and layer4."""

    def __init__(self, base: int, blocks: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        widths = [base * 2**i for i in range(4)]
        ins = [base, *(w * 4 for w in widths[:3])]
        layers = [_layer(ins[i], widths[i], 1 if i == 0 else 2, blocks[i]) for i in range(4)]
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


def _layer(cin: int, width: int, stride: int, count: int) -> nn.Sequential:
    blocks = [Bottleneck(cin, width, stride, True)]
    blocks += [Bottleneck(width * 4, width, 1, False) for _ in range(count - 1)]
    return nn.Sequential(*blocks)


class FPN(nn.Module):
    def __init__(self, in_channels: list[int], out: int) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.output1 = _conv_bn(in_channels[0], out, 1, leaky)
        self.output2 = _conv_bn(in_channels[1], out, 1, leaky)
        self.output3 = _conv_bn(in_channels[2], out, 1, leaky)
        self.merge1 = _conv_bn(out, out, 3, leaky)
        self.merge2 = _conv_bn(out, out, 3, leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, 5x5 and 7x7 receptive fields concatenated."""

    def __init__(self, cin: int, out: int) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.conv3X3 = _conv_bn(cin, out // 2, 3, None)
        self.conv5X5_1 = _conv_bn(cin, out // 4, 3, leaky)
        self.conv5X5_2 = _conv_bn(out // 4, out // 4, 3, None)
        self.conv7X7_2 = _conv_bn(out // 4, out // 4, 3, leaky)
        self.conv7x7_3 = _conv_bn(out // 4, out // 4, 3, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(branch), self.conv7x7_3(self.conv7X7_2(branch))], 1)
        return F.relu(out)


class Head(nn.Module):
    """A 1x1 conv predicting `values` numbers per anchor, flattened to (B, H*W*anchors, values)."""

    def __init__(self, cin: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(cin, ANCHORS * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """Returns (box offsets (B, N, 4), face probabilities (B, N), landmark offsets (B, N, 10)) for the
    N anchors of `priors(height, width)`; the input is BGR 0..255 minus `MEAN_BGR`, (B, 3, H, W)."""

    def __init__(
        self, base: int = 64, blocks: tuple[int, int, int, int] = (3, 4, 6, 3), out: int = 256
    ) -> None:
        super().__init__()
        self.body = ResNetBody(base, blocks)
        self.fpn = FPN([base * 8, base * 16, base * 32], out)
        self.ssh1, self.ssh2, self.ssh3 = SSH(out, out), SSH(out, out), SSH(out, out)
        self.ClassHead = nn.ModuleList(Head(out, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(out, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(out, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pyramid = self.fpn(self.body(x))
        feats = [self.ssh1(pyramid[0]), self.ssh2(pyramid[1]), self.ssh3(pyramid[2])]
        boxes = torch.cat([h(f) for h, f in zip(self.BboxHead, feats, strict=True)], 1)
        scores = torch.cat([h(f) for h, f in zip(self.ClassHead, feats, strict=True)], 1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats, strict=True)], 1)
        return boxes, F.softmax(scores, dim=-1)[..., 1], landmarks

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], name: str = "detector") -> RetinaFace:
        """Build the network the weights describe and load them (a DataParallel `module.` prefix is
        dropped); weights of another layout are a ModelLoadError naming the missing keys."""
        state = {k.removeprefix("module."): v for k, v in state.items()}
        try:
            base = int(state["body.conv1.weight"].shape[0])
            out = int(state["fpn.output1.0.weight"].shape[0])
        except KeyError as exc:
            raise ModelLoadError(f"{name}: not RetinaFace-ResNet50 weights (no {exc.args[0]!r})") from exc
        blocks = tuple(_count_blocks(state, i) for i in range(1, 5))
        model = cls(base, blocks, out)  # type: ignore[arg-type]
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ModelLoadError(
                f"{name}: the weights do not fit RetinaFace-ResNet50 "
                f"(missing {missing[:4]}, unexpected {list(unexpected)[:4]})"
            )
        return model.eval()


def _count_blocks(state: dict[str, torch.Tensor], layer: int) -> int:
    prefix = f"body.layer{layer}."
    indices = {int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)}
    if not indices:
        raise ModelLoadError(f"detector: not RetinaFace-ResNet50 weights (no {prefix}* keys)")
    return max(indices) + 1


def priors(height: int, width: int) -> torch.Tensor:
    """The anchors (N, 4) as (cx, cy, w, h) fractions of the image, in the network's output order:
    level, row, column, anchor size."""
    out = []
    for sizes, step in zip(MIN_SIZES, STEPS, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        cy = (torch.arange(rows, dtype=torch.float32) + 0.5) * step / height
        cx = (torch.arange(cols, dtype=torch.float32) + 0.5) * step / width
        gy, gx = torch.meshgrid(cy, cx, indexing="ij")
        for_cell = []
        for size in sizes:
            sw = torch.full_like(gx, size / width)
            sh = torch.full_like(gy, size / height)
            for_cell.append(torch.stack([gx, gy, sw, sh], -1))
        out.append(torch.stack(for_cell, 2).reshape(-1, 4))
    return torch.cat(out)


def decode_boxes(loc: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Offsets (N, 4) -> corner boxes (x1, y1, x2, y2) in image fractions (SSD's encoding)."""
    centre = anchors[:, :2] + loc[:, :2] * VARIANCE[0] * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp(loc[:, 2:] * VARIANCE[1])
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def decode_landmarks(pre: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Offsets (N, 10) -> five (x, y) points (N, 10) in image fractions."""
    points = pre.view(-1, 5, 2) * VARIANCE[0] * anchors[:, None, 2:] + anchors[:, None, :2]
    return points.reshape(-1, 10)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in pixel boxes (facexlib's inclusive +1 areas): the indices kept,
    best score first; a box whose overlap (IoU) with a kept one is above `threshold` is dropped."""
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort(descending=True)
    keep = []
    while order.numel() > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest]) + 1).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest]) + 1).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return torch.tensor(keep, dtype=torch.long)
