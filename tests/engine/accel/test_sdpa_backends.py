"""--opt-sdp-no-mem-attention: every attention layer runs SDPA with the memory-efficient kernel ruled out."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention

from modules.sumi.engine.accel.sdpa import NoMemEfficientProcessor, use_sdpa_without_mem_efficient
from tests.fixtures.tiny_models import tiny_sd1


def _mem_efficient_flag_during_forward(attn: Attention, x: torch.Tensor) -> list[bool]:
    """The mem-efficient SDPA switch as torch sees it inside the layer's forward (read by a hook on the
    output projection, which runs right after the attention kernel)."""
    seen: list[bool] = []
    assert attn.to_out is not None
    handle = attn.to_out[0].register_forward_pre_hook(
        lambda *_: seen.append(torch.backends.cuda.mem_efficient_sdp_enabled())
    )
    try:
        attn(x)
    finally:
        handle.remove()
    return seen


def test_wrapped_layers_run_sdpa_without_the_memory_efficient_kernel_and_give_the_same_output():
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        plain = attn(x)
        assert _mem_efficient_flag_during_forward(attn, x) == [True]
        assert use_sdpa_without_mem_efficient(attn) == 1
        assert isinstance(attn.processor, NoMemEfficientProcessor)
        assert _mem_efficient_flag_during_forward(attn, x) == [False]
        assert torch.allclose(attn(x), plain, atol=1e-6)
    assert torch.backends.cuda.mem_efficient_sdp_enabled()  # restored after the call


def test_every_unet_attention_layer_is_wrapped_once():
    unet = tiny_sd1()["unet"]
    layers = [m for m in unet.modules() if isinstance(m, Attention)]
    assert use_sdpa_without_mem_efficient(unet) == len(layers) > 0
    assert use_sdpa_without_mem_efficient(unet) == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_no_memory_efficient_kernel_is_launched():
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    attn = Attention(query_dim=64, heads=1, dim_head=64).cuda().half().eval()
    use_sdpa_without_mem_efficient(attn)
    x = torch.randn(2, 256, 64, device="cuda", dtype=torch.float16)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        attn(x)
        torch.cuda.synchronize()
    names = " ".join(e.key for e in prof.key_averages()).lower()
    assert "efficient_attention" not in names and "fmha_cutlass" not in names
