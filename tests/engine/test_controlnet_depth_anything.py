"""Depth Anything (V1 and V2) from the user's files: the network equals transformers' port on the same
weights, and the preprocessors take the extension's steps around it."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modules.sumi.engine.controlnet.annotators.depth_anything import (
    load_depth_anything_v1,
    load_depth_anything_v2,
)
from modules.sumi.engine.controlnet.image_fit import PreprocessorError
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from tests.fixtures.tiny_annotators import edge_photo, tiny_depth_anything_shape, write_depth_anything

LOADERS = {1: load_depth_anything_v1, 2: load_depth_anything_v2}
LABELS = {1: "depth_anything", 2: "depth_anything_v2"}


def _to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The published layout in transformers' names (the port's own layout), written out key by key."""
    renamed: dict[str, torch.Tensor] = {}
    fixed = {
        "pretrained.cls_token": "backbone.embeddings.cls_token",
        "pretrained.mask_token": "backbone.embeddings.mask_token",
        "pretrained.pos_embed": "backbone.embeddings.position_embeddings",
        "pretrained.patch_embed.proj.weight": "backbone.embeddings.patch_embeddings.projection.weight",
        "pretrained.patch_embed.proj.bias": "backbone.embeddings.patch_embeddings.projection.bias",
        "pretrained.norm.weight": "backbone.layernorm.weight",
        "pretrained.norm.bias": "backbone.layernorm.bias",
        "depth_head.scratch.output_conv1.weight": "head.conv1.weight",
        "depth_head.scratch.output_conv1.bias": "head.conv1.bias",
        "depth_head.scratch.output_conv2.0.weight": "head.conv2.weight",
        "depth_head.scratch.output_conv2.0.bias": "head.conv2.bias",
        "depth_head.scratch.output_conv2.2.weight": "head.conv3.weight",
        "depth_head.scratch.output_conv2.2.bias": "head.conv3.bias",
    }
    block_parts = {
        "norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
        "attn.proj": "attention.o_proj", "ls1.gamma": "layer_scale1.lambda1", "ls2.gamma": "layer_scale2.lambda1",
    }  # fmt: skip
    fusion_parts = {
        "out_conv": "projection",
        "resConfUnit1.conv1": "residual_layer1.convolution1", "resConfUnit1.conv2": "residual_layer1.convolution2",
        "resConfUnit2.conv1": "residual_layer2.convolution1", "resConfUnit2.conv2": "residual_layer2.convolution2",
    }  # fmt: skip
    for key, value in state.items():
        parts = key.split(".")
        if key in fixed:
            renamed[fixed[key]] = value
        elif key.startswith("pretrained.blocks."):
            layer, rest = parts[2], ".".join(parts[3:])
            prefix = f"backbone.encoder.layer.{layer}."
            if rest.startswith("attn.qkv."):
                for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3), strict=True):
                    renamed[f"{prefix}attention.{name}.{parts[-1]}"] = chunk
            else:
                stem = rest.rsplit(".", 1)[0] if not rest.endswith("gamma") else rest
                tail = "" if rest.endswith("gamma") else "." + parts[-1]
                renamed[prefix + block_parts[stem] + tail] = value
        elif key.startswith("depth_head.projects."):
            renamed[f"neck.reassemble_stage.layers.{parts[2]}.projection.{parts[-1]}"] = value
        elif key.startswith("depth_head.resize_layers."):
            renamed[f"neck.reassemble_stage.layers.{parts[2]}.resize.{parts[-1]}"] = value
        elif parts[2].endswith("_rn"):
            renamed[f"neck.convs.{int(parts[2][5]) - 1}.{parts[-1]}"] = value
        else:  # depth_head.scratch.refinenet<k>.<part>.<param>: fused coarse (4) to fine (1)
            stage = 4 - int(parts[2].removeprefix("refinenet"))
            renamed[f"neck.fusion_stage.layers.{stage}.{fusion_parts['.'.join(parts[3:-1])]}.{parts[-1]}"] = (
                value
            )
    return renamed


def _transformers_port(state: dict[str, torch.Tensor], version: int):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    shape = tiny_depth_anything_shape(version)
    backbone = Dinov2Config(
        hidden_size=shape.width,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.width // 64,
        intermediate_size=4 * shape.width,
        patch_size=14,
        image_size=518,
        out_indices=[tap + 1 for tap in shape.taps],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=shape.width,
        patch_size=14,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=list(shape.head_channels),
        fusion_hidden_size=shape.features,
        head_hidden_size=32,
        depth_estimation_type="relative",
    )
    port = DepthAnythingForDepthEstimation(config)
    port.load_state_dict(_to_transformers(state), strict=True)
    return port.eval()


@pytest.mark.parametrize("version", [1, 2])
def test_the_network_equals_transformers_port_on_the_same_weights(tmp_path, version):
    path = write_depth_anything(tmp_path, version, seed=version)
    ours = LOADERS[version](path).eval()
    port = _transformers_port(dict(ours.state_dict()), version)
    image = torch.randn(1, 3, 518, 518)
    with torch.no_grad():
        expected = port(pixel_values=image).predicted_depth
        found = ours(image)
    assert found.shape == expected.shape == (1, 518, 518)
    assert expected.std() > 0.01  # the random weights draw a real depth
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_v1_and_v2_read_different_layers():
    assert tiny_depth_anything_shape(1).taps == (4, 5, 6, 7)  # the last four
    assert tiny_depth_anything_shape(2).taps == (1, 3, 5, 7)  # spread through the depth


def test_off_grid_position_embeddings_are_rescaled_with_dinov2_s_factors(tmp_path):
    network = load_depth_anything_v2(write_depth_anything(tmp_path)).pretrained
    grid = network.pos_embed[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
    scaled = F.interpolate(grid, scale_factor=((37 + 0.1) / 37, (56 + 0.1) / 37), mode="bicubic")
    expected = torch.cat(
        [network.pos_embed[:, :1], scaled.permute(0, 2, 3, 1).reshape(1, 37 * 56, -1)], dim=1
    )
    torch.testing.assert_close(network._positions(37, 56), expected, rtol=0, atol=0)


def _extension_input(padded: np.ndarray) -> torch.Tensor:
    """sd-webui-controlnet's transform, step by step: "BGR to RGB" on the RGB picture, / 255, Resize
    (lower bound 518, multiple of 14, bicubic), normalised, CHW float32."""
    pixels = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB) / 255.0
    height, width = pixels.shape[:2]
    scale = max(518 / height, 518 / width)
    sides = []
    for side in (scale * height, scale * width):
        fitted = (np.round(side / 14) * 14).astype(int)
        sides.append(fitted if fitted >= 518 else (np.ceil(side / 14) * 14).astype(int))
    pixels = cv2.resize(pixels, (int(sides[1]), int(sides[0])), interpolation=cv2.INTER_CUBIC)
    pixels = (pixels - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32))[None]


@pytest.mark.parametrize("version", [1, 2])
def test_the_preprocessor_takes_the_extension_s_steps_around_the_network(tmp_path, version):
    path = write_depth_anything(tmp_path, version, seed=version)
    port = _transformers_port(dict(LOADERS[version](path).state_dict()), version)
    image = edge_photo(100, 100)
    padded = np.pad(image, [(0, 28), (0, 28), (0, 0)], mode="edge")  # 128 x 128: the network sees 518 x 518
    with torch.no_grad():
        depth = port(pixel_values=_extension_input(padded)).predicted_depth
    depth = F.interpolate(depth[None], (128, 128), mode="bilinear", align_corners=False)[0, 0]
    expected = (
        ((depth - depth.min()) / (depth.max() - depth.min()) * 255.0).numpy().astype(np.uint8)[:100, :100]
    )
    ours = get_preprocessor(LABELS[version]).run(image, 100, annotator_dir=tmp_path)
    assert ours.shape == (100, 100, 3) and (ours[:, :, 0] == ours[:, :, 2]).all()  # gray, as the extension's
    difference = np.abs(ours[:, :, 0].astype(int) - expected)
    assert difference.max() <= 1 and (difference == 0).mean() > 0.99  # float rounding at most
    assert len(np.unique(ours)) > 50


def test_a_file_of_another_network_is_refused_naming_it(tmp_path):
    folder = tmp_path / "depth_anything_v2"
    folder.mkdir()
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(2, 2)}, folder / "depth_anything_v2_vitl.safetensors")
    with pytest.raises(
        PreprocessorError, match=r"cannot use depth_anything_v2_vitl.safetensors: .*Depth Anything"
    ):
        get_preprocessor("depth_anything_v2").run(edge_photo(64, 64), annotator_dir=tmp_path)


def test_the_tiny_grid_is_the_real_one():
    assert math.isqrt(tiny_depth_anything_shape().positions) == 37
