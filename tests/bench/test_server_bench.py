"""bench/server_bench.py end to end on the demo model: a real `webui.py --nowebui` subprocess, jobs over
the A1111 API, plain diffusers in its own process, the table and the JSON written. Nothing is timed
against a threshold; the test keeps the harness from rotting (a renamed route, setting or file layout
makes a case fail, and a failed case is a row saying FAILED)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.long_file,
]  # three processes start (about 60 CPU-seconds); the fixture counts here


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    tmp = tmp_path_factory.mktemp("server-bench")
    out = tmp / "result"
    command = [sys.executable, str(REPO / "bench" / "server_bench.py"), "--preset", "tiny"]
    command += [
        "--cache-dir",
        str(tmp / "cache"),
        "--out",
        str(out),
        "--option",
        "sd_checkpoints_keep_in_cpu=true",
        "--option",
        "sumi_no_such_setting=1",  # the table must say the server refused it
    ]
    # its own process group: on a timeout the servers it started go too
    bench = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _, stderr = bench.communicate(timeout=560)
    except subprocess.TimeoutExpired:
        os.killpg(bench.pid, signal.SIGKILL)
        bench.communicate()
        raise
    assert bench.returncode == 0, stderr.decode(errors="replace")[-3000:]
    return json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md").read_text()


def test_every_tiny_case_produces_a_measured_row(report: tuple[dict, str]) -> None:
    data, _ = report
    rows = {(r["case"], r["side"]): r for r in data["rows"]}
    failed = [r for r in data["rows"] if r["note"].startswith("FAILED")]
    assert not failed, failed
    expected = {
        ("txt2img", "Sumi"),
        ("txt2img", "diffusers"),
        ("checkpoint switch, cold", "Sumi"),
        ("checkpoint switch, warm", "Sumi"),
        ("LoRA, first job (read + apply)", "Sumi"),
        ("LoRA, next job (applied)", "Sumi"),
        ("LoRA removed, first job (restore)", "Sumi"),
        ("ControlNet (1 unit)", "Sumi"),
        ("plain 64²", "Sumi"),  # issue 19's Tiled Diffusion case: 4x the size in tiles, and a 4x upscale
        ("Tiled Diffusion 256² (MultiDiffusion, 128² tiles, tiled VAE)", "Sumi"),
        ("4x upscale 64² -> 256² (Lanczos, noise inversion, tiles)", "Sumi"),
    }
    assert set(rows) == expected
    for side in ("Sumi", "diffusers"):
        main = rows[("txt2img", side)]
        assert main["seconds"] > 0 and main["first_image_s"] >= main["seconds"]
        assert main["rss_mib"] > 100  # a process with torch loaded, measured from outside or inside
    assert all(rows[key]["seconds"] > 0 for key in expected)


def test_the_table_names_the_machine_versions_flags_and_refused_settings(report: tuple[dict, str]) -> None:
    data, table = report
    assert data["options"] == {"sd_checkpoints_keep_in_cpu": True, "sumi_no_such_setting": 1}
    sumi = next(r for r in data["rows"] if (r["case"], r["side"]) == ("txt2img", "Sumi"))
    assert "refuses: sumi_no_such_setting" in sumi["note"]
    assert "sd_checkpoints_keep_in_cpu" not in sumi["note"]  # a known setting is not reported
    assert data["torch"] in table and data["diffusers"] in table and "--nowebui" in table
    assert "| tiny | txt2img | Sumi |" in table and "| tiny | txt2img | diffusers |" in table
