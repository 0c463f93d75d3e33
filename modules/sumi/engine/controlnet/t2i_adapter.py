"""T2I-Adapters: small networks that turn a control image into one feature map per UNet level, added to the
UNet's encoder as it runs (TencentARC's adapters, as sd-webui-controlnet loads them).

Layouts read:
- TencentARC / lllyasviel `.pth`/`.safetensors` (`t2iadapter_canny_sd15v2.pth`, ...): `conv_in`, then
  `body.<k>` residual blocks, two per level (`in_conv` where the width changes, `block1` 3x3, `block2`
  with the file's kernel, `down_opt.op` when the level halves with a convolution instead of pooling);
  SD1 adapters shrink the picture 8x and halve at every level after the first, SDXL ones 16x and
  halve once, at the third level.
- the "light" adapter (`t2iadapter_color_sd14v1.pth`): per level `in_conv`, `body.<r>` blocks, `out_conv`.
- diffusers' layout (`adapter.conv_in`, `adapter.body.<i>.resnets.<r>`; the SDXL adapters), renamed.
The style adapter (CLIP vision tokens) is `style_adapter`'s.

What the adapter gives at each level is added to the UNet's encoder at the end of that level (SDXL: the
last feature after the middle block), as diffusers' `down_intrablock_additional_residuals` does, once
per job (the control image does not change); see `control.py` for weights and modes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.errors import ModelLoadError

RESIDUAL_BLOCKS = 2  # per level, in every released full adapter (sd-webui-controlnet assumes it too)
SOFT_SCALES = (0.25, 0.62, 0.825, 1.0)  # "My prompt is more important": per level, shallowest first


def is_t2i_adapter(state: Mapping[str, Tensor]) -> bool:
    return any(k.startswith(("adapter.", "body.")) for k in state) or "style_embedding" in state


@dataclass(frozen=True)
class AdapterShape:
    kind: str  # "full" or "light"
    sdxl: bool
    in_channels: int  # control image channels (3, or 1 for sketch/depth-style adapters)
    channels: tuple[int, ...]  # feature width per level
    kernel: int  # block2 / in_conv kernel (1 in the v2 adapters, 3 in some v1 ones)
    conv_downsample: bool
    light_blocks: int = 0

    @property
    def factor(self) -> int:
        return 16 if self.sdxl else 8


class _Block(nn.Module):
    def __init__(self, inputs: int, outputs: int, kernel: int, down: bool, conv_downsample: bool) -> None:
        super().__init__()
        self.down, self.down_opt = down, None
        if down and conv_downsample:
            self.down_opt = nn.Module()
            self.down_opt.op = nn.Conv2d(inputs, inputs, 3, 2, padding=1)
        self.in_conv = nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2) if inputs != outputs else None
        self.block1 = nn.Conv2d(outputs, outputs, 3, padding=1)
        self.block2 = nn.Conv2d(outputs, outputs, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        if self.down:
            x = self.down_opt.op(x) if self.down_opt is not None else F.avg_pool2d(x, 2, 2)  # type: ignore[union-attr]
        if self.in_conv is not None:
            x = self.in_conv(x)
        return self.block2(F.relu(self.block1(x))) + x


class _LightBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.block2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.block2(F.relu(self.block1(x))) + x


class _Extractor(nn.Module):
    def __init__(self, inputs: int, outputs: int, blocks: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.in_conv = nn.Conv2d(inputs, outputs // 4, 1)
        self.body = nn.Sequential(*(_LightBlock(outputs // 4) for _ in range(blocks)))
        self.out_conv = nn.Conv2d(outputs // 4, outputs, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2, 2)
        return self.out_conv(self.body(self.in_conv(x)))


class T2IAdapterNetwork(nn.Module):
    """An adapter of either kind; `forward` gives one feature map per level, shallowest first."""

    def __init__(self, shape: AdapterShape) -> None:
        super().__init__()
        self.shape = shape
        cells = shape.in_channels * shape.factor**2
        levels = len(shape.channels)
        if shape.kind == "light":
            widths = (cells, *shape.channels)
            self.body = nn.ModuleList(
                _Extractor(widths[i], widths[i + 1], shape.light_blocks, down=i > 0) for i in range(levels)
            )
            return
        self.conv_in = nn.Conv2d(cells, shape.channels[0], 3, padding=1)
        blocks = []
        for level in range(levels):
            for index in range(RESIDUAL_BLOCKS):
                inputs = shape.channels[level - 1] if index == 0 and level > 0 else shape.channels[level]
                down = index == 0 and (level == 2 if shape.sdxl else level > 0)
                blocks.append(
                    _Block(inputs, shape.channels[level], shape.kernel, down, shape.conv_downsample)
                )
        self.body = nn.ModuleList(blocks)

    def forward(self, hint: Tensor) -> list[Tensor]:
        """Features for a control image [N, C, H, W] in 0..1 (a 1-channel adapter reads the first channel)."""
        x = F.pixel_unshuffle(hint[:, : self.shape.in_channels], self.shape.factor)
        if self.shape.kind == "light":
            features = []
            for extractor in self.body:
                x = extractor(x)
                features.append(x)
            return features
        x = self.conv_in(x)
        features = []
        for level in range(len(self.shape.channels)):
            for index in range(RESIDUAL_BLOCKS):
                x = self.body[level * RESIDUAL_BLOCKS + index](x)
            features.append(x)
        return features


def _from_diffusers(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """diffusers' names (`adapter.body.<i>.resnets.<r>.block1`) as the original's (`body.<i*2+r>.block1`)."""
    light = any(".out_conv." in k for k in state)
    renamed = {}
    for key, value in state.items():
        name = key.removeprefix("adapter.")
        if light:
            name = re.sub(r"^body\.(\d+)\.resnets\.(\d+)\.", r"body.\1.body.\2.", name)
        else:
            match = re.match(r"^body\.(\d+)\.(resnets\.(\d+)\.)?(.*)$", name)
            if match:
                level, resnet, rest = int(match[1]), int(match[3] or 0), match[4]
                name = f"body.{level * RESIDUAL_BLOCKS + resnet}.{rest}"
        renamed[name] = value
    return renamed


def adapter_shape(state: Mapping[str, Tensor], source: str) -> AdapterShape:
    """What a file's tensors say about its adapter (ModelLoadError for the style adapter or a broken file)."""
    if "style_embedding" in state:
        raise ModelLoadError(f"{source}: the T2I style adapter (CLIP vision tokens) is not supported yet")
    try:
        if "conv_in.weight" not in state:  # light
            levels = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
            cells = int(state["body.0.in_conv.weight"].shape[1])
            channels = tuple(int(state[f"body.{i}.out_conv.weight"].shape[0]) for i in range(levels))
            blocks = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("body.0.body."))
            return AdapterShape("light", False, cells // 64, channels, 3, False, blocks)
        cells = int(state["conv_in.weight"].shape[1])
        sdxl = cells % 256 == 0
        entries = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
        channels = tuple(
            int(state[f"body.{level * RESIDUAL_BLOCKS}.block1.weight"].shape[0])
            for level in range(entries // RESIDUAL_BLOCKS)
        )
        kernel = int(state["body.0.block2.weight"].shape[-1])
        conv_downsample = any(k.endswith("down_opt.op.weight") for k in state)
        return AdapterShape("full", sdxl, cells // (256 if sdxl else 64), channels, kernel, conv_downsample)
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(f"{source}: not a T2I-Adapter file this version reads ({exc} missing)") from exc


def build_t2i_adapter(state: Mapping[str, Tensor], source: str) -> T2IAdapterNetwork:
    """The adapter in `state` (any layout above), strictly loaded, fp32, eval mode."""
    if any(k.startswith("adapter.") for k in state):
        state = _from_diffusers(state)
    shape = adapter_shape(state, source)
    network = T2IAdapterNetwork(shape)
    missing, unexpected = network.load_state_dict(dict(state), strict=False)
    if missing or unexpected:
        raise ModelLoadError(
            f"{source}: T2I-Adapter weights do not match ({len(missing)} missing, e.g. {missing[:2]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:2]})"
        )
    return network.float().eval().requires_grad_(False)


def level_sizes(
    latent_height: int, latent_width: int, levels: int, sdxl: bool, down_blocks: tuple[str, ...] = ()
) -> list[tuple[int, int]]:
    """The UNet's encoder size where each adapter feature is added, as diffusers adds them: at the end of
    a down block with cross-attention (before its downsampler), after a plain down block (after its
    downsampler), and what is left after the middle block; every downsampler halves, rounding up.
    Without the UNet's `down_blocks` types, the real SD1 / SDXL layouts are assumed."""
    if not down_blocks:
        down_blocks = (
            ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
            if sdxl
            else ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
        )
    sizes, height, width = [], latent_height, latent_width
    for index, kind in enumerate(down_blocks):
        downsamples = index < len(down_blocks) - 1
        attention = "CrossAttn" in kind
        if downsamples and not attention:
            height, width = -(-height // 2), -(-width // 2)
        sizes.append((height, width))
        if downsamples and attention:
            height, width = -(-height // 2), -(-width // 2)
    sizes.append((height, width))  # after the middle block (SDXL's fourth feature)
    return sizes[:levels]


def fitted(features: list[Tensor], sizes: list[tuple[int, int]]) -> list[Tensor]:
    """Features brought to the UNet's sizes (nearest), as the extension's `aligned_adding` does for
    pictures whose sides are not multiples of 64."""
    return [
        f if tuple(f.shape[-2:]) == s else F.interpolate(f, size=s, mode="nearest")
        for f, s in zip(features, sizes, strict=True)
    ]


def adapter_family_of(state: Mapping[str, Tensor], source: str) -> str:
    """ "SD1" or "SDXL", from the shapes alone (works on a safetensors header's meta tensors)."""
    if any(k.startswith("adapter.") for k in state):
        state = _from_diffusers(state)
    return "SDXL" if adapter_shape(state, source).sdxl else "SD1"
