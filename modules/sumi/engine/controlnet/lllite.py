"""ControlNet-LLLite (kohya's "ControlLLLite", mostly SDXL): small networks that add the control image's
influence to the input of attention projections, instead of a second UNet.

A file holds one module per patched projection, named after it in the original UNet's layout:
`lllite_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.<part>` (input/middle/output blocks, a
transformer block, attn1 or attn2, q/k/v). Each module embeds the control image once (`conditioning1`:
4x4 stride-4 convolutions down to the block's grid; its depth, 1 to 3, is read from the file), and at
every call adds `weight x up(mid(cat(embedding, down(x))))` to the projection's input x (Linear layers;
conv modules on image grids too). As sd-webui-controlnet runs it: the control image goes in as -1..1,
an embedding that does not land on the block's grid is resized to it (nearest), cond and uncond rows are
both controlled, the guidance window applies, and the hires pass of a job is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.control import check_window, in_window, level_grid
from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError
from modules.sumi.engine.extensions import Extension, HookPoint, PatchScope, UNetBatch, hook

LLLITE_PREFIX = "lllite_unet_"
_TARGET = re.compile(
    r"lllite_unet_(input|middle|output)_blocks?_(\d+)_1_transformer_blocks_(\d+)_(attn[12])_to_([qkv])"
)


def is_lllite(state_dict: Mapping[str, Tensor]) -> bool:
    return any(key.startswith(LLLITE_PREFIX) for key in state_dict)


class LLLiteModule(nn.Module):
    """One patched projection's network (its parts named as in the file)."""

    def __init__(self, weights: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.depth = (
            3
            if "conditioning1.4.weight" in weights
            else (2 if weights["conditioning1.2.weight"].shape[-1] == 4 else 1)
        )
        self.is_conv = weights["down.0.weight"].ndim == 4
        embed = int(weights["conditioning1.0.weight"].shape[0]) * 2
        inputs, hidden = int(weights["down.0.weight"].shape[1]), int(weights["down.0.weight"].shape[0])
        layers: list[nn.Module] = [nn.Conv2d(3, embed // 2, 4, stride=4)]
        if self.depth == 3:
            layers += [nn.ReLU(), nn.Conv2d(embed // 2, embed // 2, 4, stride=4)]
        layers += [
            nn.ReLU(),
            nn.Conv2d(embed // 2, embed, 4 if self.depth == 2 else 2, stride=4 if self.depth == 2 else 2),
        ]
        self.conditioning1 = nn.Sequential(*layers)
        project = (lambda a, b: nn.Conv2d(a, b, 1)) if self.is_conv else nn.Linear
        self.down = nn.Sequential(project(inputs, hidden), nn.ReLU())
        self.mid = nn.Sequential(project(hidden + embed, hidden), nn.ReLU())
        self.up = nn.Sequential(project(hidden, inputs))
        self.in_features = inputs

    def embedding(self, cond: Tensor, grid: tuple[int, int]) -> Tensor:
        """The control image's embedding [N, tokens, C] (conv modules: [N, C, h, w]) on the block's grid."""
        embedded = self.conditioning1(cond)
        if tuple(embedded.shape[-2:]) != grid:
            embedded = F.interpolate(embedded, grid, mode="nearest-exact")
        return embedded if self.is_conv else embedded.flatten(2).transpose(1, 2)

    def forward(self, x: Tensor, embedded: Tensor) -> Tensor:
        joined = torch.cat([embedded, self.down(x)], dim=1 if self.is_conv else 2)
        return self.up(self.mid(joined))


class LLLiteNetwork(nn.Module):
    """Every module of one file, with the UNet projection (diffusers path) each one patches."""

    def __init__(
        self, modules: Mapping[str, LLLiteModule], targets: Mapping[str, tuple[str, int, int, str, str]]
    ):
        super().__init__()
        self.parts = nn.ModuleDict(dict(modules))
        self.targets = dict(targets)  # name -> (block kind, block index, transformer index, attn, q/k/v)

    @property
    def family(self) -> str:
        """SD1 (attention at the first level: input blocks 1-2), else SDXL (several transformer layers
        per block, or none of SD1's 320-wide levels)."""
        places = self.targets.values()
        if any(kind == "input" and index in (1, 2) for kind, index, *_ in places):
            return "SD1"
        if any(layer > 0 for _, _, layer, _, _ in places):
            return "SDXL"
        widths = {module.in_features for module in self.parts.values()}  # type: ignore[union-attr]
        return "SD1" if 320 in widths else "SDXL"

    def target_paths(self, layers_per_block: int) -> dict[str, str]:
        """{module name: the diffusers path of the projection it patches}."""
        return {name: _diffusers_path(place, layers_per_block) for name, place in self.targets.items()}


def _diffusers_path(place: tuple[str, int, int, str, str], layers: int) -> str:
    kind, index, layer, attention, projection = place
    if kind == "input":
        block = f"down_blocks.{(index - 1) // (layers + 1)}.attentions.{(index - 1) % (layers + 1)}"
    elif kind == "output":
        block = f"up_blocks.{index // (layers + 1)}.attentions.{index % (layers + 1)}"
    else:
        block = "mid_block.attentions.0"
    return f"{block}.transformer_blocks.{layer}.{attention}.to_{projection}"


def build_lllite(state_dict: Mapping[str, Tensor], source: str) -> LLLiteNetwork:
    """The network of a ControlNet-LLLite file (ModelLoadError naming what does not fit)."""
    grouped: dict[str, dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        name, _, part = key.partition(".")
        grouped.setdefault(name, {})[part] = value
    modules, targets = {}, {}
    for name, weights in grouped.items():
        found = _TARGET.fullmatch(name.replace("middle_block_", "middle_blocks_0_"))
        if found is None:
            raise ModelLoadError(f"{source}: a ControlNet-LLLite module Sumi cannot place: {name}")
        kind, index, layer, attention, projection = found.groups()
        try:
            module = LLLiteModule(weights)
            module.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
        except (KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"{source}: ControlNet-LLLite module {name} does not load ({exc})") from exc
        modules[name] = module.eval().requires_grad_(False)
        targets[name] = (kind, int(index), int(layer), attention, projection)
    if not modules:
        raise ModelLoadError(f"{source}: no ControlNet-LLLite modules")
    return LLLiteNetwork(modules, targets)


def check_lllite_fits(network: LLLiteNetwork, unet: nn.Module, name: str) -> None:
    """InvalidRequestError unless every module's projection exists in the UNet with its width."""
    layers = int(getattr(unet, "config", {}).get("layers_per_block", 2))
    for module_name, path in network.target_paths(layers).items():
        try:
            projection = unet.get_submodule(path)
        except AttributeError:
            projection = None
        module = network.parts[module_name]
        if not isinstance(projection, nn.Linear) or projection.in_features != module.in_features:  # type: ignore[union-attr]
            raise InvalidRequestError(
                f"ControlNet-LLLite '{name}' patches {module_name}, which the loaded checkpoint does not have "
                "as it expects: it is for another model"
            )


@dataclass
class LLLiteUnit:
    """One enabled LLLite unit: its network, control image [N, 3, H, W] in 0..1 and settings."""

    network: LLLiteNetwork
    image: Tensor
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    embeddings: dict[tuple, Tensor] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_window(self.guidance_start, self.guidance_end, "ControlNet-LLLite")

    @property
    def model(self) -> LLLiteNetwork:
        return self.network

    def active_at(self, step: int, total_steps: int) -> bool:
        return self.weight != 0 and in_window(step, total_steps, self.guidance_start, self.guidance_end)

    def embedded(self, name: str, grid: tuple[int, int], like: Tensor) -> Tensor:
        """Module `name`'s embedding of every control image on `grid`, computed once per grid and dtype."""
        key = (name, grid, like.device, like.dtype)
        if key not in self.embeddings:
            module = self.network.parts[name]
            parameter = next(module.parameters())
            cond = self.image.to(device=parameter.device, dtype=parameter.dtype) * 2.0 - 1.0
            self.embeddings[key] = module.embedding(cond, grid)  # type: ignore[operator]
        return self.embeddings[key]


@dataclass
class _Current:
    rows: Tensor | None = None  # each row's image index
    latent: tuple[int, int] = (0, 0)
    active: list[LLLiteUnit] = field(default_factory=list)


class LLLiteExtension(Extension):
    """Patches the projections the units' modules name (a pre-hook adds their output to the input) and,
    before each UNet forward, picks the units active at that model call."""

    def __init__(self, units: Sequence[LLLiteUnit]) -> None:
        super().__init__()
        self.units = list(units)
        self.current = _Current()

    def patch(self, scope: PatchScope):
        return self._hooked(scope.model.unet)

    @contextmanager
    def _hooked(self, unet: nn.Module) -> Iterator[None]:
        layers = int(getattr(unet, "config", {}).get("layers_per_block", 2))
        by_path: dict[str, list[tuple[LLLiteUnit, str]]] = {}
        for unit in self.units:
            for name, path in unit.network.target_paths(layers).items():
                by_path.setdefault(path, []).append((unit, name))
        handles = [
            unet.get_submodule(path).register_forward_pre_hook(self._adder(entries))
            for path, entries in by_path.items()
        ]
        try:
            with torch.no_grad():
                yield
        finally:
            for handle in handles:
                handle.remove()
            self.current = _Current()

    def _adder(self, entries: list[tuple[LLLiteUnit, str]]):
        current = self.current

        def add(_module: nn.Module, args: tuple) -> tuple | None:
            x = args[0]
            active = [(u, n) for u, n in entries if any(u is a for a in current.active)]
            if not active or current.rows is None or x.ndim != 3 or x.shape[0] != len(current.rows):
                return None
            grid = level_grid(current.latent, int(x.shape[1]))
            total = x
            for unit, name in active:
                module = unit.network.parts[name]
                parameter = next(module.parameters())
                embedded = unit.embedded(name, grid, parameter)
                rows = embedded[current.rows.to(embedded.device) % embedded.shape[0]]
                total = total + (module(x.to(parameter.dtype), rows) * unit.weight).to(x.dtype)
            return (total, *args[1:])

        return add

    @hook(HookPoint.UNET_FORWARD)
    def pick_units(self, batch: UNetBatch) -> None:
        self.current.rows = batch.images
        self.current.latent = (int(batch.x.shape[-2]), int(batch.x.shape[-1]))
        self.current.active[:] = [u for u in self.units if u.active_at(batch.step, batch.total_steps)]
