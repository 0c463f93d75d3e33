"""Soak: eight clients use one real server at once, as a busy install sees it.

Six clients generate (plain txt2img, a LoRA, a ControlNet unit, the Prompt matrix script, in turns),
one reads options, progress and model lists all along, and one starts long jobs and interrupts them.
Sixty small jobs in CI (each of the twelve requests several times, all at once); `SUMI_SOAK_JOBS=20`
(jobs per generating client after the warm-up) for the deep run of 144. Every image must equal the one
the same request gave when it ran alone (networks, ControlNet and scripts leave nothing behind for the
next job), no request may fail, and the server's memory must stay flat once warm.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import gc
import io
import itertools
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from tests.app_support import running_server
from tests.fixtures.tiny_controlnets import shapes_image, write_lllyasviel
from tests.fixtures.tiny_models import jitter
from tests.fixtures.tiny_networks import write_lora

GENERATORS = 6
WARM_UP_JOBS = 4  # per generating client, before memory is first measured
# Per generating client, after the warm-up: CI's bound; SUMI_SOAK_JOBS=20 for a deep run (144 jobs in all).
SOAK_JOBS = int(os.environ.get("SUMI_SOAK_JOBS", "6"))
INTERRUPTS = 6
SEEDS = (11, 12, 13)
BASE = {"steps": 2, "width": 64, "height": 64, "sampler_name": "Euler", "cfg_scale": 5}
TIMEOUT = httpx.Timeout(300.0)


def _png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


CONTROL_UNIT = {
    "enabled": True,
    "module": "canny",
    "model": "soak_canny",
    "image": _png_b64(shapes_image()),
    "processor_res": 64,
}
JOBS: dict[str, dict] = {
    "plain": {"prompt": "a red fox"},
    "lora": {"prompt": "a red fox <lora:soak_style:0.8>"},
    "controlnet": {"prompt": "a red fox", "alwayson_scripts": {"ControlNet": {"args": [CONTROL_UNIT]}}},
    "script": {
        "prompt": "a fox|red|blue",
        "script_name": "prompt matrix",
        "script_args": [False, False, "positive", "comma", 0],
    },
}
Key = tuple[str, int]  # (job kind, seed)


def rss_bytes() -> int:
    """This process's resident memory (the server runs in it), after giving freed memory back."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only: elsewhere RSS keeps freed pages
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def body(key: Key) -> dict:
    kind, seed = key
    return {**BASE, **JOBS[kind], "seed": seed}


def outcome(response: httpx.Response) -> tuple[list[bytes], list[str]]:
    """The pixels of every image and the infotexts: what must equal the serial twin."""
    assert response.status_code == 200, response.text[:500]
    data = response.json()
    pixels = [Image.open(io.BytesIO(base64.b64decode(i))).convert("RGB").tobytes() for i in data["images"]]
    info = json.loads(data["info"])
    assert not info.get("warnings"), info["warnings"]
    return pixels, info["infotexts"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path("/proc/self/statm").exists():
        pytest.skip("measures memory through /proc (Linux)")
    with running_server(tmp_path_factory.mktemp("soak") / "data", ["--api"]) as srv:
        app = srv.app
        httpx.post(f"{srv.url}/sdapi/v1/txt2img", json=body(("plain", 1)), timeout=TIMEOUT)  # loads the model
        demo = app.models.active.sd
        components = {
            "family": "SD1",
            "unet": demo.unet,
            "text_encoders": [s.model for s in demo.text_encoders],
        }
        write_lora(app.paths.lora_dir / "soak_style.safetensors", components, seed=3)
        app.loras.refresh()
        controlnet_unet = load_checkpoint(app.checkpoints.list()[0].filename).unet
        from diffusers import ControlNetModel

        write_lllyasviel(
            app.paths.controlnet_dir / "soak_canny.safetensors",
            jitter(ControlNetModel.from_unet(controlnet_unet), 5),
        )
        app.controlnet.models.refresh()
        yield srv


@pytest.fixture(scope="module")
def twins(server) -> dict[Key, tuple[list[bytes], list[str]]]:
    """Every request of the soak, run alone first."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        return {key: outcome(client.post("/sdapi/v1/txt2img", json=body(key))) for key in _keys()}


def _keys() -> list[Key]:
    return list(itertools.product(JOBS, SEEDS))


def _generator(url: str, offset: int, jobs: int, results: list, errors: list) -> Callable[[], None]:
    keys = _keys()

    def run() -> None:
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            for i in range(jobs):
                key = keys[(offset * 5 + i) % len(keys)]
                try:
                    results.append((key, outcome(client.post("/sdapi/v1/txt2img", json=body(key)))))
                except Exception as exc:  # collected and reported by the test
                    errors.append(f"{key}: {exc!r}")

    return run


def _reader(url: str, stop: threading.Event, errors: list, counts: list) -> Callable[[], None]:
    routes = ["/sdapi/v1/options", "/sdapi/v1/progress", "/sdapi/v1/sd-models", "/sdapi/v1/loras"]
    routes += ["/sdapi/v1/cmd-flags", "/controlnet/model_list", "/sdapi/v1/samplers"]

    def run() -> None:
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            for route in itertools.cycle(routes):
                if stop.is_set():
                    return
                response = client.get(route)
                counts.append(route)
                if response.status_code != 200:
                    errors.append(f"GET {route}: {response.status_code} {response.text[:200]}")

    return run


def _interrupter(url: str, errors: list, interrupted: list) -> Callable[[], None]:
    """Start a long job, wait until it is the one running, interrupt it; the others must not notice."""

    def run() -> None:
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            for n in range(INTERRUPTS):
                task = f"task(soak-interrupt-{n})"
                long_job = {**BASE, "prompt": "a long job", "steps": 150, "seed": 5, "force_task_id": task}
                answer: list[httpx.Response] = []
                worker = threading.Thread(target=_post, args=(client, long_job, answer))
                worker.start()
                while worker.is_alive():
                    progress = client.get("/sdapi/v1/progress", params={"skip_current_image": True}).json()
                    if progress["current_task"] == task and progress["state"]["sampling_step"] >= 1:
                        client.post("/sdapi/v1/interrupt")
                        break
                worker.join()
                if not answer or answer[0].status_code != 200:
                    errors.append(
                        f"interrupted job {task}: {answer[0].text[:200] if answer else 'no answer'}"
                    )
                    continue
                info = json.loads(answer[0].json()["info"])
                interrupted.append(info["infotexts"][0])

    return run


def _post(client: httpx.Client, job: dict, answer: list[httpx.Response]) -> None:
    answer.append(client.post("/sdapi/v1/txt2img", json=job))


def _run_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_eight_concurrent_clients_get_their_serial_twins_and_memory_stays_flat(server, twins):
    url = server.url
    errors: list[str] = []
    warm: list = []
    _run_all(
        [threading.Thread(target=_generator(url, c, WARM_UP_JOBS, warm, errors)) for c in range(GENERATORS)]
    )
    before = rss_bytes()

    results: list = []
    interrupted: list[str] = []
    reads: list[str] = []
    stop = threading.Event()
    generators = [
        threading.Thread(target=_generator(url, c, SOAK_JOBS, results, errors)) for c in range(GENERATORS)
    ]
    others = [
        threading.Thread(target=_interrupter(url, errors, interrupted)),
        threading.Thread(target=_reader(url, stop, errors, reads)),
    ]
    for t in generators + others:
        t.start()
    for t in generators + others[:1]:
        t.join()
    stop.set()
    others[1].join()
    after = rss_bytes()

    assert not errors, errors[:10]
    assert len(warm) + len(results) == GENERATORS * (WARM_UP_JOBS + SOAK_JOBS)
    mismatched = [key for key, got in warm + results if got != twins[key]]
    assert not mismatched, f"{len(mismatched)} jobs differ from their serial twins, e.g. {mismatched[:5]}"
    assert len(interrupted) == INTERRUPTS and all("Steps: 150" in text for text in interrupted)
    assert len(reads) > len(results)  # the reader was served all along, not starved by the jobs
    growth = after - before
    print(
        f"soak: {len(warm) + len(results)} jobs, {len(interrupted)} interrupted, {len(reads)} reads; "
        f"RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB"
    )
    assert growth <= 0.05 * before, f"RSS grew {growth / 2**20:.0f} MiB from {before / 2**20:.0f} MiB"
