"""No host sync in a denoiser call on CUDA: one model call (CFG rows, UNet, guidance) must not make the
CPU wait for the GPU (`torch.cuda.set_sync_debug_mode("error")` raises on any synchronising call).

Known per-step syncs left in the loops (docs/performance/cpu-fast.md): `float(sigma)` of the device
schedule in k_loop's model wrapper and `call_sigma`'s `float(timestep)`; this test covers the denoiser."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.sampling.denoiser import CFGDenoiser

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_a_cfg_denoiser_call_makes_no_host_sync(tiny_sd1_ckpt):
    model = load_checkpoint(tiny_sd1_ckpt[0], dtype=torch.float16).to("cuda", torch.float16)
    request = engine.BatchRequest(
        prompts=["a cat", "a [dog:cat:2] AND a bird"], negative_prompts=["", "ugly"], seeds=[1, 2],
        width=64, height=64, steps=4,
    )  # fmt: skip
    denoiser = CFGDenoiser(model.unet, engine.conditioning(model, request, 4), 4)
    x = torch.randn(2, 4, 8, 8, device="cuda", dtype=torch.float16)
    t = torch.tensor(500.0, device="cuda")
    with torch.no_grad():
        denoiser(x, t, 0)  # warm-up: kernels load, caches fill
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(4):
                out = denoiser(x, t, step)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert out.shape == x.shape
