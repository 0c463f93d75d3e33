"""Reference-only control in the engine: the blocks and layers the extension hooks, found in diffusers'
UNets; the attention and AdaIN steps against direct computations; jobs steered, reproducible, and the
UNet left as it was."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.controlnet.reference import (
    READ,
    WRITE,
    ReferenceAttention,
    ReferenceUnit,
    _Bank,
    _Machine,
    adain,
    adain_layers,
    ldm_layers,
    transformer_blocks,
)
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.tiny_models import full_size

SIZE = 64


@pytest.fixture(scope="module")
def sd15_unet():
    with torch.device("meta"):
        return full_size("SD1")["unet"]


@pytest.fixture(scope="module")
def sdxl_unet():
    with torch.device("meta"):
        return full_size("SDXL")["unet"]


def test_ldm_block_numbers_map_onto_diffusers_modules(sd15_unet, sdxl_unet):
    inputs, outputs = ldm_layers(sd15_unet)
    down, up = sd15_unet.down_blocks, sd15_unet.up_blocks
    assert inputs[1] is down[0].attentions[0] and inputs[3] is down[0].downsamplers[0]
    assert inputs[4] is down[1].attentions[0] and inputs[11] is down[3].resnets[1] and 12 not in inputs
    assert outputs[0] is up[0].resnets[0] and outputs[2] is up[0].upsamplers[0]
    assert (
        outputs[5] is up[1].upsamplers[0]
        and outputs[6] is up[2].attentions[0]
        and outputs[11] is up[3].attentions[2]
    )
    layers = adain_layers(sd15_unet, sdxl=False)
    assert len(layers) == 1 + 6 + 8 and layers[0] == (sd15_unet.mid_block, 0.0)
    assert layers[1] == (down[1].attentions[0], 2.0) and layers[-1] == (up[2].attentions[1], 2.0 * 7 / 8)
    xl_in, xl_out = ldm_layers(sdxl_unet)
    assert (
        xl_in[4] is sdxl_unet.down_blocks[1].attentions[0]
        and xl_in[8] is sdxl_unet.down_blocks[2].attentions[1]
    )
    assert xl_out[2] is sdxl_unet.up_blocks[0].upsamplers[0]
    assert len(adain_layers(sdxl_unet, sdxl=True)) == 1 + 4 + 6


def test_transformer_blocks_are_widest_first_in_ldm_order(sd15_unet):
    blocks = transformer_blocks(sd15_unet)
    assert len(blocks) == 16
    widths = [b.norm1.normalized_shape[0] for b in blocks]
    assert widths == sorted(widths, reverse=True)
    down2 = list(sd15_unet.down_blocks[2].attentions[0].transformer_blocks)
    mid = list(sd15_unet.mid_block.attentions[0].transformer_blocks)
    assert blocks[0] is down2[0] and blocks[2] is mid[0]  # encoder, middle, decoder within a width


def _attention() -> Attention:
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    attn.set_processor(AttnProcessor2_0())
    return attn.eval()


def test_read_attends_over_the_kept_input_and_fidelity_spares_uncond_rows():
    attn = _attention()
    machine, bank = _Machine(), _Bank(level=0.25)
    wrapper = ReferenceAttention(attn.processor, bank, machine)
    reference, x = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    machine.mode, machine.attention_weight, machine.fidelity = WRITE, 0.2, 0.5
    wrapper(attn, reference)
    assert not bank.tensors  # weight 0.2 is not above the block's level 0.25
    machine.attention_weight = 1.0
    wrapper(attn, reference)
    machine.mode, machine.uncond_rows = READ, torch.tensor([1])
    got = wrapper(attn, x)
    with torch.no_grad():
        steered = attn(x, encoder_hidden_states=torch.cat([x, reference], dim=1))
        plain = attn(x)
    torch.testing.assert_close(got[0], steered[0])  # cond row: fully steered
    torch.testing.assert_close(got[1], 0.5 * plain[1] + 0.5 * steered[1])
    assert not bank.tensors  # read once
    torch.testing.assert_close(wrapper(attn, x), plain)  # nothing kept: plain attention


def test_adain_gives_cond_rows_the_reference_statistics():
    x = torch.randn(3, 4, 8, 8) * 3 + 1
    reference = torch.randn(3, 4, 8, 8) * 0.5 - 2
    var, mean = torch.var_mean(reference, dim=(2, 3), keepdim=True, correction=0)
    y = adain(x, [(mean, var)], fidelity=1.0, uncond_rows=torch.tensor([2]))
    got_var, got_mean = torch.var_mean(y[:2], dim=(2, 3), keepdim=True, correction=0)
    torch.testing.assert_close(got_mean, mean[:2], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_var, var[:2], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(y[2], x[2])  # fidelity 1: the uncond row keeps its own values


# --- in a job ---------------------------------------------------------------------------------------


def _request(units=(), seed: int = 7) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox", "a blue house"],
        negative_prompts=["blurry", ""],
        seeds=[seed, seed + 1],
        width=SIZE,
        height=SIZE,
        steps=4,
        cfg_scale=6.0,
        sampler="Euler a",
        control_units=list(units),
    )


def _latents(model, units=(), seed: int = 7) -> torch.Tensor:
    return engine.generate(model, _request(units, seed), progress_bar=False).latents


def _reference(seed: int) -> torch.Tensor:
    return torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["reference_only", "reference_adain", "reference_adain+attn"])
def test_a_reference_steers_the_job_reproducibly_and_leaves_the_unet_as_it_was(model, mode):
    processors = list(model.unet.attn_processors.values())
    plain = _latents(model)
    first = _latents(model, [ReferenceUnit(_reference(1), mode)])
    assert (first - plain).abs().max() > 1e-3
    assert torch.equal(first, _latents(model, [ReferenceUnit(_reference(1), mode)]))  # same seed, same image
    assert (first - _latents(model, [ReferenceUnit(_reference(2), mode)])).abs().max() > 1e-4
    assert all(a is b for a, b in zip(processors, model.unet.attn_processors.values(), strict=True))
    assert not any(m._forward_hooks for m in model.unet.modules())  # noqa: SLF001
    assert torch.equal(_latents(model), plain)


def test_weight_zero_or_a_closed_window_does_nothing(model):
    plain = _latents(model)
    assert torch.equal(_latents(model, [ReferenceUnit(_reference(1), weight=0.0)]), plain)
    late = ReferenceUnit(_reference(1), guidance_start=0.9, guidance_end=1.0)
    assert torch.equal(_latents(model, [late]), plain)


def test_bad_reference_settings_are_refused():
    with pytest.raises(InvalidRequestError, match="reference mode"):
        ReferenceUnit(_reference(1), mode="reference_everything")
    with pytest.raises(InvalidRequestError, match="after guidance end"):
        ReferenceUnit(_reference(1), guidance_start=0.8, guidance_end=0.2)


def test_sdxl_and_inpainting_checkpoints_take_a_reference(tiny_sdxl_ckpt, tmp_path):
    from tests.fixtures.tiny_models import write_tiny_checkpoint

    inpaint_path = tmp_path / "tiny_inpaint.safetensors"
    write_tiny_checkpoint(inpaint_path, "SD1", inpaint=True)
    for path in (tiny_sdxl_ckpt[0], inpaint_path):
        model = load_checkpoint(path)
        plain = _latents(model)
        steered = _latents(model, [ReferenceUnit(_reference(1), "reference_adain+attn")])
        assert steered.shape == plain.shape and (steered - plain).abs().max() > 1e-4
