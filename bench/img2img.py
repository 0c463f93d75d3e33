"""Sumi's img2img at strength s against Sumi's txt2img and diffusers' img2img pipeline on the same weights.

    python bench/img2img.py                    # CUDA: SD1.5-shaped random weights at 512x512; CPU: demo model
    python bench/img2img.py --size tiny --steps 20 --runs 3 --strengths 0.25 0.5 0.75 1.0

Every row is seconds per image (median of `--runs`, after a warm-up), including the VAE encode of the
init image (one encode; Sumi's `engine.img2img.encode`, diffusers' pipeline encodes inside). diffusers
runs at the strength that gives A1111's step count (A1111 runs int(s * steps) + 1 steps of a k-diffusion
schedule, diffusers int(s * steps)), so both sides run the same number of UNet steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import diffusers  # noqa: E402
import torch  # noqa: E402
from diffusers import StableDiffusionImg2ImgPipeline  # noqa: E402
from pipelines import load_bench_model, sampler_pipeline, write_bench_checkpoint  # noqa: E402
from timing import median_seeded  # noqa: E402

from modules.sumi.engine import generate as engine  # noqa: E402
from modules.sumi.engine import img2img  # noqa: E402
from modules.sumi.engine.devices import select_device  # noqa: E402
from modules.sumi.engine.sampling.noise import make_generators  # noqa: E402
from modules.sumi.engine.sampling.samplers import build_scheduler, find_sampler  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=["auto", "tiny", "sd15"], default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--sampler", default="Euler a")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    devices = select_device()
    size = args.size if args.size != "auto" else ("sd15" if devices.is_cuda else "tiny")
    res = args.resolution or (512 if size == "sd15" else 256)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = load_bench_model(write_bench_checkpoint(size, Path(tmp)), devices)
    device = devices.device
    pixels = torch.rand((1, 3, res, res), generator=torch.Generator().manual_seed(0)) * 2 - 1
    pipe = sampler_pipeline(StableDiffusionImg2ImgPipeline, model, args.sampler)
    prompt = "a photograph of an astronaut riding a horse"

    def request(seed: int, init=None) -> engine.BatchRequest:
        return engine.BatchRequest(
            prompts=[prompt],
            negative_prompts=[""],
            seeds=[seed],
            width=res,
            height=res,
            steps=args.steps,
            sampler=args.sampler,
            init=init,
        )

    def sumi_img2img(strength: float):
        def run(seed: int) -> None:
            latents = img2img.encode(model, pixels.to(device))
            engine.generate(model, request(seed, img2img.InitLatents(latents, strength)), progress_bar=False)

        return run

    def diffusers_img2img(strength: float):
        plan = img2img.img2img_steps(find_sampler(args.sampler)[0], args.steps, strength)
        equivalent = min(plan.run_steps / args.steps + 1e-6, 1.0)

        def run(seed: int) -> None:
            pipe.scheduler = build_scheduler(args.sampler, "Automatic", model.scheduler_config).scheduler
            image = ((pixels + 1) / 2).to(device, devices.dtype)
            pipe(
                prompt,
                image=image,
                strength=equivalent,
                num_inference_steps=args.steps,
                guidance_scale=7.0,
                generator=make_generators([seed]),
            )

        return run

    rows = []
    with torch.inference_mode():
        txt2img = median_seeded(
            lambda s: engine.generate(model, request(s), progress_bar=False), device, args.runs
        )
        encode = median_seeded(lambda s: img2img.encode(model, pixels.to(device)), device, args.runs)
        rows.append({"name": "Sumi txt2img", "strength": None, "steps_run": args.steps, "seconds": txt2img})
        rows.append({"name": "Sumi VAE encode", "strength": None, "steps_run": 0, "seconds": encode})
        for strength in args.strengths:
            plan = img2img.img2img_steps(find_sampler(args.sampler)[0], args.steps, strength)
            ours = median_seeded(sumi_img2img(strength), device, args.runs)
            theirs = median_seeded(diffusers_img2img(strength), device, args.runs)
            rows.append(
                {"name": "Sumi img2img", "strength": strength, "steps_run": plan.run_steps, "seconds": ours}
            )
            rows.append(
                {
                    "name": "diffusers img2img",
                    "strength": strength,
                    "steps_run": plan.run_steps,
                    "seconds": theirs,
                }
            )
    for row in rows:
        label = f"{row['name']}" + (f" s={row['strength']}" if row["strength"] is not None else "")
        ratio = row["seconds"] / txt2img
        print(
            f"{label:32s} {row['steps_run']:3d} steps  {row['seconds']:7.3f} s/image  {ratio:5.2f} x txt2img"
        )
    report = {
        "device": torch.cuda.get_device_name() if devices.is_cuda else platform.processor() or "cpu",
        "dtype": str(devices.dtype),
        "model": size,
        "size": f"{res}x{res}",
        "steps": args.steps,
        "sampler": args.sampler,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "threads": torch.get_num_threads(),
        "results": rows,
    }
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
