"""Per-job cost of Sumi's API job path on the demo model, and where a job's time goes.

    python bench/job_overhead.py                 # 20 jobs of each kind, medians, and the time split
    python bench/job_overhead.py --jobs 50 --kinds plain64 lora

Each kind is POST /sdapi/v1/txt2img through the server webui.py builds (a TestClient, as the tests use
it) on a fresh data folder with the tiny demo model: `plain64` (64x64, 2 steps), `plain512` (512x512,
1 step), `lora` (64 px with a LoRA tag), `controlnet` (64 px with a canny unit), `script` (64 px with the
Prompt matrix script: 4 images and a grid). The time split samples the job worker's and the request
thread's stacks every 2 ms and files each sample under the first matching stage, so the figures are
shares of wall time, not exact costs.
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from tests.app_support import app_factory, local_client  # noqa: E402

BASE = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "sampler_name": "Euler", "cfg_scale": 5}
KINDS: dict[str, dict] = {
    "plain64": {},
    "plain512": {"width": 512, "height": 512, "steps": 1},
    "lora": {"prompt": "a red fox <lora:bench_style:0.8>"},
    "controlnet": {"alwayson_scripts": {"ControlNet": {"args": [{}]}}},  # the unit is filled in below
    "script": {
        "prompt": "a fox|red|blue",
        "script_name": "prompt matrix",
        "script_args": [False, False, "positive", "comma", 0],
    },
}

# (stage, substrings of "function file" any of which marks a frame as in that stage), first match wins
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("UNet", ("UNet2DConditionModel.forward", "ControlNetModel.forward")),
    ("VAE decode", ("AutoencoderKL.decode", "cheap_preview")),
    ("text encoder", ("encode_prompts",)),
    ("LoRA apply/restore", ("NetworkPatcher",)),
    ("ControlNet preprocess/load", ("controlnet/service.py", "preprocessors")),
    ("scheduler setup", ("build_scheduler",)),
    ("infotext", ("build_infotext",)),
    ("saving files (PNG, params.txt)", ("images/saving.py save_image", "_write_params_txt", "_save_")),
    ("PNG + base64 for the response", ("encode_png_base64",)),
    ("scripts", ("services/scripts/",)),
    ("waiting for the job (request thread)", ("Future.result",)),
]


class StackSampler:
    """Samples named threads' stacks in the background and counts them per stage."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stage = self._stage(frame)
                if stage is not None:
                    self.counts[f"{_role(names.get(ident, ''), frame)}: {stage}"] += 1

    @staticmethod
    def _stage(frame: FrameType | None) -> str | None:
        labels = []
        while frame is not None:
            code = frame.f_code
            labels.append(f"{code.co_qualname} {code.co_filename}")
            frame = frame.f_back
        text = "\n".join(labels)
        if "JobQueue._work" not in text and "run_txt2img" not in text:
            return None  # idle threads, the event loop, this sampler
        if "JobQueue._work" in text and "JobQueue._execute" not in text:
            return None  # the worker waiting for work
        for stage, marks in STAGES:
            if any(mark in label for label in labels for mark in marks):
                return stage
        return "other job code"


def _role(name: str, frame: FrameType) -> str:
    while frame is not None:
        if frame.f_code.co_qualname == "JobQueue._work":
            return "worker"
        frame = frame.f_back  # type: ignore[assignment]
    return "request"


def _png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def prepare_networks(app) -> None:
    """A LoRA and a canny ControlNet made for the demo model, as the soak test does."""
    from diffusers import ControlNetModel

    from modules.sumi.engine.checkpoint import load_checkpoint
    from tests.fixtures.tiny_controlnets import shapes_image, write_lllyasviel
    from tests.fixtures.tiny_models import jitter
    from tests.fixtures.tiny_networks import write_lora

    demo = app.models.active.sd
    components = {"family": "SD1", "unet": demo.unet, "text_encoders": [s.model for s in demo.text_encoders]}
    write_lora(app.paths.lora_dir / "bench_style.safetensors", components, seed=3)
    app.loras.refresh()
    unet = load_checkpoint(app.checkpoints.list()[0].filename).unet
    write_lllyasviel(
        app.paths.controlnet_dir / "bench_canny.safetensors", jitter(ControlNetModel.from_unet(unet), 5)
    )
    app.controlnet.models.refresh()
    unit = {"enabled": True, "module": "canny", "model": "bench_canny", "image": _png_b64(shapes_image())}
    KINDS["controlnet"]["alwayson_scripts"]["ControlNet"]["args"] = [{**unit, "processor_res": 64}]


def run(jobs: int, kinds: list[str], split: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, app_factory() as make_app:
        app = make_app(Path(tmp), "--api", loaded=True)
        from webui import build_server

        client = local_client(build_server(app))
        prepare_networks(app)
        print(
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
        )
        print(f"# {jobs} jobs per kind after 2 warm-up jobs; median and quartiles of wall time per request")
        for kind in kinds:
            body = {**BASE, **KINDS[kind], "seed": 1}
            for _ in range(2):
                response = client.post("/sdapi/v1/txt2img", json=body)
                assert response.status_code == 200, response.text
            times = []
            sampler = StackSampler() if split else None
            with sampler or _nothing():
                for _ in range(jobs):
                    start = time.perf_counter()
                    response = client.post("/sdapi/v1/txt2img", json=body)
                    times.append(time.perf_counter() - start)
                    assert response.status_code == 200, response.text
            q1, median, q3 = statistics.quantiles(times, n=4)
            print(f"{kind:11s} median {median * 1000:7.1f} ms  (q1 {q1 * 1000:.1f}, q3 {q3 * 1000:.1f})")
            if sampler is not None:
                _print_split(sampler.counts)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _print_split(counts: collections.Counter[str]) -> None:
    for role in ("worker", "request"):
        mine = {k.split(": ", 1)[1]: v for k, v in counts.items() if k.startswith(role)}
        total = sum(mine.values()) or 1
        parts = ", ".join(
            f"{k} {100 * v / total:.0f}%" for k, v in sorted(mine.items(), key=lambda kv: -kv[1])
        )
        print(f"    {role:7s} {parts}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--no-split", action="store_true", help="skip the stack sampling (its cost is small)")
    args = parser.parse_args()
    run(args.jobs, args.kinds, not args.no_split)


if __name__ == "__main__":
    main()
