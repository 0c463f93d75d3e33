"""A1111's /sdapi/v1/unload-checkpoint and reload-checkpoint, and /internal/sysinfo, on a real App
(--medvram, so the CPU stands in for the GPU: the offloader records where every part is)."""

from __future__ import annotations

import json
import shutil

import pytest

from modules.sumi.services import sysinfo
from tests.app_support import generate

SMALL = {"steps": 2, "width": 64, "height": 64, "seed": 7, "sampler_name": "Euler a"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui", "--medvram", loaded=True)


def test_unload_sends_every_part_to_ram_and_the_next_job_brings_it_back_unchanged(app, client):
    before, _ = generate(client, SMALL, "a red star")
    r = client.post("/sdapi/v1/unload-checkpoint")
    assert r.status_code == 200 and r.json() == {}
    report = app.models.offload_report()
    assert report is not None and report["policy"] == "med" and report["resident"] == []
    assert report["resident_bytes"] == 0
    after, _ = generate(client, SMALL, "a red star")
    assert after == before


def test_reload_loads_the_selected_checkpoint_when_none_is_loaded(app, client):
    title = app.models.active.checkpoint.title
    app.models.unload_all()
    assert app.models.active is None
    r = client.post("/sdapi/v1/reload-checkpoint")
    assert r.status_code == 200 and r.json() == {}
    assert app.models.active is not None and app.models.active.checkpoint.title == title
    assert client.post("/sdapi/v1/unload-checkpoint").status_code == 200
    assert client.post("/sdapi/v1/reload-checkpoint").status_code == 200  # from RAM this time


def test_reload_of_a_checkpoint_whose_file_is_gone_is_a_clear_error_and_the_server_serves_on(app, client):
    path = app.models.active.checkpoint.filename
    app.models.unload_all()
    shutil.move(path, path + ".away")
    try:
        r = client.post("/sdapi/v1/reload-checkpoint")
        assert r.status_code == 400, r.text
        assert "sumi-demo-shapes" in r.json()["detail"]
    finally:
        shutil.move(path + ".away", path)
    assert client.post("/sdapi/v1/reload-checkpoint").status_code == 200


def test_sysinfo_is_a_json_report_with_a1111_s_keys_whose_checksum_holds(app, client):
    client.post("/sdapi/v1/reload-checkpoint")
    r = client.get("/internal/sysinfo")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.headers["content-disposition"].startswith('inline; filename="sysinfo-')
    report = json.loads(r.text)
    for key in (
        "Platform",
        "Python",
        "Version",
        "Commit",
        "Data path",
        "Checksum",
        "Commandline",
        "CPU",
        "RAM",
    ):
        assert report[key], key
    assert {"Torch env info", "Exceptions", "Extensions", "Environment", "Config", "Packages"} <= set(report)
    assert report["Loaded models"] == [app.models.active.checkpoint.title]
    assert report["Device"]["device"] == "cpu" and report["Config"]["sd_checkpoints_limit"] == 1
    assert any(p.lower().startswith("torch==") for p in report["Packages"])
    assert sysinfo.check(r.text) and not sysinfo.check(r.text.replace('"Platform": "', '"Platform": "x'))
    download = client.get("/internal/sysinfo-download")
    assert download.headers["content-disposition"].startswith('attachment; filename="sysinfo-')
    assert sysinfo.check(download.text)
