"""What the UI's Generate button does (`app.runner.submit`): `override_settings` are checked before the
job is queued, as POST /options checks settings."""

from __future__ import annotations

import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"outdir_txt2img_samples": "/anywhere"}, "Setting 'outdir_txt2img_samples': '/anywhere' is outside"),
        ({"outdir_grids": "~/x"}, "Setting 'outdir_grids'"),
        ({"sd_model_checkpoint": "no-such-model"}, "no checkpoint is called 'no-such-model'"),
        ({"eta_noise_seed_delta": 2**70}, "Setting 'eta_noise_seed_delta'"),
    ],
)
def test_a_ui_job_with_bad_override_settings_is_refused_before_it_is_queued(app, override, message):
    p = StableDiffusionProcessingTxt2Img(prompt="a", steps=2, width=64, height=64, override_settings=override)
    with pytest.raises(InvalidRequestError, match=message):
        app.runner.submit(p)
    assert "txt2img" not in app.queue.pending()
