"""The shared machinery of model families: shape inference, strict conversion, SDModel assembly.

A family (sd1.py, sd2.py, sdxl.py) only declares what differs: how it is recognised, where its
text encoders live in the file, and the hyperparameters that are not in the weights.

Rules for values the weights do not hold (real models and tiny test models alike):
- UNet heads: SD1 has 8 heads per attention layer; SD2/SDXL have head dim 64, i.e.
  `c // 64` heads for `c` channels. For channel counts where that does not divide (or is 0),
  the largest head count <= the wanted one that divides `c` is used (at least 1).
- CLIP heads: head dim 64 the same way (`hidden // 64`, at least 1, dividing `hidden`).
- GroupNorm groups (UNet and VAE): 32 when every block width is divisible by 32 (all real
  models), else the largest group count <= 32 dividing every block width.
- hidden_act: quick_gelu for OpenAI CLIP-L, gelu for OpenCLIP (SD2's ViT-H, SDXL's bigG).

Every key of the file must be used or be on an ignore list: `loading.SCHEDULE_BUFFERS`,
`loading.IGNORED_PREFIXES` (model_ema.*, denoiser.*), and per text encoder `position_ids`,
`logit_scale`, `attn_mask` plus, for SD2, the unused last OpenCLIP block and `text_projection`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from torch import Tensor
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from modules.sumi.engine import ldm_export
from modules.sumi.engine.checkpoint_layout import IGNORED_PREFIXES, SCHEDULE_BUFFERS, ConfigHints
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import check_keys, check_shapes, check_weights, from_config, load_weights
from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.text.tokenizer import BOS_ID, EOS_ID, get_tokenizer

StateDict = dict[str, Tensor]
UNET_PREFIX = ldm_export.UNET_PREFIX
VAE_PREFIX = ldm_export.VAE_PREFIX
TEXT_ENCODER_IGNORED_SUFFIXES = ("position_ids", "logit_scale", "attn_mask")
OPENAI_PAD = "<|endoftext|>"
OPENCLIP_PAD = "!"


# -- hyperparameter rules ---------------------------------------------------------------------------


def heads_dividing(channels: int, wanted: int) -> int:
    """The largest head count <= `wanted` (at least 1) that divides `channels`."""
    return next(h for h in range(max(1, wanted), 0, -1) if channels % h == 0)


def head_dim_64_heads(channels: int) -> int:
    """Heads for a head dim of 64 (SD2/SDXL UNet, every CLIP): channels // 64, at least 1."""
    return heads_dividing(channels, channels // 64)


def norm_groups(channels: list[int] | tuple[int, ...]) -> int:
    """32 GroupNorm groups when every width allows it, else the largest count <= 32 that does."""
    return next(g for g in range(32, 0, -1) if all(c % g == 0 for c in channels))


def scheduler_config(prediction_type: str) -> dict:
    """The diffusers scheduler config every released SD family was trained with."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": prediction_type,
        "steps_offset": 1,
        "clip_sample": False,
        "set_alpha_to_one": False,
        "timestep_spacing": "leading",
    }


# -- reading shapes -----------------------------------------------------------------------------------


def _need(sd: Mapping[str, Tensor], key: str, prefix: str, source: str) -> Tensor:
    if key not in sd:
        raise ModelLoadError(f"{source}: missing weight {prefix}{key}")
    return sd[key]


def _count(sd: Mapping[str, Tensor], pattern: str) -> int:
    """1 + the largest index captured by `pattern` (matched at the start of keys), 0 if none."""
    regex = re.compile(pattern)
    indices = [int(m[1]) for k in sd if (m := regex.match(k))]
    return max(indices) + 1 if indices else 0


def strip_prefix(sd: Mapping[str, Tensor], prefix: str) -> StateDict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def infer_unet_config(u: Mapping[str, Tensor], source: str) -> dict:
    """diffusers UNet2DConditionModel config from LDM UNet weights (keys without prefix).

    Heads, sample size and the SDXL time-embedding width are left to the family.
    """
    model_channels, in_channels = _need(u, "input_blocks.0.0.weight", UNET_PREFIX, source).shape[:2]
    n_inputs = _count(u, r"input_blocks\.(\d+)\.")
    n_down = sum(f"input_blocks.{i}.0.op.weight" in u for i in range(n_inputs))
    levels = n_down + 1
    layers, leftover = divmod(n_inputs - 1 - n_down, levels)
    if leftover or layers < 1:
        raise ModelLoadError(
            f"{source}: cannot read the UNet layout ({n_inputs} input blocks, {n_down} downsamplers)"
        )
    first = [1 + i * (layers + 1) for i in range(levels)]
    channels = [
        int(_need(u, f"input_blocks.{b}.0.out_layers.3.weight", UNET_PREFIX, source).shape[0]) for b in first
    ]
    down_attention = [f"input_blocks.{b}.1.proj_in.weight" in u for b in first]
    up_attention = [f"output_blocks.{i * (layers + 1)}.1.proj_in.weight" in u for i in range(levels)]
    depth = [
        _count(u, rf"input_blocks\.{b}\.1\.transformer_blocks\.(\d+)\.") if attention else 1
        for b, attention in zip(first, down_attention, strict=True)
    ]
    config = {
        "in_channels": int(in_channels),
        "out_channels": int(_need(u, "out.2.weight", UNET_PREFIX, source).shape[0]),
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in down_attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_attention],
        "block_out_channels": channels,
        "layers_per_block": layers,
        "transformer_layers_per_block": _depth(u, depth, down_attention),
        "norm_num_groups": norm_groups(channels),
        **_attention_config(u, source),
    }
    time_dim = int(_need(u, "time_embed.0.weight", UNET_PREFIX, source).shape[0])
    if time_dim != 4 * model_channels:
        config["time_embedding_dim"] = time_dim
    return config


def _depth(u: Mapping[str, Tensor], depth: list[int], attention: list[bool]) -> int | list[int]:
    """diffusers' `transformer_layers_per_block`: its mid block takes the last entry, so when the last
    level has no attention (the SDXL refiner: depth 4 at levels 2-3 and in the mid block) one number."""
    if set(depth) == {1}:
        return 1
    mid = _count(u, r"middle_block\.1\.transformer_blocks\.(\d+)\.")
    if mid and depth[-1] != mid and {d for d, a in zip(depth, attention, strict=True) if a} == {mid}:
        return mid
    return depth


def _attention_config(u: Mapping[str, Tensor], source: str) -> dict:
    to_k = next((v for k, v in u.items() if k.endswith("attn2.to_k.weight")), None)
    proj_in = next((v for k, v in u.items() if k.endswith(".proj_in.weight")), None)
    if to_k is None or proj_in is None:
        raise ModelLoadError(f"{source}: the UNet has no cross-attention layers (attn2.to_k / proj_in)")
    return {"cross_attention_dim": int(to_k.shape[1]), "use_linear_projection": proj_in.ndim == 2}


def infer_vae_config(v: Mapping[str, Tensor], source: str, scaling_factor: float, sample_size: int) -> dict:
    """diffusers AutoencoderKL config from LDM VAE weights (keys `encoder.*`, `decoder.*`, ...)."""
    in_channels = _need(v, "encoder.conv_in.weight", VAE_PREFIX, source).shape[1]
    levels = _count(v, r"encoder\.down\.(\d+)\.")
    channels = [
        int(_need(v, f"encoder.down.{i}.block.0.conv2.weight", VAE_PREFIX, source).shape[0])
        for i in range(levels)
    ]
    return {
        "in_channels": int(in_channels),
        "out_channels": int(_need(v, "decoder.conv_out.weight", VAE_PREFIX, source).shape[0]),
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": channels,
        "layers_per_block": _count(v, r"encoder\.down\.0\.block\.(\d+)\."),
        "latent_channels": int(_need(v, "decoder.conv_in.weight", VAE_PREFIX, source).shape[1]),
        "norm_num_groups": norm_groups(channels),
        "sample_size": sample_size,
        "scaling_factor": scaling_factor,
        "mid_block_add_attention": "encoder.mid.attn_1.q.weight" in v,
    }


# -- text encoder layouts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextEncoderLayout:
    """Where one text encoder lives in a single-file checkpoint and how the family reads it.

    `openclip`: open_clip layout (fused in_proj, `transformer.resblocks`) instead of HF CLIP's.
    `drop_last_block`: SD2 feeds the UNet the penultimate OpenCLIP layer, so (when the file holds
    the full open_clip model, recognisable by `text_projection`) the last block is left out and
    the model's last layer is the one the UNet sees.
    """

    prefix: str
    openclip: bool
    pad_token: str
    layer: int = -1
    final_norm: bool = True
    pooled: bool = False
    drop_last_block: bool = False

    @property
    def hidden_act(self) -> str:
        return "gelu" if self.openclip else "quick_gelu"

    @property
    def what(self) -> str:
        return f"text encoder ({self.prefix}*)"


def _clip_config(layout: TextEncoderLayout, **sizes) -> CLIPTextConfig:
    hidden = sizes["hidden_size"]
    pad_id = 0 if layout.pad_token == OPENCLIP_PAD else EOS_ID
    return CLIPTextConfig(
        **sizes,
        num_attention_heads=head_dim_64_heads(hidden),
        hidden_act=layout.hidden_act,
        layer_norm_eps=1e-5,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=pad_id,
    )


def _hf_clip_sizes(t: Mapping[str, Tensor], prefix: str, source: str) -> dict:
    full = prefix + "text_model."
    vocab, hidden = _need(t, "embeddings.token_embedding.weight", full, source).shape
    return {
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "max_position_embeddings": int(
            _need(t, "embeddings.position_embedding.weight", full, source).shape[0]
        ),
        "num_hidden_layers": _count(t, r"encoder\.layers\.(\d+)\."),
        "intermediate_size": int(_need(t, "encoder.layers.0.mlp.fc1.weight", full, source).shape[0]),
    }


def _openclip_sizes(t: Mapping[str, Tensor], prefix: str, source: str) -> dict:
    vocab, hidden = _need(t, "token_embedding.weight", prefix, source).shape
    sizes = {
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "max_position_embeddings": int(_need(t, "positional_embedding", prefix, source).shape[0]),
        "num_hidden_layers": _count(t, r"transformer\.resblocks\.(\d+)\."),
        "intermediate_size": int(
            _need(t, "transformer.resblocks.0.mlp.c_fc.weight", prefix, source).shape[0]
        ),
    }
    if "text_projection" in t:
        sizes["projection_dim"] = int(t["text_projection"].shape[1])
    return sizes


def _drop_unused_openclip_block(t: StateDict, prefix: str) -> StateDict:
    """SD2: the full open_clip model's last block and projection are never used (see TextEncoderLayout)."""
    if prefix + "text_projection" not in t:
        return t
    last = _count(strip_prefix(t, prefix), r"transformer\.resblocks\.(\d+)\.") - 1
    unused = f"{prefix}transformer.resblocks.{last}."
    return {k: v for k, v in t.items() if not k.startswith(unused) and k != prefix + "text_projection"}


def build_text_encoder(
    layout: TextEncoderLayout, t: StateDict, source: str, dtype: torch.dtype
) -> CLIPTextModel | CLIPTextModelWithProjection:
    """One text encoder from its part of the file (keys with prefix)."""
    t = {k: v for k, v in t.items() if not k.endswith(TEXT_ENCODER_IGNORED_SUFFIXES)}
    if layout.drop_last_block:
        t = _drop_unused_openclip_block(t, layout.prefix)
    if layout.openclip:
        sizes = _openclip_sizes(strip_prefix(t, layout.prefix), layout.prefix, source)
    else:
        sizes = _hf_clip_sizes(strip_prefix(t, layout.prefix + "text_model."), layout.prefix, source)
    model_class = CLIPTextModelWithProjection if layout.pooled else CLIPTextModel
    if not layout.pooled:
        sizes.pop("projection_dim", None)
    with torch.device("meta"):  # this thread only, unlike accelerate's init_empty_weights
        model = model_class(_clip_config(layout, **sizes))
    to_ldm = ldm_export.openclip_to_ldm if layout.openclip else ldm_export.clip_to_ldm
    expected = to_ldm(model.state_dict(), layout.prefix)
    check_keys(set(expected), set(t), layout.what, source)
    check_shapes(expected, t, layout.what, source)
    check_weights(t, layout.what, source, dtype)
    if layout.openclip:
        converted = convert_open_clip_checkpoint(model, t, prefix=layout.prefix)
    else:
        converted = convert_ldm_clip_checkpoint(t)
    return load_weights(model, _fit_clip_keys(converted, model), layout.what, source, dtype)


def _fit_clip_keys(converted: StateDict, model: torch.nn.Module) -> StateDict:
    """transformers 5: CLIPTextModel has no `text_model.` level (WithProjection keeps it)."""
    if any(k.startswith("text_model.") for k in model.state_dict()):
        return converted
    return {k.removeprefix("text_model."): v for k, v in converted.items()}


# -- UNet and VAE ---------------------------------------------------------------------------------------


def build_unet(u: StateDict, config: dict, source: str, dtype: torch.dtype) -> UNet2DConditionModel:
    """The UNet from its part of the file (keys with `model.diffusion_model.`)."""
    with torch.device("meta"):  # this thread only, unlike accelerate's init_empty_weights
        unet = from_config(UNet2DConditionModel, config)
    expected = ldm_export.unet_to_ldm(unet.state_dict(), unet.config)
    check_keys(set(expected), set(u), "UNet", source)
    check_shapes(expected, u, "UNet", source)
    check_weights(u, "UNet", source, dtype)
    return load_weights(unet, convert_ldm_unet_checkpoint(u, dict(unet.config)), "UNet", source, dtype)


def build_vae(
    v: StateDict, config: dict, source: str, dtype: torch.dtype, prefix: str = VAE_PREFIX
) -> AutoencoderKL:
    """The VAE from LDM weights (keys with `prefix`, `first_stage_model.` in checkpoints)."""
    with torch.device("meta"):  # this thread only, unlike accelerate's init_empty_weights
        vae = from_config(AutoencoderKL, config)
    expected = ldm_export.vae_to_ldm(vae.state_dict(), vae.config, prefix)
    check_keys(set(expected), set(v), "VAE", source)
    check_shapes(expected, v, "VAE", source)
    check_weights(v, "VAE", source, dtype)
    converted = convert_ldm_vae_checkpoint(strip_prefix(v, prefix), dict(vae.config))
    return load_weights(vae, converted, "VAE", source, dtype)


# -- the family base class ----------------------------------------------------------------------------


def is_ignored(key: str) -> bool:
    """Schedule buffers, EMA weights and SGM denoiser tables: never part of the model."""
    return key in SCHEDULE_BUFFERS or key.startswith(IGNORED_PREFIXES)


class ModelFamily:
    """One model family: how to recognise its state dict and which models to build from it."""

    name: ClassVar[str]
    expectation: ClassVar[str]  # the key layout, for "unknown model" errors
    signature_keys: ClassVar[tuple[str, ...]]  # all present -> this family
    text_encoders: ClassVar[tuple[TextEncoderLayout, ...]]
    vae_scaling_factor: ClassVar[float] = 0.18215
    sample_size: ClassVar[int] = 64  # latent pixels of the native resolution

    def matches(self, state_dict: Mapping[str, Tensor]) -> bool:
        return all(k in state_dict for k in self.signature_keys)

    # hooks for the families
    def default_heads(self, channels: list[int]) -> int | list[int]:
        return [head_dim_64_heads(c) for c in channels]

    def default_prediction_type(self, unet: UNet2DConditionModel) -> tuple[str, str]:
        """(prediction type, how it was decided) when neither the caller nor a yaml says."""
        return "epsilon", "family default"

    def native_sample_size(self, prediction_type: str) -> int:
        """Latent pixels of the resolution the model was trained at."""
        return self.sample_size

    def unet_extra_config(self, state_dict: Mapping[str, Tensor], u: StateDict, source: str) -> dict:
        return {}

    # shared work
    def unet_heads(self, channels: list[int], hints: ConfigHints) -> int | list[int]:
        if hints.num_heads:
            return hints.num_heads
        if hints.num_head_channels:
            return [heads_dividing(c, c // hints.num_head_channels) for c in channels]
        return self.default_heads(channels)

    def unet_config(self, state_dict: Mapping[str, Tensor], hints: ConfigHints, source: str) -> dict:
        u = strip_prefix(state_dict, UNET_PREFIX)
        config = infer_unet_config(u, source)
        if hints.in_channels and hints.in_channels != config["in_channels"]:
            raise ModelLoadError(
                f"{hints.source} says in_channels={hints.in_channels} but the UNet of {source} has "
                f"{config['in_channels']}"
            )
        config["attention_head_dim"] = self.unet_heads(config["block_out_channels"], hints)
        config["sample_size"] = self.sample_size
        config.update(self.unet_extra_config(state_dict, u, source))
        return config

    def split(self, state_dict: Mapping[str, Tensor], source: str) -> dict[str, StateDict]:
        """The file's keys per component prefix; a key no component claims is an error."""
        prefixes = (UNET_PREFIX, VAE_PREFIX, *(t.prefix for t in self.text_encoders))
        parts: dict[str, StateDict] = {p: {} for p in prefixes}
        unknown = []
        for key, value in state_dict.items():
            owner = next((p for p in prefixes if key.startswith(p)), None)
            if owner is not None:
                parts[owner][key] = value
            elif not is_ignored(key):
                unknown.append(key)
        check_keys(set(), set(unknown), f"{self.name} checkpoint", source)
        return parts

    def build(
        self,
        state_dict: Mapping[str, Tensor],
        *,
        source: str = "",
        prediction_type: str | None = None,
        dtype: torch.dtype = torch.float32,
        hints: ConfigHints | None = None,
    ) -> SDModel:
        """Build and fill every model of this family from a (normalised) checkpoint state dict."""
        hints = hints or ConfigHints()
        parts = self.split(state_dict, source)
        encoders = [build_text_encoder(t, parts[t.prefix], source, dtype) for t in self.text_encoders]
        unet = build_unet(parts[UNET_PREFIX], self.unet_config(state_dict, hints, source), source, dtype)
        scaling = hints.vae_scaling_factor or self.vae_scaling_factor
        vae_config = infer_vae_config(
            strip_prefix(parts[VAE_PREFIX], VAE_PREFIX), source, scaling, self.sample_size * 8
        )
        vae = build_vae(parts[VAE_PREFIX], vae_config, source, dtype)
        prediction, decided_by = self._prediction(prediction_type, hints, unet)
        self._set_native_size(unet, vae, self.native_sample_size(prediction))
        return self._assemble(unet, vae, encoders, prediction, scaling, source, decided_by)

    @staticmethod
    def _set_native_size(unet: UNet2DConditionModel, vae: AutoencoderKL, latent_size: int) -> None:
        """`sample_size` (the native resolution pipelines default to) may depend on the prediction type."""
        image_size = latent_size * 2 ** (len(vae.config["block_out_channels"]) - 1)
        if unet.config["sample_size"] != latent_size:
            unet.register_to_config(sample_size=latent_size)
        if vae.config["sample_size"] != image_size:
            vae.register_to_config(sample_size=image_size)

    def _prediction(
        self, explicit: str | None, hints: ConfigHints, unet: UNet2DConditionModel
    ) -> tuple[str, str]:
        if explicit:
            return explicit, "argument"
        if hints.prediction_type:
            return hints.prediction_type, hints.source
        return self.default_prediction_type(unet)

    def _assemble(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        encoders: list,
        prediction: str,
        scaling: float,
        source: str,
        decided_by: str,
    ) -> SDModel:
        inpaint = unet.config["in_channels"] == 9
        variant = "-".join(p for p, on in (("v", prediction == "v_prediction"), ("inpaint", inpaint)) if on)
        specs = [
            TextEncoderSpec(
                model=model,
                tokenizer=get_tokenizer(t.pad_token),
                layer=t.layer,
                final_norm=t.final_norm,
                pooled=t.pooled,
            )
            for model, t in zip(encoders, self.text_encoders, strict=True)
        ]
        return SDModel(
            family=self.name,
            unet=unet,
            vae=vae,
            text_encoders=specs,
            scheduler_config=scheduler_config(prediction),
            prediction_type=prediction,
            vae_scaling_factor=scaling,
            variant=variant,
            is_inpainting=inpaint,
            source=source,
            extra={"prediction_type_from": decided_by},
        )
