"""Token merging (A1111's "Token merging ratio", tomesd) as a patch scope on the job's UNet."""

from __future__ import annotations

import copy

import pytest
import tomesd
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.accel import compiled
from modules.sumi.engine.accel.token_merging import MISSING, is_merging, token_merging
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.errors import InvalidRequestError


@pytest.fixture(scope="module")
def model(tiny_sd1_ckpt):
    return load_checkpoint(tiny_sd1_ckpt[0])


def _inputs(model, side: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, side // 8, side // 8, generator=generator)
    dim = int(model.unet.config.cross_attention_dim)
    context = torch.randn(2, 77, dim, generator=generator)
    return x, torch.tensor(500), context


def _run(unet, x, t, context, *, direct: bool = False) -> torch.Tensor:
    with torch.no_grad():
        call = unet.forward if direct else unet
        return call(x, t, encoder_hidden_states=context, return_dict=False)[0]


def test_the_patched_unet_is_tomesds_own_patch_and_leaves_no_trace(model):
    x, t, context = _inputs(model, 64)
    before = _run(model.unet, x, t, context)
    reference_unet = copy.deepcopy(model.unet)
    tomesd.apply_patch(reference_unet, ratio=0.5, use_rand=False)
    reference = _run(reference_unet, x, t, context)
    with token_merging(model.unet, 0.5):
        assert is_merging(model.unet)
        merged = _run(model.unet, x, t, context)
        assert compiled.eager_reason(model) == "token merging is on"
        # the size is read at conv_in, so a forward called without the module's hooks (Tiled
        # Diffusion's tiles) merges too
        assert torch.equal(_run(model.unet, x, t, context, direct=True), merged)
    torch.testing.assert_close(merged, reference, rtol=0, atol=0)
    assert (merged - before).abs().max() > 1e-4  # tokens were merged
    assert not is_merging(model.unet)
    assert not any("_tome_info" in vars(m) for m in model.unet.modules())
    assert torch.equal(_run(model.unet, x, t, context), before)


def test_the_patch_goes_when_the_batch_fails(model):
    with pytest.raises(RuntimeError, match="boom"), token_merging(model.unet, 0.3):
        raise RuntimeError("boom")
    assert not is_merging(model.unet)


@pytest.mark.parametrize("ratio", [0.0, -0.1, 0.95])
def test_a_ratio_outside_a1111s_range_is_refused(model, ratio):
    with pytest.raises(InvalidRequestError, match="token merging ratio"), token_merging(model.unet, ratio):
        pass


def test_without_tomesd_the_message_gives_the_pip_command(model, monkeypatch):
    import importlib

    real = importlib.import_module
    monkeypatch.setattr(
        importlib, "import_module", lambda name: real("no_such_module_x") if name == "tomesd" else real(name)
    )
    with pytest.raises(InvalidRequestError, match="pip install tomesd"), token_merging(model.unet, 0.5):
        pass
    assert "tomesd==0.1.3" in MISSING


def test_a_job_with_token_merging_draws_another_image_and_the_next_job_is_as_before(model):
    def job(ratio: float) -> bytes:
        request = engine.BatchRequest(
            prompts=["a cat"], negative_prompts=[""], seeds=[5], width=64, height=64, steps=3,
            token_merging_ratio=ratio,
        )  # fmt: skip
        return engine.generate(model, request, progress_bar=False).images[0].tobytes()

    plain = job(0.0)
    assert job(0.5) != plain
    assert job(0.0) == plain and not is_merging(model.unet)
