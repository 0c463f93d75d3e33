"""Loading A1111 single-file checkpoints of every family: round trips, detection, strict keys, yaml, EMA."""

from __future__ import annotations

import pytest
import torch
from accelerate import init_empty_weights

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.families import FAMILIES, detect_family, get_family
from modules.sumi.engine.families.base import head_dim_64_heads, heads_dividing, norm_groups
from modules.sumi.engine.files import read_state_dict
from modules.sumi.engine.ldm_export import save_checkpoint, to_single_file_state_dict
from modules.sumi.engine.text.tokenizer import get_tokenizer
from modules.sumi.engine.tiny_models import full_size
from tests.fixtures.tiny_models import BUILDERS, write_tiny_checkpoint

EXPECTED_TEXT = {  # (layer, final_norm, pooled, pad id) per encoder
    "SD1": [(-1, True, False, 49407)],
    "SD2": [(-1, True, False, 0)],
    "SDXL": [(-2, False, False, 49407), (-2, False, True, 0)],
}


def _config(module) -> dict:
    config = module.config if isinstance(module.config, dict) else module.config.to_dict()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if not k.startswith("_")}


def assert_same_module(loaded: torch.nn.Module, original: torch.nn.Module) -> None:
    got, want = loaded.state_dict(), original.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    got_config, want_config = _config(loaded), _config(original)
    if "transformers_version" in want_config:  # a transformers config
        got_config.pop("transformers_version", None), want_config.pop("transformers_version", None)
    assert got_config == want_config


def unet_out(unet, cross_dim: int, sdxl: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, unet.config.in_channels, 8, 8, generator=generator)
    context = torch.randn(1, 77, cross_dim, generator=generator)
    added = None
    if sdxl:
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        added = {
            "text_embeds": torch.randn(1, pooled, generator=generator),
            "time_ids": torch.tensor([[64.0] * 6]),
        }
    with torch.no_grad():
        return unet(x, torch.tensor([500]), encoder_hidden_states=context, added_cond_kwargs=added).sample


def vae_out(vae) -> torch.Tensor:
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        latent = vae.encode(image).latent_dist.mean
        return vae.decode(latent).sample


def text_out(model, tokenizer) -> torch.Tensor:
    ids = tokenizer(["a photo of a cat"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids, output_hidden_states=True).hidden_states[-2]


def check_round_trip(model, components) -> None:
    family = components["family"]
    assert model.family == family
    assert_same_module(model.unet, components["unet"])
    assert_same_module(model.vae, components["vae"])
    assert len(model.text_encoders) == len(components["text_encoders"])
    for spec, original, expected in zip(
        model.text_encoders, components["text_encoders"], EXPECTED_TEXT[family], strict=True
    ):
        assert_same_module(spec.model, original)
        assert (spec.layer, spec.final_norm, spec.pooled, spec.tokenizer.pad_token_id) == expected
        assert torch.equal(text_out(spec.model, spec.tokenizer), text_out(original, spec.tokenizer))
    cross = model.unet.config.cross_attention_dim
    assert torch.equal(
        unet_out(model.unet, cross, model.is_sdxl), unet_out(components["unet"], cross, model.is_sdxl)
    )
    assert torch.equal(vae_out(model.vae), vae_out(components["vae"]))


# -- round trips -------------------------------------------------------------------------------------------


def test_sd1_round_trip(tiny_sd1_ckpt):
    path, components = tiny_sd1_ckpt
    model = load_checkpoint(path)
    check_round_trip(model, components)
    assert (model.prediction_type, model.variant, model.is_inpainting) == ("epsilon", "", False)
    assert model.vae_scaling_factor == 0.18215 and model.vae_scale == 8
    assert model.unet.config.attention_head_dim == 8
    assert model.scheduler_config == {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
        "steps_offset": 1,
        "clip_sample": False,
        "set_alpha_to_one": False,
        "timestep_spacing": "leading",
    }
    assert model.source == str(path)


def test_sd2_v_round_trip_with_yaml(tiny_sd2v_ckpt):
    path, components = tiny_sd2v_ckpt
    model = load_checkpoint(path)
    check_round_trip(model, components)
    assert (model.prediction_type, model.variant) == ("v_prediction", "v")
    assert model.scheduler_config["prediction_type"] == "v_prediction"
    assert model.extra["prediction_type_from"] == str(path.with_suffix(".yaml"))
    assert model.unet.config.use_linear_projection is True
    assert model.text_encoders[0].model.config.hidden_act == "gelu"
    assert (
        model.text_encoders[0].model.config.num_hidden_layers == 2
    )  # the file's unused 3rd block is dropped


def test_sdxl_round_trip(tiny_sdxl_ckpt):
    path, components = tiny_sdxl_ckpt
    model = load_checkpoint(path)
    check_round_trip(model, components)
    assert model.vae_scaling_factor == 0.13025 and model.is_sdxl
    assert model.unet.config.transformer_layers_per_block == [1, 2]
    assert model.unet.config.addition_time_embed_dim == 8
    assert [spec.model.config.hidden_act for spec in model.text_encoders] == ["quick_gelu", "gelu"]


@pytest.mark.parametrize("family", ["SD1", "SD2", "SDXL"])
def test_nine_channel_checkpoint_is_detected_and_loads_as_inpainting(tmp_path, family):
    path = tmp_path / "inpaint.safetensors"
    components = write_tiny_checkpoint(path, family, inpaint=True)
    assert detect_family(read_state_dict(path)).name == family
    model = load_checkpoint(path)
    check_round_trip(model, components)
    assert model.is_inpainting and model.unet.config.in_channels == 9
    assert (model.variant, model.prediction_type) == ("inpaint", "epsilon")
    if family == "SD2":
        assert model.extra["prediction_type_from"] == "family default (SD2 inpainting)"


def test_detect_family(tiny_sd1_ckpt, tiny_sd2v_ckpt, tiny_sdxl_ckpt):
    for path, components in (tiny_sd1_ckpt, tiny_sd2v_ckpt, tiny_sdxl_ckpt):
        assert detect_family(read_state_dict(path)).name == components["family"]
    assert [f.name for f in FAMILIES] == ["SDXL", "SDXL-refiner", "SD2", "SD1"]
    assert get_family("sdxl").name == "SDXL"
    with pytest.raises(ModelLoadError, match="unknown model family"):
        get_family("SD3")


def test_unknown_layout_names_every_expectation():
    with pytest.raises(ModelLoadError) as info:
        detect_family(
            {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, source="odd.safetensors"
        )
    message = str(info.value)
    assert "odd.safetensors" in message and "model.diffusion_model.* (1)" in message
    for family in FAMILIES:
        assert family.expectation in message


# -- dtypes and formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_dtype", [torch.float16, torch.bfloat16])
def test_half_precision_files_load(tmp_path, file_dtype):
    path = tmp_path / "half.safetensors"
    components = write_tiny_checkpoint(path, "SD1", dtype=file_dtype)
    model = load_checkpoint(path)
    assert model.dtype == torch.float32 and model.vae.dtype == torch.float32
    want = components["unet"].state_dict()
    for key, value in model.unet.state_dict().items():
        assert torch.equal(value, want[key].to(file_dtype).float()), key
    as_half = load_checkpoint(path, dtype=torch.float16)
    assert {p.dtype for m in as_half.modules() for p in m.parameters()} == {torch.float16}


def test_ckpt_file_loads(tmp_path):
    path = tmp_path / "model.ckpt"
    components = write_tiny_checkpoint(path, "SD1")
    assert set(torch.load(path, weights_only=True)) == {"state_dict"}
    check_round_trip(load_checkpoint(path), components)


# -- strict keys ---------------------------------------------------------------------------------------------


def _rewrite(tmp_path, source, change) -> tuple:
    sd = read_state_dict(source)
    change(sd)
    path = tmp_path / "changed.safetensors"
    save_checkpoint(path, sd)
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda sd: sd.pop("model.diffusion_model.input_blocks.1.1.proj_out.bias"),
            "1 missing: model.diffusion_model.input_blocks.1.1.proj_out.bias",
        ),
        (
            lambda sd: sd.update({"model.diffusion_model.input_blocks.1.0.extra.weight": torch.zeros(2)}),
            "1 unexpected: model.diffusion_model.input_blocks.1.0.extra.weight",
        ),
        (lambda sd: sd.update({"model.diffusion_model.foo": torch.zeros(2)}), "model.diffusion_model.foo"),
        (
            lambda sd: sd.update({"something_else.weight": torch.zeros(2)}),
            "1 unexpected: something_else.weight",
        ),
        (
            lambda sd: sd.pop("first_stage_model.decoder.mid.attn_1.k.bias"),
            "first_stage_model.decoder.mid.attn_1.k.bias",
        ),
        (
            lambda sd: sd.pop("cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.bias"),
            "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.bias",
        ),
        (
            lambda sd: sd.update({"model.diffusion_model.out.2.bias": torch.zeros(5)}),
            r"model.diffusion_model.out.2.bias \(5,\) \(expected \(4,\)\)",
        ),
    ],
)
def test_mismatched_weights_are_named(tmp_path, tiny_sd1_ckpt, change, named):
    path = _rewrite(tmp_path, tiny_sd1_ckpt[0], change)
    with pytest.raises(ModelLoadError, match=named) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_ignored_keys_are_accepted(tmp_path, tiny_sd1_ckpt):
    extra = {
        "betas": torch.zeros(1000),
        "alphas_cumprod": torch.zeros(1000),
        "posterior_mean_coef2": torch.zeros(1000),
        "model_ema.decay": torch.tensor(0.9999),
        "model_ema.num_updates": torch.tensor(10),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77)[None],
    }
    path = _rewrite(tmp_path, tiny_sd1_ckpt[0], lambda sd: sd.update(extra))
    check_round_trip(load_checkpoint(path), tiny_sd1_ckpt[1])


def test_old_sd1_clip_keys_without_text_model(tmp_path, tiny_sd1_ckpt):
    def strip(sd):
        for key in [k for k in sd if k.startswith("cond_stage_model.transformer.text_model.")]:
            sd[key.replace("transformer.text_model.", "transformer.")] = sd.pop(key)

    check_round_trip(load_checkpoint(_rewrite(tmp_path, tiny_sd1_ckpt[0], strip)), tiny_sd1_ckpt[1])


# -- EMA ---------------------------------------------------------------------------------------------------


def _ema_name(key: str) -> str:
    """LitEma's naming: the UNet key after `model.` with the dots removed."""
    return "model_ema." + "".join(key.split(".")[1:])


def test_ema_only_file_is_restored(tmp_path, tiny_sdxl_ckpt):
    def to_ema(sd):
        for key in [k for k in sd if k.startswith("model.diffusion_model.")]:
            sd[_ema_name(key)] = sd.pop(key)
        sd["model_ema.decay"] = torch.tensor(0.9999)

    check_round_trip(load_checkpoint(_rewrite(tmp_path, tiny_sdxl_ckpt[0], to_ema)), tiny_sdxl_ckpt[1])


def test_non_ema_weights_win_over_ema(tmp_path, tiny_sd1_ckpt):
    def add_ema(sd):
        for key in [k for k in sd if k.startswith("model.diffusion_model.")]:
            sd[_ema_name(key)] = sd[key] + 1

    check_round_trip(load_checkpoint(_rewrite(tmp_path, tiny_sd1_ckpt[0], add_ema)), tiny_sd1_ckpt[1])


# -- prediction type: yaml, metadata, argument, A1111's test --------------------------------------------------


def test_yaml_given_explicitly_and_beside(tmp_path, tiny_sd1_ckpt):
    yaml = tmp_path / "elsewhere.yaml"
    yaml.write_text(
        "model:\n  params:\n    parameterization: v\n    unet_config:\n      params: {num_heads: 8, context_dim: 768}\n"
    )
    model = load_checkpoint(tiny_sd1_ckpt[0], config_yaml=yaml)
    assert (model.family, model.prediction_type) == ("SD1", "v_prediction")
    assert load_checkpoint(tiny_sd1_ckpt[0]).prediction_type == "epsilon"  # no yaml beside it


def test_yaml_that_does_not_fit_is_refused(tmp_path, tiny_sd1_ckpt):
    yaml = tmp_path / "xl.yaml"
    yaml.write_text("model:\n  params:\n    network_config:\n      params: {num_head_channels: 64}\n")
    with pytest.raises(ModelLoadError, match="describes an SDXL model but .* holds SD1 weights"):
        load_checkpoint(tiny_sd1_ckpt[0], config_yaml=yaml)
    yaml.write_text("model:\n  params:\n    unet_config:\n      params: {in_channels: 9, num_heads: 8}\n")
    with pytest.raises(ModelLoadError, match="in_channels=9 but the UNet .* has 4"):
        load_checkpoint(tiny_sd1_ckpt[0], config_yaml=yaml)


def test_prediction_from_metadata_and_argument(tmp_path):
    path = tmp_path / "meta.safetensors"
    write_tiny_checkpoint(path, "SDXL", metadata={"modelspec.prediction_type": "v"})
    model = load_checkpoint(path)
    assert model.prediction_type == "v_prediction" and model.extra["prediction_type_from"].endswith(
        "metadata"
    )
    assert load_checkpoint(path, prediction_type="epsilon").prediction_type == "epsilon"
    with pytest.raises(ModelLoadError, match="unknown prediction type"):
        load_checkpoint(path, prediction_type="x0")


@pytest.mark.parametrize(("bias", "expected"), [(-2.0, "v_prediction"), (0.0, "epsilon")])
def test_sd2_v_prediction_test_without_yaml(tmp_path, bias, expected):
    """A1111's test: mean(unet(0.5, t=999) - 0.5) < -1 means v-prediction."""
    components = BUILDERS["SD2"]()
    with torch.no_grad():
        components["unet"].conv_out.weight.zero_()
        components["unet"].conv_out.bias.fill_(bias)
    sd = to_single_file_state_dict("SD2", components["unet"], components["vae"], components["text_encoders"])
    path = save_checkpoint(tmp_path / "sd2.safetensors", sd)
    model = load_checkpoint(path)
    assert (model.prediction_type, model.extra["prediction_type_from"]) == (expected, "v-prediction test")
    half = load_checkpoint(path, dtype=torch.bfloat16)  # the test runs in fp32, the model stays bf16
    assert half.prediction_type == expected and half.unet.dtype == torch.bfloat16


# -- hyperparameter rules ----------------------------------------------------------------------------------


def test_rules_for_values_not_in_the_weights():
    assert [head_dim_64_heads(c) for c in (320, 640, 1280, 32, 64, 96, 200)] == [5, 10, 20, 1, 1, 1, 2]
    assert heads_dividing(36, 8) == 6 and heads_dividing(32, 8) == 8
    assert norm_groups([320, 640, 1280]) == 32 and norm_groups([16, 32]) == 16 and norm_groups([24]) == 24
    assert norm_groups([128, 256, 512, 512]) == 32
    assert get_tokenizer("!").pad_token_id == 0


# -- the real sizes, on the meta device (no memory, no weights) ----------------------------------------------


@pytest.mark.parametrize("family", ["SD1", "SD2", "SDXL", "SDXL-refiner"])
def test_real_architectures_are_inferred_exactly(family):
    """The released models' configs come out of the weight shapes and the family rules."""
    with init_empty_weights():
        components = full_size(family)  # SD1.5 / SD2.1-v / SDXL base
        parts = [components["unet"], components["vae"], components["text_encoders"]]
        state_dict = to_single_file_state_dict(family, *parts)
    prediction = "v_prediction" if family == "SD2" else "epsilon"  # SD2.1-768-v
    model = get_family(family).build(state_dict, source="meta", prediction_type=prediction)
    assert _config(model.unet) == _config(components["unet"])
    assert _config(model.vae) == _config(components["vae"])
    for spec, original in zip(model.text_encoders, components["text_encoders"], strict=True):
        got, want = spec.model.config.to_dict(), original.config.to_dict()
        assert {k: got[k] for k in want if k != "transformers_version"} == {
            k: v for k, v in want.items() if k != "transformers_version"
        }
