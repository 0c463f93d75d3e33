"""lineart_anime_denoise: the manga line network loads from erika.pth in its published layout (names and
shapes below are the file's), with or without DataParallel's `module.` prefix and batch-norm counters,
and the preprocessor draws 255 - the network's drawing at the processor resolution, padding cut off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.sumi.engine.controlnet.annotators.manga_line import (
    MangaLineNetwork,
    load_manga_line,
    manga_lines,
)
from modules.sumi.engine.controlnet.image_fit import resize_with_pad
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from tests.fixtures.tiny_annotators import edge_photo, write_manga_line

# (name, shape) of tensors of the published erika.pth: stride-2 and upsampling shortcuts, both ends
PUBLISHED = {
    "block0.model.0.conv1.model.0.weight": (1,),
    "block0.model.0.shortcut.model.0.weight": (24, 1, 1, 1),
    "block1.model.2.conv1.model.2.weight": (48, 48, 3, 3),
    "block1.model.2.shortcut.model.0.weight": (48, 48, 1, 1),
    "block4.model.11.residual.model.2.weight": (384, 384, 3, 3),
    "block5.model.0.conv1.model.2.weight": (192, 384, 3, 3),
    "block5.model.0.shortcut.model.0.weight": (192, 384, 1, 1),
    "block8.model.1.residual.model.0.running_var": (24,),
    "block9.model.0.shortcut.model.0.weight": (16, 24, 1, 1),
    "conv15.model.2.weight": (1, 16, 1, 1),
}


def test_the_network_has_the_published_files_tensors():
    state = MangaLineNetwork().state_dict()
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == 610
    for name, shape in PUBLISHED.items():
        assert tuple(state[name].shape) == shape, name
    assert not any(k.startswith("res") for k in state)  # the skip additions have no weights


def test_erika_loads_with_a_module_prefix_and_without_batch_norm_counters(tmp_path):
    path = write_manga_line(tmp_path, seed=1)
    saved = torch.load(path, weights_only=True)
    assert all(k.startswith("module.") for k in saved) and not any("num_batches_tracked" in k for k in saved)
    network = load_manga_line(path)
    loaded = network.state_dict()
    torch.testing.assert_close(loaded["conv15.model.2.weight"], saved["module.conv15.model.2.weight"])


def test_lineart_anime_denoise_is_the_networks_drawing_inverted_at_the_processor_resolution(tmp_path):
    write_manga_line(tmp_path, seed=2)
    network = load_manga_line(tmp_path / "manga_line" / "erika.pth")
    photo = edge_photo(90, 130)
    drawn = get_preprocessor("lineart_anime_denoise").run(photo, 128, annotator_dir=tmp_path)
    padded = resize_with_pad(photo, 128)
    expected = padded.unpad(manga_lines(network, padded.image, torch.device("cpu")))
    assert drawn.shape[:2] == expected.shape[:2] and drawn.shape[2] == 3
    np.testing.assert_array_equal(drawn[:, :, 0], expected)
    grey = torch.from_numpy(np.ascontiguousarray(padded.image.mean(axis=2, dtype=np.float32)))
    assert expected.std() > 0  # a drawing, not a flat field
    with torch.no_grad():
        raw = network(grey[None, None]).numpy()[0, 0]
    assert raw.shape == padded.image.shape[:2]


@pytest.mark.parametrize("size", [(64, 64), (72, 200)])
def test_any_picture_size_comes_back_at_its_size(tmp_path, size):
    write_manga_line(tmp_path)
    drawn = get_preprocessor("lineart_anime_denoise").run(edge_photo(*size), 96, annotator_dir=tmp_path)
    assert drawn.shape[:2] == (round(size[0] * 96 / min(size)), round(size[1] * 96 / min(size)))
