"""Live preview methods: Approx cheap's fixed map, A1111's VAEApprox (Approx NN) and madebyollin's TAESD
decoder loaded from full-size random-weight files in the released key layout, and the fallback to
Approx cheap, said once, when a file is missing or refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from modules.sumi.engine.errors import UnsafeFileError
from modules.sumi.engine.extensions import DenoiserCall, DenoiserOutput, Extension, HookPoint, hook
from modules.sumi.engine.previews import (
    APPROX_CHEAP,
    APPROX_NN,
    METHODS,
    TAESD,
    PreviewNetworks,
    approx_nn,
    preview_pixels,
    taesd,
)
from modules.sumi.engine.previews.cheap import SD_LATENT_RGB, SDXL_LATENT_RGB, cheap_approximation
from modules.sumi.engine.previews.content import COMBINED, NEGATIVE, PROMPT, wants_uncond, x0_estimate
from modules.sumi.services.settings.options import PREVIEW_METHODS, builtin_options

# A1111's VAEApprox, as its model.pt / vaeapprox-sdxl.pt store it: conv1..conv8 (out, in, k, k).
VAE_APPROX_SHAPES = {
    "conv1": (8, 4, 7, 7),
    "conv2": (16, 8, 5, 5),
    "conv3": (32, 16, 3, 3),
    "conv4": (64, 32, 3, 3),
    "conv5": (32, 64, 3, 3),
    "conv6": (16, 32, 3, 3),
    "conv7": (8, 16, 3, 3),
    "conv8": (3, 8, 3, 3),
}
# TAESD decoder (taesd_decoder.pth): Sequential indices; blocks hold conv.0/2/4, upsampling convs no bias.
TAESD_BLOCKS = (3, 4, 5, 8, 9, 10, 13, 14, 15, 18)
TAESD_UPCONVS = (7, 12, 17)


def _random(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    fan_in = shape[1] * shape[2] * shape[3] if len(shape) == 4 else 1
    return torch.randn(shape, generator=gen) / fan_in**0.5


def vae_approx_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in VAE_APPROX_SHAPES.items():
        state[f"{name}.weight"] = _random(shape, gen)
        state[f"{name}.bias"] = _random((shape[0],), gen)
    return state


def taesd_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {"1.weight": _random((64, 4, 3, 3), gen), "1.bias": _random((64,), gen)}
    for block in TAESD_BLOCKS:
        for conv in (0, 2, 4):
            state[f"{block}.conv.{conv}.weight"] = _random((64, 64, 3, 3), gen)
            state[f"{block}.conv.{conv}.bias"] = _random((64,), gen)
    for index in TAESD_UPCONVS:
        state[f"{index}.weight"] = _random((64, 64, 3, 3), gen)
    state["19.weight"] = _random((3, 64, 3, 3), gen)
    state["19.bias"] = _random((3,), gen)
    return state


def vae_approx_reference(state: dict[str, torch.Tensor], latents: torch.Tensor) -> torch.Tensor:
    """A1111's forward written out: nearest 2x, pad 11, eight convs each followed by leaky ReLU 0.1."""
    x = F.interpolate(latents, scale_factor=2.0, mode="nearest")
    x = F.pad(x, (11, 11, 11, 11))
    for i in range(1, 9):
        x = F.leaky_relu(F.conv2d(x, state[f"conv{i}.weight"], state[f"conv{i}.bias"]), 0.1)
    return x


def taesd_reference(state: dict[str, torch.Tensor], latents: torch.Tensor) -> torch.Tensor:
    def conv(x, key, bias=True):
        return F.conv2d(x, state[f"{key}.weight"], state[f"{key}.bias"] if bias else None, padding=1)

    def block(x, i):
        y = F.relu(conv(x, f"{i}.conv.0"))
        y = F.relu(conv(y, f"{i}.conv.2"))
        return F.relu(conv(y, f"{i}.conv.4") + x)

    x = F.relu(conv(torch.tanh(latents / 3) * 3, "1"))
    for blocks, up in (((3, 4, 5), 7), ((8, 9, 10), 12), ((13, 14, 15), 17)):
        for i in blocks:
            x = block(x, i)
        x = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"), up, bias=False)
    return conv(block(x, 18), "19")


@pytest.fixture(scope="module")
def approx_folder(tmp_path_factory) -> Path:
    """models/VAE-approx with full-size random files as people download them (torch.save pickles)."""
    folder = tmp_path_factory.mktemp("VAE-approx")
    torch.save(vae_approx_state(1), folder / "model.pt")
    torch.save(vae_approx_state(2), folder / "vaeapprox-sdxl.pt")
    torch.save(taesd_state(3), folder / "taesd_decoder.pth")
    return folder


class _Model:
    """What the preview methods read from an SDModel besides the VAE (Full uses the real one)."""

    def __init__(self, sdxl: bool = False) -> None:
        self.is_sdxl = sdxl
        self.dtype = torch.float32


def test_the_methods_are_a1111s_and_the_setting_offers_each():
    assert METHODS == PREVIEW_METHODS == ("Full", "Approx NN", "Approx cheap", "TAESD")
    option = builtin_options()["show_progress_type"]
    assert option.default == "Approx NN" and option.label == "Live preview method"
    assert option.allowed() == list(METHODS)


@pytest.mark.parametrize(("sdxl", "coefs"), [(False, SD_LATENT_RGB), (True, SDXL_LATENT_RGB)])
def test_approx_cheap_is_the_families_linear_map_at_latent_size(sdxl, coefs):
    latents = torch.randn(1, 4, 5, 7, generator=torch.Generator().manual_seed(0))
    rgb = cheap_approximation(latents, sdxl)
    expected = torch.zeros(1, 3, 5, 7)
    for c in range(4):
        expected += latents[:, c : c + 1] * torch.tensor(coefs[c]).view(1, 3, 1, 1)
    torch.testing.assert_close(rgb, expected)
    pixels = preview_pixels(APPROX_CHEAP, _Model(sdxl), latents, None)  # pyright: ignore[reportArgumentType]
    assert pixels is not None and pixels.shape == (1, 3, 5, 7)
    torch.testing.assert_close(pixels, (expected / 2 + 0.5).clamp(0, 1))


def test_approx_nn_loads_a1111s_file_and_matches_its_forward(approx_folder):
    state = vae_approx_state(1)
    network = approx_nn.load(approx_folder / "model.pt")
    assert {k: tuple(v.shape) for k, v in network.state_dict().items()} == {
        k: tuple(v.shape) for k, v in state.items()
    }
    latents = torch.randn(1, 4, 8, 6, generator=torch.Generator().manual_seed(4))
    out = network(latents)
    assert out.shape == (1, 3, 16, 12)  # twice the latent size
    torch.testing.assert_close(out, vae_approx_reference(state, latents))


def test_taesd_loads_madebyollins_file_and_matches_its_forward(approx_folder):
    assert (approx_folder / "taesd_decoder.pth").stat().st_size > 4_000_000  # the real file's size
    state = taesd_state(3)
    network = taesd.load(approx_folder / "taesd_decoder.pth")
    assert set(network.state_dict()) == set(state)
    latents = torch.randn(1, 4, 4, 6, generator=torch.Generator().manual_seed(5))
    out = network(latents)
    assert out.shape == (1, 3, 32, 48)  # 8x: the image's own size
    torch.testing.assert_close(out, taesd_reference(state, latents), rtol=1e-4, atol=1e-5)
    pixels = preview_pixels(TAESD, _Model(), latents, PreviewNetworks(approx_folder))  # pyright: ignore[reportArgumentType]
    assert pixels is not None
    torch.testing.assert_close(pixels, taesd_reference(state, latents).clamp(0, 1), rtol=1e-4, atol=1e-5)


def test_sdxl_models_use_the_sdxl_file(approx_folder):
    networks = PreviewNetworks(approx_folder)
    sd = networks.get(APPROX_NN, False, torch.device("cpu"), torch.float32)
    xl = networks.get(APPROX_NN, True, torch.device("cpu"), torch.float32)
    assert sd is not None and xl is not None
    torch.testing.assert_close(xl.state_dict()["conv1.weight"], vae_approx_state(2)["conv1.weight"])
    assert networks.get(APPROX_NN, False, torch.device("cpu"), torch.float32) is sd  # loaded once


def test_a_missing_file_falls_back_to_approx_cheap_and_says_once_where_to_put_it(approx_folder):
    told: list[str] = []
    networks = PreviewNetworks(approx_folder, on_problem=told.append)
    latents = torch.randn(1, 4, 4, 4)
    for _ in range(3):
        pixels = preview_pixels(TAESD, _Model(sdxl=True), latents, networks)  # pyright: ignore[reportArgumentType]
        assert pixels is not None and pixels.shape == (1, 3, 4, 4)  # Approx cheap's size
    assert len(told) == 1
    assert (
        "taesdxl_decoder.pth" in told[0] and str(approx_folder) in told[0] and "does not download" in told[0]
    )


def test_an_unsafe_pickle_is_refused_and_the_preview_falls_back(tmp_path):
    state = vae_approx_state(0)
    torch.save({**state, "payload": os.system}, tmp_path / "model.pt")  # a global that could run code
    with pytest.raises(UnsafeFileError, match="refused"):
        approx_nn.load(tmp_path / "model.pt")
    told: list[str] = []
    networks = PreviewNetworks(tmp_path, on_problem=told.append)
    pixels = preview_pixels(APPROX_NN, _Model(), torch.randn(1, 4, 4, 4), networks)  # pyright: ignore[reportArgumentType]
    assert pixels is not None and pixels.shape == (1, 3, 4, 4)
    assert len(told) == 1 and "refused" in told[0]


def test_a_file_with_wrong_keys_is_named_and_not_used(tmp_path):
    state = taesd_state(0)
    del state["19.bias"]
    torch.save(state, tmp_path / "taesd_decoder.pth")
    told: list[str] = []
    networks = PreviewNetworks(tmp_path, on_problem=told.append)
    assert networks.get(TAESD, False, torch.device("cpu"), torch.float32) is None
    assert len(told) == 1 and "19.bias" in told[0]


def test_latents_that_are_not_finite_give_no_preview():
    latents = torch.full((1, 4, 4, 4), float("nan"))
    assert preview_pixels(APPROX_CHEAP, _Model(), latents, None) is None  # pyright: ignore[reportArgumentType]


class _Capture(Extension):
    """Keeps every call's unconditional prediction and the Prompt / Negative prompt estimates."""

    def __init__(self) -> None:
        super().__init__()
        self.estimates: list[dict[str, torch.Tensor | None]] = []

    @hook(HookPoint.PRE_MODEL_CALL)
    def keep(self, call: DenoiserCall) -> None:
        assert wants_uncond(PROMPT, call) and wants_uncond(NEGATIVE, call)
        call.keep_uncond = True

    @hook(HookPoint.POST_CFG)
    def grab(self, out: DenoiserOutput) -> None:
        self.estimates.append(
            {c: x0_estimate(c, out.call, out.output, "epsilon") for c in (PROMPT, NEGATIVE)}
        )


def test_prompt_and_negative_estimates_combine_into_the_samplers_own_x0(tiny_sd1_ckpt):
    """Euler's x0 estimate of the guided prediction equals negative + cfg * (prompt - negative): the
    Prompt and Negative prompt previews are the two halves of what the sampler denoises."""
    from modules.sumi.engine import generate as engine
    from modules.sumi.engine.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_sd1_ckpt[0])
    capture, denoised = _Capture(), []
    request = engine.BatchRequest(
        prompts=["a red fox"], negative_prompts=["blurry"], seeds=[3], width=32, height=32, steps=2,
        cfg_scale=6.0, sampler="Euler",
    )  # fmt: skip
    engine.generate(
        model,
        request,
        extensions=[capture],
        progress_bar=False,
        callback=lambda i: denoised.append(i.denoised),
    )
    assert len(capture.estimates) == len(denoised) == 2
    for estimate, x0 in zip(capture.estimates, denoised, strict=True):
        prompt, negative = estimate[PROMPT], estimate[NEGATIVE]
        assert prompt is not None and negative is not None and not torch.allclose(prompt, negative)
        torch.testing.assert_close(negative + 6.0 * (prompt - negative), x0.float(), rtol=1e-4, atol=1e-4)
    assert x0_estimate(COMBINED, DenoiserCall.__new__(DenoiserCall), torch.zeros(1), "epsilon") is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("method", [APPROX_NN, TAESD])
def test_on_cuda_the_networks_run_in_the_models_half_precision_and_agree_with_the_cpu(approx_folder, method):
    networks = PreviewNetworks(approx_folder)
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(6))
    cpu = preview_pixels(method, _Model(), latents, networks)  # pyright: ignore[reportArgumentType]
    model = _Model()
    model.dtype = torch.float16
    gpu = preview_pixels(method, model, latents.cuda(), networks)  # pyright: ignore[reportArgumentType]
    network = networks.get(method, False, torch.device("cuda", torch.cuda.current_device()), torch.float16)
    assert network is not None and next(network.parameters()).dtype == torch.float16
    assert cpu is not None and gpu is not None and gpu.device.type == "cpu"
    torch.testing.assert_close(gpu, cpu, atol=2e-2, rtol=0)
