"""Loading ControlNet files: every layout people download, family detection, and clear errors."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch
from diffusers import ControlNetModel
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
from safetensors.torch import save_file

from modules.sumi.engine.controlnet.models import (
    LoadedControlNet,
    check_compatible,
    detect_controlnet_family,
    load_controlnet,
)
from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError, UnsafeFileError
from modules.sumi.engine.extensions import WeightBackups, resident_patches
from modules.sumi.engine.ldm_export import unet_to_ldm
from modules.sumi.engine.model import SDModel
from modules.sumi.services.controlnet.models import ControlNetModels
from tests.fixtures.tiny_controlnets import (
    controlnet_inputs,
    diff_state_dict,
    lllyasviel_state_dict,
    residuals,
    save_state_dict,
    tiny_controlnet,
    write_diff,
    write_diffusers_file,
    write_diffusers_folder,
    write_lllyasviel,
)
from tests.fixtures.tiny_models import jitter, tiny_unet

FAMILIES = ("SD1", "SD2", "SDXL")
WRITERS = {
    "lllyasviel.pth": lambda path, cn: write_lllyasviel(path.with_suffix(".pth"), cn),
    "lllyasviel.safetensors": lambda path, cn: write_lllyasviel(path, cn),
    "lllyasviel without prefix": lambda path, cn: write_lllyasviel(path, cn, prefix=""),
    "diffusers file": lambda path, cn: write_diffusers_file(path, cn),
    "diffusers folder": lambda path, cn: write_diffusers_folder(path.with_suffix(""), cn),
    "diffusers folder (.bin)": lambda path, cn: write_diffusers_folder(
        path.with_suffix(""), cn, safetensors=False
    ),
}


@functools.cache
def made(family: str, seed: int = 0) -> dict:
    """A tiny ControlNet (and its UNet) per family, built once; never modify it."""
    return tiny_controlnet(family, seed=seed)


def assert_same_residuals(loaded: torch.nn.Module, original: torch.nn.Module, atol: float = 1e-6) -> None:
    inputs = controlnet_inputs(original)
    want = residuals(original, inputs)
    got = residuals(loaded, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert w.abs().max() > 1e-3  # zero convs were jittered: residuals are not trivially zero
        torch.testing.assert_close(g, w, rtol=0, atol=atol)


def base_for(family: str):
    """SDXL ControlNets take the size-embedding width from the checkpoint's UNet (tiny: not 256)."""
    return made(family)["unet"] if family == "SDXL" else None


# -- each layout loads --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layout", list(WRITERS))
def test_each_layout_loads_and_gives_the_original_residuals(tmp_path, family, layout):
    original = made(family)["controlnet"]
    path = WRITERS[layout](tmp_path / f"control_{family}.safetensors", original)
    loaded = load_controlnet(path, base_unet=base_for(family))
    assert isinstance(loaded, LoadedControlNet)
    assert (loaded.family, loaded.source, loaded.hint_channels) == (family, str(path), 3)
    assert not loaded.global_average_pooling
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert_same_residuals(loaded.model, original)


@pytest.mark.parametrize("family", ["SD1", "SD2"])
def test_key_conversion_agrees_with_diffusers_converter(family):
    """diffusers' own lllyasviel converter gives the same diffusers state dict (it skips SDXL's label_emb)."""
    original = made(family)["controlnet"]
    converted = convert_controlnet_checkpoint(lllyasviel_state_dict(original), dict(original.config))
    expected = original.state_dict()
    assert set(converted) == set(expected)
    assert all(torch.equal(converted[k], expected[k]) for k in expected)


def test_old_full_checkpoint_reads_only_the_control_model_keys(tmp_path):
    """ControlNet 1.0 .pth files also hold the whole SD model beside `control_model.*`."""
    original = made("SD1")["controlnet"]
    state_dict = lllyasviel_state_dict(original)
    state_dict.update(unet_to_ldm(made("SD1")["unet"].state_dict(), made("SD1")["unet"].config))
    loaded = load_controlnet(save_state_dict(tmp_path / "control_sd15_canny.pth", state_dict))
    assert_same_residuals(loaded.model, original)


def test_hint_channels_are_read_from_the_file(tmp_path):
    original = tiny_controlnet("SD1", seed=3, conditioning_channels=1)["controlnet"]
    loaded = load_controlnet(write_lllyasviel(tmp_path / "gray.safetensors", original))
    assert loaded.hint_channels == 1
    assert_same_residuals(loaded.model, original)


def test_sdxl_size_embedding_defaults_to_256_without_base(tmp_path):
    """Released SDXL models embed each size value in 256 dims; a ControlNet file cannot say so itself."""
    unet = tiny_unet(
        5,
        in_channels=4,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
        cross_attention_dim=48,
        attention_head_dim=[1, 1],
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=24 + 6 * 256,
    )
    original = jitter(ControlNetModel.from_unet(unet), 6)
    loaded = load_controlnet(write_lllyasviel(tmp_path / "xl.safetensors", original))
    assert loaded.family == "SDXL" and loaded.model.config.addition_time_embed_dim == 256
    assert_same_residuals(loaded.model, original)


def test_sdxl_with_unusual_size_embedding_asks_for_the_base_unet(tmp_path):
    path = write_lllyasviel(tmp_path / "tiny_xl.safetensors", made("SDXL")["controlnet"])
    with pytest.raises(ModelLoadError, match="base_unet") as info:
        load_controlnet(path)
    assert str(path) in str(info.value)


# -- families -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_family_is_detected_in_both_key_layouts(family):
    original = made(family)["controlnet"]
    assert detect_controlnet_family(lllyasviel_state_dict(original)) == family
    assert detect_controlnet_family(lllyasviel_state_dict(original, prefix="")) == family
    assert detect_controlnet_family(original.state_dict()) == family


@pytest.mark.parametrize(
    ("context_dim", "proj_in_shape", "family"),
    [(768, (320, 320, 1, 1), "SD1"), (1024, (320, 320), "SD2"), (1024, (320, 320, 1, 1), "SD2")],
)
def test_real_context_width_decides_sd1_or_sd2(context_dim, proj_in_shape, family):
    state_dict = {
        "control_model.input_hint_block.0.weight": torch.zeros(16, 3, 3, 3),
        "control_model.input_blocks.1.1.proj_in.weight": torch.zeros(proj_in_shape),
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(
            320, context_dim
        ),
    }
    assert detect_controlnet_family(state_dict) == family


def test_wrong_family_is_refused_with_a_clear_message(tmp_path):
    loaded = load_controlnet(
        write_lllyasviel(tmp_path / "xl_canny.safetensors", made("SDXL")["controlnet"]),
        base_unet=base_for("SDXL"),
    )
    check_compatible(loaded, "SDXL", 48)
    with pytest.raises(ModelLoadError) as info:
        check_compatible(loaded, "SD1", 768)
    assert str(info.value).startswith(
        "ControlNet 'xl_canny.safetensors' is for SDXL; the loaded checkpoint is SD1"
    )


def test_wrong_text_width_is_refused(tmp_path):
    loaded = load_controlnet(write_lllyasviel(tmp_path / "canny.safetensors", made("SD1")["controlnet"]))
    with pytest.raises(
        ModelLoadError, match="expects 32-wide text embeddings; the loaded checkpoint gives 768"
    ):
        check_compatible(loaded, "SD1", 768)


# -- files that are not (good) ControlNets -----------------------------------------------------------------


def test_lora_is_not_a_controlnet(tmp_path):
    path = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32)}, path)
    with pytest.raises(ModelLoadError, match="not a ControlNet model.*LoRA") as info:
        load_controlnet(path)
    assert str(path) in str(info.value)


def test_sd_checkpoint_is_not_a_controlnet(tiny_sd1_ckpt):
    path, _ = tiny_sd1_ckpt
    with pytest.raises(ModelLoadError, match="not a ControlNet model.*Stable Diffusion checkpoint") as info:
        load_controlnet(path)
    assert str(path) in str(info.value)


def test_unknown_dict_names_the_expected_keys(tmp_path):
    path = save_state_dict(tmp_path / "x.pth", {"weight": torch.zeros(2)})
    with pytest.raises(ModelLoadError, match="control_model.input_hint_block.0.weight") as info:
        load_controlnet(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_file_names_the_file(tmp_path, suffix, damage):
    good = write_lllyasviel(tmp_path / f"good{suffix}", made("SD1")["controlnet"]).read_bytes()
    path = tmp_path / f"control_canny{suffix}"
    path.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"not a model\n" * 50)
    with pytest.raises(ModelLoadError) as info:
        load_controlnet(path)
    assert str(path) in str(info.value)


class WritesMarker:
    """A pickle payload: unpickling it runs os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "MARKER"
    state_dict = lllyasviel_state_dict(made("SD1")["controlnet"])
    path = save_state_dict(tmp_path / "control_evil.pth", {**state_dict, "payload": WritesMarker(marker)})
    with pytest.raises(UnsafeFileError) as info:
        load_controlnet(path)
    assert str(path) in str(info.value) and "system" in str(info.value)
    assert not marker.exists()


def test_missing_key_is_named(tmp_path):
    state_dict = lllyasviel_state_dict(made("SD1")["controlnet"])
    del state_dict["control_model.zero_convs.1.0.weight"]
    path = save_state_dict(tmp_path / "broken.safetensors", state_dict)
    with pytest.raises(ModelLoadError, match=r"1 missing: control_model\.zero_convs\.1\.0\.weight") as info:
        load_controlnet(path)
    assert str(path) in str(info.value)


def test_missing_key_of_a_diffusers_file_is_named_as_the_file_spells_it(tmp_path):
    state_dict = dict(made("SD1")["controlnet"].state_dict())
    del state_dict["controlnet_down_blocks.2.bias"]
    path = save_state_dict(tmp_path / "broken.safetensors", state_dict)
    with pytest.raises(ModelLoadError, match=r"missing: controlnet_down_blocks\.2\.bias"):
        load_controlnet(path)


def test_wrong_shape_is_named(tmp_path):
    state_dict = lllyasviel_state_dict(made("SD1")["controlnet"])
    state_dict["control_model.middle_block_out.0.bias"] = torch.zeros(3)
    path = save_state_dict(tmp_path / "broken.safetensors", state_dict)
    with pytest.raises(ModelLoadError, match=r"control_model\.middle_block_out\.0\.bias \(3,\)"):
        load_controlnet(path)


def test_folder_without_weights_or_config_is_a_clear_error(tmp_path):
    folder = write_diffusers_folder(tmp_path / "cn", made("SD1")["controlnet"])
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="diffusion_pytorch_model.safetensors"):
        load_controlnet(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_controlnet(folder)


# -- diff ControlNets -------------------------------------------------------------------------------------


def test_diff_controlnet_needs_the_base_unet(tmp_path):
    path = write_diff(
        tmp_path / "diff_control_sd15_canny.safetensors", made("SD1")["controlnet"], made("SD1")["unet"]
    )
    with pytest.raises(ModelLoadError, match="'diff' ControlNet.*base_unet") as info:
        load_controlnet(path)
    assert str(path) in str(info.value)


def test_diff_controlnet_adds_the_base_weights(tmp_path):
    original, unet = made("SD1")["controlnet"], made("SD1")["unet"]
    path = write_diff(tmp_path / "diff_control_sd15_canny.safetensors", original, unet)
    assert_same_residuals(load_controlnet(path, base_unet=unet).model, original, atol=1e-5)

    other = made("SD1", seed=1)["unet"]  # another checkpoint: base + delta with its weights
    loaded = load_controlnet(path, base_unet=other).model
    delta = diff_state_dict(original, unet)["control_model.input_blocks.1.0.in_layers.2.weight"]
    expected = delta + other.down_blocks[0].resnets[0].conv1.weight
    assert torch.equal(loaded.down_blocks[0].resnets[0].conv1.weight, expected)
    assert torch.equal(loaded.controlnet_mid_block.weight, original.controlnet_mid_block.weight)


def test_diff_controlnet_against_another_family_names_the_keys(tmp_path):
    path = write_diff(tmp_path / "diff.safetensors", made("SD1")["controlnet"], made("SD1")["unet"])
    with pytest.raises(ModelLoadError, match="wrong shape"):
        load_controlnet(path, base_unet=made("SDXL")["unet"])


# -- options ----------------------------------------------------------------------------------------------


def test_shuffle_in_the_name_turns_on_global_average_pooling(tmp_path):
    original = made("SD1")["controlnet"]
    loaded = load_controlnet(write_lllyasviel(tmp_path / "control_v11e_sd15_Shuffle.pth", original))
    assert loaded.global_average_pooling
    pooled = residuals(loaded.model, controlnet_inputs(original))
    full = residuals(original, controlnet_inputs(original))
    for p, f in zip(pooled, full, strict=True):
        assert p.shape[-2:] == (1, 1)
        torch.testing.assert_close(p, f.mean(dim=(2, 3), keepdim=True), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dtype_is_honoured(tmp_path, dtype):
    original = made("SD2")["controlnet"]
    loaded = load_controlnet(
        write_lllyasviel(tmp_path / "c.safetensors", original), dtype=dtype, device="cpu"
    )
    assert {p.dtype for p in loaded.model.parameters()} == {dtype}
    assert loaded.model.device.type == "cpu"
    assert_same_residuals(loaded.model, original, atol=0.05)


def test_fp16_file_loads_in_float32_when_asked(tmp_path):
    original = made("SD1")["controlnet"]
    path = write_lllyasviel(tmp_path / "c_fp16.safetensors", original, dtype=torch.float16)
    loaded = load_controlnet(path)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    assert_same_residuals(loaded.model, original, atol=0.01)


def test_a_diff_controlnet_is_built_on_pristine_weights_not_on_resident_lora_deltas(tmp_path):
    original, unet = made("SD1")["controlnet"], made("SD1")["unet"]
    write_diff(tmp_path / "diff_control_sd15_canny.safetensors", original, unet)
    sd = SDModel("SD1", unet, None, [], {})
    conv = unet.down_blocks[0].resnets[0].conv1
    pristine = conv.weight.detach().clone()
    backups = WeightBackups()
    backups.replace("conv1", conv, "weight", conv.weight + 1.0)  # a LoRA left on the model by a job
    resident_patches(sd)["networks"] = backups.restore_all
    models = ControlNetModels([tmp_path])
    loaded = models.load(models.list()[0], sd).model
    assert torch.equal(conv.weight, pristine) and resident_patches(sd) == {}
    assert_same_residuals(loaded, original, atol=1e-5)


def test_a_lent_controlnet_is_found_and_loaded_by_name_only_while_lent(tmp_path):
    """A ControlNet in memory (one being trained) is usable by units under `<name> [training]` while the
    block runs; it is never listed, and the name goes with it."""
    made_sd1 = made("SD1")
    original, unet = made_sd1["controlnet"], made_sd1["unet"]
    write_lllyasviel(tmp_path / "canny.safetensors", original)
    sd = SDModel("SD1", unet, None, [], {})
    models = ControlNetModels([tmp_path])
    loaded = LoadedControlNet(original, "SD1", "mine (training)", 3)
    with models.lend("mine", loaded) as name:
        assert name == "mine [training]"
        file = models.find(name)
        assert file is not None and file.lent is loaded and file.name == name
        assert models.load(file, sd) is loaded
        assert models.names() == ["None", models.list()[0].name] and "mine" not in str(models.names())
    with pytest.raises(InvalidRequestError, match="not found"):
        models.find(name)
    sdxl = LoadedControlNet(original, "SDXL", "sdxl (training)", 3)
    with models.lend("sdxl", sdxl) as other, pytest.raises(ModelLoadError, match="SDXL"):
        models.load(models.find(other) or models.list()[0], sd)


# -- Control-LoRA --------------------------------------------------------------------------------------


def _control_lora(controlnet: ControlNetModel, unet, rank: int | None = None) -> dict[str, torch.Tensor]:
    """Stability AI's Control-LoRA layout for `controlnet`: its weights that differ from the UNet's as
    `<layer>.up` / `<layer>.down` (an SVD of the difference; `rank` None keeps it exact), everything the
    UNet lacks (hint block, zero convolutions) and the biases and norms as full tensors, the
    `lora_controlnet` marker, no prefix."""
    cn = lllyasviel_state_dict(controlnet, prefix="")
    base = unet_to_ldm(unet.state_dict(), unet.config, prefix="")
    state = {"lora_controlnet": torch.tensor([])}
    for key, value in cn.items():
        shared = key in base and key.endswith(".weight") and value.ndim in (2, 4)
        if not shared:
            state[key] = value
            continue
        delta = (value - base[key]).float().flatten(1)
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        keep = len(s) if rank is None else rank
        layer = key.removesuffix(".weight")
        state[f"{layer}.up"] = (u[:, :keep] * s[:keep]).reshape(
            value.shape[0], keep, *([1] * (value.ndim - 2))
        )
        state[f"{layer}.down"] = vh[:keep].reshape(keep, *value.shape[1:]).contiguous()
    return {k: v.contiguous() for k, v in state.items()}


def test_a_control_lora_loads_onto_the_checkpoint_s_unet_as_the_controlnet_it_encodes(tmp_path):
    original, unet = made("SDXL")["controlnet"], made("SDXL")["unet"]
    path = tmp_path / "control-lora-canny-rank128.safetensors"
    save_file(_control_lora(original, unet), path)
    loaded = load_controlnet(path, base_unet=unet, expected_family="SDXL")
    assert loaded.family == "SDXL"
    assert_same_residuals(loaded.model, original, atol=1e-4)  # SVD round trip: float error only
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}  # noqa: SIM118
    assert detect_controlnet_family(header) == "SDXL"  # listed with its family from the header alone


def test_a_control_lora_needs_the_checkpoint_and_a_fitting_one(tmp_path):
    path = tmp_path / "control-lora.safetensors"
    save_file(_control_lora(made("SDXL")["controlnet"], made("SDXL")["unet"], rank=2), path)
    with pytest.raises(ModelLoadError, match="Control-LoRA: it holds only changes"):
        load_controlnet(path)
    with pytest.raises(ModelLoadError, match="is for SDXL|does not fit"):
        load_controlnet(path, base_unet=made("SD1")["unet"], expected_family="SD1")
