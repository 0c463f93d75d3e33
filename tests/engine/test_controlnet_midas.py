"""depth_midas and normal_midas: MiDaS DPT-Hybrid files (dpt_hybrid-midas-501f0c75.pt's layout) run as
transformers' DPT-Hybrid and give controlnet-aux's maps (its DPTDepthModel on timm's ViT-R50, random
weights in the file's layout), after the extension's sizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.sumi.engine.controlnet.annotators.midas import load_midas, predicted_depth
from modules.sumi.engine.controlnet.image_fit import resize_with_pad
from modules.sumi.engine.controlnet.preprocessors import PreprocessorError, get_preprocessor
from tests.engine.aux_reference import aux_midas_detector, aux_midas_network
from tests.fixtures.tiny_annotators import edge_photo

pytestmark = pytest.mark.long_file


@pytest.fixture(scope="module")
def midas(tmp_path_factory):
    """(annotator folder with midas/dpt_hybrid-midas-501f0c75.pt, controlnet-aux's network on it)."""
    network = aux_midas_network(seed=3)
    folder = tmp_path_factory.mktemp("annotators")
    (folder / "midas").mkdir()
    torch.save(network.state_dict(), folder / "midas" / "dpt_hybrid-midas-501f0c75.pt")
    return folder, network


def test_the_network_equals_controlnet_aux_on_a_non_square_picture(midas):
    folder, theirs = midas
    ours = load_midas(folder / "midas" / "dpt_hybrid-midas-501f0c75.pt", allow_unsafe_pickle=False)
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = theirs(x)
        found = predicted_depth(ours, x)
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize(("module", "threshold"), [("depth_midas", -1), ("normal_midas", 0.2)])
def test_the_maps_equal_controlnet_aux_after_the_extension_s_sizing(midas, module, threshold):
    folder, theirs = midas
    picture = edge_photo(96, 150)
    found = get_preprocessor(module).run(picture, 128, threshold, annotator_dir=folder)
    padded = resize_with_pad(picture, 128)
    side = min(padded.image.shape[:2])
    depth, normal = aux_midas_detector(theirs)(
        padded.image,
        bg_th=0.4 if threshold < 0 else threshold,
        depth_and_normal=True,
        detect_resolution=side,
        image_resolution=side,
    )
    expected = padded.unpad(depth if module == "depth_midas" else normal)
    assert found.shape == expected.shape == (128, 200, 3)  # the processed size, as the extension returns it
    difference = np.abs(found.astype(int) - expected.astype(int)).max(axis=2)
    assert (difference > 0).mean() < 0.01  # float rounding (the networks agree to ~1e-5) at a few pixels
    # normals: a pixel whose depth sits on the background threshold may fall on the other side of it
    assert (difference > 1).mean() < 0.001 and (module == "normal_midas" or difference.max() <= 1)


def test_a_missing_or_wrong_file_is_named(tmp_path):
    with pytest.raises(PreprocessorError, match="dpt_hybrid-midas-501f0c75.pt"):
        get_preprocessor("depth_midas").run(edge_photo(64, 64), 64, annotator_dir=tmp_path)
    (tmp_path / "midas").mkdir()
    torch.save({"weight": torch.zeros(2)}, tmp_path / "midas" / "dpt_hybrid-midas-501f0c75.pt")
    with pytest.raises(PreprocessorError, match="not MiDaS DPT-Hybrid"):
        get_preprocessor("normal_midas").run(edge_photo(64, 64), 64, annotator_dir=tmp_path)
