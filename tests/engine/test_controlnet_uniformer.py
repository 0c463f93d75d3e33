"""seg_ufade20k: UniFormer + UPerNet loads from upernet_global_small.pth in mmcv's layout (the auxiliary
head, which only trains, left out), reads the picture at mmseg's ADE20K test scale with its channels
reversed as the extension hands them over, and draws each pixel in its ADE20K class's colour.

Checked once, pixel for pixel, against the extension's own mmseg code on the same random full-size file
(512x640, 256x320 and 640x2400 pictures): `tools/annotator_reference/uniformer.py`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.sumi.engine.controlnet.annotators import ade20k, uniformer
from modules.sumi.engine.controlnet.annotators.uniformer import (
    UniFormerSegmentor,
    ade20k_segments,
    load_uniformer,
)
from modules.sumi.engine.controlnet.image_fit import PreprocessorError
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from tests.engine.aux_reference import aux_module
from tests.fixtures.tiny_annotators import edge_photo, write_uniformer

# tensors of the published file (UniFormer-S: 64/128/320/512 wide, 3/4/8/3 blocks; UPerNet 512 wide)
PUBLISHED = {
    "backbone.patch_embed1.proj.weight": (64, 3, 4, 4),
    "backbone.patch_embed2.norm.bias": (128,),
    "backbone.blocks1.2.attn.weight": (64, 1, 5, 5),
    "backbone.blocks2.3.norm1.running_var": (128,),
    "backbone.blocks2.0.mlp.fc1.weight": (512, 128, 1, 1),
    "backbone.blocks3.7.attn.qkv.weight": (960, 320),
    "backbone.blocks4.2.mlp.fc2.weight": (512, 2048),
    "backbone.norm4.weight": (512,),
    "decode_head.psp_modules.3.1.conv.weight": (512, 512, 1, 1),
    "decode_head.bottleneck.conv.weight": (512, 2560, 3, 3),
    "decode_head.lateral_convs.2.bn.running_mean": (512,),
    "decode_head.fpn_convs.0.conv.weight": (512, 512, 3, 3),
    "decode_head.fpn_bottleneck.conv.weight": (512, 2048, 3, 3),
    "decode_head.conv_seg.weight": (150, 512, 1, 1),
}


def test_the_network_has_the_published_files_tensors():
    with torch.device("meta"):
        state = UniFormerSegmentor((64, 128, 320, 512), (3, 4, 8, 3), 512, 150).state_dict()
    for name, shape in PUBLISHED.items():
        assert tuple(state[name].shape) == shape, name
    assert len(state) == 414 - 8  # the extension's model has 414, 8 of them in the auxiliary head


def test_the_palette_is_ade20ks():
    np.testing.assert_array_equal(ade20k.PALETTE, np.array(aux_module("util").ade_palette(), dtype=np.uint8))


@pytest.mark.parametrize("only_class", [0, 2, 149])
def test_each_pixel_is_drawn_in_its_class_colour_at_the_processor_resolution(tmp_path, only_class):
    write_uniformer(tmp_path, only_class=only_class)
    drawn = get_preprocessor("seg_ufade20k").run(edge_photo(200, 300), 256, annotator_dir=tmp_path)
    assert drawn.shape == (256, 384, 3)
    assert (drawn == ade20k.PALETTE[only_class]).all()


def _inputs_seen(network: UniFormerSegmentor, picture: np.ndarray) -> tuple[np.ndarray, list[torch.Size]]:
    seen: list[torch.Size] = []
    handle = network.backbone.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape))
    try:
        return ade20k_segments(network, picture, torch.device("cpu")), seen
    finally:
        handle.remove()


@pytest.mark.parametrize(
    ("size", "network_size"),
    [((256, 320), (512, 640)), ((512, 640), (512, 640)), ((320, 1600), (410, 2048))],
)
def test_the_network_reads_mmsegs_test_scale_and_answers_at_the_pictures_size(tmp_path, size, network_size):
    network = load_uniformer(write_uniformer(tmp_path, seed=1))
    segments, seen = _inputs_seen(network, edge_photo(*size))
    assert seen == [torch.Size((1, 3, *network_size))]
    assert segments.shape == (*size, 3)


def test_the_picture_reaches_the_network_with_its_channels_reversed_and_normalised():
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    pixels = uniformer._normalised(red, torch.device("cpu"))[0, :, 0, 0]
    expected = [(0 - 123.675) / 58.395, (0 - 116.28) / 57.12, (255 - 103.53) / 57.375]
    np.testing.assert_allclose(pixels.numpy(), expected, rtol=1e-6)


def test_a_random_network_finds_several_classes_all_in_the_palette(tmp_path):
    network = load_uniformer(write_uniformer(tmp_path, seed=3))
    segments = ade20k_segments(network, edge_photo(256, 256), torch.device("cpu"))
    colours = {tuple(c) for c in segments.reshape(-1, 3)}
    assert colours <= {tuple(c) for c in ade20k.PALETTE} and len(colours) >= 2


def test_another_network_in_the_files_place_is_a_clear_error(tmp_path):
    path = tmp_path / "uniformer" / "upernet_global_small.pth"
    path.parent.mkdir()
    torch.save({"state_dict": {"conv.weight": torch.zeros(4, 3, 3, 3)}}, path)
    with pytest.raises(PreprocessorError, match="cannot use upernet_global_small.pth: .*not a UniFormer"):
        get_preprocessor("seg_ufade20k").run(edge_photo(64, 64), annotator_dir=tmp_path)


def test_a_file_whose_widths_the_heads_cannot_split_is_refused_before_any_picture(tmp_path):
    write_uniformer(tmp_path, widths=(64, 64, 129, 128))
    with pytest.raises(PreprocessorError, match=r"widths \[64, 64, 129, 128\] do not split into 64-wide"):
        get_preprocessor("seg_ufade20k").run(edge_photo(64, 64), annotator_dir=tmp_path)
