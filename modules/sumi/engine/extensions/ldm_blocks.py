"""A1111's UNet block lists over a diffusers UNet: `input_blocks`, `middle_block`, `output_blocks`,
`out`, `time_embed` (and `label_emb` on SDXL), as `shared.sd_model.model.diffusion_model` has them.

A1111's LDM UNet runs `h = block(h, emb, context)` for each input block (keeping every output as a
skip), then the middle block, then for each output block `h = block(th.cat([h, skip]), emb, context)`,
then `out`. Extensions change the UNet by replacing items of those lists with their own modules (Kohya's
Deep Shrink: `input_blocks[3] = Scaler(0.5, input_blocks[3])`), by replacing a block's `forward`, or by
forward hooks on a block. Diffusers' UNet groups the same layers differently (down/mid/up blocks of
resnets, transformers and resamplers); here each LDM block is a `LdmBlock` (a `torch.nn.Sequential`, as
A1111's `TimestepEmbedSequential`) holding the diffusers layers of that LDM block, in LDM order.

While every block is the original one (no item replaced, no hook, no forward override), the UNet runs
diffusers' own forward: nothing changes and nothing is paid. Once an extension has changed one, each
UNet call runs `LdmBlocks.forward`, which computes what diffusers' forward computes, in LDM order and
through the lists as they are now: the same layers, the same skip joins (through Sumi's replaceable skip
concatenation, A1111's `sd_hijack_unet.th.cat`), ControlNet residuals and T2I-Adapter residuals where
diffusers adds them, and upsamplers sized to the skip they are joined with (any latent size, as
diffusers). A skip that still differs in size from `h` (an extension resized one) is met as A1111's
concatenation meets it: `h` is resized to the skip's size (nearest).

The lists are kept in the UNet's `__dict__`, not as registered submodules, so `state_dict()`,
`parameters()` and `.to()` of the UNet are unchanged.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D

from modules.sumi.engine.extensions.skip_concat import skip_concat

_ATTRIBUTE = "_sumi_ldm_blocks"
_EXPOSED = ("input_blocks", "middle_block", "output_blocks", "out", "time_embed", "label_emb")


@dataclass
class _CallExtras:
    """What a call gives every transformer and upsampler besides (x, emb, context)."""

    cross_attention_kwargs: dict[str, Any] | None = None
    attention_mask: torch.Tensor | None = None
    encoder_attention_mask: torch.Tensor | None = None
    upsample_size: tuple[int, ...] | None = None


_extras: contextvars.ContextVar[_CallExtras | None] = contextvars.ContextVar("ldm_call_extras", default=None)


def _run_layer(layer: torch.nn.Module, x: torch.Tensor, emb: torch.Tensor, context: Any) -> torch.Tensor:
    extras = (
        _extras.get() or _CallExtras()
    )  # a block called outside the LDM forward (an extension's own call)
    if isinstance(layer, ResnetBlock2D):
        return layer(x, emb)
    if isinstance(layer, Downsample2D):
        return layer(x)
    if isinstance(layer, Upsample2D):
        return layer(x, extras.upsample_size)
    if getattr(layer, "_sumi_takes_context", False):
        return layer(
            x,
            encoder_hidden_states=context,
            cross_attention_kwargs=extras.cross_attention_kwargs,
            attention_mask=extras.attention_mask,
            encoder_attention_mask=extras.encoder_attention_mask,
            return_dict=False,
        )[0]
    return layer(x)


class LdmBlock(torch.nn.Sequential):
    """One block of A1111's LDM UNet (its `TimestepEmbedSequential`): `block(x, emb, context)` runs the
    block's diffusers layers in order (a resnet takes `emb`, a transformer `context`)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: Any = None, *args: Any, **kwargs: Any):  # type: ignore[override]
        for layer in self:
            x = _run_layer(layer, x, emb, context)
        return x


class _BlockList(list):
    """`input_blocks` / `output_blocks`: a list whose items an extension may replace (`[i] = module`)."""


def _transformers(module: Any) -> list[torch.nn.Module]:
    """The block's cross-attention transformers (none in a block without cross-attention)."""
    if not getattr(module, "has_cross_attention", False):
        return []
    return list(module.attentions)


def _supported(unet: Any) -> bool:
    """Diffusers' 2D-condition UNet whose blocks hold resnets, cross-attention transformers and
    resamplers only (every SD1, SD2 and SDXL UNet)."""
    if not all(
        getattr(unet, name, None) is not None
        for name in ("conv_in", "down_blocks", "mid_block", "up_blocks", "conv_out")
    ):
        return False
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    return all(
        hasattr(block, "resnets")
        and (
            getattr(block, "attentions", None) is None
            or len(block.attentions) == 0
            or getattr(block, "has_cross_attention", False)
        )
        for block in blocks
    )


def _mark(transformer: torch.nn.Module) -> torch.nn.Module:
    object.__setattr__(transformer, "_sumi_takes_context", True)
    return transformer


def _down_layers(block: Any) -> Iterator[tuple[list[torch.nn.Module], bool]]:
    """Each LDM input block of a diffusers down block, and whether it is where a T2I-Adapter residual
    is added (diffusers: after the last resnet/transformer pair of a block with cross-attention, after
    the block's last layer otherwise)."""
    attentions = _transformers(block)
    resnets = list(block.resnets)
    downsamplers = list(getattr(block, "downsamplers", None) or [])
    for i, resnet in enumerate(resnets):
        layers = [resnet] + ([_mark(attentions[i])] if attentions else [])
        last = i == len(resnets) - 1
        yield layers, last and (bool(attentions) or not downsamplers)
    for downsampler in downsamplers:
        yield [downsampler], not attentions


def _up_layers(block: Any) -> Iterator[list[torch.nn.Module]]:
    attentions = _transformers(block)
    resnets = list(block.resnets)
    upsamplers = list(getattr(block, "upsamplers", None) or [])
    for i, resnet in enumerate(resnets):
        layers = [resnet] + ([_mark(attentions[i])] if attentions else [])
        if i == len(resnets) - 1:
            layers += upsamplers
        yield layers


def _mid_layers(block: Any) -> list[torch.nn.Module]:
    resnets = list(block.resnets)
    layers: list[torch.nn.Module] = [resnets[0]]
    for attention, resnet in zip(_transformers(block), resnets[1:], strict=True):
        layers += [_mark(attention), resnet]
    return layers


class _Out(torch.nn.Sequential):
    """LDM's `out`: normalisation, SiLU, the last convolution."""


class LdmBlocks:
    """A1111's block lists of one diffusers UNet, and the LDM-order forward that honours changes to them."""

    def __init__(self, unet: Any) -> None:
        # weakly: the UNet holds this object, and a cycle would keep an unloaded model until gc runs
        self._unet = weakref.ref(unet)
        inputs: list[LdmBlock] = [LdmBlock(unet.conv_in)]
        self.adapter_points: set[int] = set()
        for block in unet.down_blocks:
            for layers, adapter_point in _down_layers(block):
                if adapter_point:
                    self.adapter_points.add(len(inputs))
                inputs.append(LdmBlock(*layers))
        outputs = [LdmBlock(*layers) for block in unet.up_blocks for layers in _up_layers(block)]
        self.input_blocks = _BlockList(inputs)
        self.output_blocks = _BlockList(outputs)
        self.middle_block = LdmBlock(*_mid_layers(unet.mid_block))
        tail = [m for m in (unet.conv_norm_out, unet.conv_act) if m is not None]
        self.out: torch.nn.Module = _Out(*tail, unet.conv_out)
        self.time_embed: torch.nn.Module = unet.time_embedding
        self.label_emb: torch.nn.Module | None = getattr(unet, "add_embedding", None)
        self._originals = (tuple(inputs), tuple(outputs), self.middle_block, self.out, self.time_embed)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        """A copied or pickled UNet gets no lists object (`attach` makes its own): this one is of the
        original UNet, which it holds weakly."""
        return _none, ()

    @property
    def unet(self) -> Any:
        """The diffusers UNet2DConditionModel these lists are of (Any: its submodules by name)."""
        unet = self._unet()
        if unet is None:
            raise RuntimeError("the UNet of these block lists was unloaded")
        return unet

    # -- what changed ------------------------------------------------------------------------------------
    def current(
        self,
    ) -> tuple[list[torch.nn.Module], list[torch.nn.Module], torch.nn.Module, torch.nn.Module]:
        """The lists and parts as the UNet's attributes hold them now (an extension may have assigned
        `diffusion_model.middle_block = ...`)."""
        unet = self.unet
        return (
            unet.input_blocks,
            unet.output_blocks,
            getattr(unet, "middle_block", self.middle_block),
            getattr(unet, "out", self.out),
        )

    def changed(self) -> bool:
        """An extension replaced a block or a part, replaced a block's forward, or hooks one."""
        inputs, outputs, middle, out = self.current()
        original_inputs, original_outputs, original_middle, original_out, original_time = self._originals
        if middle is not original_middle or out is not original_out:
            return True
        if getattr(self.unet, "time_embed", original_time) is not original_time:
            return True
        if len(inputs) != len(original_inputs) or len(outputs) != len(original_outputs):
            return True
        for now, before in zip((*inputs, *outputs), (*original_inputs, *original_outputs), strict=True):
            if now is not before or _customised(now):
                return True
        return _customised(middle) or _customised(out)

    # -- A1111's forward -----------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        timestep_cond: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        down_block_additional_residuals: tuple[torch.Tensor, ...] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        down_intrablock_additional_residuals: tuple[torch.Tensor, ...] | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> Any:
        """Diffusers' `UNet2DConditionModel.forward` arguments and result, computed in LDM order through
        the block lists as they are now."""
        unet = self.unet
        if unet.config.center_input_sample:
            sample = 2 * sample - 1.0
        if attention_mask is not None:
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        if encoder_attention_mask is not None:
            encoder_attention_mask = ((1 - encoder_attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        emb = self._embedding(
            sample, timestep, class_labels, timestep_cond, encoder_hidden_states, added_cond_kwargs
        )
        context = unet.process_encoder_hidden_states(
            encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added_cond_kwargs
        )
        adapter = list(down_intrablock_additional_residuals or ())
        if (
            adapter == []
            and down_block_additional_residuals is not None
            and mid_block_additional_residual is None
        ):
            adapter, down_block_additional_residuals = (
                list(down_block_additional_residuals),
                None,
            )  # diffusers' legacy T2I
        extras = _CallExtras(cross_attention_kwargs, attention_mask, encoder_attention_mask)
        token = _extras.set(extras)
        try:
            inputs, outputs, middle, out = self.current()
            h = sample
            skips: list[torch.Tensor] = []
            for index, block in enumerate(inputs):
                h = block(h, emb, context)
                if index in self.adapter_points and adapter:
                    h = h + adapter.pop(0)
                skips.append(h)
            if down_block_additional_residuals is not None and mid_block_additional_residual is not None:
                skips = [s + r for s, r in zip(skips, down_block_additional_residuals, strict=False)]
            h = middle(h, emb, context)
            if adapter and h.shape == adapter[0].shape:
                h = h + adapter.pop(0)
            if mid_block_additional_residual is not None and down_block_additional_residuals is not None:
                h = h + mid_block_additional_residual
            for block in outputs:
                skip = skips.pop()
                extras.upsample_size = tuple(skips[-1].shape[-2:]) if skips else None
                h = block(_joined(h, skip), emb, context)
            h = out(h)
        finally:
            _extras.reset(token)
        if not return_dict:
            return (h,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=h)

    def _embedding(
        self,
        sample: torch.Tensor,
        timestep: Any,
        class_labels: torch.Tensor | None,
        timestep_cond: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        added_cond_kwargs: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Diffusers' time (and SDXL's added) embedding, through `time_embed` as the UNet holds it now."""
        unet = self.unet
        t_emb = unet.get_time_embed(sample=sample, timestep=timestep)
        time_embed = getattr(unet, "time_embed", self.time_embed)
        emb = time_embed(t_emb) if timestep_cond is None else time_embed(t_emb, timestep_cond)
        class_emb = unet.get_class_embed(sample=sample, class_labels=class_labels)
        if class_emb is not None:
            emb = (
                torch.cat([emb, class_emb], dim=-1)
                if unet.config.class_embeddings_concat
                else emb + class_emb
            )
        aug = unet.get_aug_embed(
            emb=emb, encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added_cond_kwargs
        )
        if aug is not None:
            emb = emb + aug
        if unet.time_embed_act is not None:
            emb = unet.time_embed_act(emb)
        return emb


def _none() -> None:
    return None


def _customised(module: torch.nn.Module) -> bool:
    """A forward replaced on the object, or forward hooks on it."""
    return "forward" in vars(module) or bool(module._forward_hooks) or bool(module._forward_pre_hooks)


def _joined(h: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """`cat([h, skip], dim=1)` through the skip concatenation, `h` resized to the skip first when an
    extension made their sizes differ (A1111's concatenation does the same)."""
    if h.shape[-2:] != skip.shape[-2:]:
        h = torch.nn.functional.interpolate(h, skip.shape[-2:], mode="nearest")
    return skip_concat()([h, skip], dim=1)


def attach(unet: torch.nn.Module) -> LdmBlocks | None:
    """Give `unet` A1111's block attributes (once; None for a UNet not of diffusers' 2D-condition shape)."""
    blocks = vars(unet).get(_ATTRIBUTE)
    if blocks is not None:
        return blocks
    if not _supported(unet):
        return None
    blocks = LdmBlocks(unet)
    attributes = vars(unet)
    attributes[_ATTRIBUTE] = blocks
    for name in _EXPOSED:
        value = getattr(blocks, name)
        if value is not None:
            attributes[name] = value  # in __dict__: not registered, so state_dict() and .to() are unchanged
    return blocks


def forward_of(unet: Any) -> Any:
    """What to call for `unet` now: its LDM-order forward when an extension changed its blocks, else
    `unet` itself (a module, or a wrapper holding one as `.module`)."""
    module = unet if isinstance(unet, torch.nn.Module) else getattr(unet, "module", None)
    blocks = vars(module).get(_ATTRIBUTE) if module is not None else None
    if blocks is None or not blocks.changed():
        return unet
    return blocks.forward
