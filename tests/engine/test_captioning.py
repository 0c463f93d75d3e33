"""Captioning in the engine: DeepDanbooru built from A1111's numbered file (its layout at full size,
a tiny file through torch.load(weights_only=True), scores set by hand), tags written with A1111's
options, and a tiny BLIP captioner generating within the length bounds."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from modules.sumi.engine.captioning.blip import CaptionOptions, generate_caption
from modules.sumi.engine.captioning.deepdanbooru import DeepDanbooru, _module_names
from modules.sumi.engine.captioning.tags import TagOptions, format_tags
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_pickle
from tests.fixtures.tiny_captioners import (
    REAL_WIDTHS,
    a1111_convs,
    deepdanbooru_state,
    write_blip,
    write_deepdanbooru,
)

TAGS = ["1girl", "red_hair", "smile", "rating:safe", "solo_(focus)"]


def test_a1111s_numbering_at_full_size():
    convs = a1111_convs(REAL_WIDTHS, 9176)
    assert len(convs) == 179
    # facts of A1111's deepbooru_model.py constructor: (out, in, kernel, stride)
    assert convs[0] == (64, 3, 7, 2) and convs[1] == (256, 64, 1, 1)
    assert convs[11] == (512, 256, 1, 2) and convs[13] == (128, 128, 3, 2)
    assert convs[36] == (1024, 512, 1, 2) and convs[38] == (256, 256, 3, 2)
    assert (
        convs[97] == (256, 1024, 1, 1) and convs[98] == (256, 256, 3, 2) and convs[100] == (1024, 1024, 1, 2)
    )
    assert convs[158] == (2048, 1024, 1, 2) and convs[160] == (512, 512, 3, 2)
    assert convs[168] == (4096, 2048, 1, 2) and convs[170] == (1024, 1024, 3, 2)
    assert convs[177] == (4096, 1024, 1, 1) and convs[178] == (9176, 4096, 1, 1)


def test_the_network_places_every_numbered_convolution_where_a1111_runs_it():
    convs = a1111_convs(REAL_WIDTHS, 9176)
    with torch.device("meta"):  # full size, no memory
        model = DeepDanbooru({n: (out, cin) for n, (out, cin, _, _) in convs.items()}, ["t"] * 9176)
    modules = dict(model.named_modules())
    for number, name in _module_names():
        conv = modules[name]
        out, cin, kernel, stride = convs[number]
        assert isinstance(conv, torch.nn.Conv2d), name
        assert (conv.out_channels, conv.in_channels, conv.kernel_size, conv.stride) == (
            out,
            cin,
            (kernel, kernel),
            (stride, stride),
        ), f"n_Conv_{number} -> {name}"
    assert model.head.bias is None


def test_a_tiny_file_loads_safely_and_scores_every_tag(tmp_path):
    path = write_deepdanbooru(tmp_path / "model-resnet_custom_v3.pt", TAGS, logits=[2.0, 1.0, -1.0, 3.0, 0.5])
    state = read_pickle(path, allow_unsafe=False)  # torch.load(weights_only=True)
    assert isinstance(state, dict)
    model = DeepDanbooru.from_state_dict(state)
    assert model.tags == TAGS
    scores = model(torch.rand(2, 512, 512, 3))
    assert scores.shape == (2, 5)
    expected = torch.sigmoid(torch.tensor([2.0, 1.0, -1.0, 3.0, 0.5]))
    assert torch.allclose(scores, expected.expand(2, 5), atol=1e-6)
    random = DeepDanbooru.from_state_dict(deepdanbooru_state(TAGS, seed=1))
    different = random(torch.stack([torch.zeros(512, 512, 3), torch.ones(512, 512, 3)]))
    assert not torch.allclose(different[0], different[1])  # the picture matters


def test_files_that_are_not_deepdanbooru_are_clear_errors():
    state = deepdanbooru_state(TAGS)
    with pytest.raises(ModelLoadError, match="tags"):
        DeepDanbooru.from_state_dict({k: v for k, v in state.items() if k != "tags"})
    with pytest.raises(ModelLoadError, match="5 outputs but 4 tags"):
        DeepDanbooru.from_state_dict({**state, "tags": TAGS[:4]})
    with pytest.raises(ModelLoadError, match="n_Conv_42.weight"):
        DeepDanbooru.from_state_dict({k: v for k, v in state.items() if not k.startswith("n_Conv_42.")})


def test_tags_are_written_with_a1111s_options():
    scores = [0.9, 0.6, 0.2, 0.99, 0.7]
    assert format_tags(TAGS, scores, TagOptions()) == "1girl, red hair, solo \\(focus\\)"
    by_score = TagOptions(sort_alpha=False, use_spaces=False, escape=False, threshold=0.6)
    assert format_tags(TAGS, scores, by_score) == "1girl, solo_(focus), red_hair"
    ranked = TagOptions(ranks=True, filter_tags="1girl, solo (focus)")
    assert format_tags(TAGS, scores, ranked) == "(red hair:0.600)"
    assert format_tags(TAGS, scores, TagOptions(threshold=0.95)) == ""  # rating:* never written


def test_blip_captions_within_the_length_bounds(tmp_path):
    from modules.sumi.services.captioning.blip import BlipModels

    model, processor = BlipModels().load(write_blip(tmp_path / "blip", word="fox"))
    picture = Image.new("RGB", (50, 40), (200, 30, 30))
    assert generate_caption(model, processor, picture, CaptionOptions(1, 2, 6)) == "fox fox fox fox fox"
    assert generate_caption(model, processor, picture, CaptionOptions(3, 1, 3)) == "fox fox"
