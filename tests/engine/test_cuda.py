"""CUDA paths: fp16 models, GPU noise, fp32 VAE fallback. Skipped on machines without a CUDA GPU."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import Extension, HookPoint, hook

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


class SyncsAreErrorsInTheLoop(Extension):
    """From the first step to the last, any host sync on the GPU raises (`set_sync_debug_mode`)."""

    @hook(HookPoint.PRE_LOOP)
    def begin(self, context) -> None:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")

    @hook(HookPoint.POST_LOOP)
    def end(self, context) -> None:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize(
    "sampler", ["DPM++ 2M", "Euler a", "DPM++ 2M SDE", "DPM++ 3M SDE", "DDIM", "UniPC", "LCM"]
)
def test_the_loop_never_waits_for_the_gpu(cuda_model, sampler):
    request = replace(_request(eta_ddim=0.5), sampler=sampler, prompts=["a [cat:dog:2] AND a fox"])
    try:
        result = engine.generate(
            cuda_model, request, extensions=[SyncsAreErrorsInTheLoop()], progress_bar=False
        )
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.images and not result.stopped_early
