"""Checkpoint merge memory: Sumi's merge (tensors read one at a time from memory-mapped files) beside
A1111's way (both state dicts read whole, merged in place), on full-size random-weight checkpoints.

    python bench/merge_memory.py                # SD1.5 (two 1.7 GB fp16 files)
    python bench/merge_memory.py --kind sdxl    # SDXL (two 6.5 GB fp16 files)

Each way runs in its own process; the peak of its anonymous memory (RssAnon: what the merge itself
holds, without the file pages the kernel may drop) is sampled every 10 ms, and the wall time measured.
The files are written once into the bench cache (bench/bench_files.py) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _anon_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakMemory:
    """The highest RssAnon seen while the block runs (sampled every 10 ms)."""

    def __enter__(self) -> PeakMemory:
        self.peak, self._stop = _anon_mib(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _anon_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _anon_mib())


def _sumi(a: Path, b: Path, out: Path) -> None:
    from modules.sumi.engine.ldm_export import save_checkpoint
    from modules.sumi.engine.merging import CheckpointTensors, MergeRecipe, merge_checkpoints

    with CheckpointTensors(a) as first, CheckpointTensors(b) as second:
        merged = merge_checkpoints(first, second, None, MergeRecipe("Weighted sum", 0.3))
        save_checkpoint(out, merged)


def _a1111(a: Path, b: Path, out: Path) -> None:
    """A1111's modelmerger: both files read whole, theta_0 merged key by key in place, then saved."""
    from safetensors.torch import load_file, save_file

    theta_0, theta_1 = load_file(a), load_file(b)
    for key in theta_0:
        if "model" in key and key in theta_1:
            theta_0[key] = (1 - 0.3) * theta_0[key] + 0.3 * theta_1[key]
    del theta_1
    save_file(theta_0, out)


def _child(way: str, a: str, b: str) -> None:
    import torch

    torch.set_grad_enabled(False)
    out = Path(tempfile.mkdtemp()) / "merged.safetensors"
    start = time.perf_counter()
    with PeakMemory() as peak:
        (_sumi if way == "sumi" else _a1111)(Path(a), Path(b), out)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "way": way,
                "seconds": seconds,
                "peak_anon_mib": peak.peak,
                "output_mib": out.stat().st_size / 2**20,
            }
        )
    )
    shutil.rmtree(out.parent)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", choices=["sd15", "sdxl"], default="sd15")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sumi-bench")
    parser.add_argument("--child", nargs=3, metavar=("WAY", "A", "B"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        _child(*options.child)
        return
    from bench_files import bench_files

    a = bench_files(options.kind, options.cache).checkpoint
    b = a.with_name(a.stem + "-copy" + a.suffix)
    if not b.exists():
        shutil.copyfile(a, b)  # a second file, so the two are read from two files as in a real merge
    size = a.stat().st_size / 2**20
    print(f"{options.kind}: two {size:.0f} MiB fp16 checkpoints, weighted sum; {os.cpu_count()} CPUs")
    print("| way | peak memory held (RssAnon, MiB) | wall time (s) |")
    print("|---|---|---|")
    for way in ("sumi", "a1111"):
        result = subprocess.run(
            [sys.executable, __file__, "--child", way, str(a), str(b)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        label = "Sumi (streamed)" if way == "sumi" else "A1111's way (both read whole)"
        print(f"| {label} | {row['peak_anon_mib']:.0f} | {row['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
