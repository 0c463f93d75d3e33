"""Jobs own their settings: a job's thread sees the values from when it started with its overrides on
top; other threads see and change the globals, which the job neither sees nor reverts."""

from __future__ import annotations

import threading

import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs.generation import GenerationService
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.settings.options import Options


def in_thread(fn):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    thread.join()
    return result[0]


def test_a_job_view_is_private_to_its_thread_and_dropped_afterwards():
    opts = Options()
    with opts.job_view({"CLIP_stop_at_last_layers": 2}):
        assert opts.CLIP_stop_at_last_layers == 2 and opts.data["CLIP_stop_at_last_layers"] == 2
        assert in_thread(lambda: opts.CLIP_stop_at_last_layers) == 1  # another thread: the globals
        in_thread(lambda: opts.set("eta_noise_seed_delta", 7))  # a global change meanwhile...
        assert opts.eta_noise_seed_delta == 0  # ...is not seen by the job
        opts.samples_format = "jpg"  # what the job (or an extension in it) writes stays in its view
    assert opts.CLIP_stop_at_last_layers == 1 and opts.samples_format == "png"
    assert opts.eta_noise_seed_delta == 7  # and the global change is not reverted


def test_nested_views_stack_and_the_settings_service_writes_the_globals_from_a_job(tmp_path):
    opts = Options()
    with opts.job_view({"CLIP_stop_at_last_layers": 2}):
        with opts.job_view({"eta_ddim": 0.5}):
            assert (opts.CLIP_stop_at_last_layers, opts.eta_ddim) == (2, 0.5)
            with opts.outside_job_view():
                assert opts.CLIP_stop_at_last_layers == 1
                opts.set("n_rows", 3)
        assert opts.eta_ddim == 0.0
        opts.save(tmp_path / "config.json")  # a job's values are never saved
    assert opts.n_rows == 3
    assert '"CLIP_stop_at_last_layers": 1' in (tmp_path / "config.json").read_text()


def generation(opts: Options) -> GenerationService:
    return GenerationService(None, opts, None, JobState())  # type: ignore[arg-type]


def test_restore_afterwards_false_keeps_the_overrides_unless_changed_meanwhile():
    opts = Options()
    p = StableDiffusionProcessingTxt2Img(
        override_settings={"CLIP_stop_at_last_layers": 2, "eta_ddim": 0.5},
        override_settings_restore_afterwards=False,
    )
    with opts.job_view():  # the whole job (JobRunner.run_job), around process_images
        with generation(opts)._job_settings(p):
            in_thread(lambda: opts.set("eta_ddim", 0.25))  # someone else's change wins
        assert opts.CLIP_stop_at_last_layers == 2  # the rest of the job sees the kept override
    assert opts.CLIP_stop_at_last_layers == 2 and opts.eta_ddim == 0.25


def test_a_job_cannot_lift_the_limits_with_override_settings():
    p = StableDiffusionProcessingTxt2Img(width=4096, override_settings={"max_image_size": 8192})
    with pytest.raises(InvalidRequestError, match="width must be an integer from 64 to 2048"):
        generation(Options()).validate(p)
