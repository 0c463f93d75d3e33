"""Non-finite output never becomes a black image: damaged checkpoints and VAE files are refused at load,
NaN/inf latents after the UNet or the VAE are an error that says where (A1111's messages), the VAE is
retried in fp32 first, and a network whose deltas overflow is refused with the model left untouched."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.errors import ModelLoadError, NansException
from modules.sumi.engine.files import check_weights, weight_problem
from modules.sumi.engine.generate import VAE_REVERTED, BatchRequest, generate
from modules.sumi.engine.ldm_export import save_checkpoint, to_single_file_state_dict, vae_to_ldm
from modules.sumi.engine.nan_check import check_output
from modules.sumi.engine.networks import NetworkError, NetworkPatcher, load_network
from modules.sumi.engine.networks.extensions import NetworkPatch
from modules.sumi.engine.tiny_models import tiny, tiny_vae
from modules.sumi.engine.vae_loading import load_vae_file
from tests.fixtures import tiny_networks as tn

UNET_KEY = "model.diffusion_model.out.2.weight"  # the UNet's last conv
VAE_KEY = "first_stage_model.decoder.conv_out.weight"
CLIP_KEY = "cond_stage_model.transformer.text_model.final_layer_norm.weight"


@pytest.fixture(scope="module")
def sd1_state():
    c = tiny("SD1")
    return to_single_file_state_dict("SD1", c["unet"], c["vae"], c["text_encoders"])


def _write(tmp_path, state, key, value, name="damaged.safetensors"):
    damaged = dict(state)
    damaged[key] = state[key].clone()
    damaged[key].view(-1)[3] = value
    path = tmp_path / name
    save_checkpoint(path, damaged)
    return path


# -- loading ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        (UNET_KEY, float("nan"), "NaN"),
        (VAE_KEY, float("inf"), "infinite"),
        (CLIP_KEY, float("-inf"), "infinite"),
    ],
)
def test_checkpoint_with_non_finite_weight_is_refused_naming_file_and_tensor(
    tmp_path, sd1_state, key, value, what
):
    path = _write(tmp_path, sd1_state, key, value)
    with pytest.raises(ModelLoadError, match=rf"damaged\.safetensors: the .* tensor {key} holds {what}"):
        load_checkpoint(path)


def test_pickled_checkpoint_with_nan_is_refused_too(tmp_path, sd1_state):
    path = _write(tmp_path, sd1_state, UNET_KEY, float("nan"), name="damaged.ckpt")
    with pytest.raises(ModelLoadError, match=rf"damaged\.ckpt: the UNet tensor {UNET_KEY} holds NaN"):
        load_checkpoint(path)


def test_weight_too_big_for_half_precision_is_refused_only_in_half(tmp_path, sd1_state):
    path = _write(tmp_path, sd1_state, UNET_KEY, 1e6)
    with pytest.raises(ModelLoadError, match=rf"{UNET_KEY} holds values up to 1e\+06, more than float16"):
        load_checkpoint(path, dtype=torch.float16)
    assert load_checkpoint(path).family == "SD1"  # fp32 holds it: a strange file, not a broken one


def test_vae_file_with_nan_is_refused_in_both_layouts(tmp_path):
    vae = tiny_vae(seed=3, scaling_factor=0.18215, sample_size=512)
    diffusers_sd = {k: v.clone() for k, v in vae.state_dict().items()}
    diffusers_sd["decoder.conv_out.weight"].view(-1)[0] = float("nan")
    save_file(diffusers_sd, tmp_path / "diffusers.safetensors")
    with pytest.raises(
        ModelLoadError, match=r"diffusers\.safetensors: the VAE tensor decoder.conv_out.weight"
    ):
        load_vae_file(tmp_path / "diffusers.safetensors")
    ldm_sd = vae_to_ldm(diffusers_sd, vae.config, "")
    save_file(ldm_sd, tmp_path / "ldm.safetensors")
    with pytest.raises(ModelLoadError, match=r"ldm\.safetensors: the VAE tensor decoder.conv_out.weight"):
        load_vae_file(tmp_path / "ldm.safetensors")


def test_weight_problem_covers_every_float_dtype_and_ignores_integers():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        values = torch.randn(1000).to(dtype)
        assert weight_problem(values) is None
        values[500] = float("nan")
        assert weight_problem(values) == "holds NaN values"
    assert weight_problem(torch.tensor([1, 2**40])) is None
    assert weight_problem(torch.zeros(0)) is None
    check_weights({"a": torch.ones(3), "ids": torch.arange(3)}, "UNet", "ok.safetensors", torch.float16)


# -- after the UNet and after the VAE ----------------------------------------------------------------------


REQUEST = {"width": 64, "height": 64, "steps": 2, "sampler": "Euler"}


@pytest.fixture
def model(tiny_sd1_ckpt):
    """A fresh tiny SD1 model (fp32) per test: the tests damage it."""
    return load_checkpoint(tiny_sd1_ckpt[0])


def _request(seeds=(7,)):
    n = len(seeds)
    return BatchRequest(["a red circle"] * n, [""] * n, list(seeds), **REQUEST)


def _run(model, **kwargs):
    return generate(model, _request(kwargs.pop("seeds", (7,))), progress_bar=False, **kwargs)


def _overflow_unet(model):
    """Finite weights that overflow fp32 at run time: what a broken merge or bad fine-tune gives."""
    with torch.no_grad():
        model.unet.conv_out.weight.fill_(1e38)


def _vae_that_overflows_in_half(model):
    """Make the decoder's first conv so large that its output exceeds float16's range (65504) while
    its weights still fit: fp16 gives inf, then NaN in the GroupNorm after it; fp32 stays finite
    (the norm scales it back), as with SDXL's original VAE."""
    with torch.no_grad():
        model.vae.decoder.conv_in.weight.mul_(1e4)


def test_nan_latents_after_the_unet_are_an_error_in_a1111_words(model):
    _overflow_unet(model)
    with pytest.raises(NansException) as caught:
        _run(model, seeds=(7, 8))
    message = str(caught.value)
    assert caught.value.where == "unet"
    assert message.startswith("A tensor with all NaNs was produced in Unet for the images with seed 7, 8.")
    assert "32-bit floats, so precision is not the cause" in message
    assert message.endswith("Use --disable-nan-check commandline argument to disable this check.")


def test_disable_nan_check_gives_the_black_image_as_a1111_does(model):
    _overflow_unet(model)
    with pytest.warns(RuntimeWarning):  # numpy casting NaN to uint8
        result = _run(model, nan_check=False)
    assert result.images[0].getextrema() == ((0, 0), (0, 0), (0, 0))


def test_half_vae_that_gives_nan_is_retried_in_fp32_with_a_warning(model):
    expected = _run(model).images[0]
    _vae_that_overflows_in_half(model)
    model.vae.half().float()  # the weights the fp32 retry will have: rounded to fp16
    reference = _run(model).images[0]  # fp32: finite (and a different picture: the VAE was changed)
    model.vae.half()
    result = _run(model)
    assert model.vae.dtype == torch.float32  # stays in fp32, as A1111's dtype_vae does
    assert list(result.images[0].getdata()) == list(reference.getdata()) != list(expected.getdata())
    assert result.warnings == [VAE_REVERTED.format(dtype="float16")]


def test_half_vae_nan_without_the_fallback_is_an_error_naming_the_vae(model):
    _vae_that_overflows_in_half(model)
    model.vae.half()
    with pytest.raises(
        NansException, match=r"^A tensor with all NaNs was produced in VAE for the image"
    ) as caught:
        _run(model, vae_fallback=False)
    assert caught.value.where == "vae" and "--no-half-vae" in str(caught.value)
    assert model.vae.dtype == torch.float16


def test_vae_nan_in_fp32_too_is_an_error_after_the_retry(model):
    with torch.no_grad():
        model.vae.decoder.conv_out.bias.fill_(float("nan"))
    model.vae.half()
    with pytest.raises(NansException, match=r"produced in VAE.* The VAE runs in 32-bit floats") as caught:
        _run(model)
    assert caught.value.where == "vae" and model.vae.dtype == torch.float32


def test_partly_nan_output_is_reported_too_for_the_images_it_is_in():
    x = torch.zeros(3, 4, 8, 8)
    x[1, 0, 2, 2] = float("inf")
    with pytest.raises(NansException, match=r"^A tensor with NaN or infinite values .* with seed 11\."):
        check_output(x, "unet", torch.float16, seeds=[10, 11, 12])
    check_output(torch.zeros(2, 4, 8, 8), "unet", torch.float32)


def test_a1111_devices_test_for_nans_raises_the_engines_exception():
    from modules import devices

    assert devices.NansException is NansException
    with pytest.raises(NansException, match=r"^A tensor with all NaNs was produced in VAE\."):
        devices.test_for_nans(torch.full((1, 3), float("nan")), "vae")
    devices.test_for_nans(torch.tensor([float("nan"), 1.0]), "unet")  # A1111: only all-NaN tensors


# -- networks whose deltas overflow -----------------------------------------------------------------------


def _snapshot(model):
    return {
        f"{i}.{k}": v.detach().clone()
        for i, module in enumerate(model.modules())
        for k, v in module.state_dict().items()
    }


def _unchanged(model, before):
    return all(torch.equal(v, before[k]) for k, v in _snapshot(model).items())


def _lora(tmp_path, components, name, value=None, **kwargs):
    """A kohya LoRA (rank 4, alpha 2) whose first layer's up and down matrices are all `value`: its
    delta there is 2 * value**2 everywhere. Returns the network and that layer's name."""
    state = tn.lora_state_dict(components, **kwargs)
    layer = sorted(k for k in state if k.endswith("lora_up.weight"))[0].removesuffix(".lora_up.weight")
    if value is not None:
        for part in ("lora_up.weight", "lora_down.weight"):
            state[f"{layer}.{part}"] = torch.full_like(state[f"{layer}.{part}"], value)
    path = tmp_path / f"{name}.safetensors"
    tn.save(path, state)
    return load_network(path), layer


def test_lora_with_1e30_values_is_refused_naming_it_and_the_layer(tmp_path, model, tiny_sd1_ckpt):
    components = tiny_sd1_ckpt[1]
    good, _ = _lora(tmp_path, components, "good", seed=1)
    huge, layer = _lora(tmp_path, components, "huge", 1e30, seed=2)
    patcher = NetworkPatcher(model)
    patcher.apply([(good, 1.0, 1.0)])
    before, applied = _snapshot(model), patcher.patched_layers
    with pytest.raises(NetworkError, match=rf"huge\.safetensors: its deltas overflow .* layer, .*{layer} "):
        patcher.apply([(good, 1.0, 1.0), (huge, 1.0, 1.0)])
    assert _unchanged(model, before) and patcher.patched_layers == applied
    patcher.restore()


def test_overflowing_lora_is_dropped_from_the_job_with_a_warning_and_the_image_unchanged(
    tmp_path, model, tiny_sd1_ckpt
):
    plain = _run(model).images[0]
    huge, layer = _lora(tmp_path, tiny_sd1_ckpt[1], "huge", 1e30)
    before = _snapshot(model)
    result = _run(model, extensions=[NetworkPatch(NetworkPatcher(model), [(huge, 1.0, 1.0)])])
    assert list(result.images[0].getdata()) == list(plain.getdata())
    assert len(result.warnings) == 1 and result.warnings[0].startswith(f"Lora refused: {tmp_path}")
    assert layer in result.warnings[0] and _unchanged(model, before)


def test_lora_too_strong_for_half_weights_is_refused_where_fp32_takes_it(tmp_path, tiny_sd1_ckpt):
    components = tiny_sd1_ckpt[1]
    strong, layer = _lora(tmp_path, components, "strong", 1e3, te=False)  # delta 2e6
    half = load_checkpoint(tiny_sd1_ckpt[0], dtype=torch.float16)
    before = _snapshot(half)
    with pytest.raises(
        NetworkError, match=rf"strong\.safetensors: .*{layer} \(weight holds values up to .* float16"
    ):
        NetworkPatcher(half).apply([(strong, 1.0, 1.0)])
    assert _unchanged(half, before)
    full = NetworkPatcher(load_checkpoint(tiny_sd1_ckpt[0]))
    full.apply([(strong, 1.0, 1.0)])  # finite in fp32: a strong LoRA, not a broken one
    assert full.patched_layers


def test_two_loras_that_overflow_only_together_are_both_named(tmp_path, model, tiny_sd1_ckpt):
    components = tiny_sd1_ckpt[1]
    a, _ = _lora(tmp_path, components, "a", 1.0, te=False, seed=3)
    b, _ = _lora(tmp_path, components, "b", 1.0, te=False, seed=4)
    patcher = NetworkPatcher(model)
    before = _snapshot(model)
    patcher.apply([(a, 1.0, 1e38)])  # alone: 2e38, near float32's limit (3.4e38) but finite
    patcher.apply([(b, 1.0, 1e38)])
    patcher.restore()
    with pytest.raises(
        NetworkError, match=r"a\.safetensors: .*with the others.*; .*b\.safetensors: .*with the others"
    ):
        patcher.apply([(a, 1.0, 1e38), (b, 1.0, 1e38)])
    assert _unchanged(model, before)


def test_lora_too_big_for_the_unet_but_finite_in_its_weights_fails_the_job_not_black(
    tmp_path, model, tiny_sd1_ckpt
):
    big, _ = _lora(tmp_path, tiny_sd1_ckpt[1], "big", 1e15, te=False)  # weights 2e30: finite in fp32
    with pytest.raises(NansException, match=r"^A tensor with all NaNs was produced in Unet"):
        _run(model, extensions=[NetworkPatch(NetworkPatcher(model), [(big, 1.0, 1.0)])])
