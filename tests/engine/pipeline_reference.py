"""What a diffusers SD1 pipeline needs to run the same job as Sumi's engine: the modules, the sampler's
scheduler, and the call arguments (the job's own text embeddings, steps, CFG, size, seeds)."""

from __future__ import annotations

from typing import Any

from modules.sumi.engine import generate as engine
from modules.sumi.engine.sampling.noise import make_generators
from modules.sumi.engine.sampling.samplers import build_scheduler
from modules.sumi.engine.text.schedule import pick, stack_rows


def pipeline_modules(model, request: engine.BatchRequest) -> dict[str, Any]:
    """The constructor arguments every SD1 pipeline shares (add its control model)."""
    built = build_scheduler(request.sampler, request.schedule, model.scheduler_config, seed=request.seeds[0])
    spec = model.text_encoders[0]
    return {
        "vae": model.vae,
        "text_encoder": spec.model,
        "tokenizer": spec.tokenizer,
        "unet": model.unet,
        "scheduler": built.scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def pipeline_call(model, request: engine.BatchRequest) -> dict[str, Any]:
    """The call arguments that reproduce `request` (add the control image and scale); latents out."""
    jc = engine.conditioning(model, request).conditioning
    cond = stack_rows([pick(c.parts[0][1], 0).cond for c in jc.conds])
    uncond = stack_rows([pick(u, 0).cond for u in jc.unconds])
    return {
        "prompt_embeds": cond.context,
        "negative_prompt_embeds": uncond.context,
        "num_inference_steps": request.steps,
        "guidance_scale": request.cfg_scale,
        "width": request.width,
        "height": request.height,
        "generator": make_generators(request.seeds),
        "output_type": "latent",
    }


def two_image_request(units=(), **overrides: Any) -> engine.BatchRequest:
    """The engine tests' usual job: two prompts (one negative empty), seeds 7 and 8, 64x64, 4 steps of
    Euler a at CFG 6, with `units` as its control units; `overrides` replace any field."""
    fields: dict[str, Any] = {
        "prompts": ["a red fox", "a blue house"],
        "negative_prompts": ["blurry", ""],
        "seeds": [7, 8],
        "width": 64,
        "height": 64,
        "steps": 4,
        "cfg_scale": 6.0,
        "sampler": "Euler a",
    }
    return engine.BatchRequest(**{**fields, **overrides}, control_units=list(units))


def ip_adapter_pipeline(model, request: engine.BatchRequest, state: dict, scale: float | dict, pipeline=None):
    """A diffusers SD1 pipeline (`StableDiffusionPipeline` unless `pipeline`, a class, and its extra
    constructor arguments as `(cls, kwargs)`) on a copy of the model's UNet with the IP-Adapter `state`
    (flat, h94's layout) loaded by `load_ip_adapter` at `scale`."""
    import copy

    from diffusers import StableDiffusionPipeline

    from tests.fixtures.tiny_ip_adapter import nested

    cls, extra = pipeline or (StableDiffusionPipeline, {})
    modules = pipeline_modules(model, request)
    modules["unet"] = copy.deepcopy(model.unet)  # load_ip_adapter rewires the UNet it is given
    pipe = cls(**modules, **extra, image_encoder=None)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(nested(state), subfolder=None, weight_name=None, image_encoder_folder=None)
    pipe.set_ip_adapter_scale(scale)
    return pipe
