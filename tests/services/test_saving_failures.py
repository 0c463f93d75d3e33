"""Issue 11, point 8: nothing is lost when saving fails. A full disk, an output folder that sits under
a regular file or an unwritable params.txt leave the job's images and infotexts intact, with a warning
(in `Processed.warnings`, hence the API's `info` JSON and the UI's message)."""

from __future__ import annotations

import errno
import json

import pytest

from modules.sumi.services.images import saving
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"))


def saving_job(**changes) -> StableDiffusionProcessingTxt2Img:
    values = {
        "prompt": "a red fox",
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 5,
        "sampler_name": "Euler",
    }
    return StableDiffusionProcessingTxt2Img(**{**values, "batch_size": 2, **changes})


def assert_nothing_lost(processed, warning: str) -> None:
    assert len(processed.images) == 3 and processed.index_of_first_image == 1  # grid + 2 images
    assert all("Seed: " in text for text in processed.infotexts)
    assert any(warning in w for w in processed.warnings), processed.warnings
    assert any(warning in w for w in json.loads(processed.js())["warnings"])


def test_a_full_disk_keeps_the_images_and_says_why(app, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(saving, "save_image_file", full_disk)
    processed = app.runner.txt2img(saving_job())
    assert_nothing_lost(processed, "No space left on device")
    assert any(w.startswith("Could not save the grid") for w in processed.warnings)


def test_an_output_folder_under_a_regular_file_keeps_the_images(app, tmp_path):
    blocker = app.paths.data_dir / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    job = saving_job(outpath_samples=str(blocker / "images"), outpath_grids=str(blocker / "grids"))
    processed = app.runner.txt2img(job)
    assert_nothing_lost(processed, "Could not save the image")
    assert blocker.read_text() == "a file where a folder should be"


def test_an_unwritable_params_txt_keeps_the_images(app):
    params = app.paths.params_file
    params.unlink(missing_ok=True)
    params.mkdir()  # a folder where the file should be: the atomic rename fails
    try:
        processed = app.runner.txt2img(saving_job(do_not_save_samples=True))
    finally:
        params.rmdir()
    assert any("params.txt" in w for w in processed.warnings)
    assert len(processed.images) == 3


def test_a_later_job_saves_again_once_the_disk_is_fine(app):
    before = len(list(app.paths.data_dir.joinpath("outputs").rglob("*.png")))
    processed = app.runner.txt2img(saving_job())
    assert not processed.warnings
    assert len(list(app.paths.data_dir.joinpath("outputs").rglob("*.png"))) == before + 3


def test_a_scripts_grid_that_cannot_be_saved_is_returned_with_a_warning(app):
    from PIL import Image

    from modules.sumi.services.jobs.script_jobs import save_grid

    blocker = app.paths.data_dir / "grid-blocker"
    blocker.write_text("x")
    warnings: list[str] = []
    job = saving_job(outpath_grids=str(blocker / "grids"))
    assert save_grid(app, job, Image.new("RGB", (8, 8)), "info", "xyz_grid", warnings) is None
    assert len(warnings) == 1 and warnings[0].startswith("Could not save the grid")


def test_a_scripts_grid_takes_the_samples_pattern_with_grid_extended_filename(app):
    from PIL import Image

    from modules.sumi.services.jobs.script_jobs import save_grid

    folder = app.paths.data_dir / "script-grids"
    job = saving_job(outpath_grids=str(folder))
    assert save_grid(app, job, Image.new("RGB", (8, 8)), "info", "xyz_grid").name == "xyz_grid-0000.png"  # pyright: ignore[reportOptionalMemberAccess]
    app.settings.set({"grid_extended_filename": True})
    try:
        named = save_grid(app, job, Image.new("RGB", (8, 8)), "info", "xyz_grid")
    finally:
        app.settings.set({"grid_extended_filename": False})
    assert named is not None and named.name == "xyz_grid-0001-5.png"  # A1111's [seed] in date folders
