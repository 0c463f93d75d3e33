"""What refusing NaN/inf weights at load costs: checkpoint load time with and without the weight scan.

    python bench/nan_scan.py                # the tiny SD1 test model
    python bench/nan_scan.py --full         # also SD1.5's real architecture (random weights, fp16 file,
                                            # ~2.1 GB on disk, ~7 GB of RAM while it loads in fp32)

`load_checkpoint` scans every weight it uses (`files.check_weights`: one min/max pass per tensor, which
also finds values too big for the target dtype). "without" replaces that call by a no-op; loads with and
without alternate run by run. "scan alone" runs the scan over the file's tensors (already read once);
"isfinite" is the naive `torch.isfinite(t).all()` per tensor, for comparison. Each figure is the median
of `--runs` runs after a warm-up (the file is in the page cache), as wall seconds and as CPU seconds of the
process: on a shared machine the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.checkpoint import load_checkpoint  # noqa: E402
from modules.sumi.engine.families import base as family_base  # noqa: E402
from modules.sumi.engine.files import check_weights, read_state_dict  # noqa: E402


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


Cost = tuple[float, float]  # (wall seconds, CPU seconds of this process), medians over the runs


def _cost(fn: Callable[[], object], runs: int) -> Cost:
    fn()  # warm-up: the file in the page cache, the mapping faulted in
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _scan_costs(path: Path, dtype: torch.dtype, runs: int) -> tuple[Cost, Cost]:
    """Sumi's scan and the naive isfinite scan over the file's tensors."""
    tensors = read_state_dict(path)
    scan = _cost(lambda: check_weights(tensors, "all", path, dtype), runs)
    naive = _cost(
        lambda: [bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point()], runs
    )
    return scan, naive


def _load_costs(path: Path, dtype: torch.dtype, runs: int) -> tuple[Cost, Cost]:
    """Load with and without the scan, interleaved run by run so that a busy neighbour on a shared
    machine slows both alike."""
    real = family_base.check_weights

    def without_scan() -> None:
        family_base.check_weights = lambda *args, **kwargs: None  # bench only
        try:
            _load(path, dtype)
        finally:
            family_base.check_weights = real

    pairs = [(_cost(lambda: _load(path, dtype), 1), _cost(without_scan, 1)) for _ in range(runs)]
    with_scan = (statistics.median(p[0][0] for p in pairs), statistics.median(p[0][1] for p in pairs))
    without = (statistics.median(p[1][0] for p in pairs), statistics.median(p[1][1] for p in pairs))
    return with_scan, without


def _show(cost: Cost, base: Cost | None = None) -> str:
    text = f"{cost[0]:.2f} / {cost[1]:.2f} s"
    return text + (f" ({cost[0] / base[0]:.1%} / {cost[1] / base[1]:.1%})" if base else "")


def measure(label: str, path: Path, params: int, dtype: torch.dtype, runs: int) -> None:
    with_scan, without = _load_costs(path, dtype, runs)
    scan, naive = _scan_costs(path, dtype, runs)
    gc.collect()
    size = path.stat().st_size / 2**20
    print(
        f"| {label} | {params / 1e6:.0f} M, {size:.0f} MiB | {_show(without)} | {_show(with_scan)} | "
        f"{_show(scan, without)} | {_show(naive, without)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also SD1.5's real size (needs ~7 GB of RAM)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; loading in fp32 on the CPU; wall / CPU seconds (medians)"
    )
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
            measure("SD1.5 size, fp16 file", full_path, params, torch.float32, max(3, args.runs // 2))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
