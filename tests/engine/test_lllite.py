"""ControlNet-LLLite in the engine: kohya's files load and their modules land on the projections their
names give (SD1 and SDXL block layouts); each patched projection's input gains weight x up(mid(cat(the
control image's embedding, down(x)))) (written out below with plain tensor operations), on every row,
within the guidance window; a zero `up` (kohya's starting point) or weight 0 leaves the job unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modules.sumi.engine import generate as engine
from modules.sumi.engine.controlnet.lllite import (
    LLLiteExtension,
    LLLiteUnit,
    build_lllite,
    check_lllite_fits,
)
from modules.sumi.engine.controlnet.models import detect_controlnet_family, load_controlnet
from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError
from modules.sumi.engine.extensions import UNetBatch
from modules.sumi.engine.text.encoder import Conditioning
from tests.fixtures.tiny_lllite import lllite_module_state, tiny_lllite_state, write_lllite

SIZE = 64


def _request(units=(), **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox", "a blue house"],
        negative_prompts=["blurry", ""],
        seeds=[7, 8],
        width=SIZE,
        height=SIZE,
        steps=4,
        cfg_scale=6.0,
        sampler="Euler a",
        control_units=list(units),
        **kw,
    )


def _latents(model, request) -> torch.Tensor:
    return engine.generate(model, request, progress_bar=False).latents


def _hint(count: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.rand(count, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_modules_land_on_the_projections_their_names_give():
    network = build_lllite(tiny_lllite_state(), "tiny.safetensors")
    assert network.family == "SD1"
    assert set(network.target_paths(1).values()) == {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q",
        "mid_block.attentions.0.transformer_blocks.0.attn1.to_k",
        "up_blocks.1.attentions.1.transformer_blocks.0.attn1.to_v",
    }
    sdxl = {
        "lllite_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q": "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q",
        "lllite_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_q": "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_q",
        "lllite_unet_middle_block_1_transformer_blocks_3_attn1_to_v": "mid_block.attentions.0.transformer_blocks.3.attn1.to_v",
        "lllite_unet_output_blocks_0_1_transformer_blocks_0_attn1_to_k": "up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k",
        "lllite_unet_output_blocks_5_1_transformer_blocks_1_attn1_to_q": "up_blocks.1.attentions.2.transformer_blocks.1.attn1.to_q",
    }
    state = {}
    for i, name in enumerate(sdxl):
        state |= lllite_module_state(name, 2, 640, seed=i)
    xl = build_lllite(state, "xl.safetensors")
    assert xl.family == "SDXL" and xl.target_paths(2) == sdxl
    assert detect_controlnet_family(state) == "SDXL"


def test_files_load_through_the_controlnet_loader_and_are_checked_against_the_unet(model, tmp_path):
    path = write_lllite(tmp_path / "controllllite_tiny.safetensors", tiny_lllite_state())
    loaded = load_controlnet(path, expected_family="SD1")
    check_lllite_fits(loaded.model, model.unet, path.name)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ModelLoadError, match="is for SD1; the loaded checkpoint is SDXL"):
        load_controlnet(path, expected_family="SDXL")
    wide = lllite_module_state("lllite_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q", 1, 320)
    with pytest.raises(InvalidRequestError, match="it is for another model"):
        check_lllite_fits(build_lllite(wide, "wide"), model.unet, "wide")
    with pytest.raises(ModelLoadError, match="cannot place: lllite_unet_input_blocks_1_1_proj_in"):
        build_lllite({"lllite_unet_input_blocks_1_1_proj_in.down.0.weight": torch.zeros(1, 1)}, "odd")


def test_a_zero_up_weight_zero_or_a_closed_window_leave_the_job_unchanged(model):
    plain = _latents(model, _request())
    zero_up = build_lllite(tiny_lllite_state(zero_up=True), "zero")
    assert torch.equal(_latents(model, _request([LLLiteUnit(zero_up, _hint())])), plain)
    network = build_lllite(tiny_lllite_state(seed=2), "tiny")
    assert torch.equal(_latents(model, _request([LLLiteUnit(network, _hint(), weight=0.0)])), plain)
    late = LLLiteUnit(network, _hint(), guidance_start=0.9, guidance_end=1.0)
    assert torch.equal(_latents(model, _request([late])), plain)
    steered = _latents(model, _request([LLLiteUnit(network, _hint())]))
    assert (steered - plain).abs().max() > 1e-4
    other = _latents(model, _request([LLLiteUnit(network, _hint(seed=5))]))
    assert (steered - other).abs().max() > 1e-5  # another control image, another result


def _kohya_addition(state: dict, name: str, x: torch.Tensor, cond: torch.Tensor, depth: int) -> torch.Tensor:
    """A depth-1/2 LLLite module on x [B, L, C] with the control image in 0..1, as kohya defines it."""
    w = {k.removeprefix(name + "."): v for k, v in state.items() if k.startswith(name + ".")}
    c = F.relu(F.conv2d(cond * 2 - 1, w["conditioning1.0.weight"], w["conditioning1.0.bias"], stride=4))
    c = F.conv2d(c, w["conditioning1.2.weight"], w["conditioning1.2.bias"], stride=2 if depth == 1 else 4)
    c = c.flatten(2).transpose(1, 2).expand(x.shape[0], -1, -1)
    down = F.relu(F.linear(x, w["down.0.weight"], w["down.0.bias"]))
    mid = F.relu(F.linear(torch.cat([c, down], dim=2), w["mid.0.weight"], w["mid.0.bias"]))
    return F.linear(mid, w["up.0.weight"], w["up.0.bias"])


def test_a_patched_projection_sees_its_input_plus_the_weighted_module_output(model):
    state = tiny_lllite_state(seed=4)
    network = build_lllite(state, "tiny")
    hint = _hint()
    extension = LLLiteExtension([LLLiteUnit(network, hint, weight=0.7)])
    batch = UNetBatch(
        x=torch.zeros(3, 4, SIZE // 8, SIZE // 8),
        timestep=torch.tensor(500),
        context=Conditioning(torch.zeros(3, 77, 32)),
        time_ids=None,
        images=torch.tensor([0, 1, 0]),
        is_cond=torch.tensor([True, True, False]),
        step=0,
        total_steps=4,
    )
    seen = {}
    q = model.unet.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q")
    k = model.unet.get_submodule("mid_block.attentions.0.transformer_blocks.0.attn1.to_k")
    x_q = torch.randn(3, 64, 32, generator=torch.Generator().manual_seed(1))
    x_k = torch.randn(3, 16, 64, generator=torch.Generator().manual_seed(2))
    before = sum(len(m._forward_pre_hooks) for m in model.unet.modules())
    with extension._hooked(model.unet):
        capture = [  # after the extension's hooks: they see what the projection gets
            m.register_forward_pre_hook(lambda m, a, key=key: seen.setdefault(key, a[0]))
            for key, m in (("q", q), ("k", k))
        ]
        try:
            extension.pick_units(batch)
            q(x_q)
            k(x_k)
        finally:
            for handle in capture:
                handle.remove()
    expected_q = x_q + 0.7 * _kohya_addition(
        state, "lllite_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q", x_q, hint, 1
    )
    expected_k = x_k + 0.7 * _kohya_addition(
        state, "lllite_unet_middle_block_1_transformer_blocks_0_attn1_to_k", x_k, hint, 2
    )
    torch.testing.assert_close(seen["q"], expected_q, rtol=1e-5, atol=1e-5)  # every row, uncond too
    torch.testing.assert_close(seen["k"], expected_k, rtol=1e-5, atol=1e-5)
    assert sum(len(m._forward_pre_hooks) for m in model.unet.modules()) == before  # nothing left behind
