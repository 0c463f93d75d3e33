"""A trainable LoRA / LyCORIS network on a live model: which layers, and the hooks that apply it.

Layers are chosen as kohya's sd-scripts and LyCORIS choose them, from the module classes around them:
- UNet `unet_target="transformer"` (kohya's default): every Linear and 1x1 conv inside the
  `Transformer2DModel` blocks (attention projections, feed-forward, proj_in/out);
- `"attention"`: only the attention projections (to_q, to_k, to_v, to_out.0) in those blocks (and the
  k x k convs when `conv_rank` asks for them);
- `"all_linear"`: also the Linear / 1x1 conv layers of `ResnetBlock2D`, `Downsample2D`, `Upsample2D`
  (time_emb_proj, conv_shortcut), at the main rank;
- `conv_rank > 0` (LoCon, and LyCORIS' conv layers): the k x k convs of those blocks too, at their own
  rank and alpha (as kohya's `conv_dim` / `conv_alpha`, which also turns on the "all_linear" layers);
- text encoders (`train_text_encoder`): the Linear layers of `CLIPAttention` and `CLIPMLP`.

The network never changes the model's modules: `applied()` registers a forward hook on each target
layer that adds the adapter's output, and removing the hooks leaves the model exactly as it was.
Layer names are kohya's file names (`engine.networks.keys.kohya_name`), so `state_dict()` is the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.networks.keys import kohya_name
from modules.sumi.engine.training.errors import TrainingError

from .layers import LoHaLayer, LoKrLayer, LoRALayer, TrainableLayer

ALGORITHMS = ("lora", "locon", "loha", "lokr")
UNET_TARGETS = ("attention", "transformer", "all_linear")
TRANSFORMER_BLOCKS = ("Transformer2DModel",)
CONV_BLOCKS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
TEXT_BLOCKS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")
ATTENTION_LAYERS = re.compile(r"(^|\.)attn\d*\.(to_q|to_k|to_v|to_out\.0)$")


@dataclass(frozen=True)
class LoraSettings:
    """What to train. `algo`: "lora" (kohya LoRA; with `conv_rank` it is LoCon), "locon" (LoRA with conv
    layers, `conv_rank` defaulting to `rank`), "loha", "lokr" (LyCORIS). `alpha` 0 means `rank` (scale 1),
    as kohya. `dropout` drops the rank activations (LoRA) or the adapter's output (LoHa, LoKr)."""

    algo: str = "lora"
    rank: int = 8
    alpha: float = 1.0
    conv_rank: int = 0
    conv_alpha: float = 1.0
    dropout: float = 0.0
    unet_target: str = "transformer"
    train_unet: bool = True
    train_text_encoder: bool = True
    lokr_factor: int = -1
    seed: int = 0  # initialisation of the adapter weights

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise TrainingError(f"network type {self.algo!r}: expected one of {', '.join(ALGORITHMS)}")
        if self.unet_target not in UNET_TARGETS:
            raise TrainingError(
                f"UNet target {self.unet_target!r}: expected one of {', '.join(UNET_TARGETS)}"
            )
        if self.rank < 1 or self.conv_rank < 0:
            raise TrainingError("the network rank must be at least 1 (and the conv rank not negative)")
        if self.alpha < 0 or self.conv_alpha < 0:
            raise TrainingError("the network alpha must not be negative")
        if not 0 <= self.dropout < 1:
            raise TrainingError("the network dropout must be in [0, 1)")
        if not (self.train_unet or self.train_text_encoder):
            raise TrainingError("train the UNet, the text encoder, or both")

    @property
    def effective_conv_rank(self) -> int:
        return self.conv_rank or (self.rank if self.algo == "locon" else 0)

    @property
    def effective_conv_alpha(self) -> float:
        return self.conv_alpha if self.conv_rank else self.alpha

    def digest(self) -> str:
        """Identifies the settings in a resume file (a run resumes only with the network it saved)."""
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LayerTarget:
    """One layer to adapt: `component` "unet" / "te0" / "te1", its module path, rank and alpha."""

    component: str
    path: str
    module: nn.Module
    rank: int
    alpha: float


def _adaptable(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"


def _is_1x1(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or tuple(getattr(module, "kernel_size", ())) == (1, 1)


def _unet_targets(unet: nn.Module, settings: LoraSettings) -> Iterator[tuple[str, nn.Module, bool]]:
    """(path, layer, is k x k conv) for the UNet layers the settings select, in model order."""
    conv_rank = settings.effective_conv_rank
    blocks = TRANSFORMER_BLOCKS
    if conv_rank or settings.unet_target == "all_linear":
        blocks = TRANSFORMER_BLOCKS + CONV_BLOCKS
    seen: set[str] = set()
    for block_path, block in unet.named_modules():
        if type(block).__name__ not in blocks:
            continue
        for child_path, child in block.named_modules():
            path = f"{block_path}.{child_path}" if child_path else block_path
            if path in seen or not child_path or not _adaptable(child):
                continue
            is_conv = not _is_1x1(child)
            if is_conv and not conv_rank:
                continue
            if not is_conv and settings.unet_target == "attention" and not _is_attention(child_path):
                continue
            seen.add(path)
            yield path, child, is_conv


def _is_attention(child_path: str) -> bool:
    return ATTENTION_LAYERS.search(child_path) is not None


def _text_targets(encoder: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for block_path, block in encoder.named_modules():
        if type(block).__name__ in TEXT_BLOCKS:
            for child_path, child in block.named_modules():
                if isinstance(child, nn.Linear):
                    yield f"{block_path}.{child_path}", child


def select_targets(model: SDModel, settings: LoraSettings) -> list[LayerTarget]:
    """The layers `settings` adapt in `model` (kohya's module lists; see the module docstring)."""
    targets: list[LayerTarget] = []
    if settings.train_unet:
        for path, module, is_conv in _unet_targets(model.unet, settings):
            rank = settings.effective_conv_rank if is_conv else settings.rank
            alpha = settings.effective_conv_alpha if is_conv else settings.alpha
            targets.append(LayerTarget("unet", path, module, rank, alpha or rank))
    if settings.train_text_encoder:
        for i, spec in enumerate(model.text_encoders):
            for path, module in _text_targets(spec.model):
                targets.append(
                    LayerTarget(f"te{i}", path, module, settings.rank, settings.alpha or settings.rank)
                )
    if not targets:
        raise TrainingError("the network settings select no layer of this model to train")
    return targets


def _make_layer(target: LayerTarget, settings: LoraSettings, generator: torch.Generator) -> TrainableLayer:
    args = (target.module, target.rank, target.alpha, settings.dropout, generator)
    if settings.algo == "loha":
        return LoHaLayer(*args)
    if settings.algo == "lokr":
        return LoKrLayer(*args, factor=settings.lokr_factor)
    return LoRALayer(*args)


class TrainableNetwork(nn.ModuleDict):
    """The trainable layers keyed by kohya layer name; `state_dict()` has the file's keys."""

    def __init__(self, layers: dict[str, TrainableLayer], targets: dict[str, LayerTarget]) -> None:
        super().__init__(layers)
        self.targets = targets

    def layer(self, name: str) -> TrainableLayer:
        layer = self[name]
        assert isinstance(layer, TrainableLayer)
        return layer

    def parameters_of(self, text_encoder: bool) -> list[nn.Parameter]:
        """The UNet's (False) or the text encoders' (True) trainable parameters."""
        return [
            p
            for name, target in self.targets.items()
            if (target.component != "unet") == text_encoder
            for p in self.layer(name).parameters()
        ]

    @contextlib.contextmanager
    def applied(self) -> Iterator[TrainableNetwork]:
        """Hook every layer into the model for the scope; the hooks go whatever happens."""
        handles = [
            target.module.register_forward_hook(_hook(self.layer(name)))
            for name, target in self.targets.items()
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def file_state_dict(self, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
        """The kohya / LyCORIS file's tensors (CPU, contiguous, in `dtype`)."""
        return {key: value.detach().to("cpu", dtype).contiguous() for key, value in self.state_dict().items()}

    def load_file_state_dict(self, tensors: dict[str, Tensor]) -> None:
        """Load tensors saved by `file_state_dict` (a resume state); refuses a different network."""
        own = self.state_dict()
        if set(tensors) != set(own) or any(tensors[k].shape != own[k].shape for k in own):
            raise TrainingError("the resume state holds another network than these settings make")
        self.load_state_dict(tensors)
        for name in self.targets:
            self.layer(name).set_alpha(float(tensors[f"{name}.alpha"]))


def _hook(layer: TrainableLayer):
    def add_adapter(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        return output + layer(module, args[0]).to(output.dtype)

    return add_adapter


def create_network(model: SDModel, settings: LoraSettings) -> TrainableNetwork:
    """Fresh adapters (the delta starts at zero) for the selected layers, fp32 on the model's device."""
    generator = torch.Generator().manual_seed(settings.seed)
    layers: dict[str, TrainableLayer] = {}
    targets: dict[str, LayerTarget] = {}
    for target in select_targets(model, settings):
        name = kohya_name(model, target.component, target.path)
        layers[name] = _make_layer(target, settings, generator)
        targets[name] = target
    return TrainableNetwork(layers, targets).to(model.device)
