"""Checkpoint merging: every key class gets the per-key formula of its method and block, read from the
files key by key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modules.sumi.engine.merging import (
    MERGE_PRESETS,
    CheckpointTensors,
    MergeRecipe,
    merge_block,
    merge_checkpoints,
    merge_layout,
    parse_merge_weights,
)
from tests.fixtures.tiny_models import write_tiny_checkpoint


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = Path(tmp_path_factory.mktemp("merge"))
    paths = {name: folder / f"{name}.safetensors" for name in "abc"}
    for seed, path in enumerate(paths.values()):
        write_tiny_checkpoint(path, "SD1", seed=seed)
    write_tiny_checkpoint(folder / "inpaint.safetensors", "SD1", seed=5, inpaint=True)
    paths["inpaint"] = folder / "inpaint.safetensors"
    return paths


def _open(models, *names):
    return [CheckpointTensors(models[name]) for name in names]


def _distinct_ratios() -> dict[str, float]:
    return {block: (i + 1) / 40 for i, block in enumerate(merge_layout(sdxl=False))}


def test_a_block_weighted_sum_is_the_per_key_formula_for_every_key_class(models):
    a, b = _open(models, "a", "b")
    ratios = _distinct_ratios()
    merged = merge_checkpoints(a, b, None, MergeRecipe("Weighted sum", 0.3, ratios))
    assert set(merged) == set(a)
    classes: set[str] = set()
    for key, value in merged.items():
        block = merge_block(key, sdxl=False)
        if block is None or block == "VAE" or key.endswith("position_ids"):
            assert torch.equal(value, a[key]), key  # VAE and the rest: the primary's, untouched
            classes.add("kept")
            continue
        r = ratios[block]
        expected = (a[key].float() * (1 - r) + b[key].float() * r).to(a[key].dtype)
        assert torch.equal(value, expected), key
        classes.add(block)
    assert {"BASE", "IN00", "IN01", "M00", "OUT00", "OUT11", "kept"} <= classes


def test_without_block_weights_every_model_key_takes_the_multiplier_and_the_vae_only_when_asked(models):
    a, b = _open(models, "a", "b")
    key_unet = "model.diffusion_model.middle_block.1.proj_in.weight"
    key_vae = "first_stage_model.decoder.conv_out.weight"
    plain = merge_checkpoints(a, b, None, MergeRecipe("Weighted sum", 0.25))
    assert torch.equal(plain[key_unet], a[key_unet] * 0.75 + b[key_unet] * 0.25)
    assert torch.equal(plain[key_vae], a[key_vae])
    with_vae = merge_checkpoints(a, b, None, MergeRecipe("Weighted sum", 0.25, merge_vae=True))
    assert torch.equal(with_vae[key_vae], a[key_vae] * 0.75 + b[key_vae] * 0.25)


def test_add_difference_and_train_difference_follow_their_formulas(models):
    a, b, c = _open(models, "a", "b", "c")
    key = "model.diffusion_model.output_blocks.3.1.transformer_blocks.0.attn2.to_k.weight"
    added = merge_checkpoints(a, b, c, MergeRecipe("Add difference", 0.6))
    assert torch.equal(added[key], a[key] + (b[key] - c[key]) * 0.6)
    trained = merge_checkpoints(a, b, c, MergeRecipe("Train difference", 0.5))
    x, y, z = a[key], b[key], c[key]
    scale = (y - x).abs() / ((y - z).abs() + (y - x).abs())
    torch.testing.assert_close(trained[key], x + torch.sign(y - z) * scale * (y - z).abs() * 0.9)
    same = merge_checkpoints(a, b, b, MergeRecipe("Train difference", 0.5))
    assert torch.equal(same[key], a[key])  # B = C: nothing to train toward


def test_no_interpolation_converts_to_half_and_discards_by_pattern(models):
    (a,) = _open(models, "a")
    merged = merge_checkpoints(
        a,
        None,
        None,
        MergeRecipe(
            "No interpolation", half=True, discard=r"^model_ema\.|cond_stage_model\..*final_layer_norm"
        ),
    )
    assert not any("final_layer_norm" in key for key in merged)
    kept = [key for key in a if "final_layer_norm" not in key]
    assert set(merged) == set(kept)
    assert all(merged[k].dtype == torch.float16 for k in kept if a[k].is_floating_point())
    assert all(torch.equal(merged[k], a[k].half()) for k in kept if a[k].is_floating_point())


def test_an_inpainting_primary_merges_only_the_first_four_input_channels_of_a_normal_secondary(models):
    inpaint, b = _open(models, "inpaint", "b")
    key = "model.diffusion_model.input_blocks.0.0.weight"
    merged = merge_checkpoints(inpaint, b, None, MergeRecipe("Weighted sum", 0.5))
    assert merged[key].shape[1] == 9
    torch.testing.assert_close(merged[key][:, :4], inpaint[key][:, :4] * 0.5 + b[key] * 0.5)
    assert torch.equal(merged[key][:, 4:], inpaint[key][:, 4:])


def test_block_ratios_come_from_presets_and_lists_in_the_families_layouts():
    sd = parse_merge_weights("GRAD_V", sdxl=False, base=0.3)
    assert len(sd) == 26 and sd["BASE"] == 0.3 and sd["IN00"] == 1 and sd["M00"] == 0 and sd["OUT11"] == 1
    xl = parse_merge_weights("GRAD_V", sdxl=True, base=0.4)
    assert list(xl) == list(merge_layout(sdxl=True)) and len(xl) == 20
    assert xl["IN00"] == 1 and xl["M00"] == 0 and xl["OUT08"] == 1 and xl["BASE"] == 0.4
    assert parse_merge_weights(",".join(["0.5"] * 25), sdxl=False, base=0.1)["BASE"] == 0.1
    assert parse_merge_weights(",".join(["0.5"] * 20), sdxl=True, base=0.1)["BASE"] == 0.5
    assert all(len(curve) == 25 for curve in MERGE_PRESETS.values())
    with pytest.raises(ValueError, match="neither a preset"):
        parse_merge_weights(",".join(["0.5"] * 25), sdxl=True, base=0.1)


@pytest.mark.parametrize(
    ("key", "sdxl", "block"),
    [
        ("model.diffusion_model.time_embed.0.weight", False, "IN00"),
        ("model.diffusion_model.label_emb.0.0.weight", True, "IN00"),
        ("model.diffusion_model.out.2.weight", False, "OUT11"),
        ("model.diffusion_model.out.0.bias", True, "OUT08"),
        ("model.diffusion_model.input_blocks.7.1.proj_in.weight", True, "IN07"),
        ("cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight", False, "BASE"),
        ("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight", True, "BASE"),
        ("first_stage_model.encoder.conv_in.weight", False, "VAE"),
        ("model_ema.decay", False, None),
    ],
)
def test_each_key_class_has_its_block(key, sdxl, block):
    assert merge_block(key, sdxl) == block


def test_the_files_are_read_a_key_at_a_time(models):
    with CheckpointTensors(models["a"]) as a:
        key = "model.diffusion_model.input_blocks.0.0.weight"
        assert a.shape(key) == tuple(a[key].shape)
        assert key in a and "missing" not in a and len(a) == len(list(a))


def test_an_sdxl_block_merge_uses_sdxls_twenty_blocks(tmp_path):
    a_path, b_path = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    write_tiny_checkpoint(a_path, "SDXL", seed=1)
    write_tiny_checkpoint(b_path, "SDXL", seed=2)
    ratios = {block: (i + 1) / 25 for i, block in enumerate(merge_layout(sdxl=True))}
    with CheckpointTensors(a_path) as a, CheckpointTensors(b_path) as b:
        merged = merge_checkpoints(a, b, None, MergeRecipe("Weighted sum", 0.5, ratios, sdxl=True))
        seen = set()
        for key, value in merged.items():
            block = merge_block(key, sdxl=True)
            if block in ratios and not key.endswith("position_ids") and value.is_floating_point():
                r = ratios[block]
                assert torch.equal(value, (a[key].float() * (1 - r) + b[key].float() * r).to(a[key].dtype)), (
                    key
                )
                seen.add(block)
    assert "BASE" in seen and "OUT08" in seen and "IN00" in seen  # both text encoders, the output layers
    assert any(k.startswith("conditioner.embedders.1.") for k in merged)
