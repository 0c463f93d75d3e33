"""A1111 processing fields scripts pass: `do_not_reload_embeddings` (supermerger's jobs), `force_task_id`
set on the object (not only through the API), `prompt_for_display`, `ddim_discretize`."""

from __future__ import annotations

import torch

from modules.sumi.services.jobs.processing import (
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
)
from tests.fixtures.tiny_embeddings import write_safetensors

DEMO_WIDTH = 64  # the demo model's text encoder width


def job(**changes) -> StableDiffusionProcessingTxt2Img:
    params = {"prompt": "a red circle", "steps": 1, "width": 64, "height": 64, "seed": 5, **changes}
    return StableDiffusionProcessingTxt2Img(**params, do_not_save_samples=True, do_not_save_grid=True)


def test_do_not_reload_embeddings_leaves_new_files_for_a_later_job(make_app, tmp_path):
    app = make_app(tmp_path / "data", "--nowebui", loaded=True)
    app.runner.txt2img(job())  # the folder as it was at the start
    write_safetensors(app.paths.embeddings_dir / "late.safetensors", torch.randn(1, DEMO_WIDTH))
    app.runner.txt2img(job(prompt="a late circle", do_not_reload_embeddings=True))
    assert "late" not in app.embeddings._embeddings  # not read again for this job (A1111)
    app.runner.txt2img(job(prompt="a late circle"))
    assert "late" in app.embeddings._embeddings  # the default reads changed files before the job


def test_force_task_id_on_the_object_names_the_queued_job(make_app, tmp_path):
    app = make_app(tmp_path / "data", "--nowebui", loaded=True)
    submitted = app.runner.submit(job(force_task_id="task(mine)"))
    submitted.future.result()
    assert submitted.id == "task(mine)"
    image = app.runner.txt2img(job()).images[0]
    with_id = app.runner.submit(
        StableDiffusionProcessingImg2Img(
            init_images=[image],
            prompt="x",
            steps=1,
            width=64,
            height=64,
            force_task_id="task(img)",
            do_not_save_samples=True,
            do_not_save_grid=True,
        )
    )
    with_id.future.result()
    assert with_id.id == "task(img)"


def test_prompt_for_display_is_kept_for_scripts():
    assert job(prompt_for_display="shown").prompt_for_display == "shown"


def test_ddim_discretize_is_the_setting_s_and_ddim_draws_the_same_picture_either_way(make_app, tmp_path):
    """A1111 1.6+ keeps `ddim_discretize` (setting and field) but its DDIM takes uniform timesteps."""
    import numpy as np

    app = make_app(tmp_path / "data", "--nowebui", loaded=True)
    assert app.options.ddim_discretize == "uniform"
    p = job(sampler_name="DDIM", steps=3)
    uniform = np.asarray(app.runner.txt2img(p).images[0])
    assert p.ddim_discretize == "uniform"
    quad = np.asarray(app.runner.txt2img(job(sampler_name="DDIM", steps=3, ddim_discretize="quad")).images[0])
    assert np.array_equal(uniform, quad)
