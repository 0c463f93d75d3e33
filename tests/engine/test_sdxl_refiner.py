"""The SDXL refiner family: recognised from its weights (only OpenCLIP bigG, 5 time ids), loaded from the
real single-file layout, and sampling equal to diffusers' StableDiffusionXLImg2ImgPipeline with
requires_aesthetics_score=True (the high score with the prompt, the low one with the negative prompt)."""

from __future__ import annotations

from typing import Any, cast

import pytest
import torch
from diffusers import StableDiffusionXLImg2ImgPipeline

from modules.sumi.engine import generate as engine
from modules.sumi.engine import img2img
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.families import detect_family
from modules.sumi.engine.files import read_state_dict
from modules.sumi.engine.sampling.model_switch import ModelSwitch
from modules.sumi.engine.sampling.noise import make_generators
from modules.sumi.engine.sampling.samplers import build_scheduler
from modules.sumi.engine.text.schedule import pick, stack_rows
from tests.fixtures.tiny_models import write_tiny_checkpoint

SIZE = 64
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def refiner_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("refiner") / "sd_xl_refiner_tiny.safetensors"
    return path, write_tiny_checkpoint(path, "SDXL-refiner")


@pytest.fixture(scope="module")
def refiner(refiner_file):
    model = load_checkpoint(refiner_file[0])
    for module in model.modules():
        module.eval()
    return model


def request(init=None, steps=5, **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox in the snow", "a lighthouse at dusk"],
        negative_prompts=["blurry", "grey"],
        seeds=[101, 102],
        width=SIZE,
        height=SIZE,
        steps=steps,
        cfg_scale=6.5,
        sampler="Euler",
        init=init,
        **kw,
    )


def test_the_refiner_is_recognised_from_its_weights_and_loads(refiner_file, refiner):
    path, components = refiner_file
    state = read_state_dict(path)
    assert detect_family(state).name == "SDXL-refiner"
    assert any(k.startswith("conditioner.embedders.0.model.") for k in state)
    assert not any(k.startswith("conditioner.embedders.1.") for k in state)
    assert refiner.family == "SDXL-refiner" and refiner.is_sdxl and len(refiner.text_encoders) == 1
    assert refiner.vae_scaling_factor == 0.13025
    config = refiner.unet.config
    assert (config["addition_time_embed_dim"], config["projection_class_embeddings_input_dim"]) == (8, 64)
    for key, value in components["unet"].state_dict().items():
        assert torch.equal(refiner.unet.state_dict()[key], value), key


def _embeddings(model, req):
    jc = engine.conditioning(model, req).conditioning
    cond = stack_rows([pick(c.parts[0][1], 0).cond for c in jc.conds])
    uncond = stack_rows([pick(u, 0).cond for u in jc.unconds])
    return cond, uncond


@pytest.mark.parametrize("scores", [(6.0, 2.5), (8.0, 1.0)])
def test_refiner_img2img_equals_diffusers_with_aesthetic_scores(refiner, scores):
    high, low = scores
    steps, strength = 5, 0.6
    generator = torch.Generator().manual_seed(4)
    init = img2img.encode(refiner, torch.rand((2, 3, SIZE, SIZE), generator=generator) * 2 - 1)
    req = request(
        img2img.InitLatents(init, strength), steps, aesthetic_score=high, negative_aesthetic_score=low
    )
    ours = engine.generate(refiner, req, progress_bar=False).latents
    cond, uncond = _embeddings(refiner, req)
    (bigg,) = refiner.text_encoders
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=refiner.vae,
        text_encoder=None,  # pyright: ignore[reportArgumentType]
        text_encoder_2=bigg.model,
        tokenizer=None,  # pyright: ignore[reportArgumentType]
        tokenizer_2=bigg.tokenizer,
        unet=refiner.unet,
        scheduler=cast(Any, build_scheduler("Euler", "Automatic", refiner.scheduler_config).scheduler),
        requires_aesthetics_score=True,
    )
    pipe.set_progress_bar_config(disable=True)
    t_enc = int(min(strength, 0.999) * steps)  # A1111 runs t_enc + 1 steps (tests/engine/test_img2img.py)
    theirs: Any = pipe(
        image=init,
        strength=(t_enc + 1) / steps + 1e-6,
        prompt_embeds=cond.context,
        negative_prompt_embeds=uncond.context,
        pooled_prompt_embeds=cond.pooled,
        negative_pooled_prompt_embeds=uncond.pooled,
        num_inference_steps=steps,
        guidance_scale=req.cfg_scale,
        aesthetic_score=high,
        negative_aesthetic_score=low,
        generator=make_generators(req.seeds),
        output_type="latent",
    )
    assert torch.allclose(ours, theirs.images, rtol=1e-5, atol=TOLERANCE)


def test_the_aesthetic_scores_change_the_result(refiner):
    default = engine.generate(refiner, request(), progress_bar=False).latents
    other = engine.generate(refiner, request(aesthetic_score=9.0), progress_bar=False).latents
    assert not torch.allclose(default, other)


def test_sdxl_base_then_refiner(tiny_sdxl_ckpt, refiner):
    base = load_checkpoint(tiny_sdxl_ckpt[0])
    result = engine.generate(
        base, request(), progress_bar=False, switch=ModelSwitch(0.5, lambda: refiner, by_steps=True)
    )
    plain = engine.generate(base, request(), progress_bar=False)
    assert result.switched and [i.size for i in result.images] == [(SIZE, SIZE)] * 2
    assert not torch.allclose(result.latents, plain.latents)
