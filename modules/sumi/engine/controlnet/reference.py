"""Reference-only control (sd-webui-controlnet's `reference_only`, `reference_adain`,
`reference_adain+attn`): no weights; the reference picture's latents steer the UNet from inside.

Before each UNet forward the reference latents, noised to the forward's timestep (`q_sample`), go through
the same UNet with the same rows and text ("write" pass). On the way:
- attention: each transformer block whose place is below the unit's weight keeps its self-attention
  input (`norm1(x)`); in the real forward ("read") the block's self-attention also attends to what was
  kept (keys and values from `cat([x, kept], tokens)`);
- AdaIN: the middle block and some encoder/decoder layers keep the per-channel mean and variance of their
  output; in the real forward the output is renormalised to those statistics.
Style fidelity mixes, for the negative-prompt rows only, the plain result into the steered one:
`fidelity x plain + (1 - fidelity) x steered` (the extension's "only for Balanced mode" slider;
"ControlNet is more important" makes it 1, "My prompt is more important" and the hires pass 0, SDXL
cubes it).

Which blocks take part follows the extension: transformer blocks ordered widest first (encoder, middle,
decoder within a width), block i of n takes part while weight > i / n; AdaIN layers are LDM's
input_blocks 4, 5, 7, 8, 10, 11 (SDXL 4, 5, 7, 8) with levels 2 (1 - w / n), output_blocks 0..7 (SDXL
0..5) with 2 w / n, and the middle block with 0; a layer takes part while weight > its level. LDM's
block numbers are mapped onto diffusers' modules (a layer is its resnet and attention; the last layer of a
level also holds the level's down/upsampler, as in LDM).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.models.attention import BasicTransformerBlock
from torch import Tensor

from modules.sumi.engine.controlnet.control import check_window, in_window
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import Extension, HookPoint, PatchScope, UNetBatch, hook
from modules.sumi.engine.host_values import SentOnce, send

REFERENCE_MODES = ("reference_only", "reference_adain", "reference_adain+attn")
_ADAIN_INPUTS = {False: (4, 5, 7, 8, 10, 11), True: (4, 5, 7, 8)}
_ADAIN_OUTPUTS = {False: tuple(range(8)), True: tuple(range(6))}
_EPS = 1e-6


@dataclass
class ReferenceUnit:
    """One reference unit: its picture's latents [N, C, h, w] (N = 1 or one per image) and settings."""

    latents: Tensor
    mode: str = "reference_only"
    weight: float = 1.0
    style_fidelity: float = 0.5  # as it applies (after the mode, SDXL and hires-pass rules)
    guidance_start: float = 0.0
    guidance_end: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in REFERENCE_MODES:
            raise InvalidRequestError(f"unknown reference mode {self.mode!r}; use one of {REFERENCE_MODES}")
        check_window(self.guidance_start, self.guidance_end, "reference")

    @property
    def model(self) -> None:
        return None  # no weights

    @property
    def attention(self) -> bool:
        return self.mode in ("reference_only", "reference_adain+attn")

    @property
    def adain(self) -> bool:
        return self.mode in ("reference_adain", "reference_adain+attn")

    def active_at(self, step: int, total_steps: int) -> bool:
        return self.weight != 0 and in_window(step, total_steps, self.guidance_start, self.guidance_end)


WRITE, READ, IDLE = "write", "read", "idle"


@dataclass
class _Machine:
    """What the patched modules do in the current forward, shared by all of them."""

    mode: str = IDLE
    attention_weight: float = 0.0  # write: the unit's weight for attention (0 = not written)
    adain_weight: float = 0.0
    fidelity: float = 0.0
    uncond_rows: Tensor | None = None  # read: the rows of the negative prompt


@dataclass
class _Bank:
    """What one module kept in the write passes of this forward."""

    level: float
    tensors: list[Any] = field(default_factory=list)
    fidelities: list[float] = field(default_factory=list)

    def mean_fidelity(self) -> float:
        return sum(self.fidelities) / len(self.fidelities)

    def clear(self) -> None:
        self.tensors.clear()
        self.fidelities.clear()


class ReferenceAttention:
    """Wraps a transformer block's self-attention processor: keeps its input (write), or attends over it
    and what was kept (read)."""

    def __init__(self, wrapped: Any, bank: _Bank, machine: _Machine) -> None:
        self.wrapped = wrapped
        self.bank = bank
        self.machine = machine

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ) -> Tensor:
        machine, bank = self.machine, self.bank
        if encoder_hidden_states is not None or hidden_states.ndim != 3:
            return self.wrapped(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        if machine.mode == WRITE and machine.attention_weight > bank.level:
            bank.tensors.append(hidden_states.detach().clone())
            bank.fidelities.append(machine.fidelity)
        if machine.mode != READ or not bank.tensors:
            return self.wrapped(attn, hidden_states, None, attention_mask, temb, **kwargs)
        fidelity = bank.mean_fidelity()
        context = torch.cat([hidden_states, *bank.tensors], dim=1)
        bank.clear()
        steered = self.wrapped(attn, hidden_states, context, attention_mask, temb, **kwargs)
        rows = machine.uncond_rows
        if rows is None or rows.numel() == 0 or fidelity <= 1e-5:
            return steered
        kept = steered.clone()
        kept[rows] = self.wrapped(attn, hidden_states[rows], None, attention_mask, temb, **kwargs)
        return fidelity * kept + (1.0 - fidelity) * steered


def _adain_hook(bank: _Bank, machine: _Machine):
    def renormalise(module: torch.nn.Module, args: Any, output: Any) -> Any:
        x = output[0] if isinstance(output, tuple) else output
        if machine.mode == WRITE and machine.adain_weight > bank.level:
            var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
            bank.tensors.append((mean, var))
            bank.fidelities.append(machine.fidelity)
        if machine.mode != READ or not bank.tensors:
            return None
        y = adain(x, bank.tensors, bank.mean_fidelity(), machine.uncond_rows)
        bank.clear()
        return (y, *output[1:]) if isinstance(output, tuple) else y

    return renormalise


def adain(
    x: Tensor, stats: Sequence[tuple[Tensor, Tensor]], fidelity: float, uncond_rows: Tensor | None
) -> Tensor:
    """`x` renormalised per row and channel to the mean of the kept means and variances (std floored at
    sqrt(1e-6)); uncond rows keep `fidelity` of their own values."""
    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    std = torch.maximum(var, torch.zeros_like(var) + _EPS) ** 0.5
    mean_acc = torch.stack([m for m, _ in stats]).mean(dim=0)
    var_acc = torch.stack([v for _, v in stats]).mean(dim=0)
    std_acc = torch.maximum(var_acc, torch.zeros_like(var_acc) + _EPS) ** 0.5
    steered = ((x - mean) / std) * std_acc + mean_acc
    if uncond_rows is None or uncond_rows.numel() == 0 or fidelity <= 1e-5:
        return steered.to(x.dtype)
    kept = steered.clone()
    kept[uncond_rows] = x.to(kept.dtype)[uncond_rows]
    return (fidelity * kept + (1.0 - fidelity) * steered).to(x.dtype)


# -- where, in a diffusers UNet ---------------------------------------------------------------------


def transformer_blocks(unet: torch.nn.Module) -> list[BasicTransformerBlock]:
    """Transformer blocks in LDM's order (encoder, middle, decoder), then widest first (stable)."""
    parts = [
        *getattr(unet, "down_blocks", []),
        getattr(unet, "mid_block", None),
        *getattr(unet, "up_blocks", []),
    ]
    found = [
        m
        for part in parts
        if part is not None
        for m in part.modules()
        if isinstance(m, BasicTransformerBlock)
    ]
    return sorted(found, key=_width, reverse=True)  # stable: LDM's order within a width


def _width(block: BasicTransformerBlock) -> int:
    shape = getattr(block.norm1, "normalized_shape", None)
    return int(shape[0]) if shape else 0


def ldm_layers(unet: Any) -> tuple[dict[int, torch.nn.Module], dict[int, torch.nn.Module]]:
    """{LDM input_blocks index: the diffusers module whose output is that block's}, and the same for
    output_blocks: a layer is its attention (or resnet, without one); a level's down/upsampler is
    input block of its own in LDM, but part of the last output block of its level."""
    inputs: dict[int, torch.nn.Module] = {}
    index = 0
    for block in unet.down_blocks:
        for j, resnet in enumerate(block.resnets):
            index += 1
            inputs[index] = _layer(block, j, resnet)
        if getattr(block, "downsamplers", None):
            index += 1
            inputs[index] = block.downsamplers[0]
    outputs: dict[int, torch.nn.Module] = {}
    index = -1
    for block in unet.up_blocks:
        last = len(block.resnets) - 1
        for j, resnet in enumerate(block.resnets):
            index += 1
            upsample = j == last and getattr(block, "upsamplers", None)
            outputs[index] = block.upsamplers[0] if upsample else _layer(block, j, resnet)
    return inputs, outputs


def _layer(block: Any, j: int, resnet: torch.nn.Module) -> torch.nn.Module:
    attentions = getattr(block, "attentions", None)
    return attentions[j] if attentions is not None and j < len(attentions) else resnet


def adain_layers(unet: Any, sdxl: bool) -> list[tuple[torch.nn.Module, float]]:
    """(module, level) for every AdaIN layer the extension hooks (levels already doubled)."""
    inputs, outputs = ldm_layers(unet)
    found: list[tuple[torch.nn.Module, float]] = [(unet.mid_block, 0.0)]
    wanted_in, wanted_out = _ADAIN_INPUTS[sdxl], _ADAIN_OUTPUTS[sdxl]
    for w, i in enumerate(wanted_in):
        if i in inputs:
            found.append((inputs[i], 2.0 * (1.0 - w / len(wanted_in))))
    for w, i in enumerate(wanted_out):
        if i in outputs:
            found.append((outputs[i], 2.0 * w / len(wanted_out)))
    return found


# -- the extension ----------------------------------------------------------------------------------


class ReferenceExtension(Extension):
    """Reference units: patches the UNet for the scope; before each UNet forward, runs the write passes
    of the units active at that model call, then lets the real forward read."""

    def __init__(
        self,
        units: Sequence[ReferenceUnit],
        alphas_cumprod: Tensor,
        sdxl: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.units = list(units)
        self.alphas_cumprod = alphas_cumprod.float()  # float32 (as used) on every device, MPS too
        self._sent = SentOnce()  # each unit's latents and the alpha table on the device
        self.sdxl = sdxl
        self.machine = _Machine()
        self.generator = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFF)
        self._unet: torch.nn.Module | None = None
        self._banks: list[_Bank] = []

    def patch(self, scope: PatchScope):
        return self._patched(scope.model.unet)

    @contextmanager
    def _patched(self, unet: torch.nn.Module) -> Iterator[None]:
        blocks = transformer_blocks(unet)  # cross-attention-only blocks pass their calls through
        wrapped: list[tuple[Any, Any]] = []
        handles = []
        try:
            for i, block in enumerate(blocks):
                bank = _Bank(i / len(blocks))
                self._banks.append(bank)
                wrapped.append((block.attn1, block.attn1.processor))
                wrapper = ReferenceAttention(block.attn1.processor, bank, self.machine)
                block.attn1.processor = wrapper  # pyright: ignore[reportAttributeAccessIssue]
            for module, level in adain_layers(unet, self.sdxl):
                bank = _Bank(level)
                self._banks.append(bank)
                handles.append(module.register_forward_hook(_adain_hook(bank, self.machine)))
            self._unet = unet
            yield
        finally:
            for handle in handles:
                handle.remove()
            for attention, processor in reversed(wrapped):
                attention.processor = processor
            self._banks.clear()
            self._unet = None
            self.machine.mode = IDLE

    @hook(HookPoint.UNET_FORWARD)
    def write(self, batch: UNetBatch) -> None:
        self.machine.mode = IDLE
        for bank in self._banks:
            bank.clear()
        active = [u for u in self.units if u.active_at(batch.step, batch.total_steps)]
        if not active or self._unet is None:
            return
        for unit in active:
            self._write_pass(unit, batch)
        self.machine.mode = READ
        _, is_cond = batch.row_roles()  # host tuples from the sampler: no wait for the GPU
        uncond = [row for row, cond in enumerate(is_cond) if not cond]
        self.machine.uncond_rows = send(torch.tensor(uncond, dtype=torch.long), batch.x.device)

    @torch.no_grad()
    def _write_pass(self, unit: ReferenceUnit, batch: UNetBatch) -> None:
        assert self._unet is not None
        machine = self.machine
        machine.mode = WRITE
        machine.attention_weight = unit.weight if unit.attention else 0.0
        machine.adain_weight = unit.weight if unit.adain else 0.0
        machine.fidelity = unit.style_fidelity
        x = self.noised(unit, batch)
        added = None
        if batch.context.pooled is not None:
            added = {"text_embeds": batch.context.pooled, "time_ids": batch.time_ids}
        self._unet(x, batch.timestep, encoder_hidden_states=batch.context.context, added_cond_kwargs=added)
        machine.mode = IDLE

    def noised(self, unit: ReferenceUnit, batch: UNetBatch) -> Tensor:
        """The reference latents of each row at the forward's timestep (`q_sample`, fresh noise from the
        job's seed); for a 9-channel inpainting UNet with an empty mask and the latents as its image."""
        x = batch.x
        latents = self._sent.get(id(unit), unit.latents, x.device, torch.float32)
        rows = latents[batch.images.to(x.device) % latents.shape[0]]
        t = torch.as_tensor(batch.timestep).float().flatten()
        alphas = self._sent.get("alphas", self.alphas_cumprod, t.device)  # indexed where the timestep is
        index = t.round().long().clamp(0, len(alphas) - 1)
        alpha = alphas[index].to(x.device).view(-1, 1, 1, 1)
        noise = send(torch.randn(rows.shape, generator=self.generator), x.device)
        noised = alpha.sqrt() * rows + (1 - alpha).sqrt() * noise
        channels = int(getattr(getattr(self._unet, "config", None), "in_channels", x.shape[1]))
        if channels == 9:  # the UNet's image conditioning (added after this hook for the real call)
            noised = torch.cat([noised, torch.zeros_like(noised[:, :1]), rows], dim=1)
        return noised.to(x.dtype)
