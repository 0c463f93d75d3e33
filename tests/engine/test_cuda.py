"""CUDA paths: fp16 models, GPU noise, fp32 VAE fallback. Skipped on machines without a CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _request(**kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a cat"],
        negative_prompts=[""],
        seeds=[5],
        width=64,
        height=64,
        steps=4,
        sampler="Euler a",
        **kw,
    )


@pytest.fixture(scope="module")
def cuda_model(tiny_sd1_ckpt):
    model = load_checkpoint(tiny_sd1_ckpt[0], dtype=torch.float16)
    return model.to("cuda", torch.float16)


def test_fp16_generation_on_cuda_matches_cpu_fp32_closely(cuda_model, tiny_sd1_ckpt):
    cpu_model = load_checkpoint(tiny_sd1_ckpt[0])
    gpu = engine.generate(cuda_model, _request(), progress_bar=False)
    cpu = engine.generate(cpu_model, _request(), progress_bar=False)
    diff = (torch.tensor(list(gpu.images[0].getdata())) - torch.tensor(list(cpu.images[0].getdata()))).abs()
    assert diff.float().mean() < 8  # fp16 vs fp32 on another device: close, not equal


def test_cpu_noise_is_the_same_on_cuda(cuda_model, tiny_sd1_ckpt):
    cpu_model = load_checkpoint(tiny_sd1_ckpt[0])
    _, gpu_noise = engine.initial_noise(cuda_model, _request())
    _, cpu_noise = engine.initial_noise(cpu_model, _request())
    assert torch.allclose(gpu_noise.float().cpu(), cpu_noise, atol=1e-2)


def test_gpu_noise_source_runs(cuda_model):
    result = engine.generate(cuda_model, _request(noise_device="gpu"), progress_bar=False)
    assert result.images[0].size == (64, 64)
