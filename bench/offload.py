"""Low-VRAM modes and FP8 weights: seconds per image and peak VRAM for each placement, on a full-size
random-weight SD1.5 (or SDXL) model, through Sumi's engine.

    python bench/offload.py                  # SD1.5, 512x512, 20 steps on CUDA (fp16)
    python bench/offload.py --family SDXL    # SDXL, 1024x1024
    python bench/offload.py --size 128 --steps 2 --runs 1   # what fits on a CPU

Rows: none (whole model on the device), med (--medvram), low (--lowvram), fp8 (FP8 weight), low+fp8.
On the CPU storage and compute are the same device: the rows show what the hooks cost and how many
bytes the UNet's weights take, not VRAM.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from timing import median_seconds  # noqa: E402

from modules.sumi.engine import generate as engine  # noqa: E402
from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.accel import fp8, offload  # noqa: E402
from modules.sumi.engine.devices import select_device  # noqa: E402
from modules.sumi.engine.families.base import scheduler_config  # noqa: E402
from modules.sumi.engine.model import SDModel, TextEncoderSpec  # noqa: E402
from modules.sumi.engine.text.tokenizer import get_tokenizer  # noqa: E402

MODES = {"none": ("none", False), "med": ("med", False), "low": ("low", False), "fp8": ("none", True), "low+fp8": ("low", True)}  # fmt: skip


def _model(family: str) -> SDModel:
    components = tiny_models.full_size(family, seed=0)
    specs = [
        TextEncoderSpec(m, get_tokenizer(), layer=-2 if family == "SDXL" else -1, final_norm=family != "SDXL", pooled=i == 1)
        for i, m in enumerate(components["text_encoders"])
    ]  # fmt: skip
    return SDModel(family, components["unet"], components["vae"], specs, scheduler_config("epsilon"))


def _place(model: SDModel, mode: str, device: torch.device, dtype: torch.dtype) -> None:
    """In place (one copy of the weights in RAM); fp8 cannot be undone, so its rows come last."""
    policy, use_fp8 = MODES[mode]
    offload.detach(model)
    if fp8.is_fp8(model.unet) and not use_fp8:
        raise SystemExit(f"{mode}: list the fp8 modes last")
    if use_fp8 and not fp8.is_fp8(model.unet):
        fp8.store_in_fp8(model.unet)
    model.to("cpu" if policy != "none" else device, dtype)
    offload.attach(model, policy, "cpu", device)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", default="SD1", choices=["SD1", "SDXL"])
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    devices = select_device()
    device, dtype = devices.device, devices.dtype
    size = args.size or (1024 if args.family == "SDXL" else 512)
    steps = args.steps or (20 if devices.is_cuda else 4)
    model = _model(args.family)
    request = engine.BatchRequest(
        prompts=["a house by a lake"], negative_prompts=[""], seeds=[1], width=size, height=size, steps=steps, sampler="Euler"
    )  # fmt: skip
    name = torch.cuda.get_device_name() if devices.is_cuda else "CPU"
    print(f"device {name}, {dtype}, {args.family} (random weights), {size}x{size}, {steps} steps, Euler, CFG")
    print("mode      s/image   peak VRAM MiB   UNet Linear/Conv weight MiB   max RSS MiB")
    for mode in args.modes.split(","):
        _place(model, mode, device, dtype)
        run = lambda: engine.generate(model, request, progress_bar=False)  # noqa: E731
        run()  # warm-up (and the prefetch order)
        if devices.is_cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        seconds = median_seconds(run, device, args.runs, warmup=False)
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:13.0f}" if devices.is_cuda else "            -"
        weights = fp8.weight_bytes(model.unet) / 2**20
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{mode:8s} {seconds:8.2f}   {peak}   {weights:27.0f}   {rss:11.0f}")
        if devices.is_cuda:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
