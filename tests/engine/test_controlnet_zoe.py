"""depth_zoe: ZoeD_M12_N.pt in the extension's layout runs as transformers' ZoeDepth and equals
controlnet-aux's ZoeDepth (the extension's network and inference: reflection padding, MiDaS' resize, the
mirrored pass) on the same weights; the map spans the 2nd to 85th percentile, near white."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modules.sumi.engine.controlnet.annotators.zoe import load_zoe, zoe_depth
from modules.sumi.engine.controlnet.image_fit import PreprocessorError, resize_with_pad
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from tests.engine.aux_reference import aux_zoe_network
from tests.fixtures.tiny_annotators import edge_photo

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def zoe_files(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    reference = aux_zoe_network(seed=3)
    folder = tmp_path_factory.mktemp("zoe")
    (folder / "zoedepth").mkdir()
    torch.save({"model": reference.state_dict()}, folder / "zoedepth" / "ZoeD_M12_N.pt")
    return folder, reference


def _extension_map(reference: torch.nn.Module, picture: np.ndarray) -> np.ndarray:
    """The extension's ZoeDetector steps around the reference network."""
    x = torch.from_numpy(picture).float().permute(2, 0, 1)[None] / 255.0
    with torch.no_grad():
        depth = reference.infer(x)[0, 0].numpy()
    vmin, vmax = np.percentile(depth, 2), np.percentile(depth, 85)
    depth -= vmin
    depth /= vmax - vmin
    return ((1.0 - depth) * 255.0).clip(0, 255).astype(np.uint8)


def test_the_depth_map_equals_controlnet_aux_zoedepth_on_the_same_weights(zoe_files):
    folder, reference = zoe_files
    network = load_zoe(folder / "zoedepth" / "ZoeD_M12_N.pt")
    picture = edge_photo(96, 128, seed=4)
    ours = zoe_depth(network, picture, torch.device("cpu"))
    expected = _extension_map(reference, picture)
    assert ours.shape == picture.shape[:2] and expected.std() > 0
    assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1


def test_depth_zoe_runs_at_the_processor_resolution_and_cuts_the_padding(zoe_files):
    folder, reference = zoe_files
    picture = edge_photo(70, 100, seed=5)
    drawn = get_preprocessor("depth_zoe").run(picture, 64, annotator_dir=folder)
    padded = resize_with_pad(picture, 64)
    expected = padded.unpad(_extension_map(reference, padded.image))
    assert drawn.shape[:2] == expected.shape[:2]
    assert np.abs(drawn[:, :, 0].astype(int) - expected.astype(int)).max() <= 1


def test_another_file_in_its_place_is_named(tmp_path):
    (tmp_path / "zoedepth").mkdir()
    torch.save({"model": {"conv.weight": torch.zeros(1)}}, tmp_path / "zoedepth" / "ZoeD_M12_N.pt")
    with pytest.raises(PreprocessorError, match="ZoeD_M12_N.pt is not a ZoeDepth checkpoint"):
        get_preprocessor("depth_zoe").run(edge_photo(64, 64), 64, annotator_dir=tmp_path)
