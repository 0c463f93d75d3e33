"""The compiled fast path (engine/accel/compiled.py) against eager: first-image time (compilation
included), then per-step UNet time (batch 2: cond + uncond) and seconds per image, on the same model.

    python bench/compile.py --model tiny --dtype fp32          # the demo model's architecture
    python bench/compile.py --model sd15 --dtype bf16 --steps 4 # full-size SD1.5, random weights, 512x512
    python bench/compile.py --model sd15 --dtype fp16           # CUDA: inductor + CUDA graphs
    python bench/compile.py --model sd15 --dtype bf16 --unet-only  # no images: step and compile time

Each run is one process: eager first (first image, then a warm image and the UNet step), then compiled
(a fresh cache: the first image includes its one compilation, then a warm image and the UNet step).
Throughput does not depend on weight values, so random weights at the real sizes measure what a user
gets. Prints one JSON line; `--json` writes it to a file too. Inductor keeps an on-disk cache
(/tmp/torchinductor_$USER): `--cold` points it at a fresh folder so the first image pays the full compile.
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

import torch  # noqa: E402

from modules.sumi.engine import generate as engine  # noqa: E402
from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.accel import compiled  # noqa: E402
from modules.sumi.engine.accel.compiled import CompileConfig  # noqa: E402
from modules.sumi.engine.checkpoint import load_checkpoint  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def load_model(size: str, dtype: torch.dtype, device: torch.device, folder: Path):
    components = tiny_models.full_size("SD1", seed=0) if size == "sd15" else tiny_models.demo_sd1(0)
    path = tiny_models.write_checkpoint(folder / f"bench-{size}.safetensors", components, dtype=torch.float16)
    del components
    model = load_checkpoint(path, dtype=dtype)
    model.to(device, dtype, vae_dtype=torch.float32 if dtype == torch.bfloat16 else dtype)
    return model


def image_seconds(model, args) -> float:
    request = engine.BatchRequest(
        prompts=["a red circle on a blue square"],
        negative_prompts=[""],
        seeds=[1],
        width=args.width,
        height=args.height,
        steps=args.steps,
        cfg_scale=7.0,
        sampler="Euler a",
    )
    _sync(model.device)
    start = time.perf_counter()
    engine.generate(model, request, progress_bar=False)
    _sync(model.device)
    return time.perf_counter() - start


def step_seconds(unet, model, args, runs: int | None = None) -> float:
    """Median seconds of one UNet call on batch 2 (what one CFG step costs), after a warm-up call;
    `runs=0`: the time of that first call alone."""
    device, dtype = model.device, model.dtype
    g = torch.Generator().manual_seed(0)
    h, w = args.height // model.vae_scale, args.width // model.vae_scale
    x = torch.randn(2, model.latent_channels, h, w, generator=g).to(device, dtype)
    ctx = torch.randn(2, 77, int(model.unet.config["cross_attention_dim"]), generator=g).to(device, dtype)
    t = torch.tensor(500.0, device=device)
    times = []
    runs = args.step_runs if runs is None else runs
    for _ in range(runs + 1):
        _sync(device)
        start = time.perf_counter()
        unet(x, t, encoder_hidden_states=ctx, return_dict=False)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) if runs else times[0]


def run(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype]
    row: dict = {
        "model": args.model,
        "dtype": args.dtype,
        "size": f"{args.width}x{args.height}",
        "steps": args.steps,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "targets": args.targets,
    }

    def record(name: str, value: float) -> None:
        row[name] = value
        print(f"{name}: {value:.3f}", file=sys.stderr, flush=True)  # progress of a long CPU run

    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        model = load_model(args.model, dtype, device, Path(tmp))
        if not args.unet_only:
            record("eager_first_image_s", image_seconds(model, args))
            record("eager_image_s", image_seconds(model, args))
        record("eager_step_s", step_seconds(model.unet, model, args))
        config = CompileConfig(unet=True, vae_decode=args.targets == "unet+vae")
        cache = compiled.configure(model, config)
        assert cache is not None
        unet = compiled.CompiledUNet(model.unet, cache)
        if args.unet_only:  # the first call compiles: its time is what a first image adds
            record("compile_and_first_call_s", step_seconds(unet, model, args, runs=0))
        else:
            record("compiled_first_image_s", image_seconds(model, args))
            record("compiled_image_s", image_seconds(model, args))
        record("compiled_step_s", step_seconds(unet, model, args))
        row["compilations"] = cache.compiles
    row["step_speedup"] = row["eager_step_s"] / row["compiled_step_s"]
    if args.unet_only:
        return row
    row["image_speedup"] = row["eager_image_s"] / row["compiled_image_s"]
    row["images_to_break_even"] = max(
        0.0,
        (row["compiled_first_image_s"] - row["eager_first_image_s"])
        / max(1e-9, row["eager_image_s"] - row["compiled_image_s"]),
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["tiny", "sd15"], default="tiny")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--step-runs", type=int, default=3, help="UNet calls timed (median)")
    parser.add_argument("--unet-only", action="store_true", help="no images: UNet step and compile time only")
    parser.add_argument("--targets", choices=["unet", "unet+vae"], default="unet")
    parser.add_argument("--cold", action="store_true", help="a fresh inductor cache folder (full compile)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.cold:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")
    row = run(args)
    print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
