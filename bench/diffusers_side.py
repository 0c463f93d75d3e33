"""Plain diffusers on the bench's checkpoint, in its own process (so its peak memory is its own).

    python bench/diffusers_side.py '<json: see server_bench.diffusers_row>'

Loads the A1111 single-file checkpoint with `StableDiffusionPipeline` / `StableDiffusionXLPipeline
.from_single_file(config=<local config folder>)` (offline), Euler a (EulerAncestralDiscreteScheduler),
fp16 on CUDA and fp32 on the CPU, SDPA attention (diffusers' default), no safety checker; images are
decoded to PIL like a server's. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from diffusers import (  # noqa: E402
    EulerAncestralDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from timing import its_from_step_counts, timed_runs  # noqa: E402


def load(spec: dict, device: torch.device, dtype: torch.dtype):
    cls = StableDiffusionXLPipeline if spec["xl"] else StableDiffusionPipeline
    extra = (
        {}
        if spec["xl"]
        else {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    )
    pipe = cls.from_single_file(
        spec["checkpoint"], config=spec["config"], local_files_only=True, torch_dtype=dtype, **extra
    )
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def main() -> None:
    spec = json.loads(sys.argv[1])
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    pipe = load(spec, device, torch.float16 if cuda else torch.float32)

    def job(steps: int, width: int, height: int):
        def run(seed: int) -> None:
            pipe(
                spec["prompt"],
                negative_prompt="",
                num_inference_steps=steps,
                guidance_scale=7.0,
                width=width,
                height=height,
                generator=torch.Generator("cpu").manual_seed(seed),
            )

        return run

    w, h, steps, runs = spec["width"], spec["height"], spec["steps"], spec["runs"]
    with torch.inference_mode():
        job(steps, w, h)(0)
        first_image_s = time.time() - spec["launched_at"]
        full = statistics.median(timed_runs(job(steps, w, h), device, runs))
        one = (
            statistics.median(timed_runs(job(1, w, h), device, spec["one_step_runs"])) if steps > 1 else None
        )
        row = {
            "seconds": full,
            "it_s": its_from_step_counts(steps, full, one) if one is not None else None,
            "first_image_s": first_image_s,
            "vram_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        }
        tiled = spec.get("tiled")
        if tiled:  # diffusers' own tiled VAE decode at a large size, peak measured from here on
            pipe.vae.enable_tiling()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            row["tiled"] = {
                "seconds": statistics.median(timed_runs(job(1, tiled, tiled), device, 1)),
                "vram_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            }
    row["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["device"] = torch.cuda.get_device_name() if cuda else "cpu"
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
