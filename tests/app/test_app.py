"""Behaviour of the App as a user sees it: VAE choice, model cache, flags, seeds, clip skip, saving.

Everything runs through `App.txt2img` (or the HTTP API) on tiny real-layout checkpoints, 64x64 and
two steps, so the whole file stays fast on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from modules.sumi.engine import generate as engine_generate
from modules.sumi.engine.devices import xformers_available
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessingTxt2Img
from modules.sumi.services.models import manager as model_manager
from modules.sumi.services.models.demo import DEMO_NAME

DEMO_STEM = Path(DEMO_NAME).stem
VAE_PREFIX = "first_stage_model."
RESET = {
    "sd_vae": "Automatic",
    "CLIP_stop_at_last_layers": 1,
    "samples_save": True,
    "sd_checkpoints_limit": 1,
    "sd_checkpoints_keep_in_cpu": True,
}


# --- helpers --------------------------------------------------------------------------------------


def job(**changes) -> StableDiffusionProcessingTxt2Img:
    """A small txt2img job that saves nothing unless asked."""
    params = {
        "prompt": "a red fox",
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 1234,
        "sampler_name": "Euler",
        "do_not_save_samples": True,
        "do_not_save_grid": True,
        **changes,
    }
    return StableDiffusionProcessingTxt2Img(**params)


def pixels(processed: Processed, index: int = 0) -> bytes:
    return processed.images[index].tobytes()


def close(a: bytes, b: bytes, levels: int = 2) -> bool:
    """Same picture up to float rounding: a batched UNet call may round differently from a single one."""
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b, strict=True)) <= levels


def params(processed: Processed, index: int = 0) -> dict[str, str]:
    return parse_infotext(processed.infotexts[index])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for_startup(app) -> None:
    """Let the start-up model load finish (it runs in the worker; jobs run in order)."""
    app.queue.run("wait for start-up", lambda: None)


def write_vae_file(path: Path, checkpoint: Path, seed: int) -> Path:
    """A standalone VAE in A1111's LDM layout: the checkpoint's VAE with perturbed weights.

    Training leftovers that real VAE downloads carry (`loss.*`, `model_ema.decay`) are included;
    they must be ignored, as A1111 does.
    """
    state = load_file(str(checkpoint))
    generator = torch.Generator().manual_seed(seed)
    vae = {}
    for key, value in state.items():
        if key.startswith(VAE_PREFIX):
            noise = torch.randn(value.shape, generator=generator) * 0.05
            vae[key[len(VAE_PREFIX) :]] = (value + noise).to(value.dtype).contiguous()
    assert "encoder.down.0.block.0.conv1.weight" in vae and "decoder.up.0.block.0.conv1.weight" in vae
    vae["loss.logvar"] = torch.zeros(())
    vae["model_ema.decay"] = torch.tensor(0.9999)
    save_file(vae, str(path))
    return path


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui")
    wait_for_startup(app)
    return app


@pytest.fixture(scope="module")
def demo_ckpt(app) -> Path:
    return app.paths.ckpt_dirs[0] / DEMO_NAME


@pytest.fixture(scope="module")
def baseline(app) -> Processed:
    """The demo model's image for `job()` with the default settings."""
    return app.runner.txt2img(job())


@pytest.fixture(autouse=True)
def settings_restored(request):
    """Tests that use the shared app leave it on the demo checkpoint with default settings."""
    yield
    if "app" in request.fixturenames:
        app = request.getfixturevalue("app")
        app.models.refresh()
        app.settings.set({**RESET, "sd_model_checkpoint": DEMO_NAME})


@pytest.fixture
def fresh_app(tmp_path, make_app):
    """Build apps with their own data folder and flags; shut down afterwards."""

    def build(*flags: str, data_dir: Path | None = None):
        app = make_app(data_dir or tmp_path / f"data{len(make_app.apps)}", *flags)
        wait_for_startup(app)
        return app

    return build


# --- 1. VAE selection (a1111.md §10.3) -----------------------------------------------------------


def test_a_vae_file_replaces_the_baked_vae_and_none_or_automatic_restore_it(app, demo_ckpt, baseline):
    vae_file = write_vae_file(app.paths.vae_dirs[0] / "x.safetensors", demo_ckpt, seed=1)
    try:
        app.models.refresh()
        assert "x.safetensors" in app.vaes.names()
        app.settings.set({"sd_vae": "x.safetensors"})
        with_vae = app.runner.txt2img(job())
        assert pixels(with_vae) != pixels(baseline)
        info = params(with_vae)
        assert info["VAE"] == "x.safetensors"
        assert info["VAE hash"] == sha256(vae_file)[:10]
        assert re.fullmatch(r"[0-9a-f]{10}", info["VAE hash"])
        assert "VAE hash: " in with_vae.infotexts[0] and ", VAE: x.safetensors" in with_vae.infotexts[0]
        api_info = json.loads(with_vae.js())
        assert api_info["sd_vae_name"] == "x.safetensors" and api_info["sd_vae_hash"] == info["VAE hash"]
        assert params(baseline).get("VAE") is None and "VAE" not in baseline.infotexts[0]

        for choice in ("None", "Automatic"):
            app.settings.set({"sd_vae": "x.safetensors"})
            app.settings.set({"sd_vae": choice})
            restored = app.runner.txt2img(job())
            assert pixels(restored) == pixels(baseline), choice  # bit-exact baked VAE
            assert "VAE" not in restored.infotexts[0], choice
    finally:
        vae_file.unlink()


def test_a_vae_named_after_the_checkpoint_is_used_under_automatic(app, demo_ckpt, baseline):
    near = write_vae_file(demo_ckpt.with_name(f"{DEMO_STEM}.vae.safetensors"), demo_ckpt, seed=2)
    try:
        app.models.refresh()
        assert [c.name for c in app.checkpoints.list()].count(near.name) == 0  # not a checkpoint
        assert app.options.sd_vae == "Automatic"
        automatic = app.runner.txt2img(job())
        assert params(automatic)["VAE"] == near.name
        assert params(automatic)["VAE hash"] == sha256(near)[:10]
        assert pixels(automatic) != pixels(baseline)
        # "None" overrides the per-model preference (sd_vae_overrides_per_model_preferences is on).
        app.settings.set({"sd_vae": "None"})
        none = app.runner.txt2img(job())
        assert pixels(none) == pixels(baseline) and "VAE" not in none.infotexts[0]
    finally:
        near.unlink()
        app.models.refresh()
    app.settings.set({"sd_vae": "Automatic"})
    assert pixels(app.runner.txt2img(job())) == pixels(baseline)  # the file is gone: baked VAE again


def test_an_unknown_vae_name_is_a_clear_4xx_and_changes_nothing(app, client):
    r = client.post("/sdapi/v1/options", json={"sd_vae": "no-such-vae.safetensors"})
    assert 400 <= r.status_code < 500, r.text
    detail = r.json()["detail"]
    assert "no-such-vae.safetensors" in detail and "no vae is called" in detail.lower()
    assert client.get("/sdapi/v1/options").json()["sd_vae"] == "Automatic"
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a", "steps": 2, "width": 64, "height": 64})
    assert r.status_code == 200, r.text


def test_sd_vae_api_lists_vae_files(app, client, demo_ckpt):
    vae_file = write_vae_file(app.paths.vae_dirs[0] / "listed.safetensors", demo_ckpt, seed=3)
    try:
        assert client.post("/sdapi/v1/refresh-vae").status_code == 200
        listed = {item["model_name"]: item["filename"] for item in client.get("/sdapi/v1/sd-vae").json()}
        assert Path(listed["listed.safetensors"]) == vae_file
    finally:
        vae_file.unlink()


def test_vae_path_flag_forces_a_vae_whatever_the_setting(fresh_app, tmp_path, tiny_sd1_ckpt):
    forced = write_vae_file(tmp_path / "forced.safetensors", tiny_sd1_ckpt[0], seed=4)
    app = fresh_app("--ckpt", str(tiny_sd1_ckpt[0]), "--vae-path", str(forced))
    out = app.runner.txt2img(job())
    assert params(out)["VAE"] == "forced.safetensors"
    app.settings.set({"sd_vae": "None"})
    assert pixels(app.runner.txt2img(job())) == pixels(out)


def _write_config(data: Path, values: dict) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "config.json").write_text(json.dumps(values), encoding="utf-8")


def test_a_stale_vae_setting_falls_back_to_the_baked_vae(fresh_app, tmp_path):
    data = tmp_path / "stale-vae"
    _write_config(data, {"sd_vae": "deleted.safetensors"})
    app = fresh_app(data_dir=data)
    out = app.runner.txt2img(job())
    assert "VAE" not in out.infotexts[0]


def test_no_hashing_also_skips_the_vae_hash(fresh_app, tmp_path):
    app = fresh_app("--no-hashing")
    vae_file = write_vae_file(app.paths.vae_dirs[0] / "x.safetensors", app.paths.ckpt_dirs[0] / DEMO_NAME, 1)
    app.models.refresh()
    app.settings.set({"sd_vae": vae_file.name})
    info = params(app.runner.txt2img(job()))
    assert info["VAE"] == "x.safetensors" and "Model hash" not in info
    assert "VAE hash" not in info


# --- 2. Checkpoint RAM cache (a1111.md §10.4) ----------------------------------------------------


def test_switching_back_to_a_cached_checkpoint_reads_no_file(app, monkeypatch, tiny_sd1_ckpt):
    other = app.paths.ckpt_dirs[0] / "cached_b.safetensors"
    shutil.copy(tiny_sd1_ckpt[0], other)
    reads: list[str] = []
    original = model_manager.load_checkpoint

    def counting(path, **kwargs):
        reads.append(Path(path).name)
        return original(path, **kwargs)

    monkeypatch.setattr(model_manager, "load_checkpoint", counting)
    try:
        app.models.refresh()
        app.models.unload_all()
        app.settings.set({"sd_checkpoints_limit": 2, "sd_checkpoints_keep_in_cpu": True})
        app.settings.set({"sd_model_checkpoint": DEMO_NAME})
        first = app.runner.txt2img(job())
        app.settings.set({"sd_model_checkpoint": "cached_b"})
        assert params(app.runner.txt2img(job()))["Model"] == "cached_b"
        app.settings.set({"sd_model_checkpoint": DEMO_NAME})
        assert reads == [DEMO_NAME, other.name]  # A, B, and A again from RAM
        assert len(app.models.loaded_titles()) == 2
        back = app.runner.txt2img(job())
        assert params(back)["Model"] == DEMO_STEM
        assert pixels(back) == pixels(first)

        app.settings.set({"sd_checkpoints_limit": 1})
        app.settings.set({"sd_model_checkpoint": "cached_b"})  # still loaded: no read, A is dropped
        assert reads == [DEMO_NAME, other.name]
        assert len(app.models.loaded_titles()) == 1
        app.settings.set({"sd_model_checkpoint": DEMO_NAME})
        assert reads == [DEMO_NAME, other.name, DEMO_NAME]  # limit 1: read again
        again = app.runner.txt2img(job())
        assert pixels(again) == pixels(first)
        app.settings.set({"sd_model_checkpoint": "cached_b"})
        assert reads == [DEMO_NAME, other.name, DEMO_NAME, other.name]
    finally:
        app.settings.set({"sd_checkpoints_limit": 1, "sd_model_checkpoint": DEMO_NAME})
        other.unlink()


def test_override_settings_switch_the_checkpoint_for_one_job(app, tiny_sd1_ckpt):
    other = app.paths.ckpt_dirs[0] / "override_b.safetensors"
    shutil.copy(tiny_sd1_ckpt[0], other)
    try:
        app.models.refresh()
        once = app.runner.txt2img(job(override_settings={"sd_model_checkpoint": "override_b"}))
        assert params(once)["Model"] == "override_b"
        assert app.options.sd_model_checkpoint.startswith(DEMO_NAME)
        assert params(app.runner.txt2img(job()))["Model"] == DEMO_STEM
    finally:
        other.unlink()


def test_a_stale_checkpoint_setting_falls_back_to_the_first_checkpoint(fresh_app, tmp_path):
    data = tmp_path / "stale-ckpt"
    _write_config(data, {"sd_model_checkpoint": "deleted.safetensors [0123456789]"})
    app = fresh_app(data_dir=data)
    assert params(app.runner.txt2img(job()))["Model"] == DEMO_STEM


# --- 3. --ckpt -----------------------------------------------------------------------------------


def test_ckpt_flag_selects_a_file_from_another_folder(fresh_app, tiny_sd1_ckpt):
    path = tiny_sd1_ckpt[0]
    app = fresh_app("--ckpt", str(path))
    assert app.options.sd_model_checkpoint.startswith("tiny_sd1.safetensors")
    assert not (app.paths.ckpt_dirs[0] / DEMO_NAME).exists()  # a checkpoint was given: no demo model
    out = app.runner.txt2img(job())
    assert params(out)["Model"] == "tiny_sd1"
    assert out.images[0].size == (64, 64)


def test_ckpt_flag_with_a_missing_file_is_a_notice(fresh_app, tmp_path):
    app = fresh_app("--ckpt", str(tmp_path / "nope.safetensors"))
    assert any("nope.safetensors" in n for n in app.notices)
    assert params(app.runner.txt2img(job()))["Model"] == DEMO_STEM


# --- 4. Seeds (a1111.md §1.5) --------------------------------------------------------------------


def test_random_seed_is_resolved_and_reported(app):
    out = app.runner.txt2img(job(seed=-1))
    assert 0 <= out.seed < 4294967294
    assert out.all_seeds == [out.seed]
    assert params(out)["Seed"] == str(out.seed)
    assert json.loads(out.js())["seed"] == out.seed
    again = app.runner.txt2img(job(seed=out.seed))
    assert pixels(again) == pixels(out)


def test_a_batch_uses_consecutive_seeds(app):
    batch = app.runner.txt2img(job(seed=500, batch_size=2, do_not_save_grid=False))
    assert batch.all_seeds == [500, 501]
    first = batch.index_of_first_image
    assert first == 1 and len(batch.images) == 3  # grid first
    assert (
        len(app.runner.txt2img(job(seed=500, batch_size=2)).images) == 2
    )  # do_not_save_grid: no grid (A1111)
    assert [params(batch, first + i)["Seed"] for i in range(2)] == ["500", "501"]
    single = app.runner.txt2img(job(seed=501))
    assert close(pixels(batch, first + 1), pixels(single))


def test_variation_seed_keeps_the_seed_and_steps_the_subseed(app, baseline):
    varied = app.runner.txt2img(job(batch_size=2, subseed=99, subseed_strength=0.5))
    first = varied.index_of_first_image
    assert varied.all_seeds == [1234, 1234]
    assert varied.all_subseeds == [99, 100]
    for i, subseed in enumerate((99, 100)):
        info = params(varied, first + i)
        assert info["Seed"] == "1234"
        assert info["Variation seed"] == str(subseed)
        assert info["Variation seed strength"] == "0.5"
    assert pixels(varied, first) != pixels(baseline)
    assert pixels(varied, first) != pixels(varied, first + 1)

    zero = app.runner.txt2img(job(subseed=99, subseed_strength=0.0))
    assert pixels(zero) == pixels(baseline)
    assert "Variation seed" not in zero.infotexts[0]
    assert zero.all_subseeds == [99]


def test_random_subseed_is_resolved(app):
    varied = app.runner.txt2img(job(subseed=-1, subseed_strength=0.3))
    subseed = varied.all_subseeds[0]
    assert 0 <= subseed < 4294967294
    assert params(varied)["Variation seed"] == str(subseed)


def test_seed_resize_from_is_written_to_the_infotext(app, baseline):
    resized = app.runner.txt2img(job(seed_resize_from_w=32, seed_resize_from_h=48))
    assert params(resized)["Seed resize from-1"] == "32"
    assert "Seed resize from: 32x48" in resized.infotexts[0]
    assert pixels(resized) != pixels(baseline)
    same_size = app.runner.txt2img(job(seed_resize_from_w=64, seed_resize_from_h=64))
    assert pixels(same_size) == pixels(baseline)  # the noise is drawn at the same size
    half = app.runner.txt2img(job(seed_resize_from_w=32, seed_resize_from_h=0))
    assert "Seed resize from" not in half.infotexts[0]  # only when both are > 0


def test_seed_extras_off_ignores_variation_and_resize(app, baseline):
    out = app.runner.txt2img(
        job(
            seed_enable_extras=False,
            subseed=5,
            subseed_strength=0.7,
            seed_resize_from_w=32,
            seed_resize_from_h=32,
        )
    )
    assert pixels(out) == pixels(baseline)
    assert "Variation seed" not in out.infotexts[0] and "Seed resize from" not in out.infotexts[0]


# --- 5. Clip skip --------------------------------------------------------------------------------


def test_clip_skip_setting_changes_the_image_and_is_written(app, baseline):
    assert "Clip skip" not in baseline.infotexts[0]
    app.settings.set({"CLIP_stop_at_last_layers": 2})
    skipped = app.runner.txt2img(job())
    assert params(skipped)["Clip skip"] == "2"
    assert json.loads(skipped.js())["clip_skip"] == 2
    assert pixels(skipped) != pixels(baseline)
    app.settings.set({"CLIP_stop_at_last_layers": 1})

    once = app.runner.txt2img(job(override_settings={"CLIP_stop_at_last_layers": 2}))
    assert params(once)["Clip skip"] == "2"
    assert pixels(once) == pixels(skipped)
    assert app.options.CLIP_stop_at_last_layers == 1  # restored after the job
    after = app.runner.txt2img(job())
    assert pixels(after) == pixels(baseline) and "Clip skip" not in after.infotexts[0]


def test_override_settings_through_the_api_apply_for_one_request(app, client):
    body = {"prompt": "a", "steps": 2, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}
    r = client.post("/sdapi/v1/txt2img", json={**body, "override_settings": {"CLIP_stop_at_last_layers": 2}})
    assert r.status_code == 200, r.text
    assert "Clip skip: 2" in json.loads(r.json()["info"])["infotexts"][0]
    assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 1


# --- 6. Saving and the data folder ---------------------------------------------------------------


def _today_folders() -> set[str]:
    today = date.today()
    return {d.isoformat() for d in (today - timedelta(days=1), today, today + timedelta(days=1))}


def _saved(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png")) if folder.exists() else []


def test_images_are_saved_in_dated_folders_with_their_parameters(fresh_app, tmp_path):
    data = tmp_path / "my data"
    app = fresh_app(data_dir=data)
    samples, grids = data / "outputs" / "txt2img-images", data / "outputs" / "txt2img-grids"
    out = app.runner.txt2img(job(seed=4321, do_not_save_samples=False, do_not_save_grid=False))
    (saved,) = _saved(samples)
    assert saved.parent.parent == samples and saved.parent.name in _today_folders()
    # A1111 numbers files and puts the seed next: 00000-4321[-prompt].png
    assert re.fullmatch(r"00000-4321(-a red fox)?\.png", saved.name), saved.name
    with Image.open(saved) as image:
        assert image.info["parameters"] == out.infotexts[0] == out.info
        assert image.tobytes() == pixels(out)
    assert _saved(grids) == []  # one image: no grid

    batch = app.runner.txt2img(job(seed=10, batch_size=2, do_not_save_samples=False, do_not_save_grid=False))
    names = [p.name for p in _saved(samples)]
    assert len(names) == 3
    assert re.fullmatch(r"00001-10(-a red fox)?\.png", names[1]) and re.fullmatch(r"00002-11.*", names[2])
    with Image.open(_saved(samples)[2]) as image:
        assert image.info["parameters"] == batch.infotexts[batch.index_of_first_image + 1]
    (grid_file,) = _saved(grids)
    assert grid_file.parent.name in _today_folders() and grid_file.name.startswith("grid-0000")
    with Image.open(grid_file) as grid:
        assert grid.size == (128, 64)
        assert grid.info["parameters"] == batch.infotexts[0]

    app.settings.set({"samples_save": False})
    app.runner.txt2img(job(seed=77, do_not_save_samples=False, do_not_save_grid=False))
    assert len(_saved(data / "outputs")) == 4  # nothing new
    app.settings.set({"samples_save": True})
    app.runner.txt2img(job(seed=78))  # do_not_save_samples (what scripts set) wins over the setting
    assert len(_saved(data / "outputs")) == 4


def test_default_file_names_are_seed_and_prompt_and_grids_are_numbered(fresh_app, tmp_path):
    """Samples are NNNNN-SEED-PROMPT.png (the issue's spec; A1111 drops the prompt inside date folders),
    grids A1111's short grid-NNNN.png."""
    data = tmp_path / "names"
    app = fresh_app(data_dir=data)
    app.runner.txt2img(job(seed=10, batch_size=2, do_not_save_samples=False, do_not_save_grid=False))
    assert [p.name for p in _saved(data / "outputs" / "txt2img-images")] == [
        "00000-10-a red fox.png",
        "00001-11-a red fox.png",
    ]
    assert [p.name for p in _saved(data / "outputs" / "txt2img-grids")] == ["grid-0000.png"]


def test_samples_filename_pattern_names_the_files(fresh_app, tmp_path):
    data = tmp_path / "pattern"
    app = fresh_app(data_dir=data)
    app.settings.set({"samples_filename_pattern": "[prompt_words]-[seed]-[steps]-[seed_last]"})
    app.runner.txt2img(job(seed=4321, do_not_save_samples=False))
    files = [p.name for p in _saved(data / "outputs" / "txt2img-images")]
    assert files == [f"00000-a red fox-4321-{job().steps}.png"]  # batch of one: no "-[seed_last]"


def test_outdir_samples_overrides_the_txt2img_folder(fresh_app, tmp_path):
    data = tmp_path / "outdir"
    app = fresh_app(data_dir=data)
    app.settings.set({"outdir_samples": "everything"})
    app.runner.txt2img(job(seed=4321, do_not_save_samples=False))
    assert _saved(data / "outputs") == []
    assert len(_saved(data / "everything")) == 1


def test_the_last_infotext_is_written_to_params_txt(fresh_app, tmp_path):
    data = tmp_path / "params"
    app = fresh_app(data_dir=data)
    out = app.runner.txt2img(job(seed=99))
    assert (data / "params.txt").read_text(encoding="utf-8") == out.infotexts[0]


def test_data_dir_holds_config_cache_outputs_and_models(fresh_app, tmp_path):
    data = tmp_path / "elsewhere"
    app = fresh_app(data_dir=data)
    for sub in ("models/Stable-diffusion", "models/VAE", "models/Lora", "embeddings", "outputs"):
        assert (data / sub).is_dir(), sub
    demo = data / "models" / "Stable-diffusion" / DEMO_NAME
    assert demo.is_file()
    app.runner.txt2img(job())
    cache = json.loads((data / "cache.json").read_text())
    entry = cache["hashes"][f"checkpoint/{DEMO_NAME}"]
    assert entry["sha256"] == sha256(demo)
    app.settings.set({"CLIP_stop_at_last_layers": 2})
    config = json.loads((data / "config.json").read_text())
    assert config["CLIP_stop_at_last_layers"] == 2
    assert config["sd_model_checkpoint"] == f"{DEMO_NAME} [{sha256(demo)[:10]}]"
    assert app.paths.outputs_dir == data.resolve() / "outputs"


def test_settings_survive_a_restart_with_the_same_data_dir(fresh_app, tmp_path):
    data = tmp_path / "persist"
    first = fresh_app(data_dir=data)
    first.settings.set({"CLIP_stop_at_last_layers": 2, "samples_save": False})
    first.shutdown()
    second = fresh_app(data_dir=data)
    assert second.options.CLIP_stop_at_last_layers == 2 and second.options.samples_save is False
    assert params(second.runner.txt2img(job()))["Clip skip"] == "2"


# --- 7. Flags that are accepted but do nothing (yet) -----------------------------------------------


def test_medvram_places_the_model_under_the_medvram_policy(fresh_app):
    app = fresh_app("--medvram")
    notes = [n for n in app.notices if "--medvram" in n]
    assert notes and "no VRAM to save" in notes[0]  # this machine computes on the CPU
    assert app.runner.txt2img(job()).images[0].size == (64, 64)
    sd = app.models.get().sd
    assert sd.extra["offload"] == "med"
    report = app.models.offload_report()
    assert report is not None and report["policy"] == "med" and report["resident"] == ["vae"]


@pytest.mark.skipif(xformers_available(), reason="xformers is installed")
def test_xformers_without_xformers_falls_back_to_sdpa_with_a_notice(fresh_app):
    app = fresh_app("--xformers")
    notes = [n for n in app.notices if "xformers" in n]
    assert notes and "SDPA" in notes[0]
    assert app.runner.txt2img(job()).images[0].size == (64, 64)


def test_no_notices_without_such_flags(app):
    assert not [n for n in app.notices if "no effect" in n or "xformers" in n]


# --- 8. Every family through the App -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "stem", "width", "height"),
    [("tiny_sd2v_ckpt", "tiny_sd2v", 64, 96), ("tiny_sdxl_ckpt", "tiny_sdxl", 96, 64)],
)
def test_other_families_generate_through_the_app(app, request, fixture, stem, width, height):
    source, _ = request.getfixturevalue(fixture)
    folder = app.paths.ckpt_dirs[0]
    copied = [shutil.copy(source, folder / source.name)]
    if source.with_suffix(".yaml").exists():  # the SD2-v config sidecar travels with the checkpoint
        copied.append(shutil.copy(source.with_suffix(".yaml"), folder / f"{stem}.yaml"))
    try:
        app.models.refresh()
        app.settings.set({"sd_model_checkpoint": stem})
        assert app.options.sd_model_checkpoint.startswith(f"{stem}.safetensors [")
        out = app.runner.txt2img(job(width=width, height=height))
        assert out.images[0].size == (width, height)
        info = params(out)
        assert info["Model"] == stem and info["Size-1"] == str(width) and info["Size-2"] == str(height)
        assert info["Model hash"] == sha256(folder / source.name)[:10]
        assert len(set(out.images[0].getdata())) > 1  # a picture, not a flat colour
    finally:
        app.settings.set({"sd_model_checkpoint": DEMO_NAME})
        for path in copied:
            Path(path).unlink()


# --- 9. A failing job does not stop the worker ---------------------------------------------------


def test_an_error_inside_the_worker_reaches_the_caller_and_the_next_job_runs(app, monkeypatch, baseline):
    original = engine_generate.generate
    calls = {"n": 0}

    def fail_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated failure in the engine")
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_generate, "generate", fail_once)
    with pytest.raises(RuntimeError, match="simulated failure"):
        app.runner.txt2img(job())
    assert app.state.job == ""  # the job state was closed
    out = app.runner.txt2img(job())
    assert calls["n"] == 2
    assert pixels(out) == pixels(baseline)
    assert app.queue.pending() == []


def test_an_error_inside_the_worker_leaves_override_settings_restored(app, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine_generate, "generate", fail)
    with pytest.raises(RuntimeError, match="boom"):
        app.runner.txt2img(job(override_settings={"CLIP_stop_at_last_layers": 3}))
    assert app.options.CLIP_stop_at_last_layers == 1


def test_a_load_in_the_worker_does_not_touch_modules_built_on_other_threads(app, monkeypatch):
    from diffusers import UNet2DConditionModel

    inside, go = threading.Event(), threading.Event()
    original = UNet2DConditionModel.from_config.__func__

    def paused(cls, *args, **kwargs):  # runs inside the loader's empty-weights context
        inside.set()
        go.wait(60)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "from_config", classmethod(paused))
    app.models.unload_all()
    load = app.queue.submit("load model", app.models.get)
    try:
        assert inside.wait(60), "the loader never built a UNet"
        built_here = torch.nn.Linear(4, 4)  # e.g. an extension's model, built on a request thread
    finally:
        go.set()
        load.future.result(timeout=120)
    assert built_here.weight.device.type == "cpu"


def test_an_interrupt_does_not_carry_over_to_the_next_job(app):
    app.state.interrupt()
    assert app.queue.run("probe", lambda: app.state.interrupted) is False
