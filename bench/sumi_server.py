"""Sumi as a user runs it, for the benches: `webui.py --nowebui` in its own process, driven over the A1111 API.

The server gets a fresh data folder (checkpoints, LoRA and ControlNet linked into models/, settings
in its config.json as a user would have saved them) and a free port; its output goes to a log file
that an error message quotes.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import io
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 600.0  # a full-size SDXL file read from a cold disk, plus compile when asked
PR_SET_PDEATHSIG = 1
JOB_TIMEOUT = httpx.Timeout(3600.0)  # a 2048x2048 job on a CPU


class ServerError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the bench process dies, even killed (no orphan servers)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png_base64(width: int, height: int, seed: int = 0) -> str:
    """A noise image (a ControlNet hint, the input of an img2img job)."""
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set size (Linux VmHWM), or None where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class SumiServer:
    """`with SumiServer(data_dir, flags, settings) as server:` starts webui.py and stops it on exit.

    `started_at` is the perf_counter when the process was launched (first-image time counts from it)."""

    def __init__(self, data_dir: Path, flags: Sequence[str] = (), settings: dict[str, Any] | None = None):
        self.data_dir, self.flags, self.settings = data_dir, list(flags), dict(settings or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.client = httpx.Client(base_url=self.url + "/sdapi/v1", timeout=JOB_TIMEOUT)

    def __enter__(self) -> SumiServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings:
            (self.data_dir / "config.json").write_text(json.dumps(self.settings, indent=2))
        command = [sys.executable, str(REPO / "webui.py"), "--nowebui", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), *self.flags]
        self._log = self.log_path.open("w")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self._wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerError(
                    f"Sumi exited with code {self.process.returncode} at start:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + "/internal/ping", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ServerError(f"Sumi did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- the API ---------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        response = self.client.request(method, path, json=body)
        if response.status_code != 200:
            raise ServerError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def txt2img(self, body: dict) -> dict:
        return self._call("POST", "/txt2img", body)

    def img2img(self, body: dict) -> dict:
        return self._call("POST", "/img2img", body)

    def options(self) -> dict:
        return self._call("GET", "/options")

    def set_options(self, values: dict) -> None:
        self._call("POST", "/options", values)

    def refused_settings(self) -> list[str]:
        """The settings given at start that this server refuses, with its reason: unknown to it (a
        stream not merged yet) or a value out of its choices. config.json keeps unknown keys quietly, and
        POST /options skips a value equal to the one held unchecked (both as A1111), so each key is first
        probed with a value no setting takes (the answer says whether the key is known), then set again."""
        refused = []
        for key, value in self.settings.items():
            if key == "sd_model_checkpoint":  # checked by every job's infotext instead
                continue
            probe = self.client.post("/options", json={key: {"sumi-bench-probe": True}})
            if "Unknown setting" in probe.text:
                refused.append(f"{key} ({probe.text[:160]})")
                continue
            response = self.client.post("/options", json={key: value})
            if response.status_code != 200:
                refused.append(f"{key} ({response.text[:160]})")
        return refused

    def peak_vram_mib(self) -> float | None:
        """Peak CUDA memory of the server since it started, from /sdapi/v1/memory (A1111's layout)."""
        cuda = self._call("GET", "/memory").get("cuda", {})
        for key in ("allocated", "active"):
            peak = (cuda.get(key) or {}).get("peak")
            if peak:
                return peak / 2**20
        return None

    def peak_rss_mib(self) -> float | None:
        return peak_rss_mib(self.process.pid) if self.process is not None else None
