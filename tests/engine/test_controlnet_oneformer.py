"""seg_ofade20k / seg_ofcoco: OneFormer's detectron2 checkpoints run on transformers' OneFormer.

The reference is sd-webui-controlnet's own detectron2 code: `tests/fixtures/tiny_oneformer.py` holds a small
network's tensor layout exactly as the extension builds it, and the class map and best scores the
extension's predictor gave for a picture with those tensors' seeded values
(`tools/annotator_reference/oneformer.py`, which also checked the published Swin-L size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import OneFormerConfig, OneFormerForUniversalSegmentation, SwinConfig

from modules.sumi.engine.controlnet.annotators import ade20k, coco_panoptic, oneformer
from modules.sumi.engine.controlnet.annotators.oneformer_keys import to_transformers
from modules.sumi.engine.controlnet.image_fit import PreprocessorError
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from modules.sumi.engine.errors import ModelLoadError
from tests.fixtures.tiny_annotators import edge_photo
from tests.fixtures.tiny_oneformer import (
    EXPECTED,
    PUBLISHED_LAYOUT,
    fill,
    picture,
    read_layout,
    write_tiny_oneformer,
)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return write_tiny_oneformer(tmp_path_factory.mktemp("annotators"))


@pytest.fixture(scope="module")
def tiny_network(tiny_file):
    return oneformer.load_oneformer(tiny_file)


def test_the_extensions_class_map_and_scores_are_reproduced(tiny_network):
    expected = np.load(EXPECTED)
    scores = oneformer.semantic_scores(tiny_network, picture(), torch.device("cpu"), oneformer.ADE20K)
    top = scores.topk(2, dim=0).values
    np.testing.assert_allclose(top[0].numpy(), expected["best"], rtol=1e-4, atol=1e-4)
    clear = (top[0] - top[1]).numpy() > 1e-3  # where float rounding cannot swap the two best classes
    assert clear.mean() > 0.95
    classes = scores.argmax(dim=0).numpy()
    np.testing.assert_array_equal(classes[clear], expected["classes"][clear])
    assert len(np.unique(expected["classes"])) >= 2  # the map has structure to get wrong


def test_every_tensor_of_the_published_layout_finds_its_place(tiny_network):
    layout = fill(read_layout())
    converted, unknown = to_transformers(layout)
    assert unknown == []
    network_state = tiny_network.state_dict()
    assert set(converted) <= set(network_state)
    leftover = set(network_state) - set(converted)
    assert leftover == {
        "model.pixel_level_module.encoder.swin.layernorm.weight",
        "model.pixel_level_module.encoder.swin.layernorm.bias",
        "criterion.logit_scale",
        "criterion.empty_weight",
    }  # the backbone's unused last norm and training's loss weights


def test_the_published_swin_l_layout_maps_onto_transformers_model_of_its_shape():
    layout = {
        name: torch.empty(shape, device="meta") for name, (shape, _) in read_layout(PUBLISHED_LAYOUT).items()
    }
    config = oneformer.oneformer_config(layout, PUBLISHED_LAYOUT)
    swin = config.backbone_config
    assert (swin.embed_dim, swin.depths, swin.num_heads, swin.window_size) == (
        192,
        [2, 2, 18, 2],
        [6, 12, 24, 48],
        12,
    )
    assert (config.num_queries, config.num_labels, config.decoder_layers, config.query_dec_layers) == (
        250,
        150,
        10,
        2,
    )
    with torch.device("meta"):
        expected = OneFormerForUniversalSegmentation(config).state_dict()
    converted, unknown = to_transformers(layout)
    assert unknown == [] and set(converted) <= set(expected)
    assert {name: tuple(t.shape) for name, t in converted.items()} == {
        name: tuple(expected[name].shape) for name in converted
    }
    assert len(set(expected) - set(converted)) == 4  # the unused norm and training's two tensors, as above


def test_the_network_is_built_from_the_files_shapes(tiny_network):
    config = tiny_network.config
    assert config.backbone_config.embed_dim == 16 and config.backbone_config.depths == [1, 1, 2, 1]
    assert config.backbone_config.num_heads == [1, 2, 2, 4] and config.backbone_config.window_size == 4
    assert (config.num_queries, config.hidden_dim, config.num_labels) == (12, 32, 150)
    assert (config.decoder_layers, config.query_dec_layers, config.encoder_layers) == (3, 1, 1)


def test_swins_index_tables_are_rebuilt_as_transformers_builds_them():
    config = OneFormerConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=5),
        hidden_dim=32,
        conv_dim=32,
        mask_dim=32,
        num_queries=4,
        is_training=False,
    )
    built = OneFormerForUniversalSegmentation(config)
    index = dict(built.named_buffers())
    name = "model.pixel_level_module.encoder.swin.encoder.layers.0.blocks.0.attention.relative_position_bias."
    torch.testing.assert_close(oneformer.relative_position_index(5), index[name + "relative_position_index"])


def test_the_task_is_semantic_in_clip_tokens_padded_with_zeros():
    tokens = oneformer.task_tokens(77)
    assert tokens[:7].tolist() == [49406, 518, 10549, 533, 29119, 1550, 49407]  # "the task is seman tic"
    assert tokens[7:].eq(0).all() and len(tokens) == 77


@pytest.mark.parametrize(
    ("size", "dataset", "expected"),
    [
        ((512, 512), oneformer.ADE20K, (640, 640)),
        ((300, 200), oneformer.ADE20K, (960, 640)),
        ((100, 2000), oneformer.ADE20K, (128, 2560)),
        ((512, 768), oneformer.COCO, (800, 1200)),
        ((512, 1024), oneformer.COCO, (667, 1333)),
    ],
)
def test_the_picture_is_read_at_detectron2s_test_size(size, dataset, expected):
    assert oneformer.test_size(*size, dataset) == expected


def test_the_preprocessor_draws_ade20k_colours_at_the_processor_resolution(tiny_file):
    annotator_dir = tiny_file.parent.parent
    drawn = get_preprocessor("seg_ofade20k").run(edge_photo(96, 128), 96, annotator_dir=annotator_dir)
    assert drawn.shape == (96, 128, 3)
    colours = {tuple(c) for c in drawn.reshape(-1, 3)}
    assert colours <= {tuple(c) for c in ade20k.PALETTE} and len(colours) >= 2


def test_a_file_of_the_other_dataset_is_refused_naming_the_class_counts(tiny_file):
    annotator_dir = tiny_file.parent.parent
    coco_name = "150_16_swin_l_oneformer_coco_100ep.pth"
    (annotator_dir / "oneformer" / coco_name).write_bytes(tiny_file.read_bytes())
    with pytest.raises(PreprocessorError, match="segments 150 classes; COCO panoptic has 133"):
        get_preprocessor("seg_ofcoco").run(edge_photo(64, 64), annotator_dir=annotator_dir)
    assert len(coco_panoptic.PALETTE) == 133


def test_another_network_in_the_files_place_is_a_clear_error(tmp_path):
    path = tmp_path / "oneformer" / "250_16_swin_l_oneformer_ade20k_160k.pth"
    path.parent.mkdir()
    torch.save({"model": {"backbone.res2.0.conv1.weight": torch.zeros(4, 3, 1, 1)}}, path)
    with pytest.raises(
        PreprocessorError, match="cannot use 250_16_swin_l_oneformer_ade20k_160k.pth: .*OneFormer"
    ):
        get_preprocessor("seg_ofade20k").run(edge_photo(64, 64), annotator_dir=tmp_path)


def test_a_file_whose_widths_the_heads_cannot_split_is_refused_before_any_picture(tmp_path):
    state = fill(read_layout())
    for name in [n for n in state if n.endswith("layers.0.blocks.0.attn.relative_position_bias_table")]:
        state[name] = torch.zeros(state[name].shape[0], 3)  # 3 heads for a 16-wide stage
    path = tmp_path / "oneformer.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ModelLoadError, match="16 wide with 3 heads"):
        oneformer.load_oneformer(path)
