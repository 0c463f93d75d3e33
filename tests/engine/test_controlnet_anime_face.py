"""seg_anime_face: the anime face U-Net loads from UNet.pth in its published layout (torchvision's
MobileNetV2 tensors under the extension's en_block names), reads the picture with its short side at 512,
and draws each pixel's class in the extension's colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.sumi.engine.controlnet.annotators.anime_face import (
    PALETTE,
    AnimeFaceNetwork,
    anime_face_segments,
    load_anime_face,
)
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from tests.fixtures.tiny_annotators import edge_photo, write_anime_face

# tensors of the published file: MobileNetV2's stem, an expansion-1 block, expanded blocks, the decoder
PUBLISHED = {
    "en_block0.0.0.weight": (32, 3, 3, 3),
    "en_block0.1.conv.0.0.weight": (32, 1, 3, 3),
    "en_block0.1.conv.1.weight": (16, 32, 1, 1),
    "en_block1.0.conv.0.0.weight": (96, 16, 1, 1),
    "en_block1.0.conv.1.0.weight": (96, 1, 3, 3),
    "en_block3.6.conv.3.running_var": (96,),
    "en_block4.2.conv.2.weight": (160, 960, 1, 1),
    "de_block4.1.weight": (96, 160, 3, 3),
    "de_block3.1.weight": (32, 192, 3, 3),
    "de_block0.1.weight": (7, 32, 3, 3),
}


def test_the_network_has_the_published_files_tensors():
    state = AnimeFaceNetwork().state_dict()
    for name, shape in PUBLISHED.items():
        assert tuple(state[name].shape) == shape, name
    assert not any(k.startswith(("en_block5", "features")) for k in state)


@pytest.mark.parametrize(("only_class", "prefix"), [(2, ""), (5, "module.")])
def test_each_pixel_is_drawn_in_its_class_colour(tmp_path, only_class, prefix):
    write_anime_face(tmp_path, only_class=only_class, prefix=prefix)
    drawn = get_preprocessor("seg_anime_face").run(edge_photo(512, 640), 512, annotator_dir=tmp_path)
    assert drawn.shape == (512, 640, 3)
    assert (drawn == PALETTE[only_class]).all()


def test_a_random_network_labels_a_picture_with_several_classes_at_its_512_short_side(tmp_path):
    path = write_anime_face(tmp_path, seed=3)
    network = load_anime_face(path)
    segments = anime_face_segments(network, edge_photo(256, 384), torch.device("cpu"))
    assert segments.shape == (512, 768, 3)
    colours = {tuple(c) for c in segments.reshape(-1, 3)}
    assert colours <= {tuple(c) for c in PALETTE} and len(colours) >= 2
    np.testing.assert_array_equal(
        anime_face_segments(network, edge_photo(512, 768), torch.device("cpu")).shape, (512, 768, 3)
    )
