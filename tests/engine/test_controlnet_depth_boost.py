"""depth_leres++'s boost (double estimation, patch selection and merging) gives controlnet-aux's
`estimateboost` (the code sd-webui-controlnet runs) exactly, with the same two networks: small stand-ins
here, since the algorithm is what is checked (the published networks are checked in
test_controlnet_annotators.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from modules.sumi.engine.controlnet.annotators import depth_boost
from modules.sumi.engine.controlnet.annotators.depth_merge import (
    DepthMergeNetwork,
    load_depth_merge,
    merge_depths,
)
from modules.sumi.engine.controlnet.annotators.leres import leres_prediction
from tests.engine.aux_reference import aux_depth_merger, aux_module_without_torchvision
from tests.fixtures.tiny_annotators import edge_photo, flat_scene, write_depth_merge

CPU = torch.device("cpu")


class _SmallDepth(nn.Module):
    """A depth network shaped as LeReS is called (`depth_model(x)`, any size in, one channel out)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.depth_model = nn.Sequential(
            nn.Conv2d(3, 4, 5, padding=2), nn.Tanh(), nn.AvgPool2d(5, 1, 2), nn.Conv2d(4, 1, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.depth_model(x)


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("merge")
    merger = load_depth_merge(write_depth_merge(folder, width=2, seed=1)).eval()
    return _SmallDepth().eval(), merger


def _ours(image: np.ndarray, depth: nn.Module, merger: DepthMergeNetwork, max_size: int) -> np.ndarray:
    return depth_boost.boosted_depth(
        image,
        lambda x, side: leres_prediction(depth, x, CPU, side),
        lambda coarse, detailed: merge_depths(merger, coarse, detailed, CPU),
        max_size,
    )


def _theirs(image: np.ndarray, depth: nn.Module, merger: DepthMergeNetwork) -> np.ndarray:
    estimateboost = aux_module_without_torchvision("leres.leres.depthmap").estimateboost
    return estimateboost(image, depth, 0, aux_depth_merger(merger.state_dict()), max(image.shape[:2]))


def test_a_picture_smaller_than_its_best_size_gets_the_merged_double_estimate(networks):
    image = edge_photo(256, 320, seed=3)
    size, _ = depth_boost._whole_image_size(image)
    assert size > 320  # edges everywhere: estimated above the output size, so no patches
    ours = _ours(image, *networks, max_size=320)
    np.testing.assert_array_equal(ours, _theirs(image, *networks))
    assert ours.shape == (256, 320) and np.ptp(ours) > 0.5


@pytest.mark.filterwarnings(
    "ignore::numpy.exceptions.RankWarning"
)  # controlnet-aux's poorly conditioned fits
def test_patches_dense_in_edges_are_merged_into_the_base_estimate_as_controlnet_aux(networks):
    image = flat_scene(448, 576, seed=3)
    assert depth_boost._whole_image_size(image)[0] == 448  # few edges: best size the receptive field
    ours = _ours(image, *networks, max_size=576)
    np.testing.assert_array_equal(ours, _theirs(image, *networks))
    without_patches = _ours(image, *networks, max_size=0)
    assert np.abs(ours - without_patches).mean() > 0.01  # the patches changed the map


def test_the_patches_are_the_grid_squares_denser_in_edges_than_the_picture_grown_largest_first():
    image = cv2.resize(flat_scene(448, 576, seed=3), (2304, 1792), interpolation=cv2.INTER_CUBIC)
    patches = depth_boost._patches(image, factor=0.5)
    assert patches, "the lettering's squares are denser than the picture"
    assert [side for _, _, side in patches] == sorted((side for _, _, side in patches), reverse=True)
    grid = {(x, y) for x in range(0, 2304 - 896, 336) for y in range(0, 1792 - 896, 336)}
    for x, y, side in patches:
        assert x >= 0 and y >= 0 and x + side <= 2304 and y + side <= 1792
        grown = (side - 896) // 64  # 32 / factor at a time, about the centre
        assert (x + 32 * grown, y + 32 * grown) in grid
    assert len(patches) < len(grid)  # the flat squares are left out
    assert depth_boost._patches(np.full((448, 576, 3), 90, np.uint8), factor=1.0) == []  # no edges: none


def test_the_merging_network_has_the_published_size_and_reads_its_width_from_the_file(tmp_path):
    assert sum(p.numel() for p in DepthMergeNetwork(64).parameters()) == 79_564_801  # latest_net_G.pth
    network = load_depth_merge(write_depth_merge(tmp_path, width=3))
    assert network.state_dict()["model.model.3.weight"].shape == (6, 1, 4, 4)


def test_a_file_that_is_not_the_merging_network_is_a_clear_error(tmp_path):
    from modules.sumi.engine.errors import ModelLoadError

    path = tmp_path / "latest_net_G.pth"
    torch.save({"conv.weight": torch.zeros(2, 2, 3, 3)}, path)
    with pytest.raises(ModelLoadError, match="latest_net_G.pth is not the depth-merging network"):
        load_depth_merge(path)
