"""CLIP vision encoders for IP-Adapters: loaded from the user's file, sized from its weights.

Files in transformers' layout are read: `clip_h.pth` / `clip_g.pth` as sd-webui-controlnet downloads
them, h94's `image_encoder/model.safetensors`, ComfyUI's `models/clip_vision/*.safetensors`, or a whole
CLIP model (its text half is ignored). The configuration comes from the shapes: width, depth, MLP width,
patch and picture size, projection width. The head count is not in the shapes: OpenCLIP's ViT-H and
ViT-bigG and OpenAI's ViT-L use 16 heads, ViT-B 12, other widths 64-wide heads. OpenAI's ViT-L (width
1024) uses quick-GELU, the others GELU, as their published configs.

Pictures go in as sd-webui-controlnet prepares them: stretched to the encoder's square size with area
interpolation (`cv2.INTER_AREA`), then scaled to 0..1 and normalised with CLIP's mean and deviation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from modules.sumi.engine.controlnet.keys import count
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import load_weights, read_state_dict

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_PATCH_KEY = "vision_model.embeddings.patch_embedding.weight"
_POSITIONS_KEY = "vision_model.embeddings.position_embedding.weight"
_PROJECTION_KEY = "visual_projection.weight"
_HEADS = {1664: 16, 1280: 16, 1024: 16, 768: 12}


@dataclass(frozen=True)
class ClipVisionShape:
    """What an encoder file gives: `width` (its hidden states, what Plus adapters read) and
    `projection` (its image embedding, what plain adapters read)."""

    width: int
    projection: int
    layers: int
    image_size: int


@dataclass
class ClipImageFeatures:
    """One picture per row: the projected image embedding [N, projection] and the penultimate layer's
    hidden states [N, tokens, width]; and the same for an all-zero input (the negative image)."""

    image_embeds: Tensor
    penultimate: Tensor
    zero_image_embeds: Tensor
    zero_penultimate: Tensor
    last_hidden: Tensor | None = None  # the last layer's hidden states [N, tokens, width] (style adapter)


def is_clip_vision(state_dict: Mapping[str, Tensor]) -> bool:
    return _PATCH_KEY in state_dict and _PROJECTION_KEY in state_dict


def clip_vision_shape(state_dict: Mapping[str, Tensor], source: str) -> ClipVisionShape:
    """The encoder's sizes; ModelLoadError saying what the file is instead when it is not one."""
    if not is_clip_vision(state_dict):
        raise ModelLoadError(f"{source}: not a CLIP vision encoder{_what_else(state_dict)}")
    patch = state_dict[_PATCH_KEY]
    positions = int(state_dict[_POSITIONS_KEY].shape[0]) - 1
    side = math.isqrt(positions)
    return ClipVisionShape(
        width=int(patch.shape[0]),
        projection=int(state_dict[_PROJECTION_KEY].shape[0]),
        layers=count(state_dict, r"vision_model\.encoder\.layers\.(\d+)\."),
        image_size=side * int(patch.shape[-1]),
    )


def _what_else(state_dict: Mapping[str, Tensor]) -> str:
    keys = list(state_dict)
    if any(k.startswith("visual.") for k in keys):
        return (
            " in transformers' layout (it is an OpenCLIP file; use the image_encoder file of h94/IP-Adapter)"
        )
    if _PATCH_KEY in state_dict:
        return " with a projection (visual_projection.weight is missing)"
    return f" (expected {_PATCH_KEY} and {_PROJECTION_KEY})"


def clip_vision_config(state_dict: Mapping[str, Tensor], source: str) -> CLIPVisionConfig:
    shape = clip_vision_shape(state_dict, source)
    mlp = state_dict["vision_model.encoder.layers.0.mlp.fc1.weight"]
    return CLIPVisionConfig(
        hidden_size=shape.width,
        intermediate_size=int(mlp.shape[0]),
        projection_dim=shape.projection,
        num_hidden_layers=shape.layers,
        num_attention_heads=_HEADS.get(shape.width, max(1, shape.width // 64)),
        image_size=shape.image_size,
        patch_size=int(state_dict[_PATCH_KEY].shape[-1]),
        hidden_act="quick_gelu" if shape.width == 1024 else "gelu",
        layer_norm_eps=1e-5,
    )


def load_clip_vision(
    path: str | Path, *, allow_unsafe_pickle: bool = False, dtype: torch.dtype = torch.float32
) -> CLIPVisionModelWithProjection:
    """The encoder in `path` (any extra keys, such as a whole CLIP model's text half, are left out)."""
    state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    config = clip_vision_config(state, str(path))
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    wanted = set(model.state_dict())
    weights = {k: v for k, v in state.items() if k in wanted}
    return load_weights(model, weights, "CLIP vision", path, dtype)


def clip_pixels(image: np.ndarray, size: int, mask: np.ndarray | None = None) -> Tensor:
    """[1, 3, size, size]: an RGB uint8 picture as the encoder reads it (the extension's steps).

    `mask` (HxW uint8 at the picture's size, white = left out) is the extension's "CLIP mask": resized
    with the picture, it scales the normalised pixels by (255 - mask) / 255."""
    rgb = image[:, :, :3] if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    square = cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=cv2.INTER_AREA)
    pixels = torch.from_numpy(square.astype(np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    normalised = (pixels - mean) / std
    if mask is not None:
        kept = 255 - cv2.resize(np.ascontiguousarray(mask), (size, size), interpolation=cv2.INTER_AREA)
        normalised = normalised * torch.from_numpy(kept.astype(np.float32) / 255.0)
    return normalised.unsqueeze(0)


@torch.no_grad()
def encode_pictures(
    encoder: CLIPVisionModelWithProjection,
    pictures: list[np.ndarray],
    masks: list[np.ndarray | None] | None = None,
) -> ClipImageFeatures:
    """The encoder's features for each picture (with its CLIP mask, if any), and for the zero input
    diffusers uses as the negative. Runs where the encoder is."""
    size = int(encoder.config.image_size)  # pyright: ignore[reportArgumentType] (an int in vision configs)
    parameter = next(encoder.parameters())
    given: list[np.ndarray | None] = list(masks) if masks else [None] * len(pictures)
    rows = [clip_pixels(p, size, m) for p, m in zip(pictures, given, strict=True)]
    pixels = torch.cat(rows).to(device=parameter.device, dtype=parameter.dtype)
    both = torch.cat([pixels, torch.zeros_like(pixels[:1])])
    out = encoder(pixel_values=both, output_hidden_states=True)
    embeds, penultimate = out.image_embeds.float(), out.hidden_states[-2].float()
    last = out.last_hidden_state.float()[:-1]
    return ClipImageFeatures(
        embeds[:-1], penultimate[:-1], torch.zeros_like(embeds[:1]), penultimate[-1:], last
    )
