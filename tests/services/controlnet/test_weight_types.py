"""IP-Adapter weight types: the block weights sd-webui-controlnet's "Weight Type" gives (its table and
curves, values worked out by hand here)."""

from __future__ import annotations

import pytest

from modules.sumi.services.controlnet.weight_types import WEIGHT_TYPES, block_parts, block_weights


def test_every_type_gives_one_weight_per_block_of_the_family():
    for kind in WEIGHT_TYPES:
        assert len(block_weights(kind, 1.0, "SD1")) == 16
        assert len(block_weights(kind, 1.0, "SDXL")) == 11
    assert block_parts("SDXL") == ["input"] * 4 + ["middle"] + ["output"] * 6
    assert block_parts(None) == ["input"] * 6 + ["middle"] + ["output"] * 9


def test_curves_scale_the_weight_along_the_blocks():
    assert block_weights("normal", 0.8, "SD1") == [0.8] * 16
    ease_in = block_weights("ease in", 0.8, "SD1")
    assert ease_in[0] == pytest.approx(0.8) and ease_in[8] == pytest.approx(0.8 * (0.05 + 0.95 * 0.5))
    ease_out = block_weights("ease out", 1.0, "SDXL")
    assert ease_out[0] == pytest.approx(0.05) and ease_out[10] == pytest.approx(0.05 + 0.95 * 10 / 11)
    in_out = block_weights("ease in-out", 1.0, "SD1")
    assert in_out[8] == pytest.approx(1.0) and in_out[0] == pytest.approx(0.05)
    assert block_weights("reverse in-out", 1.0, "SD1")[8] == pytest.approx(0.05)
    assert block_weights("strong middle", 0.5, "SD1") == [0.1] * 6 + [0.5] + [0.1] * 9
    assert block_weights("weak input", 1.0, "SDXL") == [0.2] * 4 + [1.0] * 7
    assert block_weights("weak middle", 1.0, "SDXL")[4] == 0.2


def test_style_and_composition_types_keep_their_blocks():
    def kept(kind: str, family: str, composition: float = 1.0) -> dict[int, float]:
        return {i: w for i, w in enumerate(block_weights(kind, 0.8, family, composition)) if w}

    assert set(kept("style transfer", "SD1")) == {0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15}
    assert kept("style transfer", "SDXL") == {6: 0.8}
    assert kept("composition", "SD1") == {4: pytest.approx(0.2), 5: 0.8}
    assert kept("composition", "SDXL") == {3: 0.8}
    assert set(kept("strong style transfer", "SD1")) == set(range(16)) - {4, 5}
    assert kept("style and composition", "SDXL", 1.5) == {3: 1.5, 6: 0.8}
    sd1 = kept("style and composition", "SD1", 2.0)
    assert sd1[4] == pytest.approx(0.5) and sd1[5] == 2.0 and 6 not in sd1 and sd1[0] == 0.8
    strong = kept("strong style and composition", "SDXL", 1.5)
    assert strong[3] == 1.5 and len(strong) == 11


def test_an_unknown_type_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown weight type 'loud'"):
        block_weights("loud", 1.0, "SD1")
