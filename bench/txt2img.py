"""Sumi's txt2img against plain diffusers on the same weights: it/s, seconds per image, peak memory.

    python bench/txt2img.py                 # CUDA: SD1.5-shaped random weights at real size; CPU: tiny
    python bench/txt2img.py --size tiny     # force the tiny model
    python bench/txt2img.py --steps 20 --runs 3 --width 512 --height 512

Both sides run the same UNet, VAE and text encoder objects (loaded by Sumi from an A1111 single-file
checkpoint written here), the same scheduler and the same seeds; only the pipeline around them differs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import diffusers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from diffusers import StableDiffusionPipeline  # noqa: E402
from pipelines import load_bench_model, sampler_pipeline, write_bench_checkpoint  # noqa: E402
from timing import sync  # noqa: E402

from modules.sumi.engine import generate as engine  # noqa: E402
from modules.sumi.engine.devices import select_device  # noqa: E402
from modules.sumi.engine.sampling.noise import make_generators  # noqa: E402
from modules.sumi.engine.sampling.samplers import build_scheduler  # noqa: E402


class StepClock:
    def __init__(self, device: torch.device):
        self.device, self.times = device, []

    def tick(self, *_args, **_kwargs):
        sync(self.device)
        self.times.append(time.perf_counter())
        return (
            _kwargs.get("callback_kwargs", {})
            if "callback_kwargs" in _kwargs
            else (_args[3] if len(_args) > 3 else {})
        )

    def its(self) -> float:
        return (
            (len(self.times) - 1) / (self.times[-1] - self.times[0]) if len(self.times) > 1 else float("nan")
        )


def run_sumi(model, args, seed: int) -> tuple[float, float]:
    clock = StepClock(model.device)
    request = engine.BatchRequest(
        prompts=[args.prompt],
        negative_prompts=[""],
        seeds=[seed],
        width=args.width,
        height=args.height,
        steps=args.steps,
        cfg_scale=7.0,
        sampler=args.sampler,
    )
    start = time.perf_counter()
    engine.generate(model, request, callback=lambda info: (clock.tick(), None)[1], progress_bar=False)
    sync(model.device)
    return time.perf_counter() - start, clock.its()


def run_diffusers(pipe, model, args, seed: int) -> tuple[float, float]:
    clock = StepClock(model.device)
    pipe.scheduler = build_scheduler(args.sampler, "Automatic", model.scheduler_config).scheduler
    start = time.perf_counter()
    pipe(
        args.prompt,
        negative_prompt="",
        num_inference_steps=args.steps,
        guidance_scale=7.0,
        width=args.width,
        height=args.height,
        generator=make_generators([seed]),
        callback_on_step_end=lambda p, i, t, kw: (clock.tick(), kw)[1],
    )
    sync(model.device)
    return time.perf_counter() - start, clock.its()


def measure(name, fn, runs: int, device: torch.device) -> dict:
    """Median seconds per image and it/s of `fn(seed) -> (seconds, it/s)` over `runs` seeds after a warm-up."""
    fn(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    results = [fn(seed) for seed in range(1, runs + 1)]
    return {
        "name": name,
        "seconds_per_image": statistics.median(r[0] for r in results),
        "it_per_s": statistics.median(r[1] for r in results),
    }


def _peak_memory(device: torch.device) -> float:
    """Peak memory of this process in MiB: CUDA allocations on a GPU, resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one_side(args) -> dict:
    """Load the checkpoint and time one side (run in its own process so peak memory is its own)."""
    devices = select_device()
    torch.manual_seed(0)
    model = load_bench_model(args.checkpoint, devices)
    with torch.inference_mode():
        if args.only == "sumi":
            row = measure("Sumi txt2img", lambda s: run_sumi(model, args, s), args.runs, devices.device)
        else:
            pipe = sampler_pipeline(StableDiffusionPipeline, model, args.sampler)
            row = measure(
                "diffusers StableDiffusionPipeline",
                lambda s: run_diffusers(pipe, model, args, s),
                args.runs,
                devices.device,
            )
    row["peak_mem_mib"] = _peak_memory(devices.device)
    return row


def _side_in_subprocess(args, side: str, checkpoint: Path) -> dict:
    import subprocess

    cmd = [
        sys.executable,
        __file__,
        "--only",
        side,
        "--checkpoint",
        str(checkpoint),
        "--steps",
        str(args.steps),
        "--runs",
        str(args.runs),
        "--width",
        str(args.width),
        "--height",
        str(args.height),
        "--sampler",
        args.sampler,
        "--prompt",
        args.prompt,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=["auto", "tiny", "sd15"], default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--sampler", default="Euler a")
    parser.add_argument("--prompt", default="a photograph of an astronaut riding a horse")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--only", choices=["sumi", "diffusers"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one_side(args)))
        return
    devices = select_device()
    size = args.size if args.size != "auto" else ("sd15" if devices.is_cuda else "tiny")
    args.width = args.width or (512 if size == "sd15" else 256)
    args.height = args.height or (512 if size == "sd15" else 256)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = write_bench_checkpoint(size, Path(tmp))
        rows = [_side_in_subprocess(args, side, checkpoint) for side in ("diffusers", "sumi")]
    report = {
        "device": torch.cuda.get_device_name() if devices.is_cuda else platform.processor() or "cpu",
        "dtype": str(devices.dtype),
        "model": size,
        "size": f"{args.width}x{args.height}",
        "steps": args.steps,
        "sampler": args.sampler,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "results": rows,
    }
    for row in rows:
        kind = "CUDA peak" if devices.is_cuda else "peak RSS"
        print(
            f"{row['name']:36s} {row['it_per_s']:7.2f} it/s  {row['seconds_per_image']:7.3f} s/image  "
            f"{kind} {row['peak_mem_mib']:.0f} MiB"
        )
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
