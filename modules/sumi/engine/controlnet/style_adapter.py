"""The T2I style adapter (TencentARC's `t2iadapter_style_sd14v1.pth`): a picture's CLIP ViT-L/14 hidden
states become a few extra text tokens.

The network is a small CLIP-style transformer: the picture's last hidden states (257 tokens) and
`num_token` learned style tokens go through `ln_pre`, three residual attention blocks (8 heads,
quick-GELU MLPs), `ln_post` on the style tokens, and a projection to the text width. The file keeps
those names (`style_embedding`, `transformer_layes.N.attn.in_proj_weight`, `ln_post`, `proj`); sizes
are read from it (the head count, 8, is not in the shapes).

In the job, as sd-webui-controlnet does: at each UNet call where the unit is active, its tokens x weight
are appended to every row's text context; negative-prompt rows get zero tokens (the same count, so the
rows still batch). ControlNets of the job see the longer context too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from modules.sumi.engine.controlnet.control import check_window, in_window
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.extensions import Extension, HookPoint, UNetBatch, hook
from modules.sumi.engine.text.encoder import Conditioning

STYLE_KEY = "style_embedding"
HEADS = 8


def is_style_adapter(state: Mapping[str, Tensor]) -> bool:
    return STYLE_KEY in state


class _QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Block(nn.Module):
    """CLIP's residual attention block (sequence-first, as nn.MultiheadAttention defaults)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", _QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class StyleAdapterNetwork(nn.Module):
    def __init__(self, width: int, context_dim: int, layers: int, tokens: int, heads: int = HEADS) -> None:
        super().__init__()
        self.transformer_layes = nn.Sequential(*[_Block(width, heads) for _ in range(layers)])
        self.style_embedding = nn.Parameter(torch.zeros(1, tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, context_dim))

    @property
    def width(self) -> int:
        return int(self.style_embedding.shape[-1])

    @property
    def context_dim(self) -> int:
        return int(self.proj.shape[1])

    def forward(self, hidden: Tensor) -> Tensor:
        """[N, T, width] CLIP last hidden states → [N, tokens, context_dim] style tokens."""
        style = self.style_embedding.expand(hidden.shape[0], -1, -1)
        x = self.ln_pre(torch.cat([hidden, style], dim=1)).permute(1, 0, 2)
        x = self.transformer_layes(x).permute(1, 0, 2)
        return self.ln_post(x[:, -style.shape[1] :, :]) @ self.proj


def build_style_adapter(state: Mapping[str, Tensor], source: str) -> StyleAdapterNetwork:
    from modules.sumi.engine.files import load_weights

    try:
        tokens, width = int(state[STYLE_KEY].shape[1]), int(state[STYLE_KEY].shape[2])
        context_dim = int(state["proj"].shape[1])
    except (KeyError, IndexError) as exc:
        raise ModelLoadError(f"{source}: a T2I style adapter without its style_embedding / proj") from exc
    layers = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("transformer_layes.")), default=-1)
    with torch.device("meta"):
        network = StyleAdapterNetwork(width, context_dim, layers, tokens)
    return load_weights(network, dict(state), "T2I style adapter", source, torch.float32)


@dataclass
class StyleTokensUnit:
    """A style adapter unit: its tokens [N, T, C] (N = 1 or one per image) and settings."""

    adapter: StyleAdapterNetwork
    tokens: Tensor
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0

    def __post_init__(self) -> None:
        check_window(self.guidance_start, self.guidance_end, "style adapter")

    @property
    def model(self) -> StyleAdapterNetwork:
        return self.adapter

    def active_at(self, step: int, total_steps: int) -> bool:
        return in_window(step, total_steps, self.guidance_start, self.guidance_end)


class StyleTokensExtension(Extension):
    """Appends the active units' tokens to the context of each UNet forward, before ControlNets read it."""

    def __init__(self, units: Sequence[StyleTokensUnit]) -> None:
        super().__init__()
        self.units = list(units)

    @hook(HookPoint.UNET_FORWARD, order=-10)
    def append_tokens(self, batch: UNetBatch) -> None:
        active = [u for u in self.units if u.active_at(batch.step, batch.total_steps)]
        if not active:
            return
        context = batch.context.context
        cond = batch.is_cond.to(context.device).view(-1, 1, 1).to(context.dtype)
        extra = []
        for unit in active:
            tokens = unit.tokens.to(device=context.device, dtype=context.dtype)
            rows = tokens[batch.images.to(context.device) % tokens.shape[0]]
            extra.append(rows * unit.weight * cond)
        batch.context = Conditioning(torch.cat([context, *extra], dim=1), batch.context.pooled)
