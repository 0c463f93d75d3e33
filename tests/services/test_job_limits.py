"""Issue 11: the live limits of a job, checked for every submitter (UI, API, scripts, extensions), and
what the job queue logs when a job fails."""

from __future__ import annotations

import logging
import re

import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs.generation import GenerationService, _seed_list
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.settings.options import Options


def job(**changes) -> StableDiffusionProcessingTxt2Img:
    return StableDiffusionProcessingTxt2Img(
        **{"prompt": "a", "steps": 2, "width": 64, "height": 64, **changes}
    )


@pytest.fixture
def service() -> GenerationService:
    return GenerationService(None, Options(), None, JobState())  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [10**6, 150000, 2049])
def test_seed_resize_from_over_max_image_size_is_refused(service, size):
    with pytest.raises(InvalidRequestError, match="seed_resize_from_w.*max_image_size"):
        service.validate(job(seed_resize_from_w=size, seed_resize_from_h=64))
    with pytest.raises(InvalidRequestError, match="seed_resize_from_h"):
        service.validate(job(seed_resize_from_w=64, seed_resize_from_h=size))


def test_seed_resize_from_within_max_image_size_or_off_is_accepted(service):
    service.validate(job(seed_resize_from_w=2048, seed_resize_from_h=512))
    service.validate(job(seed_resize_from_w=-1, seed_resize_from_h=0))


def test_prompts_longer_than_the_max_prompt_length_setting_are_refused(service):
    service.options.set("max_prompt_length", 100)
    service.validate(job(prompt="x" * 100, negative_prompt=["y" * 100]))
    for field in ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt"):
        with pytest.raises(InvalidRequestError, match=f"{field} is 101 characters.*max_prompt_length"):
            service.validate(job(**{field: "x" * 101}))
    with pytest.raises(InvalidRequestError, match="prompt is 101"):
        service.validate(job(prompt=["ok", "x" * 101]))


def test_max_prompt_length_has_a_sane_default():
    assert 5_000 <= Options().max_prompt_length <= 100_000


def test_big_seeds_are_kept_exactly_not_rounded_through_a_float():
    assert _seed_list(2**64 - 1, 2, 1) == [2**64 - 1, 2**64]
    assert _seed_list("18446744073709551615", 1, 1) == [2**64 - 1]
    assert _seed_list(12.0, 1, 1) == [12]
    with pytest.raises(InvalidRequestError, match="whole number"):
        _seed_list("twelve", 1, 1)


def test_a_failed_job_logs_one_line_for_a_users_mistake_and_one_traceback_otherwise(queue, caplog):
    def users_mistake():
        raise InvalidRequestError("steps must be at least 1")

    def bug():
        raise RuntimeError("bug")

    with caplog.at_level(logging.INFO):
        with pytest.raises(InvalidRequestError):
            queue.run("txt2img", users_mistake)
        (line,) = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
        assert re.fullmatch(r"Job task\([0-9a-f]{16}\) \(txt2img\) failed: steps must be at least 1", line)
        assert not [r for r in caplog.records if r.exc_info]
        with pytest.raises(RuntimeError):
            queue.run("txt2img", bug)
    assert len([r for r in caplog.records if r.exc_info]) == 1
