"""Random-weight models with the real families' structure, and their A1111 single-file checkpoints.

One factory for everything that needs a model without downloading one: the demo checkpoint a fresh
install starts with, the test fixtures and the benches. Components are
`{"family", "unet", "vae", "text_encoders"}` dicts of diffusers / transformers modules, built from a
seed; `write_checkpoint` saves them in the layout A1111 users download (via `ldm_export`), so they
load back through the normal path.

- `tiny(family)` (`tiny_sd1`, `tiny_sd2`, `tiny_sdxl`): the smallest models of each family, every
  weight jittered so that no two tensors are equal (tests).
- `demo_sd1()`: the demo checkpoint's model: attention only at the coarser level, so 512x512 images
  stay quick on a CPU.
- `full_size(family)`: SD1.5, SD2.1-768-v, SDXL base and refiner at their released sizes (model_configs.md), for
  benches; under accelerate's `init_empty_weights` they cost no memory.

The sizes follow the loader's rules for what the weights do not say (families/base.py), so a
checkpoint written here loads back into identical modules:
- UNet heads: SD1 8 heads; SD2/SDXL head dim 64 -> 1 head for the tiny widths (at least 1).
- CLIP heads: head dim 64 -> 1 head; quick_gelu for CLIP-L, gelu for OpenCLIP.
- GroupNorm: 32 groups when every block width divides by 32, else the largest count <= 32 that
  divides them all (the tiny VAE widths (16, 32, 32, 32) give 16).
The text encoders keep the real 49,408-token vocabulary and 77 positions so the shipped tokenizer's
ids fit; that embedding table is most of each tiny file's size (~6 MB per 32-wide encoder in fp32).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from modules.sumi.engine.ldm_export import save_checkpoint, to_single_file_state_dict

Components = dict[str, Any]  # {"family": str, "unet": ..., "vae": ..., "text_encoders": [...]}

VOCAB_SIZE = 49408
MAX_POSITIONS = 77
BOS_ID, EOS_ID = 49406, 49407
TINY_UNET_CHANNELS = (32, 64)
TINY_VAE_CHANNELS = (16, 32, 32, 32)  # 4 levels: 8 pixels per latent pixel, like the real VAE


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def jitter(module: ModuleT, seed: int, scale: float = 0.02) -> ModuleT:
    """Perturb every weight in place so no two tensors are equal (norms 1 +- noise, biases non-zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    module.eval()
    return module


# -- components ------------------------------------------------------------------------------------------


def clip_config(
    hidden: int,
    *,
    openclip: bool,
    layers: int,
    intermediate: int,
    heads: int | None = None,
    projection_dim: int | None = None,
    **overrides: Any,
) -> CLIPTextConfig:
    """A CLIP text config with the real vocabulary and positions (OpenCLIP: gelu and pad id 0)."""
    return CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads or max(1, hidden // 64),
        max_position_embeddings=MAX_POSITIONS,
        hidden_act="gelu" if openclip else "quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=projection_dim or 512,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=0 if openclip else EOS_ID,
        **overrides,
    )


def tiny_clip(
    seed: int,
    hidden: int,
    *,
    openclip: bool,
    projection_dim: int | None = None,
    layers: int = 2,
    heads: int | None = None,
    intermediate: int | None = None,
    jittered: bool = True,
) -> CLIPTextModel | CLIPTextModelWithProjection:
    """A CLIP text encoder (with projection when `projection_dim` is given: SDXL's bigG).

    Heads default to the head-dim-64 rule and the MLP to `2 * hidden + 5` (an odd size, so a mix-up
    of dimensions shows); `jittered=False` keeps transformers' initial weights."""
    torch.manual_seed(seed)
    config = clip_config(
        hidden,
        openclip=openclip,
        layers=layers,
        intermediate=intermediate or hidden * 2 + 5,
        heads=heads,
        projection_dim=projection_dim,
    )
    model_class = CLIPTextModelWithProjection if projection_dim else CLIPTextModel
    model = model_class(config)
    model = jitter(model, seed) if jittered else model
    model.eval()
    return model


def vae(channels: tuple[int, ...], *, norm_groups: int, layers: int = 1, **config: Any) -> AutoencoderKL:
    """An AutoencoderKL with one encoder/decoder level per entry of `channels` (random init)."""
    levels: dict[str, Any] = {  # diffusers annotates these as 1-tuples: passed untyped
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "block_out_channels": list(channels),
    }
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        **levels,
        layers_per_block=layers,
        latent_channels=4,
        norm_num_groups=norm_groups,
        **config,
    )


def tiny_vae(seed: int, scaling_factor: float, sample_size: int) -> AutoencoderKL:
    torch.manual_seed(seed)
    model = vae(TINY_VAE_CHANNELS, norm_groups=16, sample_size=sample_size, scaling_factor=scaling_factor)
    return jitter(model, seed)


def unet(**config: Any) -> UNet2DConditionModel:
    """A UNet with the tiny widths (32, 64), one layer per block and 32 groups unless `config` says."""
    base = {
        "out_channels": 4,
        "block_out_channels": list(TINY_UNET_CHANNELS),
        "layers_per_block": 1,
        "norm_num_groups": 32,
    }
    return UNet2DConditionModel(**{**base, **config})


def tiny_unet(seed: int, **config: Any) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return jitter(unet(**config), seed)


# -- tiny models of each family ----------------------------------------------------------------------------

# SD1 and SD2: attention at every level but the last
SD_BLOCKS = {
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}


def tiny_sd1(inpaint: bool = False, seed: int = 0, pix2pix: bool = False) -> Components:
    """SD1: attention at every level but the last, 8 heads, conv proj_in, CLIP-L (quick_gelu).
    `inpaint`: 9 input channels (SD1 inpainting); `pix2pix`: 8 (instruct-pix2pix)."""
    model = tiny_unet(
        seed,
        in_channels=9 if inpaint else 8 if pix2pix else 4,
        **SD_BLOCKS,
        cross_attention_dim=32,
        attention_head_dim=8,
        sample_size=64,
    )
    text = tiny_clip(seed + 1, 32, openclip=False)
    return {"family": "SD1", "unet": model, "vae": tiny_vae(seed + 2, 0.18215, 512), "text_encoders": [text]}


def tiny_sd2(inpaint: bool = False, seed: int = 0, v_prediction: bool = False) -> Components:
    """SD2: like SD1 but head dim 64, linear proj_in, OpenCLIP text encoder (gelu).

    `v_prediction` only sets the native size (768 px, like SD2.x-768-v); the file cannot say it.
    """
    latent_size = 96 if v_prediction else 64
    model = tiny_unet(
        seed,
        in_channels=9 if inpaint else 4,
        **SD_BLOCKS,
        cross_attention_dim=32,
        attention_head_dim=[1, 1],
        use_linear_projection=True,
        sample_size=latent_size,
    )
    text = tiny_clip(seed + 1, 32, openclip=True)
    decoder = tiny_vae(seed + 2, 0.18215, latent_size * 8)
    return {"family": "SD2", "unet": model, "vae": decoder, "text_encoders": [text]}


def tiny_sdxl(inpaint: bool = False, seed: int = 0) -> Components:
    """SDXL: no attention at the first level, depth 2 at the next, CLIP-L 16 + bigG 32 wide context."""
    clip_l = tiny_clip(seed + 1, 16, openclip=False)
    clip_g = tiny_clip(seed + 3, 32, openclip=True, projection_dim=24)
    time_embed_dim = 8
    model = tiny_unet(
        seed,
        in_channels=9 if inpaint else 4,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
        cross_attention_dim=16 + 32,
        attention_head_dim=[1, 1],
        use_linear_projection=True,
        transformer_layers_per_block=[1, 2],
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=24 + 6 * time_embed_dim,
        sample_size=128,
    )
    decoder = tiny_vae(seed + 2, 0.13025, 1024)
    return {"family": "SDXL", "unet": model, "vae": decoder, "text_encoders": [clip_l, clip_g]}


def tiny_sdxl_refiner(seed: int = 0) -> Components:
    """SDXL refiner: attention at the second level (depth 2), only a 32-wide bigG, 5 time ids."""
    clip_g = tiny_clip(seed + 3, 32, openclip=True, projection_dim=24)
    time_embed_dim = 8
    model = tiny_unet(
        seed,
        in_channels=4,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
        cross_attention_dim=32,
        attention_head_dim=[1, 1],
        use_linear_projection=True,
        transformer_layers_per_block=[1, 2],
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=24 + 5 * time_embed_dim,
        sample_size=128,
    )
    decoder = tiny_vae(seed + 2, 0.13025, 1024)
    return {"family": "SDXL-refiner", "unet": model, "vae": decoder, "text_encoders": [clip_g]}


TINY_BUILDERS = {"SD1": tiny_sd1, "SD2": tiny_sd2, "SDXL": tiny_sdxl, "SDXL-refiner": tiny_sdxl_refiner}


def tiny(family: str, **kwargs: Any) -> Components:
    """The tiny model of `family` ("SD1", "SD2", "SDXL" or "SDXL-refiner"); kwargs: `inpaint`, `seed` (SD2: `v_prediction`,
    SD1: `pix2pix`)."""
    return TINY_BUILDERS[family](**kwargs)


# -- the demo model ------------------------------------------------------------------------------------------


def demo_sd1(seed: int = 0) -> Components:
    """The random-weight SD1 model the demo checkpoint was before Sumi trained one (tests and benches use
    it as a small model of real proportions): 32/64-wide UNet with attention only at the coarser level, a
    four-level 32-wide VAE and a 64-wide two-layer CLIP-L, all from one seed (transformers' and
    diffusers' initial weights, not jittered)."""
    torch.manual_seed(seed)
    model = unet(
        in_channels=4,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
        cross_attention_dim=64,
        attention_head_dim=8,
        sample_size=64,
    )
    decoder = vae((32, 32, 32, 32), norm_groups=32)
    text = CLIPTextModel(clip_config(64, openclip=False, layers=2, intermediate=128))
    return {"family": "SD1", "unet": model, "vae": decoder, "text_encoders": [text]}


# -- the released sizes ----------------------------------------------------------------------------------


def full_size(family: str, seed: int | None = None) -> Components:
    """SD1.5 / SD2.1-768-v / SDXL base / SDXL refiner architectures with the diffusers configs' values, random weights.

    `seed` seeds torch's global generator first (None: leave it as it is)."""
    if seed is not None:
        torch.manual_seed(seed)
    unet_kw: dict[str, Any] = {
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "sample_size": 64,
        "norm_num_groups": 32,
    }
    vae_kw: dict[str, Any] = {"sample_size": 512}
    clip_l = {"layers": 12, "intermediate": 3072, "heads": 12}
    if family == "SD1":
        unet_kw |= {"cross_attention_dim": 768, "attention_head_dim": 8}
        encoders = [CLIPTextModel(clip_config(768, openclip=False, **clip_l))]
    elif family == "SD2":
        unet_kw |= {
            "cross_attention_dim": 1024,
            "attention_head_dim": [5, 10, 20, 20],
            "use_linear_projection": True,
            "sample_size": 96,
        }
        vae_kw["sample_size"] = 768
        encoders = [CLIPTextModel(clip_config(1024, openclip=True, layers=23, intermediate=4096, heads=16))]
    elif family == "SDXL":
        unet_kw |= {
            "block_out_channels": [320, 640, 1280],
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "transformer_layers_per_block": [1, 2, 10],
            "cross_attention_dim": 2048,
            "attention_head_dim": [5, 10, 20],
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816,
            "sample_size": 128,
        }
        vae_kw |= {"sample_size": 1024, "scaling_factor": 0.13025}
        bigg = clip_config(1280, openclip=True, layers=32, intermediate=5120, heads=20, projection_dim=1280)
        encoders = [
            CLIPTextModel(clip_config(768, openclip=False, **clip_l)),
            CLIPTextModelWithProjection(bigg),
        ]
    elif family == "SDXL-refiner":  # sgm's sd_xl_refiner.yaml: 384 x (1, 2, 4, 4), depth 4, adm 2560
        unet_kw |= {
            "block_out_channels": [384, 768, 1536, 1536],
            "down_block_types": [
                "DownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "transformer_layers_per_block": 4,
            "cross_attention_dim": 1280,
            "attention_head_dim": [6, 12, 24, 24],
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2560,
            "sample_size": 128,
        }
        vae_kw |= {"sample_size": 1024, "scaling_factor": 0.13025}
        bigg = clip_config(1280, openclip=True, layers=32, intermediate=5120, heads=20, projection_dim=1280)
        encoders = [CLIPTextModelWithProjection(bigg)]
    else:
        raise ValueError(f"unknown family {family!r}: SD1, SD2, SDXL or SDXL-refiner")
    model = UNet2DConditionModel(**unet_kw)
    decoder = vae((128, 256, 512, 512), norm_groups=32, layers=2, **vae_kw)
    return {"family": family, "unet": model, "vae": decoder, "text_encoders": encoders}


# -- files -----------------------------------------------------------------------------------------------


def write_checkpoint(
    path: str | Path,
    components: Components,
    *,
    dtype: torch.dtype | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write `components` as an A1111 single-file checkpoint (`.safetensors`, or a pickled `.ckpt`).

    `dtype` casts the file's floating point tensors (fp16 files)."""
    state_dict = to_single_file_state_dict(
        components["family"], components["unet"], components["vae"], components["text_encoders"], dtype=dtype
    )
    return save_checkpoint(path, state_dict, metadata)
