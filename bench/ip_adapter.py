"""IP-Adapter and reference-only costs: a job with one IP-Adapter unit against a plain job, Sumi beside
diffusers' StableDiffusionPipeline with the same adapter loaded by `load_ip_adapter`, on the same weights;
and a job with one `reference_only` / `reference_adain+attn` unit (no diffusers counterpart in the
library: its community pipeline hooks other blocks).

    python bench/ip_adapter.py      # SD1.5 architecture, random weights; IP-Adapter (plain and Plus)
                                    # sized for a ViT-H encoder (fp16 512x512 on CUDA; fp32 256x256,
                                    # fewer steps, on the CPU)

The adapters are written in h94's layout and read back through Sumi's loader, like a downloaded
`ip-adapter_sd15.safetensors` / `ip-adapter-plus_sd15.safetensors`. The CLIP features are random (the
encoder runs once per picture, not per step; its cost is the annotator table's kind of figure).
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline  # noqa: E402
from pipelines import diffusers_pipeline  # noqa: E402
from timing import median_seconds  # noqa: E402

from modules.sumi.engine import generate as engine  # noqa: E402
from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.controlnet.clip_vision import ClipImageFeatures  # noqa: E402
from modules.sumi.engine.controlnet.ip_adapter import ImagePromptUnit  # noqa: E402
from modules.sumi.engine.controlnet.models import load_controlnet  # noqa: E402
from modules.sumi.engine.controlnet.reference import ReferenceUnit  # noqa: E402
from modules.sumi.engine.devices import select_device  # noqa: E402
from modules.sumi.engine.families.base import scheduler_config  # noqa: E402
from modules.sumi.engine.model import SDModel, TextEncoderSpec  # noqa: E402
from modules.sumi.engine.sampling.noise import make_generators  # noqa: E402
from modules.sumi.engine.text.tokenizer import get_tokenizer  # noqa: E402
from tests.fixtures.tiny_ip_adapter import ip_adapter_state, nested, write_ip_adapter  # noqa: E402

VIT_H = (1280, 1024)  # hidden width, projection width


def _request(size: int, steps: int, units: list) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a house by a lake"],
        negative_prompts=[""],
        seeds=[1],
        width=size,
        height=size,
        steps=steps,
        sampler="Euler",
        control_units=units,
    )


def _features() -> ClipImageFeatures:
    g = torch.Generator().manual_seed(0)
    return ClipImageFeatures(
        torch.randn(1, VIT_H[1], generator=g),
        torch.randn(1, 257, VIT_H[0], generator=g),
        torch.zeros(1, VIT_H[1]),
        torch.randn(1, 257, VIT_H[0], generator=g),
    )


def _diffusers(model: SDModel, state, kind: str, size: int, steps: int, features: ClipImageFeatures):
    pipe = diffusers_pipeline(
        StableDiffusionPipeline, model, EulerDiscreteScheduler.from_config(model.scheduler_config)
    )
    pipe.unet = copy.deepcopy(model.unet)  # load_ip_adapter rewires the UNet it is given
    pipe.load_ip_adapter(nested(state), subfolder=None, weight_name=None, image_encoder_folder=None)
    pipe.to(model.device, model.dtype)
    pos, neg = (
        (features.image_embeds, features.zero_image_embeds)
        if kind == "plain"
        else (features.penultimate, features.zero_penultimate)
    )
    embeds = torch.cat([neg, pos]).unsqueeze(1).to(model.device, model.dtype)
    return lambda: pipe(
        "a house by a lake",
        ip_adapter_image_embeds=[embeds],
        num_inference_steps=steps,
        width=size,
        height=size,
        generator=make_generators([1]),
        output_type="pil",  # decoded, like a Sumi job
    )


def main() -> None:
    devices = select_device()
    device, dtype = devices.device, devices.dtype
    size, steps = (512, 20) if devices.is_cuda else (256, 4)
    components = tiny_models.full_size("SD1", seed=0)
    unet, vae, (text,) = components["unet"], components["vae"], components["text_encoders"]
    model = SDModel("SD1", unet, vae, [TextEncoderSpec(text, get_tokenizer())], scheduler_config("epsilon"))
    model.to(device, dtype)
    features = _features()

    def sumi(units):
        return lambda: engine.generate(model, _request(size, steps, units), progress_bar=False)

    sumi([])()  # warm up
    plain_s = median_seconds(sumi([]), device, 3, warmup=False)
    name = torch.cuda.get_device_name() if devices.is_cuda else "CPU"
    print(f"device {name}, {dtype}, SD1.5 (random weights), {size}x{size}, {steps} steps, Euler, CFG")
    print(f"Sumi plain:                {steps / plain_s:.2f} it/s")
    for kind, resampler in (("plain", 64), ("plus", 768)):
        state = ip_adapter_state(unet, kind, clip=VIT_H, resampler_dim=resampler)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_ip_adapter(Path(tmp) / f"ip-adapter-{kind}_sd15.safetensors", state)
            loaded = load_controlnet(path, dtype=dtype, device=device)
        tokens, negative = loaded.model.tokens(features)
        unit = ImagePromptUnit(loaded.model, tokens, negative)
        ours = median_seconds(sumi([unit]), device, 3)
        theirs = median_seconds(_diffusers(model, state, kind, size, steps, features), device, 3)
        print(f"Sumi + IP-Adapter {kind:5}:   {steps / ours:.2f} it/s  ({ours / plain_s:.2f}x a plain job)")
        print(f"diffusers + IP-Adapter {kind:5}: {steps / theirs:.2f} it/s")
    latents = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(1))
    for mode in ("reference_only", "reference_adain+attn"):
        seconds = median_seconds(sumi([ReferenceUnit(latents.to(device), mode)]), device, 3)
        print(f"Sumi + {mode}: {steps / seconds:.2f} it/s  ({seconds / plain_s:.2f}x a plain job)")


if __name__ == "__main__":
    main()
