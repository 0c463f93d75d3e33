"""OneFormer's published files (SHI Labs' detectron2 checkpoints, which sd-webui-controlnet runs) in
transformers' `OneFormerForUniversalSegmentation` names.

The detectron2 model keeps the Swin backbone under `backbone.`, the multi-scale deformable pixel decoder
under `sem_seg_head.pixel_decoder.`, the query decoder under `sem_seg_head.predictor.` and the task MLP
under `task_mlp.`; transformers nests the same tensors under `model.` with other names, and splits the
fused query/key/value projections of Swin's and the decoder's self-attention. Tensors only training
uses (the text mapper, the prompt context, Swin's fixed index tables) are dropped.
"""

from __future__ import annotations

import re

from torch import Tensor

_SWIN = "model.pixel_level_module.encoder."
_PIXEL = "model.pixel_level_module.decoder."
_DECODER = "model.transformer_module.decoder."
_HEAD = "sem_seg_head.predictor."
_BLOCK = r"backbone\.layers\.(\d+)\.blocks\.(\d+)\."
_SWIN_BLOCK = _SWIN + r"swin.encoder.layers.\1.blocks.\2."
_ENCODER_LAYER = r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\."

# (detectron2 name pattern, transformers name) in the order they are tried
RENAMES: tuple[tuple[str, str], ...] = (
    (r"backbone\.patch_embed\.proj\.", _SWIN + "swin.embeddings.patch_embeddings.projection."),
    (r"backbone\.patch_embed\.norm\.", _SWIN + "swin.embeddings.norm."),
    (_BLOCK + r"norm1\.", _SWIN_BLOCK + "layernorm_before."),
    (_BLOCK + r"norm2\.", _SWIN_BLOCK + "layernorm_after."),
    (_BLOCK + r"attn\.proj\.", _SWIN_BLOCK + "attention.o_proj."),
    (
        _BLOCK + r"attn\.relative_position_bias_table",
        _SWIN_BLOCK + "attention.relative_position_bias.relative_position_bias_table",
    ),
    (_BLOCK + r"mlp\.", _SWIN_BLOCK + "mlp."),
    (r"backbone\.layers\.(\d+)\.downsample\.", _SWIN + r"swin.encoder.layers.\1.downsample."),
    (r"sem_seg_head\.pixel_decoder\.input_proj\.", _PIXEL + "input_projections."),
    (r"sem_seg_head\.pixel_decoder\.transformer\.level_embed", _PIXEL + "level_embed"),
    (_ENCODER_LAYER + r"self_attn\.", _PIXEL + r"encoder.layers.\1.self_attn."),
    (_ENCODER_LAYER + r"norm1\.", _PIXEL + r"encoder.layers.\1.self_attn_layer_norm."),
    (_ENCODER_LAYER + r"linear1\.", _PIXEL + r"encoder.layers.\1.fc1."),
    (_ENCODER_LAYER + r"linear2\.", _PIXEL + r"encoder.layers.\1.fc2."),
    (_ENCODER_LAYER + r"norm2\.", _PIXEL + r"encoder.layers.\1.final_layer_norm."),
    (r"sem_seg_head\.pixel_decoder\.mask_features\.", _PIXEL + "mask_projection."),
    (r"sem_seg_head\.pixel_decoder\.(adapter_\d+|layer_\d+)\.norm\.", _PIXEL + r"\1.1."),
    (r"sem_seg_head\.pixel_decoder\.(adapter_\d+|layer_\d+)\.weight", _PIXEL + r"\1.0.weight"),
    (_HEAD + r"query_embed\.", "model.transformer_module.queries_embedder."),
    (_HEAD + r"level_embed\.", "model.transformer_module.level_embed."),
    (_HEAD + r"class_transformer\.", _DECODER + "query_transformer."),
    (
        _HEAD + r"transformer_self_attention_layers\.(\d+)\.self_attn\.out_proj\.",
        _DECODER + r"layers.\1.self_attn.self_attn.out_proj.",
    ),
    (_HEAD + r"transformer_self_attention_layers\.(\d+)\.norm\.", _DECODER + r"layers.\1.self_attn.norm."),
    (_HEAD + r"transformer_cross_attention_layers\.(\d+)\.", _DECODER + r"layers.\1.cross_attn."),
    (_HEAD + r"transformer_ffn_layers\.(\d+)\.", _DECODER + r"layers.\1.ffn."),
    (_HEAD + r"decoder_norm\.", _DECODER + "decoder_norm."),
    (_HEAD + r"class_input_proj\.", _DECODER + "query_input_projection."),
    (_HEAD + r"class_embed\.", _DECODER + "class_embed."),
    (_HEAD + r"mask_embed\.layers\.(\d+)\.", _DECODER + r"mask_embed.layers.\1.0."),
    (r"task_mlp\.layers\.(\d+)\.", r"model.task_encoder.task_mlp.layers.\1.0."),
)
# fused [query; key; value] projections, split into three
FUSED: tuple[tuple[str, str], ...] = (
    (_BLOCK + r"attn\.qkv\.(weight|bias)", _SWIN_BLOCK + r"attention.{}_proj.\3"),
    (
        _HEAD + r"transformer_self_attention_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)",
        _DECODER + r"layers.\1.self_attn.self_attn.{}_proj.\2",
    ),
)
# what only training reads (OneFormer's text branch) or what the network rebuilds (Swin's index tables)
UNUSED = re.compile(
    r"(text_mapper\.|prompt_ctx\.|criterion\.|.*\.relative_position_index$|.*\.attn_mask$|sem_seg_head\.predictor\.class_transformer\.encoder\.)"
)
_RENAMES = tuple((re.compile(pattern), target) for pattern, target in RENAMES)
_FUSED = tuple((re.compile(pattern), target) for pattern, target in FUSED)


def _split(name: str, tensor: Tensor) -> dict[str, Tensor] | None:
    for pattern, target in _FUSED:
        if match := pattern.fullmatch(name):
            parts = tensor.chunk(3, dim=0)
            return {match.expand(target.format(role)): part for role, part in zip("qkv", parts, strict=True)}
    return None


def _renamed(name: str) -> str | None:
    for pattern, target in _RENAMES:
        if match := pattern.match(name):
            return match.expand(target) + name[match.end() :]
    return None


def backbone_norm(name: str) -> str | None:
    """`backbone.norm0` .. `norm3` (each stage's output norm) -> transformers' `stage1` .. `stage4`."""
    if match := re.fullmatch(r"backbone\.norm(\d+)\.(weight|bias)", name):
        return f"{_SWIN}hidden_states_norms.stage{int(match[1]) + 1}.{match[2]}"
    return None


def to_transformers(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """(transformers' tensors, the names that fit nowhere) for a detectron2 OneFormer state dict."""
    converted: dict[str, Tensor] = {}
    unknown: list[str] = []
    for name, tensor in state.items():
        if UNUSED.match(name):
            continue
        if (parts := _split(name, tensor)) is not None:
            converted.update(parts)
        elif (target := backbone_norm(name) or _renamed(name)) is not None:
            converted[target] = tensor
        else:
            unknown.append(name)
    return converted, unknown
