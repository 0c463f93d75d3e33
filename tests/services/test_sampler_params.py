"""The job's sampler parameters: request fields over settings, the fields scripts read, the NaN guard."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs import sampler_params
from modules.sumi.services.settings.options import Options


def _p(**fields) -> SimpleNamespace:
    names = ("s_min_uncond", "s_churn", "s_tmin", "s_tmax", "s_noise")
    return SimpleNamespace(**{name: None for name in names} | fields)


def test_null_fields_take_the_settings_as_a1111s_processing_object_does():
    options = Options()
    options.set("s_churn", 1.5)
    p = _p(s_noise=0.9)
    sampler_params.fill_fields(p, options)
    assert (p.s_churn, p.s_noise, p.s_tmin, p.s_min_uncond) == (1.5, 0.9, 0.0, 0.0)
    assert p.s_tmax == math.inf  # A1111: the setting's 0 means no upper bound


def test_a_set_field_wins_over_the_setting():
    options = Options()
    options.set("s_churn", 1.5)
    options.set("s_min_uncond", 2.0)
    tuning = sampler_params.sampler_tuning(_p(s_churn=4.0), options)
    assert tuning.churn.churn == 4.0 and tuning.skipping.min_sigma == 2.0 and tuning.churn.tmax == math.inf


def test_a_field_that_is_not_a_number_is_a_clear_error():
    with pytest.raises(InvalidRequestError, match="s_noise is not a number"):
        sampler_params.sampler_tuning(_p(s_noise=float("nan")), Options())


def test_a_scripts_own_token_merging_ratio_wins_as_in_a1111():
    from modules.sumi.services.jobs import token_merging
    from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img

    options = Options()
    options.set("token_merging_ratio", 0.3)
    p = StableDiffusionProcessingTxt2Img(enable_hr=True)
    assert token_merging.ratio(p, options) == 0.3 and token_merging.ratio(p, options, hires_pass=True) == 0.3
    p.token_merging_ratio = 0.6  # what a script may set, as on A1111's processing object
    assert token_merging.ratio(p, options) == 0.6
    assert token_merging.infotext(p, options) == {"Token merging ratio": 0.6, "Token merging ratio hr": 0.6}
