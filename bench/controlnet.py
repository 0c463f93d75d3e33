"""ControlNet and T2I-Adapter costs: a sampling step with one ControlNet (or one T2I-Adapter) against a plain
step, Sumi beside diffusers' StableDiffusionControlNetPipeline (StableDiffusionAdapterPipeline) on the same
weights, and peak VRAM with and without low-VRAM mode.

    python bench/controlnet.py      # SD1.5 architecture + its ControlNet, random weights
                                    # (fp16 512x512 on CUDA; fp32 256x256, fewer steps, on the CPU)

The ControlNet is written in lllyasviel's layout and read back through Sumi's loader, like a
downloaded `control_v11p_sd15_canny.safetensors`; the adapter at the size of TencentARC's
`t2iadapter_canny_sd15v2.pth`, in its layout.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from diffusers import (  # noqa: E402
    ControlNetModel,
    EulerDiscreteScheduler,
    StableDiffusionAdapterPipeline,
    StableDiffusionControlNetPipeline,
    T2IAdapter,
)
from pipelines import diffusers_pipeline  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from timing import median_seconds  # noqa: E402

from modules.sumi.engine import generate as engine  # noqa: E402
from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.controlnet.control import ControlUnit  # noqa: E402
from modules.sumi.engine.controlnet.models import load_controlnet  # noqa: E402
from modules.sumi.engine.devices import select_device  # noqa: E402
from modules.sumi.engine.families.base import scheduler_config  # noqa: E402
from modules.sumi.engine.model import SDModel, TextEncoderSpec  # noqa: E402
from modules.sumi.engine.sampling.noise import make_generators  # noqa: E402
from modules.sumi.engine.text.tokenizer import get_tokenizer  # noqa: E402
from tests.fixtures.tiny_controlnets import tencentarc_adapter_state, write_lllyasviel  # noqa: E402


def _peak_mib(fn, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats()
    fn()
    return torch.cuda.max_memory_allocated() / 2**20


def _request(size: int, steps: int, units: list[ControlUnit]) -> engine.BatchRequest:
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


def _diffusers(pipeline_class: type, model: SDModel, size: int, steps: int, image: torch.Tensor, **control):
    """diffusers' `pipeline_class` (ControlNet or adapter pipeline) with `control` (controlnet= or adapter=)."""
    pipe = diffusers_pipeline(
        pipeline_class, model, EulerDiscreteScheduler.from_config(model.scheduler_config), **control
    )
    extra = {"adapter_conditioning_scale": 1.0} if "adapter" in control else {}
    return lambda: pipe(
        "a house by a lake",
        image=image,
        num_inference_steps=steps,
        width=size,
        height=size,
        generator=make_generators([1]),
        output_type="pil",  # decoded, like a Sumi job
        **extra,
    )


def _t2i_adapter(folder: Path, device: torch.device, dtype: torch.dtype) -> tuple[T2IAdapter, object]:
    """t2iadapter_canny_sd15v2's shape, random, as diffusers' T2IAdapter and as Sumi loads its file."""
    torch.manual_seed(0)
    theirs = T2IAdapter(channels=[320, 640, 1280, 1280], num_res_blocks=2, adapter_type="full_adapter")
    path = folder / "t2iadapter_bench_sd15v2.safetensors"
    save_file({k: v.contiguous() for k, v in tencentarc_adapter_state(theirs).items()}, path)
    return theirs.to(device, dtype).eval(), load_controlnet(path, dtype=dtype, device=device)


def main() -> None:
    devices = select_device()
    device, dtype = devices.device, devices.dtype
    size, steps = (512, 20) if devices.is_cuda else (256, 4)
    components = tiny_models.full_size("SD1", seed=0)
    unet, vae, (text,) = components["unet"], components["vae"], components["text_encoders"]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lllyasviel(Path(tmp) / "control_sd15_bench.safetensors", ControlNetModel.from_unet(unet))
        loaded = load_controlnet(path, dtype=dtype, device=device)
        their_adapter, our_adapter = _t2i_adapter(Path(tmp), device, dtype)
    model = SDModel("SD1", unet, vae, [TextEncoderSpec(text, get_tokenizer())], scheduler_config("epsilon"))
    model.to(device, dtype)
    image = torch.rand(1, 3, size, size)
    unit = ControlUnit(loaded.model, image.to(device, dtype))

    def sumi(units):
        return lambda: engine.generate(model, _request(size, steps, units), progress_bar=False)

    sumi(())()  # warm up
    plain_s = median_seconds(sumi([]), device, 3, warmup=False)
    control_s = median_seconds(sumi([unit]), device, 3, warmup=False)
    theirs = _diffusers(StableDiffusionControlNetPipeline, model, size, steps, image, controlnet=loaded.model)
    diffusers_s = median_seconds(theirs, device, 3)
    adapter_s = median_seconds(sumi([ControlUnit(our_adapter.model, image.to(device, dtype))]), device, 3)
    diffusers_adapter_s = median_seconds(
        _diffusers(StableDiffusionAdapterPipeline, model, size, steps, image, adapter=their_adapter),
        device,
        3,
    )
    name = torch.cuda.get_device_name() if devices.is_cuda else "CPU"
    print(
        f"device {name}, {dtype}, SD1.5 + ControlNet (random weights), {size}x{size}, {steps} steps, Euler, CFG"
    )
    print(f"Sumi plain:            {steps / plain_s:.2f} it/s")
    print(f"Sumi + ControlNet:     {steps / control_s:.2f} it/s  ({control_s / plain_s:.2f}x a plain job)")
    print(f"diffusers + ControlNet: {steps / diffusers_s:.2f} it/s")
    print(f"Sumi + T2I-Adapter:     {steps / adapter_s:.2f} it/s  ({adapter_s / plain_s:.2f}x a plain job)")
    print(f"diffusers + T2I-Adapter: {steps / diffusers_adapter_s:.2f} it/s")
    normal = _peak_mib(sumi([unit]), device)
    if normal is not None:
        loaded.model.to("cpu")
        low = _peak_mib(sumi([ControlUnit(loaded.model, unit.image, low_vram=True)]), device)
        print(f"peak VRAM with ControlNet: {normal:.0f} MiB; low VRAM mode: {low:.0f} MiB")


if __name__ == "__main__":
    main()
