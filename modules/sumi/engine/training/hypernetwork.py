"""Hypernetwork creation and training helpers: new modules with A1111's weight initialisations, the
train/eval switch, and the `.pt` dict A1111 writes (read back by `engine.networks.hypernetwork`).

A1111 quirk kept: a hypernetwork created here has `activate_output` False (no activation after the last
linear), while a file without the key loads as True; the key is always written, so files round-trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.networks.hypernetwork import (
    Hypernetwork,
    HypernetworkError,
    HypernetworkModule,
    HypernetworkOptions,
    activation_class,
)
from modules.sumi.engine.training.errors import TrainingError

WEIGHT_INITS = ("Normal", "XavierUniform", "XavierNormal", "KaimingUniform", "KaimingNormal")


def parse_structure(value: str | Sequence[float] | None, what: str) -> list[float]:
    """A1111's "1, 2, 1" text (or a list of numbers) as a list of floats."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [float(str(item).strip()) for item in items if str(item).strip()]
    except ValueError:
        raise TrainingError(f"{what} {value!r}: expected numbers separated by commas, like 1, 2, 1") from None


def check_options(options: HypernetworkOptions, weight_init: str) -> None:
    """The rules A1111 asserts when it builds modules, as errors naming the field."""
    ls, drop = options.layer_structure, options.dropout_structure
    if len(ls) < 2 or ls[0] != 1 or ls[-1] != 1:
        raise TrainingError(f"layer_structure {ls}: it must start and end with 1 (like 1, 2, 1)")
    if any(not x > 0 for x in ls):
        raise TrainingError(f"layer_structure {ls}: every multiplier must be above 0")
    if len(drop) != len(ls):
        raise TrainingError(f"dropout_structure {drop} must have as many entries as layer_structure {ls}")
    if drop[0] != 0 or drop[-1] != 0 or any(not 0 <= p < 1 for p in drop):
        raise TrainingError(f"dropout_structure {drop}: start and end with 0, every value in [0, 1)")
    if weight_init not in WEIGHT_INITS:
        raise TrainingError(f"weight_init {weight_init!r}: expected one of {', '.join(WEIGHT_INITS)}")
    try:
        activation_class(options.activation_func)
    except HypernetworkError as exc:
        raise TrainingError(f"activation_func: {exc}") from exc


def initialize(module: HypernetworkModule, weight_init: str, activation_func: str | None) -> None:
    """A1111's initialisations: Normal is N(0, 0.01) weights and zero biases (LayerNorms always so);
    Xavier/Kaiming fill the linear weights and zero the biases."""
    nonlinearity = "leaky_relu" if activation_func == "leakyrelu" else "relu"
    with torch.no_grad():
        for layer in module.linear:
            if not isinstance(layer, torch.nn.Linear | torch.nn.LayerNorm):
                continue
            weight, bias = layer.weight, layer.bias
            torch.nn.init.zeros_(bias)
            if weight_init == "Normal" or isinstance(layer, torch.nn.LayerNorm):
                torch.nn.init.normal_(weight, mean=0.0, std=0.01)
            elif weight_init == "XavierUniform":
                torch.nn.init.xavier_uniform_(weight)
            elif weight_init == "XavierNormal":
                torch.nn.init.xavier_normal_(weight)
            elif weight_init == "KaimingUniform":
                torch.nn.init.kaiming_uniform_(weight, nonlinearity=nonlinearity)
            else:
                torch.nn.init.kaiming_normal_(weight, nonlinearity=nonlinearity)


def new_hypernetwork(
    name: str, sizes: Sequence[int], options: HypernetworkOptions, weight_init: str = "Normal"
) -> Hypernetwork:
    """A fresh hypernetwork with a (K, V) module pair per context size."""
    check_options(options, weight_init)
    if not sizes or any(int(s) < 1 for s in sizes):
        raise TrainingError(f"enable_sizes {list(sizes)}: give at least one context size, like 768")
    layers = {}
    for size in sorted({int(s) for s in sizes}):
        pair = (HypernetworkModule(size, options), HypernetworkModule(size, options))
        for module in pair:
            initialize(module, weight_init, options.activation_func)
            module.requires_grad_(False)
        layers[size] = pair
    info = {"weight_initialization": weight_init, "step": 0}
    return Hypernetwork(name, "", layers, options, info)


def modules_of(hn: Hypernetwork) -> list[HypernetworkModule]:
    return [module for size in sorted(hn.layers) for module in hn.layers[size]]


def weights(hn: Hypernetwork) -> list[torch.Tensor]:
    """Every trainable tensor, in a fixed order (the optimizer state depends on it)."""
    return [p for module in modules_of(hn) for p in module.parameters()]


def train_mode(hn: Hypernetwork) -> None:
    """Dropout on, gradients on, fp32 weights (whatever the UNet computes in)."""
    for module in modules_of(hn):
        module.float().train().requires_grad_(True)


def eval_mode(hn: Hypernetwork) -> None:
    for module in modules_of(hn):
        module.eval().requires_grad_(False)
        for p in module.parameters():
            p.grad = None


def hypernetwork_to_dict(hn: Hypernetwork, **meta: Any) -> dict:
    """The dict A1111 saves: `{size: (K state dict, V state dict), ...metadata}` (CPU fp32 tensors)."""
    o = hn.options
    data: dict[Any, Any] = {
        size: tuple(_state(module) for module in hn.layers[size]) for size in sorted(hn.layers)
    }
    data.update(
        {
            "step": int(meta.get("step", hn.info.get("step", 0)) or 0),
            "name": hn.name,
            "layer_structure": list(o.layer_structure),
            "activation_func": o.activation_func,
            "is_layer_norm": o.add_layer_norm,
            "weight_initialization": hn.info.get("weight_initialization", "Normal"),
            "sd_checkpoint": meta.get("sd_checkpoint", hn.info.get("sd_checkpoint")),
            "sd_checkpoint_name": meta.get("sd_checkpoint_name", hn.info.get("sd_checkpoint_name")),
            "activate_output": o.activate_output,
            "use_dropout": any(o.dropout_structure),
            "dropout_structure": list(o.dropout_structure),
            "last_layer_dropout": bool(len(o.dropout_structure) > 1 and o.dropout_structure[-2] != 0),
            "optional_info": hn.info.get("optional_info") or None,
        }
    )
    return data


def _state(module: HypernetworkModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}


def save_hypernetwork_file(path: Path, hn: Hypernetwork, **meta: Any) -> None:
    """Write atomically (an interrupted save leaves the previous file whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(hypernetwork_to_dict(hn, **meta), tmp)
    tmp.replace(path)
