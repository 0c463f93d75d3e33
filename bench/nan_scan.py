"""What refusing NaN/inf weights at load costs: checkpoint load time with and without the weight scan.

    python bench/nan_scan.py                # the tiny SD1 test model
    python bench/nan_scan.py --full         # also SD1.5's real architecture (random weights, fp16 file,
                                            # ~2.1 GB on disk, ~7 GB of RAM while it loads in fp32)

`load_checkpoint` scans every weight it uses (`files.check_weights`: one min/max pass per tensor, which
also finds values too big for the target dtype). "without" replaces that call by a no-op; loads with and
without alternate run by run. "scan alone" runs the scan over the file's tensors (already read once);
"isfinite" is the naive `torch.isfinite(t).all()` per tensor, for comparison. Each figure is the median
of `--runs` runs after a warm-up (the file is in the page cache).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from timing import median_seconds  # noqa: E402

from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.checkpoint import load_checkpoint  # noqa: E402
from modules.sumi.engine.families import base as family_base  # noqa: E402
from modules.sumi.engine.files import check_weights, read_state_dict  # noqa: E402

CPU = torch.device("cpu")


def _write(path: Path, components: dict, dtype: torch.dtype | None) -> int:
    tiny_models.write_checkpoint(path, components, dtype=dtype)
    return sum(
        p.numel()
        for m in (components["unet"], components["vae"], *components["text_encoders"])
        for p in m.parameters()
    )


def _load(path: Path, dtype: torch.dtype) -> None:
    model = load_checkpoint(path, dtype=dtype)
    del model
    gc.collect()


def _scan_costs(path: Path, dtype: torch.dtype, runs: int) -> tuple[float, float]:
    """Seconds for Sumi's scan and for the naive isfinite scan over the file's tensors."""
    tensors = read_state_dict(path)
    scan = median_seconds(lambda: check_weights(tensors, "all", path, dtype), CPU, runs=runs)
    naive = median_seconds(
        lambda: [bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point()],
        CPU,
        runs=runs,
    )
    return scan, naive


def _load_seconds(path: Path, dtype: torch.dtype, runs: int) -> tuple[float, float]:
    """Median load seconds with and without the scan, the two interleaved run by run so that a busy
    neighbour on a shared machine slows both alike."""
    real = family_base.check_weights

    def without_scan() -> None:
        family_base.check_weights = lambda *args, **kwargs: None  # bench only
        try:
            _load(path, dtype)
        finally:
            family_base.check_weights = real

    _load(path, dtype)  # warm-up: the file in the page cache
    with_times, without_times = [], []
    for _ in range(runs):
        with_times.append(median_seconds(lambda: _load(path, dtype), CPU, runs=1, warmup=False))
        without_times.append(median_seconds(without_scan, CPU, runs=1, warmup=False))
    return statistics.median(with_times), statistics.median(without_times)


def measure(label: str, path: Path, params: int, dtype: torch.dtype, runs: int) -> None:
    with_scan, without = _load_seconds(path, dtype, runs)
    scan, naive = _scan_costs(path, dtype, runs)
    gc.collect()
    size = path.stat().st_size / 2**20
    print(
        f"| {label} | {params / 1e6:.0f} M, {size:.0f} MiB | {without:.2f} s | {with_scan:.2f} s | "
        f"{scan * 1000:.0f} ms ({scan / without:.1%}) | {naive * 1000:.0f} ms ({naive / without:.1%}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also SD1.5's real size (needs ~7 GB of RAM)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; loading in fp32 on the CPU")
    print("| model | weights, file | load without scan | load with scan | scan alone | isfinite().all() |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tiny_path = Path(tmp) / "tiny.safetensors"
        params = _write(tiny_path, tiny_models.tiny("SD1"), None)
        measure("tiny SD1, fp32 file", tiny_path, params, torch.float32, args.runs)
        if args.full:
            full_path = Path(tmp) / "sd15.safetensors"
            components = tiny_models.full_size("SD1", seed=0)
            params = _write(full_path, components, torch.float16)
            del components
            gc.collect()
            measure("SD1.5 size, fp16 file", full_path, params, torch.float32, max(2, args.runs // 2))


if __name__ == "__main__":
    main()
