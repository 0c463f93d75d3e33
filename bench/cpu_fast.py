"""The CPU fast path (bf16 weights + channels_last where the CPU computes bf16) against fp32.

    python bench/cpu_fast.py --size sd15 --runs 3     # full-size SD1.5 (random weights), 512x512, 4 steps
    python bench/cpu_fast.py --size tiny --runs 5     # the demo model
    python bench/cpu_fast.py --size sd15 --separate --sides fp32,fast,openvino   # + OpenVINO (pip install openvino)

Prints, as medians of interleaved runs (the two sides alternate, so a busy machine hurts both alike):
- the UNet step alone (batch 2: CFG's cond and uncond rows), fp32 vs the fast path;
- the VAE decode of one 512x512 image, fp32 vs the fast path;
- one image end to end (text encoding, `--steps` Euler a steps at CFG 7, VAE decode): Sumi's engine with
  the precision `select_device()` picks on this machine vs plain diffusers' StableDiffusionPipeline in
  fp32 on the same weights, and how far the two images are apart (0-255 pixel values).

The "openvino" side (`--separate` only) is the fast path's placement with the setting "OpenVINO: UNet +
VAE decode": the UNet and VAE decode run as OpenVINO graphs; the first call of each (tracing and
compiling) is timed apart as `first_call_s`. The "tome" side is the fast path with A1111's token merging at
ratio 0.5 (tomesd): faster, at some cost in detail (its pixel gap is the price).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import StableDiffusionPipeline  # noqa: E402
from pipelines import diffusers_pipeline  # noqa: E402

from modules.sumi.engine import generate as engine  # noqa: E402
from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.accel import compiled  # noqa: E402
from modules.sumi.engine.accel.compiled import CompileConfig  # noqa: E402
from modules.sumi.engine.accel.cpu import bf16_flags, cpu_flags  # noqa: E402
from modules.sumi.engine.accel.token_merging import token_merging  # noqa: E402
from modules.sumi.engine.checkpoint import load_checkpoint  # noqa: E402
from modules.sumi.engine.devices import select_device  # noqa: E402
from modules.sumi.engine.model import SDModel  # noqa: E402
from modules.sumi.engine.placement import place  # noqa: E402
from modules.sumi.engine.sampling.noise import make_generators  # noqa: E402
from modules.sumi.engine.sampling.samplers import build_scheduler  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse"
TOME_RATIO = 0.5


def interleaved(sides: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median seconds per side; one warm-up call each, then the sides alternate `runs` times."""
    for fn in sides.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(runs):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def unet_step(model: SDModel, size: int) -> Callable[[], object]:
    dtype = model.dtype
    x = torch.randn(2, 4, size // 8, size // 8).to(dtype)
    context = torch.randn(2, 77, int(model.unet.config["cross_attention_dim"])).to(dtype)
    t = torch.tensor(500.0)
    return lambda: model.unet(x, t, encoder_hidden_states=context, return_dict=False)


def vae_decode(model: SDModel, size: int) -> Callable[[], object]:
    z = torch.randn(1, 4, size // 8, size // 8).to(model.vae.dtype)
    return lambda: model.vae.decode(z, return_dict=False)  # pyright: ignore[reportArgumentType]


def compiled_unet_step(model: SDModel, cache: compiled.CompileCache, size: int) -> Callable[[], object]:
    """The UNet step as the job's denoiser runs it with the compiled path on (fp32 timestep)."""
    dtype = model.dtype
    x = torch.randn(2, 4, size // 8, size // 8).to(dtype)
    context = torch.randn(2, 77, int(model.unet.config["cross_attention_dim"])).to(dtype)
    unet = compiled.CompiledUNet(model.unet, cache)
    return lambda: unet(x, torch.tensor(500.0), context)


def compiled_vae_decode(model: SDModel, cache: compiled.CompileCache, size: int) -> Callable[[], object]:
    z = torch.randn(1, 4, size // 8, size // 8).to(model.vae.dtype)
    return lambda: cache.vae_decode(model.vae, z)


def _first_calls(model: SDModel, cache: compiled.CompileCache, size: int) -> dict[str, float]:
    """Seconds of the first UNet call and the first VAE decode (tracing and compiling included)."""
    times = {}
    for name, make in (("unet", compiled_unet_step), ("vae", compiled_vae_decode)):
        start = time.perf_counter()
        make(model, cache, size)()
        times[name] = round(time.perf_counter() - start, 1)
    return times


def sumi_image(
    model: SDModel, size: int, steps: int, out: list, token_merging_ratio: float = 0.0
) -> Callable[[], object]:
    request = engine.BatchRequest(
        prompts=[PROMPT],
        negative_prompts=[""],
        seeds=[1],
        width=size,
        height=size,
        steps=steps,
        token_merging_ratio=token_merging_ratio,
    )

    def run() -> None:
        out[:] = engine.generate(model, request, progress_bar=False).images

    return run


def diffusers_image(model: SDModel, size: int, steps: int, out: list) -> Callable[[], object]:
    scheduler = build_scheduler("Euler a", "Automatic", model.scheduler_config).scheduler
    pipe = diffusers_pipeline(StableDiffusionPipeline, model, scheduler)

    def run() -> None:
        pipe.scheduler = build_scheduler("Euler a", "Automatic", model.scheduler_config).scheduler
        out[:] = pipe(
            PROMPT,
            negative_prompt="",
            num_inference_steps=steps,
            guidance_scale=7.0,
            width=size,
            height=size,
            generator=make_generators([1]),
        ).images

    return run


def pixel_gap(a, b) -> dict[str, float]:
    x = np.asarray(a, dtype=np.int16)
    y = np.asarray(b, dtype=np.int16)
    d = np.abs(x - y)
    return {"max": float(d.max()), "mean": float(d.mean()), "p99": float(np.percentile(d, 99))}


def run_side(args) -> dict:
    """One side in this process: "fp32" (plain diffusers on fp32 weights, and the fp32 UNet and VAE),
    "fast" (Sumi's engine on the weights placed as `select_device()` chooses) or "openvino" (as "fast",
    with the UNet and VAE decode as OpenVINO graphs)."""
    model = load_checkpoint(args.checkpoint, dtype=torch.float32)
    config = select_device(use_cpu=True)
    row: dict = {"side": args.side}
    if args.side in ("fast", "openvino", "tome"):
        row["placed"] = place(model, config, size_rule=not args.no_size_rule)
    tome = TOME_RATIO if args.side == "tome" else 0.0
    cache = None
    if args.side == "openvino":
        cache = compiled.configure(model, CompileConfig.from_choice("OpenVINO: UNet + VAE decode"))
    parts = set(args.parts.split(","))
    runs = max(args.runs, 1)
    out: list = []
    with torch.inference_mode():
        if cache is not None:
            row["first_call_s"] = _first_calls(model, cache, args.pixels)
        if "unet" in parts:
            step = (
                unet_step(model, args.pixels)
                if cache is None
                else compiled_unet_step(model, cache, args.pixels)
            )
            with token_merging(model.unet, tome) if tome else contextlib.nullcontext():
                row["unet_step_s"] = interleaved({"x": step}, runs)["x"]
        if "vae" in parts:
            decode = (
                vae_decode(model, args.pixels)
                if cache is None
                else compiled_vae_decode(model, cache, args.pixels)
            )
            row["vae_decode_s"] = interleaved({"x": decode}, runs)["x"]
        if "image" in parts:
            run = (
                diffusers_image(model, args.pixels, args.steps, out)
                if args.side == "fp32"
                else sumi_image(model, args.pixels, args.steps, out, tome)
            )
            row["image_s"] = interleaved({"x": run}, runs)["x"]
            out[0].save(args.checkpoint.with_name(f"{args.side}.png"))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=["tiny", "sd15"], default="sd15")
    parser.add_argument("--pixels", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", default="unet,vae,image", help="comma-separated: unet, vae, image")
    parser.add_argument(
        "--no-size-rule", action="store_true", help="bf16 even for a model the size rule keeps in fp32"
    )
    parser.add_argument(
        "--separate", action="store_true", help="each side in its own process, one after the other "
        "(half the peak memory of the full-size model; not interleaved)"
    )  # fmt: skip
    parser.add_argument(
        "--sides", default="fp32,fast", help="with --separate: comma-separated fp32, fast, openvino, tome"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--side", choices=["fp32", "fast", "openvino", "tome"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args)))
        return
    config = select_device(use_cpu=True)
    report: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": platform.processor() or platform.machine(),
        "bf16_flags": bf16_flags(cpu_flags()),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": args.size,
        "pixels": args.pixels,
        "steps": args.steps,
        "runs": args.runs,
        "reason": config.reason,
    }
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        components = tiny_models.full_size("SD1") if args.size == "sd15" else tiny_models.demo_sd1(0)
        path = tiny_models.write_checkpoint(Path(tmp) / f"bench-{args.size}.safetensors", components)
        del components
        if args.separate:
            report.update(_separate(args, path))
        else:
            report.update(_together(args, path, config))
    for key in ("unet_step_s", "vae_decode_s", "image_s"):
        if key in report and len(report[key]) > 1:
            (base, base_s), *others = report[key].items()
            speedups = {f"{name}_vs_{base}": round(base_s / seconds, 2) for name, seconds in others}
            report[key.removesuffix("_s") + "_speedup"] = speedups
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _separate(args, path: Path) -> dict:
    import subprocess

    rows = {}
    for side in args.sides.split(","):
        cmd = [sys.executable, __file__, "--side", side, "--checkpoint", str(path), "--size", args.size]
        cmd += ["--pixels", str(args.pixels), "--steps", str(args.steps), "--runs", str(args.runs)]
        cmd += ["--parts", args.parts] + (["--no-size-rule"] if args.no_size_rule else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows[side] = json.loads(out.strip().splitlines()[-1])
        print(side, rows[side], flush=True)
    result: dict = {"fast_path": rows.get("fast", rows.get("openvino", {})).get("placed")}
    if "openvino" in rows:
        result["openvino_first_call_s"] = rows["openvino"].get("first_call_s")
    for key in ("unet_step_s", "vae_decode_s", "image_s"):
        named = {_side_name(side, key): row[key] for side, row in rows.items() if key in row}
        if named:
            result[key] = named
    if "image_s" in result and "fp32" in rows:
        from PIL import Image

        reference = Image.open(path.with_name("fp32.png"))
        for side in rows.keys() - {"fp32"}:
            gap = pixel_gap(Image.open(path.with_name(f"{side}.png")), reference)
            result["pixel_gap_vs_diffusers_fp32" + ("" if side == "fast" else f"_{side}")] = gap
    return result


def _side_name(side: str, key: str) -> str:
    if key != "image_s":
        return side
    return {"fp32": "diffusers_fp32", "fast": "sumi_fast"}.get(side, f"sumi_{side}")


def _together(args, path: Path, config) -> dict:
    parts = set(args.parts.split(","))
    fp32 = load_checkpoint(path, dtype=torch.float32)
    fast = copy.deepcopy(fp32)
    report: dict = {"fast_path": place(fast, config, size_rule=not args.no_size_rule)}
    with torch.inference_mode():
        if "unet" in parts:
            report["unet_step_s"] = interleaved(
                {"fp32": unet_step(fp32, args.pixels), "fast": unet_step(fast, args.pixels)}, args.runs
            )
            print("UNet step (batch 2):", report["unet_step_s"], flush=True)
        if "vae" in parts:
            report["vae_decode_s"] = interleaved(
                {"fp32": vae_decode(fp32, args.pixels), "fast": vae_decode(fast, args.pixels)}, args.runs
            )
            print("VAE decode:", report["vae_decode_s"], flush=True)
        if "image" in parts:
            sumi_out: list = []
            diffusers_out: list = []
            report["image_s"] = interleaved(
                {
                    "diffusers_fp32": diffusers_image(fp32, args.pixels, args.steps, diffusers_out),
                    "sumi_fast": sumi_image(fast, args.pixels, args.steps, sumi_out),
                },
                args.runs,
            )
            report["pixel_gap_vs_diffusers_fp32"] = pixel_gap(sumi_out[0], diffusers_out[0])
            print("Image:", report["image_s"], report["pixel_gap_vs_diffusers_fp32"], flush=True)
    return report


if __name__ == "__main__":
    main()
