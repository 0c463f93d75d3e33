"""NovelAI / A1111 hypernetworks: small MLPs that rewrite the attention context before `to_k` and `to_v`.

hn = load_hypernetwork("models/hypernetworks/style.pt")
apply_hypernetworks(unet, [(hn, 0.8)])   # every Attention layer gets a wrapping processor
...                                      # sample
remove_hypernetworks(unet)               # the original processor objects are back

A file holds, per context width (768 for SD1 text, 320/640/1280 for self-attention), a pair of
`torch.nn.Sequential` state dicts (K, V). Each module computes `x + net(x) * multiplier`; several
hypernetworks chain, in order, as A1111 does. A layer whose context width no hypernetwork covers runs
its own processor unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.errors import EngineError, ModelLoadError
from modules.sumi.engine.files import check_finite, read_pickle
from modules.sumi.engine.model import compute_dtype

# "swish" is Hardswish in A1111 (kept for file compatibility); other names map to torch.nn classes.
_NAMED_ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "relu": torch.nn.ReLU,
    "leakyrelu": torch.nn.LeakyReLU,
    "elu": torch.nn.ELU,
    "swish": torch.nn.Hardswish,
    "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid,
}
_LEGACY_KEYS = {"linear1.": "linear.0.", "linear2.": "linear.1."}


class HypernetworkError(EngineError):
    """A hypernetwork file that cannot be used (not the format, or weights that do not fit)."""


def activation_class(name: str | None) -> type[torch.nn.Module] | None:
    """None for no activation ("linear"/None), else the module class; unknown names raise."""
    if name is None or name == "linear":
        return None
    if name in _NAMED_ACTIVATIONS:
        return _NAMED_ACTIVATIONS[name]
    for attr in dir(torch.nn.modules.activation):
        cls = getattr(torch.nn.modules.activation, attr)
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module) and attr.lower() == name:
            return cls
    raise HypernetworkError(f"unknown activation function {name!r}")


def dropout_structure_for(
    layer_structure: Sequence[float], use_dropout: bool, last_layer_dropout: bool
) -> list:
    """The dropout probabilities A1111 derives when a file has no explicit `dropout_structure`."""
    if not use_dropout:
        return [0] * len(layer_structure)
    middle = [0.3] * (len(layer_structure) - 3)
    return [0, *middle, 0.3 if last_layer_dropout else 0, 0]


@dataclass
class HypernetworkOptions:
    layer_structure: list[float] = field(default_factory=lambda: [1, 2, 1])
    activation_func: str | None = None
    add_layer_norm: bool = False
    activate_output: bool = True
    dropout_structure: list[float] = field(default_factory=lambda: [0, 0, 0])


class HypernetworkModule(torch.nn.Module):
    """One K or V transform: `x + linear(x) * multiplier` (dropout layers are inert at inference)."""

    def __init__(self, dim: int, options: HypernetworkOptions):
        super().__init__()
        ls, drop = options.layer_structure, options.dropout_structure
        act = activation_class(options.activation_func)
        layers: list[torch.nn.Module] = []
        last = len(ls) - 2
        for i in range(len(ls) - 1):
            width = int(dim * ls[i + 1])
            layers.append(torch.nn.Linear(int(dim * ls[i]), width))
            if act is not None and (i < last or options.activate_output):
                layers.append(act())
            if options.add_layer_norm:
                layers.append(torch.nn.LayerNorm(width))
            if drop[i + 1] > 0:
                layers.append(torch.nn.Dropout(p=drop[i + 1]))
        self.linear = torch.nn.Sequential(*layers)
        self.eval()

    def forward(self, x: torch.Tensor, multiplier: float = 1.0) -> torch.Tensor:
        out = self.linear(x.to(self.dtype))
        return x + out.to(x.dtype) * multiplier

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


@dataclass
class Hypernetwork:
    name: str
    path: str
    layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]]
    options: HypernetworkOptions
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dims(self) -> list[int]:
        return sorted(self.layers)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Hypernetwork:
        for pair in self.layers.values():
            for module in pair:
                module.to(device=device, dtype=dtype)
        return self


def load_hypernetwork(path: str | Path, *, allow_unsafe_pickle: bool = False) -> Hypernetwork:
    """Parse an A1111 hypernetwork .pt (weights-only unpickling unless allowed otherwise)."""
    path = Path(path)
    data = read_pickle(path, allow_unsafe_pickle)
    return hypernetwork_from_dict(data, path)


def hypernetwork_from_dict(data: Any, path: str | Path = "<memory>") -> Hypernetwork:
    path = Path(path)
    if not isinstance(data, dict):
        raise HypernetworkError(f"{path.name} is not a hypernetwork (the file holds no dict)")
    options = _options(data, path)
    layers = {}
    for key, value in data.items():
        if not isinstance(key, int):
            continue
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise HypernetworkError(f"{path.name}: entry {key} is not a (K, V) pair of state dicts")
        layers[key] = tuple(_module(key, sd, options, path) for sd in value)
    if not layers:
        raise HypernetworkError(f"{path.name} is not a hypernetwork (no context-size entries)")
    info = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, (str, int, float))}
    return Hypernetwork(str(data.get("name") or path.stem), str(path), layers, options, info)


def _options(data: dict, path: Path) -> HypernetworkOptions:
    ls: list[float] = list(data.get("layer_structure") or [1, 2, 1])
    if len(ls) < 2 or ls[0] != 1 or ls[-1] != 1:
        raise HypernetworkError(f"{path.name}: layer_structure {ls} must start and end with 1")
    drop = data.get("dropout_structure")
    use_dropout = bool(drop is not None and any(drop)) or bool(data.get("use_dropout", False))
    if drop is None:
        drop = dropout_structure_for(ls, use_dropout, bool(data.get("last_layer_dropout", False)))
    if len(drop) != len(ls):
        raise HypernetworkError(f"{path.name}: dropout_structure {drop} does not match layer_structure {ls}")
    layer_norm = data.get("is_layer_norm", data.get("add_layer_norm", False))
    activation = data.get("activation_func")
    activation_class(activation)  # validate early
    return HypernetworkOptions(
        ls, activation, bool(layer_norm), bool(data.get("activate_output", True)), list(drop)
    )


def _module(dim: int, state_dict: Any, options: HypernetworkOptions, path: Path) -> HypernetworkModule:
    if not isinstance(state_dict, dict):
        raise HypernetworkError(f"{path.name}: entry {dim} holds no state dict")
    fixed = {}
    for key, value in state_dict.items():
        for old, new in _LEGACY_KEYS.items():
            if isinstance(key, str) and key.startswith(old):
                key = new + key[len(old) :]
        fixed[key] = value
    try:
        check_finite(fixed, path.name, f"context size {dim}")
    except ModelLoadError as exc:
        raise HypernetworkError(str(exc)) from exc
    module = HypernetworkModule(dim, options)
    try:
        module.load_state_dict(fixed, strict=True)
    except (RuntimeError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HypernetworkError(f"{path.name}: weights for context size {dim} do not fit: {reason}") from exc
    return module.requires_grad_(False)


class _ContextProxy:
    """`attn` as the wrapped processor sees it, with `to_k`/`to_v` reading the transformed context."""

    def __init__(self, attn: torch.nn.Module, active: Sequence[tuple[Hypernetwork, float]]):
        object.__setattr__(self, "_attn", attn)
        object.__setattr__(self, "_active", active)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._attn, name)

    def to_k(self, context: torch.Tensor) -> torch.Tensor:
        return self._attn.to_k(transform_context(context, self._active, 0))

    def to_v(self, context: torch.Tensor) -> torch.Tensor:
        return self._attn.to_v(transform_context(context, self._active, 1))


def transform_context(context: torch.Tensor, active: Sequence[tuple[Hypernetwork, float]], which: int):
    """Chain every active hypernetwork's K (which=0) or V (which=1) module for this context width."""
    for hn, multiplier in active:
        pair = hn.layers.get(context.shape[-1])
        if pair is not None:
            context = pair[which](context, multiplier)
    return context


class HypernetworkProcessor:
    """Wraps a layer's processor; only layers whose context width a hypernetwork covers are changed."""

    def __init__(self, wrapped: Any, active: Sequence[tuple[Hypernetwork, float]]):
        self.wrapped = wrapped
        self.active = list(active)

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        active = [(hn, m) for hn, m in self.active if m != 0 and context.shape[-1] in hn.layers]
        if not active or context.ndim != 3:
            target = attn
        else:
            target = _ContextProxy(attn, active)
            if encoder_hidden_states is None:  # self-attention: the context is the hidden state itself
                encoder_hidden_states = hidden_states
        return self.wrapped(target, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


def _attention_modules(unet: torch.nn.Module) -> list[torch.nn.Module]:
    return [
        m for m in unet.modules() if hasattr(m, "processor") and hasattr(m, "to_k") and hasattr(m, "to_v")
    ]


def apply_hypernetworks(
    unet: torch.nn.Module,
    active: Sequence[tuple[Hypernetwork, float]],
    device: torch.device | None = None,
) -> int:
    """Install (or replace) the wrapping processors; returns how many attention layers got one.

    `device`: where the UNet computes (`SDModel.device`); default where its weights are (not the
    same under --medvram/--lowvram, where the weights wait on the CPU)."""
    remove_hypernetworks(unet)
    if not active:
        return 0
    device = device or next(unet.parameters()).device
    dtype = compute_dtype(unet)
    for hn, _ in active:
        hn.to(device, dtype)
    count = 0
    for module in _attention_modules(unet):
        module.processor = HypernetworkProcessor(module.processor, active)  # pyright: ignore[reportArgumentType]
        count += 1
    return count


def remove_hypernetworks(unet: torch.nn.Module) -> None:
    """Put back the exact processor objects that were there before `apply_hypernetworks`."""
    for module in _attention_modules(unet):
        while isinstance(module.processor, HypernetworkProcessor):
            module.processor = module.processor.wrapped
