"""IP-Adapter: a picture as a prompt, through extra key/value projections in every cross-attention.

A file (h94's `ip-adapter_sd15.safetensors`, `ip-adapter-plus_sd15`, `ip-adapter-full-face_sd15`,
`ip-adapter_sdxl_vit-h`, `ip-adapter-plus_sdxl_vit-h`, ... or their `.bin` twins) holds two parts:
- `image_proj.*`: turns CLIP vision features into a few context tokens. Plain adapters read the image
  embedding (4 tokens), Plus ones the penultimate hidden states through a resampler (16 tokens), Full
  ones every hidden state through an MLP (257 tokens). The modules are diffusers' own classes.
- `ip_adapter.<i>.to_k_ip` / `to_v_ip`: per cross-attention layer, `i` being the layer's place among
  all the UNet's attention layers in diffusers' order (down, up, then middle blocks; odd numbers).

In each cross-attention the query also attends to the image tokens, and `weight x` that result is added
to the text attention before the output projection (the extension's and diffusers' formula). With
`block_weights` (the extension's advanced weighting) each transformer block has its own weight, blocks
numbered down, middle, then up (16 for SD1, 11 for SDXL); an effective region mask limits the image's
effect to part of the picture (each token x the mask at the attention's resolution). The
negative rows attend to the tokens of the negative image instead: the projection of a zero embedding
(plain) or of the encoder's hidden states for a zero input (Plus, Full), as diffusers computes them.
FaceID adapters read InsightFace face embeddings through an MLP (4 tokens; Portrait 16); FaceID Plus
ones read the face embedding and the picture's CLIP ViT-H hidden states through a face resampler
(diffusers' IPAdapterFaceIDPlusImageProjection), v2 adding the face tokens to its output. InstantID's
(told by its name, as the extension) reads antelopev2's unnormalised identity as one token through a
Plus resampler (16 tokens); its ControlNet reads those tokens as its text. PuLID adapters are refused
with a message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.loaders.unet import UNet2DConditionLoadersMixin
from diffusers.models.embeddings import ImageProjection
from torch import Tensor

from modules.sumi.engine.controlnet.clip_vision import ClipImageFeatures
from modules.sumi.engine.controlnet.control import (
    check_window,
    in_window,
    level_grid,
    region_masked,
    tokens_per_row,
)
from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError
from modules.sumi.engine.extensions import Extension, HookPoint, PatchScope, UNetBatch, hook
from modules.sumi.engine.host_values import send

IMAGE_PROJ, IP_LAYERS = "image_proj.", "ip_adapter."
CONTEXT_FAMILIES = {768: "SD1", 1024: "SD2", 2048: "SDXL"}
INSTANT_ID_NAMES = ("instant_id", "instantid")  # the extension tells InstantID's adapter by its name
_FACE_NAMES = ("pulid",)
# the preprocessor each face-reading adapter kind takes
FACE_PREPROCESSORS = {
    "faceid": "ip-adapter_face_id",
    "faceid_plus": "ip-adapter_face_id_plus",
    "instantid": "instant_id_face_embedding",
}
_FACE_PLUS_INPUTS = threading.Lock()


def is_ip_adapter(state_dict: Mapping[str, Any]) -> bool:
    keys = list(state_dict)
    return any(k.startswith(IMAGE_PROJ) for k in keys) and any(k.startswith(IP_LAYERS) for k in keys)


@dataclass(frozen=True)
class IPAdapterShape:
    """`kind`: "plain", "plus", "full", "faceid" or "faceid_plus"; `clip_width`: the CLIP feature width it
    reads (the image embedding's for plain adapters, the hidden states' for Plus, Full and FaceID Plus, the
    face embedding's for FaceID); `context_dim`: the UNet's text width; `layers`: the attention indices it
    has projections for; `shortcut`: FaceID Plus v2 adds the face tokens to the resampler's output (the
    extension tells v2 by "v2" in the file name)."""

    kind: str
    clip_width: int
    context_dim: int
    layers: tuple[int, ...]
    shortcut: bool = False
    face_width: int = 0

    @property
    def reads_hidden_states(self) -> bool:
        return self.kind in ("plus", "full", "faceid_plus")

    @property
    def reads_faces(self) -> bool:
        """FaceID (and FaceID Portrait, FaceID Plus), InstantID: InsightFace identity embeddings."""
        return self.kind in FACE_PREPROCESSORS

    @property
    def reads_clip(self) -> bool:
        """CLIP image features of the picture (FaceID Plus reads them beside the face)."""
        return self.kind not in ("faceid", "instantid")

    @property
    def family(self) -> str | None:
        """The model family its text width belongs to; None for widths no released model has."""
        return CONTEXT_FAMILIES.get(self.context_dim)


def ip_adapter_shape(state_dict: Mapping[str, Tensor], source: str) -> IPAdapterShape:
    """The adapter's kind and sizes; FaceID-family files (told by their projection, or by their name as the
    extension tells them) are refused."""
    name = Path(source).name.lower()
    if any(n in name for n in _FACE_NAMES):
        raise ModelLoadError(_face_refusal(source))
    proj = _part(state_dict, IMAGE_PROJ)
    layers = sorted({int(k.split(".")[1]) for k in state_dict if k.startswith(IP_LAYERS) and "to_k_ip" in k})
    if not layers:
        raise ModelLoadError(f"{source}: an IP-Adapter without ip_adapter.<n>.to_k_ip weights")
    context_dim = int(state_dict[f"{IP_LAYERS}{layers[0]}.to_k_ip.weight"].shape[1])
    if any(n in name for n in INSTANT_ID_NAMES):  # a resampler over the face identity (as one token)
        if "latents" not in proj or "proj_in.weight" not in proj:
            raise ModelLoadError(
                f"{source}: an InstantID IP-Adapter without its resampler (image_proj.latents)"
            )
        width = int(proj["proj_in.weight"].shape[1])
        return IPAdapterShape("instantid", width, context_dim, tuple(layers), face_width=width)
    if "proj.weight" in proj:
        return IPAdapterShape("plain", int(proj["proj.weight"].shape[1]), context_dim, tuple(layers))
    if "proj.3.weight" in proj:
        return IPAdapterShape("full", int(proj["proj.0.weight"].shape[1]), context_dim, tuple(layers))
    if "perceiver_resampler.proj_in.weight" in proj:  # FaceID Plus / Plus v2 (ProjModelFaceIdPlus)
        width = int(proj["perceiver_resampler.proj_in.weight"].shape[1])
        shortcut = "v2" in Path(source).name
        face_width = int(proj["proj.0.weight"].shape[1]) if "proj.0.weight" in proj else 0
        tokens_width = int(proj["norm.weight"].shape[0]) if "norm.weight" in proj else 0
        output_width = int(proj.get("perceiver_resampler.proj_out.weight", torch.empty(0, 0)).shape[0])
        if shortcut and tokens_width != output_width:
            raise ModelLoadError(
                f"{source}: a FaceID Plus v2 adapter whose face tokens ({tokens_width} wide) and resampler "
                f"output ({output_width} wide) differ, so v2's shortcut cannot add them (released files have "
                "both as wide as the text)"
            )
        return IPAdapterShape("faceid_plus", width, context_dim, tuple(layers), shortcut, face_width)
    if "norm.weight" in proj and "proj.0.weight" in proj and "proj.2.weight" in proj:
        rows, columns = (int(n) for n in proj["proj.0.weight"].shape)
        if rows % columns:
            raise ModelLoadError(
                f"{source}: a FaceID projection whose first layer ({columns} -> {rows}) does not widen the face "
                "embedding by a whole factor, as released FaceID adapters do"
            )
        return IPAdapterShape("faceid", columns, context_dim, tuple(layers), face_width=columns)
    if "latents" in proj and "proj_in.weight" in proj:
        return IPAdapterShape("plus", int(proj["proj_in.weight"].shape[1]), context_dim, tuple(layers))
    raise ModelLoadError(
        f"{source}: an IP-Adapter image projection Sumi does not know (keys: {sorted(proj)[:6]})"
    )


def _face_refusal(source: str) -> str:
    return (
        f"{source}: a PuLID adapter, which Sumi does not run yet (FaceID, FaceID Portrait, FaceID Plus / Plus v2 "
        "and InstantID do run). Use an ip-adapter-faceid* model with ip-adapter_face_id / "
        "ip-adapter_face_id_plus, InstantID, or a CLIP-vision IP-Adapter (ip-adapter-plus-face_sd15, ...)"
    )


def _part(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


class IPAdapterNetwork(torch.nn.Module):
    """The image projection and the per-layer key/value projections of one IP-Adapter file."""

    def __init__(self, shape: IPAdapterShape, image_proj: torch.nn.Module, layers: Mapping[str, Tensor]):
        super().__init__()
        self.shape = shape
        self.image_proj = image_proj
        self.to_k_ip = torch.nn.ModuleDict()
        self.to_v_ip = torch.nn.ModuleDict()
        for index in shape.layers:
            for name, target in (("to_k_ip", self.to_k_ip), ("to_v_ip", self.to_v_ip)):
                weight = layers[f"{index}.{name}.weight"]
                linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
                linear.weight = torch.nn.Parameter(weight.clone(), requires_grad=False)
                target[str(index)] = linear
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def tokens(self, features: ClipImageFeatures) -> tuple[Tensor, Tensor]:
        """(image tokens [N, T, C] per picture, negative tokens [1, T, C]) in the adapter's dtype."""
        parameter = next(self.parameters())
        if self.shape.reads_faces:
            preprocessor = FACE_PREPROCESSORS[self.shape.kind]
            raise InvalidRequestError(
                "this is a FaceID IP-Adapter: it reads InsightFace face embeddings; choose the "
                f"{preprocessor} preprocessor"
            )
        if self.shape.reads_hidden_states:
            cond, uncond = features.penultimate, features.zero_penultimate
        else:
            cond, uncond = features.image_embeds, features.zero_image_embeds
        width = int(cond.shape[-1])
        if width != self.shape.clip_width:
            raise InvalidRequestError(
                f"this IP-Adapter reads {self.shape.clip_width}-wide CLIP features; the image encoder gives "
                f"{width}: choose the preprocessor of its encoder (ip-adapter_clip_h for ViT-H adapters, "
                "ip-adapter_clip_g for ViT-bigG ones) or ip-adapter-auto"
            )
        both = torch.cat([cond, uncond]).to(device=parameter.device, dtype=parameter.dtype)
        projected = self.image_proj(both)
        return projected[:-1], projected[-1:]


@torch.no_grad()
def face_tokens(adapter: IPAdapterNetwork, embeddings: Tensor) -> tuple[Tensor, Tensor]:
    """A FaceID or InstantID adapter's (tokens [N, T, C] per face embedding [N, 512], negative tokens
    [1, T, C]: the projection of a zero embedding, as the extension and diffusers take it)."""
    if not adapter.shape.reads_faces:
        raise InvalidRequestError(
            "this IP-Adapter reads CLIP image features, not face embeddings: choose ip-adapter-auto (or the "
            "CLIP preprocessor of its encoder)"
        )
    if adapter.shape.reads_clip:
        raise InvalidRequestError(
            "this is a FaceID Plus IP-Adapter: it reads the face and CLIP ViT-H features of the picture; choose "
            "the ip-adapter_face_id_plus preprocessor (or ip-adapter-auto)"
        )
    both = _with_zero_face(adapter, embeddings)
    if adapter.shape.kind == "instantid":  # its resampler reads the identity as one 512-wide token
        both = both[:, None, :]
    projected = adapter.image_proj(both)
    return projected[:-1], projected[-1:]


def check_face_plus(adapter: IPAdapterNetwork) -> None:
    """Refuse the FaceID Plus preprocessor for an adapter of another kind (before any face is looked for)."""
    if adapter.shape.kind != "faceid_plus":
        raise InvalidRequestError(
            "ip-adapter_face_id_plus is for FaceID Plus / Plus v2 adapters; choose ip-adapter_face_id for "
            "FaceID and FaceID Portrait, or a CLIP preprocessor for the others"
        )


@torch.no_grad()
def face_plus_tokens(
    adapter: IPAdapterNetwork, embeddings: Tensor, features: ClipImageFeatures
) -> tuple[Tensor, Tensor]:
    """A FaceID Plus adapter's (tokens [N, T, C], negative tokens [1, T, C]) from each picture's face
    embedding [N, 512] and its CLIP hidden states; the negative is a zero face with the empty picture's
    states (the extension's and diffusers' unconditional input). v2 adds the face tokens (shortcut)."""
    check_face_plus(adapter)
    width = int(features.penultimate.shape[-1])
    if width != adapter.shape.clip_width:
        raise InvalidRequestError(
            f"this FaceID Plus adapter reads {adapter.shape.clip_width}-wide CLIP hidden states; the image "
            f"encoder gives {width}: it needs CLIP ViT-H/14 (clip_h.pth)"
        )
    if int(features.penultimate.shape[0]) != int(embeddings.shape[0]):
        raise InvalidRequestError("FaceID Plus needs one face per picture")
    faces = _with_zero_face(adapter, embeddings)
    states = torch.cat([features.penultimate, features.zero_penultimate]).to(faces)
    projection: Any = adapter.image_proj
    with _FACE_PLUS_INPUTS:  # diffusers' module reads the CLIP states from an attribute
        projection.clip_embeds = states.unsqueeze(1)  # [rows, images, tokens, width]
        try:
            projected = projection(faces)
        finally:
            projection.clip_embeds = None
    return projected[:-1], projected[-1:]


def _with_zero_face(adapter: IPAdapterNetwork, embeddings: Tensor) -> Tensor:
    """The face embeddings and a zero one after them, checked and in the adapter's device and dtype."""
    face_width = adapter.shape.face_width
    if int(embeddings.shape[-1]) != face_width:
        raise InvalidRequestError(
            f"this FaceID adapter reads {face_width}-number face embeddings; the face model gives "
            f"{int(embeddings.shape[-1])}"
        )
    parameter = next(adapter.parameters())
    return torch.cat([embeddings, torch.zeros_like(embeddings[:1])]).to(
        device=parameter.device, dtype=parameter.dtype
    )


def build_ip_adapter(state_dict: Mapping[str, Tensor], source: str) -> IPAdapterNetwork:
    """An IP-Adapter from its flat state dict (`image_proj.*`, `ip_adapter.*`), on the CPU, fp32."""
    shape = ip_adapter_shape(state_dict, source)
    proj = {k: v.float() for k, v in _part(state_dict, IMAGE_PROJ).items()}
    layers = {k: v.float() for k, v in _part(state_dict, IP_LAYERS).items()}
    try:
        image_proj: Any = (
            _plain_projection(proj, shape) if shape.kind == "plain" else _diffusers_projection(proj)
        )
        if shape.kind == "faceid_plus":
            image_proj.shortcut = shape.shortcut  # v2: face tokens + resampler output
    except (RuntimeError, KeyError, IndexError) as exc:
        raise ModelLoadError(f"{source}: the IP-Adapter image projection does not load ({exc})") from exc
    missing = [
        f"{i}.{n}.weight"
        for i in shape.layers
        for n in ("to_k_ip", "to_v_ip")
        if f"{i}.{n}.weight" not in layers
    ]
    if missing:
        raise ModelLoadError(
            f"{source}: IP-Adapter weights missing: {', '.join(IP_LAYERS + m for m in missing[:6])}"
        )
    return IPAdapterNetwork(shape, image_proj, layers)


def _plain_projection(proj: Mapping[str, Tensor], shape: IPAdapterShape) -> ImageProjection:
    """diffusers' ImageProjection with the file's token count (the extension's: rows / text width)."""
    tokens = int(proj["proj.weight"].shape[0]) // shape.context_dim
    module = ImageProjection(
        image_embed_dim=shape.clip_width, cross_attention_dim=shape.context_dim, num_image_text_embeds=tokens
    )
    renamed = {
        k.replace("proj.", "image_embeds.", 1) if k.startswith("proj.") else k: v for k, v in proj.items()
    }
    module.load_state_dict(renamed, strict=True)
    return module


def _diffusers_projection(proj: Mapping[str, Tensor]) -> torch.nn.Module:
    """Plus and Full projections, built and renamed by diffusers' own converter (it uses nothing of the
    UNet it is defined on when asked not to save memory)."""
    convert = UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers
    return convert(None, dict(proj), low_cpu_mem_usage=False)  # pyright: ignore[reportArgumentType]


# -- in the UNet -------------------------------------------------------------------------------------


def cross_attention_layers(unet: torch.nn.Module) -> dict[int, torch.nn.Module]:
    """{index among all attention layers (diffusers' `attn_processors` order): cross-attention module}."""
    names = list(getattr(unet, "attn_processors", {}))
    return {
        index: unet.get_submodule(name.removesuffix(".processor"))
        for index, name in enumerate(names)
        if not name.endswith("attn1.processor")
    }


def transformer_blocks(unet: torch.nn.Module) -> dict[int, int]:
    """{cross-attention index: the place of its transformer block}: down blocks first, then the middle
    block, then the up blocks (sd-webui-controlnet's transformer index, which advanced weights follow)."""
    names = {index: _block_name(name) for index, name in enumerate(getattr(unet, "attn_processors", {}))}
    layers = cross_attention_layers(unet)
    part = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    order = sorted(
        dict.fromkeys(names[i] for i in layers), key=lambda n: (part.get(n.split(".")[0], 3), _numbers(n))
    )
    return {index: order.index(names[index]) for index in layers}


def _block_name(processor: str) -> str:
    """`down_blocks.1.attentions.0.transformer_blocks.1.attn2.processor` → `down_blocks.1.attentions.0`."""
    return processor.split(".transformer_blocks.")[0]


def _numbers(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def check_block_weights(weights: Sequence[float], unet: torch.nn.Module) -> None:
    """InvalidRequestError unless there is one weight per transformer block of the UNet."""
    blocks = len(set(transformer_blocks(unet).values()))
    if len(weights) != blocks:
        raise InvalidRequestError(
            f"advanced_weighting: this checkpoint's UNet has {blocks} transformer blocks (down, middle, up); "
            f"an IP-Adapter takes one weight per block, got {len(weights)}"
        )


def check_fits(adapter: IPAdapterNetwork, unet: torch.nn.Module, name: str) -> None:
    """InvalidRequestError unless the adapter has projections for exactly the UNet's cross-attentions."""
    layers = cross_attention_layers(unet)
    width = int(getattr(unet, "config", {}).get("cross_attention_dim", adapter.shape.context_dim))
    if width != adapter.shape.context_dim:
        raise InvalidRequestError(
            f"IP-Adapter '{name}' expects {adapter.shape.context_dim}-wide text embeddings; the loaded "
            f"checkpoint gives {width}"
        )
    if set(layers) != set(adapter.shape.layers):
        raise InvalidRequestError(
            f"IP-Adapter '{name}' has projections for {len(adapter.shape.layers)} cross-attention layers; "
            f"the loaded checkpoint has {len(layers)}: it is for another model"
        )


@dataclass
class ImagePromptUnit:
    """One enabled IP-Adapter unit: its adapter, the tokens of its picture(s) and its settings.
    `tokens` is [N, T, C] (N = 1, shared by the batch, or one per image); `negative` is [1, T, C]."""

    adapter: IPAdapterNetwork
    tokens: Tensor
    negative: Tensor
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    block_weights: tuple[float, ...] | None = None  # one per transformer block (down, middle, up)
    region_mask: Tensor | None = None  # [1, 1, H, W] in 0..1: where the picture acts (None: everywhere)

    def __post_init__(self) -> None:
        check_window(self.guidance_start, self.guidance_end, "IP-Adapter")

    @property
    def model(self) -> IPAdapterNetwork:
        return self.adapter

    def active_at(self, step: int, total_steps: int) -> bool:
        acts = any(w != 0 for w in self.block_weights) if self.block_weights is not None else self.weight != 0
        return acts and in_window(step, total_steps, self.guidance_start, self.guidance_end)

    def weight_in(self, block: int) -> float:
        """The weight in transformer block `block`."""
        return self.block_weights[block] if self.block_weights is not None else self.weight


@dataclass
class _Active:
    """One active unit at this forward: its tokens for the forward's rows."""

    unit: ImagePromptUnit
    tokens: Tensor


@dataclass
class _Rows:
    """The image tokens of the active units for the rows of the current UNet forward, and its latent
    height and width (where an effective region mask is resized to)."""

    rows: int = 0
    latent_size: tuple[int, int] = (0, 0)
    active: list[_Active] = field(default_factory=list)


class ImagePromptAttention:
    """Wraps one cross-attention's processor: its output plus every active unit's image attention."""

    def __init__(self, wrapped: Any, index: int, block: int, current: _Rows) -> None:
        self.wrapped = wrapped
        self.index = index
        self.block = block
        self.current = current

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ) -> Tensor:
        out = self.wrapped(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        current = self.current
        if not current.active or hidden_states.ndim != 3 or hidden_states.shape[0] != current.rows:
            return out
        weighted = [(a, a.unit.weight_in(self.block)) for a in current.active]
        weighted = [(a, w) for a, w in weighted if w != 0]
        if not weighted:
            return out
        return out + image_attention(attn, hidden_states, self.index, weighted, current.latent_size)


def image_attention(
    attn: Any,
    hidden_states: Tensor,
    index: int,
    active: Sequence[tuple[_Active, float]],
    latent_size: tuple[int, int],
) -> Tensor:
    """sum(weight x attention(query, image keys, image values), masked per unit by its effective region)
    through the output projection's weight (its bias is already in the text attention's output)."""
    query = attn.to_q(hidden_states)
    if getattr(attn, "norm_q", None) is not None:
        query = attn.norm_q(query)
    rows, tokens_in, inner = query.shape
    heads = int(attn.heads)
    q = query.view(rows, -1, heads, inner // heads).transpose(1, 2)
    total: Tensor | None = None
    for entry, weight in active:
        adapter = entry.unit.adapter
        k = adapter.to_k_ip[str(index)](entry.tokens).view(rows, -1, heads, inner // heads).transpose(1, 2)
        v = adapter.to_v_ip[str(index)](entry.tokens).view(rows, -1, heads, inner // heads).transpose(1, 2)
        found = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype)).transpose(1, 2) * weight
        if entry.unit.region_mask is not None:
            found = found * token_mask(entry.unit.region_mask, latent_size, tokens_in, q.dtype)
        total = found if total is None else total + found
    assert total is not None
    mixed = total.reshape(rows, -1, inner)
    return F.linear(mixed, attn.to_out[0].weight) / attn.rescale_output_factor


def token_mask(mask: Tensor, latent_size: tuple[int, int], tokens: int, dtype: torch.dtype) -> Tensor:
    """The region mask per token of an attention at one of the UNet's levels: [1, tokens, 1, 1]."""
    try:
        height, width = level_grid(latent_size, tokens)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"IP-Adapter effective region mask: {exc}") from exc
    grid = region_masked(torch.ones(1, 1, height, width, device=mask.device, dtype=dtype), mask)
    return grid.reshape(1, tokens, 1, 1)


class ImagePromptExtension(Extension):
    """IP-Adapter units: wraps the UNet's cross-attention processors for the scope, and before each
    UNet forward picks the image tokens of the units active at that model call, row by row."""

    def __init__(self, units: Sequence[ImagePromptUnit]) -> None:
        super().__init__()
        self.units = list(units)
        self.current = _Rows()

    def patch(self, scope: PatchScope):
        return self._wrapped(scope.model.unet, scope.model.device)

    @contextmanager
    def _wrapped(self, unet: torch.nn.Module, device: torch.device) -> Iterator[None]:
        """Wrap the processors, with the adapters where the UNet computes (under --medvram they wait on
        the CPU between jobs, as ControlNets do)."""
        layers = cross_attention_layers(unet)
        blocks = transformer_blocks(unet)
        originals = {index: module.processor for index, module in layers.items()}
        homes = {id(u.adapter): (u.adapter, next(u.adapter.parameters()).device) for u in self.units}
        try:
            for adapter, _ in homes.values():
                adapter.to(device)
            for index, module in layers.items():
                module.processor = ImagePromptAttention(originals[index], index, blocks[index], self.current)  # pyright: ignore[reportArgumentType]
            yield
        finally:
            for index, module in layers.items():
                module.processor = originals[index]
            for adapter, home in homes.values():
                adapter.to(home)
            self.current.active = []

    @hook(HookPoint.UNET_FORWARD)
    def pick_tokens(self, batch: UNetBatch) -> None:
        self.current.rows = int(batch.x.shape[0])
        self.current.latent_size = (int(batch.x.shape[-2]), int(batch.x.shape[-1]))
        self.current.active = [
            _Active(unit, row_tokens(unit, batch))
            for unit in self.units
            if unit.active_at(batch.step, batch.total_steps)
        ]


def row_tokens(unit: ImagePromptUnit, batch: UNetBatch) -> Tensor:
    """Per row of the forward: its image's tokens on cond rows, the negative image's on uncond rows."""
    device = batch.x.device
    if unit.tokens.device != device or unit.negative.device != device:  # sent once, not at every call
        unit.tokens, unit.negative = send(unit.tokens, device), send(unit.negative, device)
    return tokens_per_row(unit.tokens, unit.negative, batch)
