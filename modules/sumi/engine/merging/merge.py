"""A1111's Checkpoint Merger, key by key, with block weights.

Methods (A the primary, B the secondary, C the tertiary model, r the key's ratio):
  No interpolation   A (format conversion, VAE baking, pruning with discard)
  Weighted sum       A·(1−r) + B·r
  Add difference     A + (B − C)·r
  Train difference   A + 1.8·r·sign(B−C)·|B−C|·|B−A| / (|B−C| + |B−A|)   (supermerger's; A where B = C)

r is the multiplier, or with block weights the ratio of the key's block (`blocks.merge_block`). As in
A1111: only keys of the model parts are merged (UNet, text encoders; the VAE only when asked), keys the
other models lack and the text encoder's position ids keep A's value, model keys only B has are
copied, and when A is an inpainting
(9-channel) or instruct-pix2pix (8-channel) model and B a normal one, the first 4 input channels are
merged and the rest kept. Tensors are computed in fp32 and stored in A's dtype (fp16 when asked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from modules.sumi.engine.merging.blocks import VAE, merge_block

METHODS = ("No interpolation", "Weighted sum", "Add difference", "Train difference")
NEEDS = {"No interpolation": 1, "Weighted sum": 2, "Add difference": 3, "Train difference": 3}
INPUT_CONV = "model.diffusion_model.input_blocks.0.0.weight"


@dataclass(frozen=True)
class MergeRecipe:
    method: str = "Weighted sum"
    multiplier: float = 0.3
    block_ratios: Mapping[str, float] | None = None  # by merge_layout id; None: the multiplier everywhere
    merge_vae: bool = False
    half: bool = False
    discard: str = ""  # a regular expression: matching keys are left out of the result
    sdxl: bool = False

    def ratio(self, key: str) -> float | None:
        """The key's ratio, or None when the key is kept from A."""
        block = merge_block(key, self.sdxl)
        if block is None or (block == VAE and not self.merge_vae):
            return None
        if block == VAE or self.block_ratios is None:
            return self.multiplier
        return float(self.block_ratios.get(block, self.multiplier))


def _train_difference(a: Tensor, b: Tensor, c: Tensor, ratio: float) -> Tensor:
    if torch.equal(b, c):
        return a
    toward_b = b - c
    distance_c, distance_a = toward_b.abs(), (b - a).abs()
    total = distance_c + distance_a
    scale = torch.where(total != 0, distance_a / total, torch.zeros_like(total))
    return a + torch.sign(toward_b) * scale * distance_c * (ratio * 1.8)


def merge_tensor(method: str, ratio: float, a: Tensor, b: Tensor | None, c: Tensor | None) -> Tensor:
    """One key's merged value in fp32; a missing B (or C) keeps A. Few full-size temporaries: the
    inputs come one key at a time and the allocator keeps what it frees."""
    if method == "No interpolation" or b is None or (NEEDS[method] == 3 and c is None):
        return a.float()
    if method == "Weighted sum":  # the same operations as A·(1−r) + B·r, on two fp32 buffers
        return _fp32_copy(a).mul_(1 - ratio).add_(_fp32_copy(b).mul_(ratio))
    assert c is not None
    if method == "Add difference":  # A + (B − C)·r
        return _fp32_copy(a).add_(_fp32_copy(b).sub_(c.float()).mul_(ratio))
    return _train_difference(a.float(), b.float(), c.float(), ratio)


def _fp32_copy(tensor: Tensor) -> Tensor:
    """A writable fp32 copy (never the input itself, which may be a read-only view of the file)."""
    return tensor.to(torch.float32, copy=True)


def _fits(a: Tensor, other: Tensor | None) -> Tensor | None:
    """`other` where A has more input channels (inpainting / pix2pix A, normal B): A's extra channels
    taken from A, so only the first ones change."""
    if other is None or other.shape == a.shape:
        return other
    if other.ndim == 4 and other.shape[1] < a.shape[1] and other.shape[0] == a.shape[0]:
        widened = a.float().clone()
        widened[:, : other.shape[1]] = other.float()
        return widened
    return None


def merge_checkpoints(
    a: Mapping[str, Tensor],
    b: Mapping[str, Tensor] | None,
    c: Mapping[str, Tensor] | None,
    recipe: MergeRecipe,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Tensor]:
    """The merged tensors, read one key at a time from the three models (Mappings, e.g.
    `CheckpointTensors`); a key whose shapes differ (beyond the inpainting input) keeps A's value."""
    if recipe.method not in METHODS:
        raise ValueError(f"unknown merge method '{recipe.method}'; choose one of {', '.join(METHODS)}")
    discard = re.compile(recipe.discard) if recipe.discard else None
    merged: dict[str, Tensor] = {}
    keys = list(a)
    for done, key in enumerate(keys, start=1):
        if discard is not None and discard.search(key):
            continue
        value = a[key]
        ratio = recipe.ratio(key)
        if ratio is not None and value.is_floating_point() and not key.endswith("position_ids"):
            other_b = _fits(value, b[key]) if b is not None and key in b else None
            other_c = _fits(value, c[key]) if c is not None and key in c else None
            value = merge_tensor(recipe.method, ratio, value, other_b, other_c).to(value.dtype)
        if recipe.half and value.is_floating_point():
            value = value.half()
        merged[key] = value.contiguous()
        if progress is not None:
            progress(done, len(keys))
    for key in _only_in(b, a, recipe) if recipe.method != "No interpolation" else ():
        if discard is None or not discard.search(key):
            assert b is not None
            value = b[key]
            merged[key] = (value.half() if recipe.half and value.is_floating_point() else value).contiguous()
    return merged


def _only_in(b: Mapping[str, Tensor] | None, a: Mapping[str, Tensor], recipe: MergeRecipe) -> list[str]:
    """Model keys B has and A lacks: copied, as A1111 does."""
    if b is None:
        return []
    return [key for key in b if key not in a and recipe.ratio(key) is not None]
