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
