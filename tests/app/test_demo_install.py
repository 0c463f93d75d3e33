"""A fresh install gets the demo model Sumi trained: copied into the checkpoint folder, selected, and
announced with what it draws, with its canny ControlNet in the ControlNet folder; an install that only has the random demo of older versions gets it too."""

from __future__ import annotations

from safetensors import safe_open

from modules.sumi.services.models.demo import (
    DEMO_CONTROLNET_NAME,
    DEMO_NAME,
    DEMO_SIZE,
    OLD_RANDOM_DEMO,
    SHIPPED_DEMO,
    SHIPPED_DEMO_CONTROLNET,
)
from modules.sumi.services.models.native_size import native_size


def test_an_install_without_checkpoints_gets_the_trained_demo_model_selected(make_app, tmp_path):
    app = make_app(tmp_path / "data", "--nowebui", loaded=True)
    installed = app.paths.ckpt_dirs[0] / DEMO_NAME
    assert installed.read_bytes() == SHIPPED_DEMO.read_bytes()
    assert app.options.sd_model_checkpoint.startswith(DEMO_NAME)
    [notice] = [n for n in app.notices if DEMO_NAME in n]
    assert f"{DEMO_SIZE}x{DEMO_SIZE}" in notice and "a red star on the left" in notice
    assert "noise" not in notice
    controlnet = app.paths.controlnet_dir / DEMO_CONTROLNET_NAME  # its canny ControlNet, listed at once
    assert controlnet.read_bytes() == SHIPPED_DEMO_CONTROLNET.read_bytes() and "canny ControlNet" in notice
    assert [f.name.split(" [")[0] for f in app.controlnet.models.list()] == [controlnet.stem]


def test_the_shipped_demo_says_it_was_trained_by_sumi_at_its_size():
    with safe_open(str(SHIPPED_DEMO), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["sumi_demo"] == "true" and "trained from scratch by Sumi" in metadata["description"]
    assert native_size(SHIPPED_DEMO) == (DEMO_SIZE, DEMO_SIZE)
    assert SHIPPED_DEMO.stat().st_size <= 25 * 2**20
    with safe_open(str(SHIPPED_DEMO_CONTROLNET), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["sumi_demo"] == "true" and metadata["sumi_controlnet_conditioning"].startswith("canny")
    assert (
        metadata["ss_sd_model_name"] == DEMO_NAME and metadata["ss_output_name"] == "control_sumi-demo_canny"
    )


def test_an_install_with_only_the_old_random_demo_gets_the_trained_one(make_app, tmp_path, tiny_sd1_ckpt):
    data = tmp_path / "data"
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    (folder / OLD_RANDOM_DEMO).write_bytes(tiny_sd1_ckpt[0].read_bytes())
    app = make_app(data, "--nowebui", loaded=True)
    assert (folder / DEMO_NAME).is_file() and (folder / OLD_RANDOM_DEMO).is_file()  # the user's files stay
    assert app.options.sd_model_checkpoint.startswith(DEMO_NAME)


def test_a_folder_with_a_users_checkpoint_gets_no_demo(make_app, tmp_path, tiny_sd1_ckpt):
    data = tmp_path / "data"
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    (folder / "mine.safetensors").write_bytes(tiny_sd1_ckpt[0].read_bytes())
    app = make_app(data, "--nowebui", loaded=True)
    assert (
        not (folder / DEMO_NAME).exists() and not (app.paths.controlnet_dir / DEMO_CONTROLNET_NAME).exists()
    )
    assert app.options.sd_model_checkpoint.startswith("mine.safetensors")
