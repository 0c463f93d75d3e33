"""Peak memory of one VAE decode, plain or tiled, with the full-size SD VAE (random weights).

One decode per process, so the process's peak RSS (CPU) or CUDA's peak allocation is that decode's:

    python bench/tiled_vae_memory.py --size 2048 --mode Never  --device cuda --dtype float16
    python bench/tiled_vae_memory.py --size 2048 --mode Always --device cuda --dtype float16

Prints one JSON line: the size, mode, device, dtype, seconds, the estimate Auto compares with free
memory, and the peaks (RSS for the process; CUDA allocated/reserved when on CUDA)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.accel import memory, tiled_vae  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--mode", choices=["Never", "Always"], default="Always")
    parser.add_argument("--tile", type=int, default=64, help="latent pixels")
    parser.add_argument("--overlap", type=int, default=16, help="latent pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    vae = tiny_models.vae((128, 256, 512, 512), norm_groups=32, layers=2).eval()
    torch.nn.Module.to(vae, device=device, dtype=dtype)
    z = torch.randn(1, 4, args.size // 8, args.size // 8, device=device, dtype=dtype)
    policy = tiled_vae.TilingPolicy(mode=args.mode, tile=args.tile, overlap=args.overlap)
    tracker = memory.PeakTracker(device if device.type == "cuda" else None)
    tracker.start()
    baseline = memory.ram().get("process", 0)
    start = time.perf_counter()
    with torch.no_grad():
        tiled_vae.run(
            "decode",
            lambda t: vae.decode(t, return_dict=False)[0],  # pyright: ignore[reportArgumentType]
            z,
            policy=policy,
            vae=vae,
            scale=8,
        )
    if device.type == "cuda":
        torch.cuda.synchronize()
    peaks = tracker.peaks()
    print(json.dumps({
        "size": args.size, "mode": args.mode, "tile": args.tile, "overlap": args.overlap,
        "device": args.device, "dtype": args.dtype, "seconds": round(time.perf_counter() - start, 2),
        "estimate_mib": tiled_vae.estimate_bytes(vae, "decode", z, 8) >> 20,
        "rss_before_mib": baseline >> 20,
        "peak_rss_mib": peaks.rss >> 20,
        "cuda_allocated_peak_mib": None if peaks.cuda_active is None else peaks.cuda_active >> 20,
        "cuda_reserved_peak_mib": None if peaks.cuda_reserved is None else peaks.cuda_reserved >> 20,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
