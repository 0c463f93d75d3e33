"""OneFormer semantic segmentation (`oneformer/250_16_swin_l_oneformer_ade20k_160k.pth` and
`150_16_swin_l_oneformer_coco_100ep.pth`): what sd-webui-controlnet's seg_ofade20k and seg_ofcoco run.

The files are SHI Labs' detectron2 checkpoints (a Swin-L backbone, a multi-scale deformable-attention
pixel decoder, a query decoder conditioned on a task token); the network is transformers'
`OneFormerForUniversalSegmentation`, built to the file's shapes and filled from it
(`oneformer_keys`). As the extension runs it: the picture's short side is scaled (bilinear) to the
dataset's test size (ADE20K 640, at most 2560 long; COCO 800, at most 1333), normalised with ImageNet's
statistics in 0..255, padded to a multiple of 32; the task is "The task is semantic" in CLIP's BPE
tokens (padded with zeros to the file's 77). The queries' mask logits are brought to the picture
(upsampled to the padded size, cropped, resized), and each class's score at a pixel is the sum of the
queries' mask probabilities weighted by their class probabilities; each pixel gets its best class's
colour (ADE20K's palette, or COCO panoptic's). The
extension draws the classes as matplotlib polygons with light outlines; Sumi fills them flat, the
colours the segmentation ControlNets were trained on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from transformers import OneFormerConfig, OneFormerForUniversalSegmentation, SwinConfig

from modules.sumi.engine.controlnet.annotators import ade20k, coco_panoptic
from modules.sumi.engine.controlnet.annotators.oneformer_keys import to_transformers
from modules.sumi.engine.controlnet.image_fit import PreprocessorError
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import check_weights, load_weights, read_state_dict
from modules.sumi.engine.text.tokenizer import get_tokenizer

TASK = "The task is semantic"
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
SIZE_DIVISIBILITY = 32
_CLASSES = "model.transformer_module.decoder.class_embed.bias"
HEADS = 8  # the decoders' attention heads: not in the weights; every published OneFormer uses 8


@dataclass(frozen=True)
class Dataset:
    """What a OneFormer file was trained on: its classes' colours and the test resize."""

    name: str
    palette: np.ndarray
    short_side: int
    long_side: int


ADE20K = Dataset("ADE20K", ade20k.PALETTE, 640, 2560)
COCO = Dataset("COCO panoptic", coco_panoptic.PALETTE, 800, 1333)


def _count(state: dict[str, Tensor], pattern: str) -> int:
    indices = {int(m[1]) for key in state if (m := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def _swin_config(state: dict[str, Tensor]) -> SwinConfig:
    embed = state["backbone.patch_embed.proj.weight"]
    stages = _count(state, r"backbone\.layers\.(\d+)\.")
    depths = [_count(state, rf"backbone\.layers\.{i}\.blocks\.(\d+)\.") for i in range(stages)]
    tables = [state[f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(stages)]
    window = (math.isqrt(tables[0].shape[0]) + 1) // 2  # the table holds (2 * window - 1)^2 offsets
    fc1 = state["backbone.layers.0.blocks.0.mlp.fc1.weight"]
    settings: dict[str, Any] = {
        "embed_dim": embed.shape[0],
        "patch_size": embed.shape[2],
        "depths": depths,
        "num_heads": [table.shape[1] for table in tables],
        "window_size": window,
        "mlp_ratio": fc1.shape[0] / fc1.shape[1],
        "drop_path_rate": 0.0,
        "out_features": [f"stage{i + 1}" for i in range(stages)],
    }
    return SwinConfig(**settings)


def oneformer_config(state: dict[str, Tensor], path: Path) -> OneFormerConfig:
    """transformers' config for the detectron2 file's tensors (widths, depths and counts read from them)."""
    head = "sem_seg_head.predictor."
    encoder = "sem_seg_head.pixel_decoder.transformer.encoder.layers."
    try:
        queries = state[head + "query_embed.weight"]
        mask_features = state["sem_seg_head.pixel_decoder.mask_features.weight"]
        settings: dict[str, Any] = {
            "backbone_config": _swin_config(state),
            "num_queries": queries.shape[0],
            "hidden_dim": queries.shape[1],
            "num_labels": state[head + "class_embed.weight"].shape[0] - 1,
            "decoder_layers": _count(state, re.escape(head) + r"transformer_ffn_layers\.(\d+)\.") + 1,
            "query_dec_layers": _count(
                state, re.escape(head) + r"class_transformer\.decoder\.layers\.(\d+)\."
            ),
            "dim_feedforward": state[head + "transformer_ffn_layers.0.linear1.weight"].shape[0],
            "encoder_layers": _count(state, re.escape(encoder) + r"(\d+)\."),
            "encoder_feedforward_dim": state[encoder + "0.linear1.weight"].shape[0],
            "conv_dim": mask_features.shape[1],
            "mask_dim": mask_features.shape[0],
            "task_seq_len": state["task_mlp.layers.0.weight"].shape[1],
            "num_attention_heads": HEADS,
            "is_training": False,
        }
        return OneFormerConfig(**settings)
    except (KeyError, IndexError) as exc:
        raise ModelLoadError(f"{path}: not a OneFormer (Swin) checkpoint: no {exc}") from exc


def relative_position_index(window: int) -> Tensor:
    """Swin's table index of each (query, key) offset in a window, flattened as transformers keeps it."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    offsets = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return (offsets[..., 0] * (2 * window - 1) + offsets[..., 1]).flatten()


def _rebuild_index_buffers(network: torch.nn.Module, window: int) -> None:
    for name, buffer in list(network.named_buffers()):
        if buffer.is_meta and name.endswith("relative_position_index"):
            owner = network.get_submodule(name.rpartition(".")[0])
            owner.register_buffer(
                "relative_position_index", relative_position_index(window), persistent=False
            )


def _unused_by_inference(config: OneFormerConfig, outcomes: int) -> dict[str, Tensor]:
    """Tensors transformers' model holds that the detectron2 file has no use for (training's criterion,
    the backbone's unused last norm): neutral values so the load stays strict."""
    swin = cast(SwinConfig, config.backbone_config)
    width = swin.embed_dim * 2 ** (len(swin.depths) - 1)
    empty_weight = torch.ones(outcomes)  # the classes and "no object"
    empty_weight[-1] = config.no_object_weight
    return {
        "model.pixel_level_module.encoder.swin.layernorm.weight": torch.ones(width),
        "model.pixel_level_module.encoder.swin.layernorm.bias": torch.zeros(width),
        "criterion.logit_scale": torch.tensor(math.log(1 / config.contrastive_temperature)),
        "criterion.empty_weight": empty_weight,
    }


def load_oneformer(path: Path, allow_unsafe_pickle: bool = False) -> OneFormerForUniversalSegmentation:
    """A OneFormer detectron2 checkpoint (`{"model": ...}` as published), or a .safetensors of its tensors."""
    state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    check_weights(state, "OneFormer", path)
    config = oneformer_config(state, path)
    converted, unknown = to_transformers(state)
    if unknown:
        raise ModelLoadError(
            f"{path}: not a OneFormer (Swin) checkpoint: unexpected {', '.join(unknown[:5])}"
        )
    _check_divisible(config, path)
    with torch.device("meta"):
        network = OneFormerForUniversalSegmentation(config)
    _rebuild_index_buffers(network, cast(SwinConfig, config.backbone_config).window_size)
    return load_weights(
        network,
        converted | _unused_by_inference(config, len(converted[_CLASSES])),
        "OneFormer",
        path,
        torch.float32,
    )


def _check_divisible(config: OneFormerConfig, path: Path) -> None:
    """Widths the network's heads and group norms split evenly, or a ModelLoadError (a file of other
    shapes would otherwise fail inside the first picture's forward)."""
    swin = cast(SwinConfig, config.backbone_config)
    widths = [swin.embed_dim * 2**i for i in range(len(swin.depths))]
    problems = [f"{w} wide with {h} heads" for w, h in zip(widths, swin.num_heads, strict=True) if w % h]
    if config.hidden_dim % HEADS or config.conv_dim % HEADS:
        problems.append(
            f"decoder {config.hidden_dim} / pixel decoder {config.conv_dim} wide with {HEADS} heads"
        )
    if config.conv_dim % 32:
        problems.append(f"pixel decoder {config.conv_dim} wide: not a multiple of its 32 norm groups")
    if problems:
        raise ModelLoadError(f"{path}: not a OneFormer this network can run: {'; '.join(problems)}")


def task_tokens(length: int) -> Tensor:
    """ "The task is semantic" as OneFormer's tokenizer gives it: CLIP BPE between start and end, zeros after."""
    tokenizer = get_tokenizer()
    ids = [tokenizer.bos_token_id, *tokenizer.encode(TASK, add_special_tokens=False), tokenizer.eos_token_id]
    tokens = torch.zeros(length, dtype=torch.long)
    tokens[: len(ids)] = torch.tensor(ids[:length])
    return tokens


def test_size(height: int, width: int, dataset: Dataset) -> tuple[int, int]:
    """detectron2's ResizeShortestEdge: the short side to the test size unless the long side would pass
    its limit, then the long side to the limit; both rounded."""
    scale = dataset.short_side / min(height, width)
    new_h, new_w = (
        (dataset.short_side, scale * width) if height < width else (scale * height, dataset.short_side)
    )
    if max(new_h, new_w) > dataset.long_side:
        shrink = dataset.long_side / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


def _network_input(
    image: np.ndarray, dataset: Dataset, device: torch.device
) -> tuple[Tensor, tuple[int, int]]:
    """The normalised picture at the test size, zero-padded to a multiple of 32, and its unpadded size."""
    height, width = test_size(image.shape[0], image.shape[1], dataset)
    if (height, width) != image.shape[:2]:
        image = np.array(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device, torch.float32).permute(2, 0, 1)
    pixels = (pixels - torch.tensor(MEAN, device=device)[:, None, None]) / torch.tensor(STD, device=device)[
        :, None, None
    ]
    pad_h, pad_w = (-height) % SIZE_DIVISIBILITY, (-width) % SIZE_DIVISIBILITY
    return F.pad(pixels, (0, pad_w, 0, pad_h))[None], (height, width)


QUERY_CHUNK = 16  # queries resized at a time: the class scores and this many full-size masks are held at once


@torch.no_grad()
def semantic_scores(
    network: OneFormerForUniversalSegmentation, image: np.ndarray, device: torch.device, dataset: Dataset
) -> Tensor:
    """Each class's score at each pixel (CxHxW) of the RGB picture (HxWx3 uint8): the queries' mask logits brought to
    the picture (to the padded size, cropped, resized), then weighted by the queries' class probabilities
    (OneFormer's order when panoptic inference is on, as in the published configs)."""
    pixels, (height, width) = _network_input(image, dataset, device)
    tasks = task_tokens(network.config.task_seq_len).to(device)[None]
    outputs = network(pixel_values=pixels, task_inputs=tasks)
    weights = outputs.class_queries_logits[0].softmax(dim=-1)[:, :-1]
    scores = torch.zeros((weights.shape[1], *image.shape[:2]), device=device)
    for start in range(0, weights.shape[0], QUERY_CHUNK):
        logits = outputs.masks_queries_logits[:, start : start + QUERY_CHUNK]
        logits = F.interpolate(logits, size=pixels.shape[2:], mode="bilinear", align_corners=False)
        logits = F.interpolate(
            logits[:, :, :height, :width], size=image.shape[:2], mode="bilinear", align_corners=False
        )
        scores += torch.einsum("qc,qhw->chw", weights[start : start + QUERY_CHUNK], logits[0].sigmoid())
    return scores


def semantic_classes(
    network: OneFormerForUniversalSegmentation, image: np.ndarray, device: torch.device, dataset: Dataset
) -> np.ndarray:
    """Each pixel's best class (HxW)."""
    return semantic_scores(network, image, device, dataset).argmax(dim=0).cpu().numpy()


def semantic_segments(
    network: OneFormerForUniversalSegmentation, image: np.ndarray, device: torch.device, dataset: Dataset
) -> np.ndarray:
    """Each pixel of the RGB picture in its class's colour, at the picture's size; a file trained on another
    dataset (another class count) is a PreprocessorError."""
    classes = network.config.num_labels
    if classes != len(dataset.palette):
        raise PreprocessorError(
            f"This OneFormer file segments {classes} classes; {dataset.name} has {len(dataset.palette)}."
        )
    return dataset.palette[semantic_classes(network, image, device, dataset)]
