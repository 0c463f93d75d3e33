"""The diffusers -> LDM exporter, checked against diffusers' own LDM -> diffusers converters."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from safetensors import safe_open

from modules.sumi.engine import ldm_export, tiny_models
from modules.sumi.engine.files import read_state_dict
from tests.fixtures.tiny_models import tiny_clip, tiny_sd1, tiny_sd2, tiny_sdxl


def assert_same_state(expected: dict, got: dict) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key].reshape(value.shape), value), key


def odd_unet() -> UNet2DConditionModel:
    """3 levels, 2 layers per block, per-level transformer depth, attention skipping the middle level."""
    torch.manual_seed(0)
    return tiny_models.unet(
        block_out_channels=(32, 32, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"),
        transformer_layers_per_block=(2, 1, 3),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=32,
    )


@pytest.mark.parametrize("make_unet", [odd_unet, lambda: tiny_sd1()["unet"], lambda: tiny_sdxl()["unet"]])
def test_unet_export_inverts_diffusers_converter(make_unet):
    unet = make_unet()
    ldm = ldm_export.unet_to_ldm(unet.state_dict(), unet.config)
    assert all(k.startswith("model.diffusion_model.") for k in ldm)
    assert_same_state(unet.state_dict(), convert_ldm_unet_checkpoint(ldm, dict(unet.config)))


def test_unet_export_uses_the_real_sd1_key_names():
    """4 levels x 2 layers like SD1.5: the block numbering must match the released files."""
    unet = tiny_models.unet(
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=2,
        cross_attention_dim=8,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    keys = set(ldm_export.unet_to_ldm(unet.state_dict(), unet.config))
    prefix = "model.diffusion_model."
    for key in [
        "time_embed.0.weight",
        "input_blocks.0.0.weight",
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "input_blocks.3.0.op.weight",
        "input_blocks.4.0.skip_connection.weight",
        "input_blocks.11.0.out_layers.3.weight",
        "middle_block.1.proj_in.weight",
        "middle_block.2.emb_layers.1.weight",
        "output_blocks.2.1.conv.weight",
        "output_blocks.5.2.conv.weight",
        "output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight",
        "out.0.weight",
        "out.2.bias",
    ]:
        assert prefix + key in keys, key
    assert len(keys) == len(unet.state_dict())


def test_vae_export_inverts_diffusers_converter():
    torch.manual_seed(0)
    vae = tiny_models.vae((16, 32, 32), norm_groups=16, layers=2)
    ldm = ldm_export.vae_to_ldm(vae.state_dict(), vae.config)
    assert ldm["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (32, 32, 1, 1)
    assert "first_stage_model.decoder.up.0.block.2.conv1.weight" in ldm
    assert "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight" in ldm
    assert_same_state(vae.state_dict(), convert_ldm_vae_checkpoint(ldm, dict(vae.config)))


def test_clip_export_inverts_diffusers_converter():
    model = tiny_clip(0, 32, openclip=False)
    ldm = ldm_export.clip_to_ldm(model.state_dict())
    assert "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc2.weight" in ldm
    back = {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(ldm).items()}
    assert_same_state(model.state_dict(), back)


@pytest.mark.parametrize("projection", [None, 24])
def test_openclip_export_inverts_diffusers_converter(projection):
    model = tiny_clip(0, 32, openclip=True, projection_dim=projection)
    prefix = "conditioner.embedders.1.model."
    ldm = ldm_export.openclip_to_ldm(model.state_dict(), prefix)
    assert ldm[prefix + "transformer.resblocks.0.attn.in_proj_weight"].shape == (96, 32)
    assert {
        prefix + "positional_embedding",
        prefix + "ln_final.weight",
        prefix + "token_embedding.weight",
    } <= set(ldm)
    back = convert_open_clip_checkpoint(model, ldm, prefix=prefix)
    if projection is None:
        back = {k.removeprefix("text_model."): v for k, v in back.items()}
    assert_same_state(model.state_dict(), back)


def test_sd2_file_has_the_full_open_clip_layout():
    parts = tiny_sd2()
    sd = ldm_export.to_single_file_state_dict("SD2", parts["unet"], parts["vae"], parts["text_encoders"])
    prefix = "cond_stage_model.model."
    assert f"{prefix}transformer.resblocks.2.attn.in_proj_weight" in sd  # 2 layers + the unused last one
    assert torch.equal(sd[prefix + "text_projection"], torch.eye(32))
    assert prefix + "logit_scale" in sd


def test_sdxl_file_layout():
    parts = tiny_sdxl()
    sd = ldm_export.to_single_file_state_dict("SDXL", parts["unet"], parts["vae"], parts["text_encoders"])
    assert sd["model.diffusion_model.label_emb.0.0.weight"].shape[1] == 24 + 6 * 8
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in sd
    assert sd["conditioner.embedders.1.model.text_projection"].shape == (32, 24)
    assert not any(k.startswith("cond_stage_model.") for k in sd)


def test_export_rejects_wrong_family_or_encoder_count():
    parts = tiny_sd1()
    with pytest.raises(ValueError, match="unknown family"):
        ldm_export.to_single_file_state_dict("SD3", parts["unet"], parts["vae"], parts["text_encoders"])
    with pytest.raises(ValueError, match="2 text encoder"):
        ldm_export.to_single_file_state_dict("SDXL", parts["unet"], parts["vae"], parts["text_encoders"])


def test_export_casts_dtype():
    parts = tiny_sd1()
    sd = ldm_export.to_single_file_state_dict(
        "SD1", parts["unet"], parts["vae"], parts["text_encoders"], dtype=torch.float16
    )
    assert {v.dtype for v in sd.values()} == {torch.float16}


def test_save_checkpoint_formats(tmp_path):
    sd = {"a": torch.arange(4.0), "b": torch.ones(2, 2)}
    sd["c"] = sd["a"][:2]  # shares storage with "a"
    path = ldm_export.save_checkpoint(tmp_path / "m.safetensors", sd, {"note": "hi"})
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == {"note": "hi"}
    assert_same_state(sd, read_state_dict(path))
    ckpt = ldm_export.save_checkpoint(tmp_path / "m.ckpt", sd)
    assert set(torch.load(ckpt, weights_only=True)) == {"state_dict"}
    assert_same_state(sd, read_state_dict(ckpt))
    with pytest.raises(ValueError, match="use .safetensors or .ckpt"):
        ldm_export.save_checkpoint(tmp_path / "m.bin2", sd)
