"""The CPU bf16 fast path on the tiny model: placement, images close to fp32, --no-half exactly fp32, and
the features that touch weights or dtypes (LoRA, ControlNet, hypernetworks, img2img, inpainting)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel

from modules.sumi.engine import generate as engine
from modules.sumi.engine import img2img
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.controlnet.control import ControlUnit
from modules.sumi.engine.devices import select_device
from modules.sumi.engine.networks import NetworkPatcher, network_from_state_dict
from modules.sumi.engine.networks.hypernetwork import (
    apply_hypernetworks,
    load_hypernetwork,
    remove_hypernetworks,
)
from modules.sumi.engine.placement import place, precision_infotext
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_hypernetworks import write_hypernetwork
from tests.fixtures.tiny_models import write_tiny_checkpoint

ZEN4 = frozenset({"avx512f", "avx512_bf16"})
SIZE = 64
# Largest difference of one 0-255 channel value between the bf16 and the fp32 image of the tiny model
# (same seed, 4 steps, CFG 7), and of the mean over all pixels; measured (3 samplers x 2 seeds): max 14,
# mean 1.33, 99th percentile 6. A person cannot see 24 levels on a few pixels.
MAX_LEVELS, MEAN_LEVELS = 24, 2.5


def _request(**kw) -> engine.BatchRequest:
    kw.setdefault("sampler", "Euler a")
    return engine.BatchRequest(
        prompts=["a red square"], negative_prompts=[""], seeds=[3], width=SIZE, height=SIZE, steps=4, **kw
    )


def _pixels(result: engine.BatchResult) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


@pytest.fixture(scope="module")
def fp32(tiny_sd1_ckpt):
    return load_checkpoint(tiny_sd1_ckpt[0])


@pytest.fixture(scope="module")
def fast(fp32):
    model = copy.deepcopy(fp32)
    place(model, select_device(use_cpu=True, cpu_features=ZEN4), size_rule=False)
    return model


def test_fast_path_has_bf16_weights_in_channels_last_and_fp32_latents(fast):
    assert fast.dtype == torch.bfloat16 and fast.vae.dtype == torch.bfloat16
    assert fast.text_encoders[0].model.dtype == torch.bfloat16
    assert fast.latent_dtype == torch.float32 and fast.extra["channels_last"]
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    result = engine.generate(fast, _request(), progress_bar=False)
    assert result.latents.dtype == torch.float32
    assert precision_infotext(fast) == "bf16"


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M", "DDIM"])
def test_fast_path_image_is_within_a_few_levels_of_the_fp32_image(fp32, fast, sampler):
    ref = _pixels(engine.generate(fp32, _request(sampler=sampler), progress_bar=False))
    got = _pixels(engine.generate(fast, _request(sampler=sampler), progress_bar=False))
    gap = np.abs(ref - got)
    assert gap.max() <= MAX_LEVELS and gap.mean() <= MEAN_LEVELS, (gap.max(), gap.mean())


def test_no_half_is_exactly_fp32(fp32):
    model = copy.deepcopy(fp32)
    text = place(model, select_device(use_cpu=True, cpu_features=ZEN4, no_half=True))
    assert model.dtype == torch.float32 and model.latent_dtype == torch.float32 and "fp32" in text
    ours = engine.generate(model, _request(), progress_bar=False)
    plain = engine.generate(fp32, _request(), progress_bar=False)
    assert torch.equal(ours.latents, plain.latents)
    assert np.array_equal(_pixels(ours), _pixels(plain))
    assert precision_infotext(model) is None


def test_size_rule_keeps_a_tiny_unet_fp32_and_puts_its_vae_in_bf16(fp32):
    model = copy.deepcopy(fp32)
    text = place(model, select_device(use_cpu=True, cpu_features=ZEN4))
    assert model.dtype == torch.float32 and model.vae.dtype == torch.bfloat16
    assert "small" in text and model.extra["vae_dtype"] == torch.bfloat16
    forced = copy.deepcopy(fp32)
    place(forced, select_device(use_cpu=True, cpu_features=frozenset(), precision="half"))
    assert forced.dtype == torch.bfloat16


def test_no_half_vae_keeps_the_vae_fp32_on_the_fast_path(fp32):
    model = copy.deepcopy(fp32)
    place(model, select_device(use_cpu=True, cpu_features=ZEN4, no_half_vae=True), size_rule=False)
    assert model.dtype == torch.bfloat16 and model.vae.dtype == torch.float32
    assert engine.generate(model, _request(), progress_bar=False).images[0].size == (SIZE, SIZE)


def test_lora_on_bf16_weights_changes_the_image_and_restores_exactly(fast, tiny_sd1_ckpt):
    before = {k: v.clone() for k, v in fast.unet.state_dict().items()}
    plain = _pixels(engine.generate(fast, _request(), progress_bar=False))
    network = network_from_state_dict(tn.lora_state_dict(tiny_sd1_ckpt[1], locon=True), "lora")
    patcher = NetworkPatcher(fast)
    patcher.apply([(network, 1.0, 1.0)])
    try:
        assert fast.dtype == torch.bfloat16
        assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        patched = _pixels(engine.generate(fast, _request(), progress_bar=False))
    finally:
        patcher.restore()
    assert not np.array_equal(plain, patched)
    assert all(torch.equal(v, before[k]) for k, v in fast.unet.state_dict().items())
    assert np.array_equal(plain, _pixels(engine.generate(fast, _request(), progress_bar=False)))


def test_controlnet_runs_in_bf16_with_the_bf16_unet(fast):
    torch.manual_seed(1)
    controlnet = ControlNetModel.from_unet(copy.deepcopy(fast.unet).float())
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # from_unet zeroes the output convolutions: give them weights
        for param in controlnet.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    controlnet = controlnet.to(torch.bfloat16).eval()  # pyright: ignore[reportArgumentType]
    hint = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    plain = _pixels(engine.generate(fast, _request(), progress_bar=False))
    unit = ControlUnit(controlnet, hint, weight=1.0)
    controlled = engine.generate(fast, _request(control_units=[unit]), progress_bar=False)
    assert controlled.latents.dtype == torch.float32
    assert not np.array_equal(plain, _pixels(controlled))


def test_hypernetwork_wraps_the_bf16_unet_and_comes_off(fast, tmp_path):
    dims = (int(fast.unet.config["cross_attention_dim"]),)
    write_hypernetwork(tmp_path / "hn.pt", dims, activation_func="tanh", scale=0.5)
    hn = load_hypernetwork(tmp_path / "hn.pt")
    plain = _pixels(engine.generate(fast, _request(), progress_bar=False))
    assert apply_hypernetworks(fast.unet, [(hn, 1.0)]) > 0
    try:
        wrapped = _pixels(engine.generate(fast, _request(), progress_bar=False))
    finally:
        remove_hypernetworks(fast.unet)
    assert not np.array_equal(plain, wrapped)
    assert np.array_equal(plain, _pixels(engine.generate(fast, _request(), progress_bar=False)))


def test_img2img_encode_and_inpainting_run_on_the_fast_path(fast, tmp_path):
    pixels = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4)) * 2 - 1
    init = img2img.encode(fast, pixels)
    assert init.dtype == torch.float32
    result = engine.generate(fast, _request(init=img2img.InitLatents(init, 0.6)), progress_bar=False)
    assert result.images[0].size == (SIZE, SIZE)
    path = tmp_path / "inpaint.safetensors"
    write_tiny_checkpoint(path, "SD1", inpaint=True)
    inpaint = load_checkpoint(path)
    place(inpaint, select_device(use_cpu=True, cpu_features=ZEN4), size_rule=False)
    mask = torch.zeros((1, 1, SIZE, SIZE))
    mask[:, :, 16:48, 16:48] = 1
    conditioning = img2img.inpaint_conditioning(inpaint, pixels, mask)
    start = img2img.InitLatents(img2img.encode(inpaint, pixels), 0.75, image_conditioning=conditioning)
    out = engine.generate(inpaint, _request(init=start), progress_bar=False)
    assert out.latents.dtype == torch.float32 and out.images[0].size == (SIZE, SIZE)
