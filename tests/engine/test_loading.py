"""Reading model files safely: formats, refused pickles, broken files, key checks, yaml, VAE files."""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.checkpoint_layout import (
    normalize_checkpoint_keys,
    read_config_yaml,
    unflatten_ema_key,
)
from modules.sumi.engine.errors import ModelLoadError, UnsafeFileError
from modules.sumi.engine.files import check_keys, read_safetensors_metadata, read_state_dict
from modules.sumi.engine.ldm_export import save_checkpoint, vae_to_ldm
from modules.sumi.engine.vae_loading import apply_vae, baked_vae_state, load_vae_file
from tests.fixtures.tiny_models import SD2_V_YAML, tiny_vae

# -- formats ----------------------------------------------------------------------------------------


def test_reads_safetensors_and_ckpt_with_state_dict_wrapper(tmp_path):
    weights = {"a": torch.randn(3), "b": torch.ones(2, dtype=torch.float16)}
    save_file(weights, tmp_path / "m.safetensors")
    torch.save({"state_dict": weights, "global_step": 7, "epoch": 1}, tmp_path / "m.ckpt")
    torch.save(weights, tmp_path / "m.pt")
    for name in ("m.safetensors", "m.ckpt", "m.pt"):
        got = read_state_dict(tmp_path / name)
        assert set(got) == {"a", "b"}
        assert torch.equal(got["a"], weights["a"]) and got["b"].dtype == torch.float16


def test_non_tensor_entries_are_dropped(tmp_path):
    torch.save({"w": torch.zeros(1), "name": "x", "step": 3}, tmp_path / "m.pt")
    assert set(read_state_dict(tmp_path / "m.pt")) == {"w"}


def test_safetensors_metadata(tmp_path):
    save_file({"a": torch.zeros(1)}, tmp_path / "m.safetensors", metadata={"modelspec.title": "t"})
    assert read_safetensors_metadata(tmp_path / "m.safetensors") == {"modelspec.title": "t"}
    torch.save({"a": torch.zeros(1)}, tmp_path / "m.ckpt")
    assert read_safetensors_metadata(tmp_path / "m.ckpt") == {}


# -- unsafe pickles -----------------------------------------------------------------------------------


class WritesMarker:
    """A pickle payload: unpickling it runs os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.ckpt"
    payload = {"state_dict": {"w": torch.zeros(1)}, "x": WritesMarker(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeFileError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert str(path) in message
    assert "system" in message  # the forbidden global (posix.system / nt.system)
    assert "--disable-safe-unpickle" in message
    assert not marker.exists()


def test_disable_safe_unpickle_loads_old_pickles(tmp_path):
    """Old Lightning checkpoints carry an argparse.Namespace: refused unless the user allows it."""
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hparams": argparse.Namespace(lr=1)}, path)
    with pytest.raises(UnsafeFileError, match="argparse.Namespace"):
        read_state_dict(path)
    assert set(read_state_dict(path, allow_unsafe_pickle=True)) == {"w"}


def test_original_sd_ckpt_with_lightning_callback_state_loads_safely(tmp_path, monkeypatch):
    """sd-v1-4.ckpt style: `callbacks` keyed by Lightning's ModelCheckpoint class, numpy scalars."""
    import sys
    import types

    import numpy as np

    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
    callback = type("ModelCheckpoint", (), {"__module__": module.__name__})
    module.ModelCheckpoint = callback
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    payload = {
        "state_dict": {"w": torch.ones(2)},
        "callbacks": {callback: {"best_model_score": np.float64(0.5)}},
        "global_step": 470000,
    }
    torch.save(payload, tmp_path / "sd-v1-4.ckpt")
    monkeypatch.delitem(sys.modules, module.__name__)  # as on a machine without Lightning
    assert set(read_state_dict(tmp_path / "sd-v1-4.ckpt")) == {"w"}


# -- broken files -----------------------------------------------------------------------------------------


def _good_bytes(tmp_path: Path, suffix: str) -> bytes:
    path = tmp_path / f"good{suffix}"
    save_checkpoint(path, {"w": torch.randn(64, 64)})
    return path.read_bytes()


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_broken_files_name_the_file(tmp_path, suffix, damage):
    good = _good_bytes(tmp_path, suffix)
    data = {"empty": b"", "truncated": good[: len(good) // 2], "garbage": b"this is not a model\n" * 20}[
        damage
    ]
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, UnsafeFileError)  # damaged, not dangerous
    if damage == "empty":
        assert "empty" in str(info.value)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        read_state_dict(tmp_path / "nope.safetensors")
    (tmp_path / "m.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="unsupported model file type"):
        read_state_dict(tmp_path / "m.txt")


def test_file_without_tensors(tmp_path):
    torch.save({"step": 1}, tmp_path / "m.ckpt")
    with pytest.raises(ModelLoadError, match="no weights"):
        read_state_dict(tmp_path / "m.ckpt")
    torch.save([1, 2], tmp_path / "l.ckpt")
    with pytest.raises(ModelLoadError, match="not a dictionary"):
        read_state_dict(tmp_path / "l.ckpt")


def test_non_model_file_is_a_clear_error(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8)}, path)
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "LoRA" in message
    assert "cond_stage_model.transformer.text_model.* (SD1" in message
    assert "conditioner.embedders.1.model.*" in message
    assert "cond_stage_model.model.transformer.resblocks.*" in message


# -- key checks -------------------------------------------------------------------------------------------


def test_check_keys_names_missing_and_unexpected():
    check_keys({"a", "b"}, {"a", "b"}, "UNet", "m.safetensors")
    expected = {f"k{i:02d}" for i in range(30)}
    with pytest.raises(ModelLoadError) as info:
        check_keys(expected | {"only_expected"}, expected | {"extra"}, "UNet", "m.safetensors")
    message = str(info.value)
    assert "m.safetensors" in message and "UNet" in message
    assert "1 missing: only_expected" in message and "1 unexpected: extra" in message
    with pytest.raises(ModelLoadError, match=r"30 missing: k00, .*k09, \.\.\. \(20 more\)"):
        check_keys(expected, set(), "UNet", "m")


@pytest.mark.parametrize(
    ("flat", "dotted"),
    [
        ("diffusion_modelinput_blocks00weight", "diffusion_model.input_blocks.0.0.weight"),
        (
            "diffusion_modelinput_blocks110out_layers3bias",
            "diffusion_model.input_blocks.11.0.out_layers.3.bias",
        ),
        (
            "diffusion_modeloutput_blocks21transformer_blocks10attn2to_out0weight",
            "diffusion_model.output_blocks.2.1.transformer_blocks.10.attn2.to_out.0.weight",
        ),
        ("diffusion_modeloutput_blocks112convweight", "diffusion_model.output_blocks.11.2.conv.weight"),
        ("diffusion_modellabel_emb00weight", "diffusion_model.label_emb.0.0.weight"),
        ("diffusion_modelmiddle_block1proj_inweight", "diffusion_model.middle_block.1.proj_in.weight"),
        (
            "diffusion_modelinput_blocks11transformer_blocks0ffnet0projweight",
            "diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight",
        ),
        ("diffusion_modelout0bias", "diffusion_model.out.0.bias"),
    ],
)
def test_unflatten_ema_key(flat, dotted):
    assert unflatten_ema_key(flat) == dotted


def test_unflatten_ema_key_rejects_unknown_words():
    with pytest.raises(ModelLoadError, match="cannot restore"):
        unflatten_ema_key("diffusion_modelwhatever0weight")


def test_sd2_turbo_sgm_layout_is_renamed():
    sd = {
        "conditioner.embedders.0.model.ln_final.weight": torch.zeros(1024),
        "conditioner.embedders.0.model.token_embedding.weight": torch.zeros(1),
        "model.diffusion_model.out.2.bias": torch.zeros(1),
    }
    assert set(normalize_checkpoint_keys(sd)) == {
        "cond_stage_model.model.ln_final.weight",
        "cond_stage_model.model.token_embedding.weight",
        "model.diffusion_model.out.2.bias",
    }
    sd["conditioner.embedders.0.model.ln_final.weight"] = torch.zeros(1280)  # SDXL refiner: left alone
    assert set(normalize_checkpoint_keys(sd)) == set(sd)


# -- yaml ---------------------------------------------------------------------------------------------------


def test_read_config_yaml(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(SD2_V_YAML)
    hints = read_config_yaml(path)
    assert (hints.family, hints.prediction_type, hints.in_channels) == ("SD2", "v_prediction", 4)
    assert (hints.num_heads, hints.num_head_channels, hints.vae_scaling_factor) == (None, 64, 0.18215)
    path.write_text(
        "model:\n  params:\n    unet_config:\n      params:\n        num_heads: 8\n        context_dim: 768\n"
    )
    hints = read_config_yaml(path)
    assert (hints.family, hints.prediction_type, hints.num_heads) == ("SD1", "epsilon", 8)
    path.write_text("model:\n  params:\n    network_config:\n      params: {num_head_channels: 64}\n")
    assert read_config_yaml(path).family == "SDXL"
    for text in ("just: [a, list", "model:\n  params: 3\n", "- a\n"):
        path.write_text(text)
        with pytest.raises(ModelLoadError, match="m.yaml"):
            read_config_yaml(path)


# -- standalone VAE files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd1_model(tmp_path_factory):
    from tests.fixtures.tiny_models import write_tiny_checkpoint

    path = tmp_path_factory.mktemp("vae") / "base.safetensors"
    write_tiny_checkpoint(path, "SD1")
    return load_checkpoint(path)


def _other_vae():
    return tiny_vae(seed=99, scaling_factor=0.18215, sample_size=512)


def _assert_vae_equals(model, vae):
    for key, value in vae.state_dict().items():
        assert torch.equal(model.vae.state_dict()[key], value), key


@pytest.mark.parametrize("layout", ["ldm", "ldm_prefixed_with_loss", "ldm_ckpt_fp16", "diffusers"])
def test_vae_file_applied_and_restored(sd1_model, tmp_path, layout):
    other = _other_vae()
    baked = baked_vae_state(sd1_model)
    if layout == "diffusers":
        sd, name = other.state_dict(), "vae.safetensors"
    else:
        prefix = "first_stage_model." if layout == "ldm_prefixed_with_loss" else ""
        sd = vae_to_ldm(other.state_dict(), other.config, prefix)
        name = "vae.ckpt" if layout == "ldm_ckpt_fp16" else "vae.safetensors"
        if layout == "ldm_prefixed_with_loss":
            sd |= {"loss.logvar": torch.zeros(()), "model_ema.decay": torch.tensor(0.9)}
        if layout == "ldm_ckpt_fp16":
            sd = {k: v.half() for k, v in sd.items()}
    save_checkpoint(tmp_path / name, sd)
    state = load_vae_file(tmp_path / name)
    apply_vae(sd1_model, state)
    if layout == "ldm_ckpt_fp16":
        assert sd1_model.vae.dtype == torch.float32
        other = other.half().float()
    _assert_vae_equals(sd1_model, other)
    apply_vae(sd1_model, baked)
    for key, value in baked.items():
        assert torch.equal(sd1_model.vae.state_dict()[key], value)


def test_old_diffusers_vae_attention_names(sd1_model, tmp_path):
    other = _other_vae()
    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    sd = {}
    for key, value in other.state_dict().items():
        for new, old in renames.items():
            key = key.replace(new, old) if "mid_block.attentions" in key else key
        sd[key] = value
    save_file(sd, tmp_path / "old.safetensors")
    baked = baked_vae_state(sd1_model)
    apply_vae(sd1_model, load_vae_file(tmp_path / "old.safetensors"))
    _assert_vae_equals(sd1_model, other)
    apply_vae(sd1_model, baked)


def test_vae_that_does_not_fit_is_refused(sd1_model, tmp_path):
    wide = tiny_vae(seed=1, scaling_factor=0.18215, sample_size=512)
    sd = {
        k: (torch.zeros(v.shape[0], 8, *v.shape[2:]) if k == "decoder.conv_in.weight" else v)
        for k, v in wide.state_dict().items()
    }
    with pytest.raises(ModelLoadError, match=r"decoder.conv_in.weight"):
        apply_vae(sd1_model, sd, source="wide.safetensors")
    partial = {k: v for k, v in wide.state_dict().items() if k != "encoder.conv_in.bias"}
    with pytest.raises(ModelLoadError, match=r"1 missing: encoder.conv_in.bias"):
        apply_vae(sd1_model, partial)


def test_vae_file_errors(tmp_path):
    save_file({"something.else": torch.zeros(1)}, tmp_path / "x.safetensors")
    with pytest.raises(ModelLoadError, match="not a VAE"):
        load_vae_file(tmp_path / "x.safetensors")
    other = _other_vae()
    sd = vae_to_ldm(other.state_dict(), other.config, "")
    del sd["decoder.up.0.block.1.conv2.weight"]
    save_file(sd, tmp_path / "partial.safetensors")
    with pytest.raises(ModelLoadError, match=r"partial.safetensors.*decoder.up.0.block.1.conv2.weight"):
        load_vae_file(tmp_path / "partial.safetensors")
