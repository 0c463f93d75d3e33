"""The engine side of A1111's training kinds: captions, prompts, alpha weights, batches, new
hypernetworks and their file dict, textual-inversion vectors and checksums (no model needed)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch

from modules.sumi.engine.networks.hypernetwork import HypernetworkOptions, hypernetwork_from_dict
from modules.sumi.engine.training import hypernetwork as hnt
from modules.sumi.engine.training import textual_inversion as ti
from modules.sumi.engine.training.dataset import (
    DatasetSettings,
    LatentDataset,
    TrainingImage,
    alpha_weight,
    caption_from_stem,
    compose_prompt,
)
from modules.sumi.engine.training.errors import TrainingError


# -- captions and prompts -------------------------------------------------------------------------------
def test_a_file_name_caption_loses_its_leading_numbers_and_can_keep_only_regex_words():
    assert caption_from_stem("0012-a red cube") == "a red cube"
    assert caption_from_stem("7 blue_sphere, glossy", r"[a-z]+", "+") == "blue+sphere+glossy"
    with pytest.raises(TrainingError, match="regex"):
        caption_from_stem("x", "(")


def test_a_template_line_gets_the_name_and_the_filewords():
    line = "a photo of [name], [filewords]"
    assert compose_prompt(line, "tok", "red,cube", random.Random(0)) == "a photo of tok, red,cube"


def test_shuffling_and_dropout_depend_only_on_the_generator():
    tags = ",".join(f"t{i}" for i in range(20))
    first = compose_prompt("[filewords]", "n", tags, random.Random(5), True, 0.5)
    again = compose_prompt("[filewords]", "n", tags, random.Random(5), True, 0.5)
    other = compose_prompt("[filewords]", "n", tags, random.Random(6), True, 0.5)
    assert first == again != other
    kept = first.split(",")
    assert 0 < len(kept) < 20 and set(kept) <= set(tags.split(","))


# -- alpha weights ---------------------------------------------------------------------------------------
def test_the_alpha_channel_becomes_a_weight_with_mean_one_and_zero_where_transparent():
    alpha = np.zeros((64, 64), dtype=np.uint8)
    alpha[:, 32:] = 255
    weight = alpha_weight(alpha, (8, 8))
    assert weight.shape == (1, 8, 8)
    assert weight.mean().item() == pytest.approx(1.0, abs=1e-5)
    assert weight[..., :3].abs().max() < 1e-3 and weight[..., 5:].min() > 1.5
    torch.testing.assert_close(alpha_weight(np.full((64, 64), 255, np.uint8), (8, 8)), torch.ones(1, 8, 8))


# -- batches ---------------------------------------------------------------------------------------------
def _images(sizes: list[tuple[int, int]]) -> list[TrainingImage]:
    return [
        TrainingImage(f"i{n}", torch.full((4, h, w), float(n)), filewords=f"w{n}")
        for n, (h, w) in enumerate(sizes)
    ]


def _settings(**kw) -> DatasetSettings:
    return DatasetSettings("tok", ("a [name] [filewords]", "b [name] [filewords]"), **kw)


def test_each_epoch_sees_every_image_repeats_times_and_steps_pick_the_same_batches_every_time():
    dataset = LatentDataset(_images([(8, 8)] * 5), _settings(batch_size=2, repeats=2, seed=3))
    assert dataset.batches_per_epoch == 5 and dataset.steps_per_epoch == 5
    seen = Counter()
    for step in range(5):
        batch = dataset.batch(step, 0, torch.Generator())
        seen.update(batch.names)
        again = dataset.batch(step, 0, torch.Generator())
        assert again.names == batch.names and again.prompts == batch.prompts
    assert all(count == 2 for count in seen.values())


def test_prompts_are_fixed_per_image_unless_tags_are_shuffled_or_dropped():
    fixed = LatentDataset(_images([(8, 8)] * 3), _settings())
    prompts = {fixed.batch(s, 0, torch.Generator()).prompts[0] for s in range(30)}
    assert len(prompts) <= 3
    varied = LatentDataset(_images([(8, 8)] * 3), _settings(shuffle_tags=True))
    assert len({varied.batch(s, 0, torch.Generator()).prompts[0] for s in range(30)}) > 3


def test_variable_size_batches_only_mix_images_of_one_size():
    dataset = LatentDataset(_images([(8, 8), (8, 8), (8, 16), (8, 16)]), _settings(batch_size=2))
    for step in range(8):
        batch = dataset.batch(step, 0, torch.Generator())
        assert batch.latents.shape[0] == 2
    with pytest.raises(TrainingError, match="batch size"):
        LatentDataset(_images([(8, 8), (8, 16)]), _settings(batch_size=2))


def test_random_latent_sampling_draws_from_the_generator():
    image = TrainingImage("i", torch.zeros(4, 8, 8), latent_std=torch.ones(4, 8, 8))
    dataset = LatentDataset([image], _settings(latent_sampling_method="random"))
    a = dataset.batch(0, 0, torch.Generator().manual_seed(1)).latents
    b = dataset.batch(0, 0, torch.Generator().manual_seed(1)).latents
    c = dataset.batch(0, 0, torch.Generator().manual_seed(2)).latents
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"tag_drop_out": 1.0}, "tag_drop_out"),
        ({"latent_sampling_method": "x"}, "latent"),
    ],
)
def test_bad_dataset_settings_name_the_field(kwargs, match):
    with pytest.raises(TrainingError, match=match):
        _settings(**kwargs)


# -- hypernetworks ---------------------------------------------------------------------------------------
def test_a_new_hypernetwork_round_trips_through_sumis_loader_with_a1111s_keys():
    torch.manual_seed(0)
    options = HypernetworkOptions([1, 2, 1], "relu", True, False, [0, 0.3, 0])
    hn = hnt.new_hypernetwork("hn", [64, 32], options, "XavierNormal")
    data = hnt.hypernetwork_to_dict(hn, step=7, sd_checkpoint="abc", sd_checkpoint_name="tiny")
    assert sorted(k for k in data if isinstance(k, int)) == [32, 64]
    assert data["activate_output"] is False and data["is_layer_norm"] is True and data["step"] == 7
    assert data["weight_initialization"] == "XavierNormal" and data["use_dropout"] is True
    back = hypernetwork_from_dict(data)
    assert back.options.activate_output is False and back.options.dropout_structure == [0, 0.3, 0]
    x = torch.randn(2, 5, 64)
    torch.testing.assert_close(back.layers[64][0](x), hn.layers[64][0](x))


def test_normal_initialisation_starts_near_the_identity():
    hn = hnt.new_hypernetwork("hn", [16], HypernetworkOptions([1, 2, 1]), "Normal")
    first = hn.layers[16][0].linear[0]
    assert first.bias.abs().max() == 0 and 0 < first.weight.std() < 0.02


@pytest.mark.parametrize(
    ("options", "init", "match"),
    [
        (HypernetworkOptions([2, 1]), "Normal", "layer_structure"),
        (HypernetworkOptions([1, 2, 1], dropout_structure=[0, 0]), "Normal", "dropout_structure"),
        (HypernetworkOptions([1, 2, 1], dropout_structure=[0, 1.5, 0]), "Normal", "dropout_structure"),
        (HypernetworkOptions([1, 2, 1], activation_func="nope"), "Normal", "activation_func"),
        (HypernetworkOptions([1, 2, 1]), "Zeros", "weight_init"),
    ],
)
def test_bad_hypernetwork_options_name_the_field(options, init, match):
    with pytest.raises(TrainingError, match=match):
        hnt.new_hypernetwork("hn", [16], options, init)


# -- textual inversion -----------------------------------------------------------------------------------
def test_names_are_sanitised_as_a1111_does():
    assert ti.sanitize_name("../my st*yle!.v2") == "..my style.v2"
    with pytest.raises(TrainingError):
        ti.sanitize_name("/*?")


def test_vectors_spread_evenly_over_the_init_tokens():
    tokens = torch.arange(3.0).unsqueeze(1).repeat(1, 2)
    spread = ti.spread_vectors(tokens, 5, 2)
    assert spread[:, 0].tolist() == [0, 0, 1, 1, 2]
    assert ti.spread_vectors(tokens[:0], 2, 2).abs().sum() == 0


def test_the_checksum_follows_the_vectors():
    a = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    assert ti.vector_checksum(a) == ti.vector_checksum(a.clone())
    assert ti.vector_checksum(a) != ti.vector_checksum(a + 0.5)
    assert len(ti.vector_checksum({"clip_l": a, "clip_g": a})) == 4
