"""LoRA craft: extract a LoRA from the difference of two models, resize a LoRA's rank, and bake LoRAs into
a model's weights. All three write kohya's layout (`lora_unet_...lora_down.weight`, `lora_up.weight`,
`alpha`), which every LoRA loader reads.

A layer's change ΔW (out x in, a k x k convolution flattened to out x in·k·k) is stored as up @ down
with rank r: the best rank-r approximation, from the singular value decomposition ΔW = U S Vᵀ, is
up = U_r S_r, down = V_rᵀ (Eckart–Young). alpha = r, so the loader's scale alpha / r is 1 and the
delta is up @ down exactly. Convolutions keep LoCon's shapes: a k x k down, a 1x1 up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import cast

import torch
from torch import Tensor

from modules.sumi.engine.model import SDModel

from .adapters import LoRA
from .keys import kohya_name
from .network_file import NetworkError, NetworkFile
from .patcher import NetworkPatcher, NetworkSpec

LINEAR_LIKE = (torch.nn.Linear, torch.nn.Conv2d)


def low_rank(delta: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """(up, down) of the best rank-`rank` approximation of a 2-D `delta` (fp32): up @ down ≈ delta."""
    u, s, vh = torch.linalg.svd(delta.float(), full_matrices=False)
    rank = max(1, min(rank, s.numel()))
    return (u[:, :rank] * s[:rank]).contiguous(), vh[:rank].contiguous()


def _layer_tensors(name: str, delta: Tensor, weight_shape: torch.Size, rank: int) -> dict[str, Tensor]:
    """kohya's tensors for one layer whose change is `delta` (the weight's shape)."""
    up, down = low_rank(delta.reshape(delta.shape[0], -1), rank)
    r = down.shape[0]
    if len(weight_shape) == 4:  # LoCon: a k x k down, a 1x1 up
        down = down.reshape(r, *weight_shape[1:])
        up = up.reshape(weight_shape[0], r, 1, 1)
    return {
        f"{name}.lora_up.weight": up,
        f"{name}.lora_down.weight": down,
        f"{name}.alpha": torch.tensor(float(r)),
    }


def _weight(module: torch.nn.Module) -> Tensor:
    return cast(Tensor, module.weight)


def _layers(model: SDModel) -> Iterator[tuple[str, str, torch.nn.Module]]:
    """(component, path, module) of every Linear and Conv2d of the UNet and the text encoders."""
    for name, module in model.unet.named_modules():
        if isinstance(module, LINEAR_LIKE):
            yield "unet", name, module
    for index, spec in enumerate(model.text_encoders):
        for name, module in spec.model.named_modules():
            if isinstance(module, LINEAR_LIKE):
                yield f"te{index}", name, module


def extract_lora(
    base: SDModel,
    tuned: SDModel,
    rank: int,
    conv_rank: int = 0,
    *,
    min_difference: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Tensor]:
    """A LoRA that turns `base` into (about) `tuned`: every layer whose weights differ by more than
    `min_difference`, at `rank` (3x3 convolutions at `conv_rank`; 0 leaves them out, as LoRA without
    LoCon). Both models must be of one family and one shape."""
    if base.family != tuned.family:
        raise NetworkError(f"the models are of different families ({base.family}, {tuned.family})")
    tuned_weights = {(c, n): _weight(m) for c, n, m in _layers(tuned)}
    layers = list(_layers(base))
    out: dict[str, Tensor] = {}
    for done, (component, name, module) in enumerate(layers, start=1):
        weight, other = _weight(module), tuned_weights.get((component, name))
        if other is None or other.shape != weight.shape:
            raise NetworkError(f"the models differ in shape at {component}:{name}")
        spatial = weight.ndim == 4 and tuple(weight.shape[2:]) != (1, 1)
        layer_rank = conv_rank if spatial else rank
        if layer_rank > 0:
            delta = other.detach().float() - weight.detach().float()
            if delta.abs().max() > min_difference:
                out.update(_layer_tensors(kohya_name(base, component, name), delta, weight.shape, layer_rank))
        if progress is not None:
            progress(done, len(layers))
    return out


def resize_lora(
    network: NetworkFile, rank: int, progress: Callable[[int, int], None] | None = None
) -> dict[str, Tensor]:
    """The network at rank `rank`, below its own (each layer's best approximation; a layer already at or
    below it is re-expressed exactly). LoRA and LoCon layers only (LoHa, LoKr... are refused)."""
    out: dict[str, Tensor] = {}
    names = list(network.layers)
    ranks = [LoRA(w).rank for w in network.layers.values() if LoRA.detect(w)]
    if ranks and rank >= max(ranks):
        raise NetworkError(f"{network.name} is rank {max(ranks)}: a resize to rank {rank} would add nothing")
    for done, name in enumerate(names, start=1):
        weights = network.layers[name]
        if not LoRA.detect(weights):
            raise NetworkError(
                f"{network.name}: layer {name} is not LoRA/LoCon ({', '.join(sorted(weights))}); only those resize"
            )
        if "dora_scale" in weights:
            raise NetworkError(
                f"{network.name}: layer {name} is DoRA, whose change depends on the model; it cannot resize"
            )
        adapter = LoRA(weights)
        kernel = tuple(adapter.mid.shape[2:]) if adapter.mid is not None else tuple(adapter.down.shape[2:])
        shape = torch.Size((adapter.up.shape[0], adapter.down.shape[1], *kernel))
        delta = adapter.delta(torch.zeros(shape))  # zeros: a LoRA's change needs only the shape
        out.update(_layer_tensors(name, delta, shape, rank))
        if progress is not None:
            progress(done, len(names))
    return out


def bake_loras(model: SDModel, networks: Sequence[NetworkSpec]) -> list[str]:
    """Add the networks' deltas to `model`'s weights for good (the patcher's deltas, without keeping the
    originals); returns the warnings (unmatched keys)."""
    patcher = NetworkPatcher(model)
    results = patcher.apply(networks)
    patcher.commit()
    return [
        f"{spec[0].name}: {result.summary()}"
        for spec, result in zip(networks, results, strict=True)
        if result.unmatched
    ]
