"""Jobs with A1111's "Random number generator source" = NV: the first noise is the Philox draws of each
seed (what an NVIDIA GPU draws), every sampler runs with it, the infotext says "RNG: NV" and pasting
that infotext brings NV back."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine import generate as engine_generate
from modules.sumi.engine.sampling.philox import PhiloxGenerator
from modules.sumi.engine.sampling.samplers import SAMPLERS
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("nv") / "data", "--nowebui", loaded=True)


@pytest.fixture
def nv(app):
    app.settings.set({"randn_source": "NV"})
    yield
    app.settings.set({"randn_source": "CPU"})


def job(**changes) -> StableDiffusionProcessingTxt2Img:
    params = {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64, "seed": 77, "batch_size": 2}
    params |= {"sampler_name": "Euler a", "do_not_save_samples": True, "do_not_save_grid": True, **changes}
    return StableDiffusionProcessingTxt2Img(**params)


def test_the_first_noise_is_each_seed_s_philox_draw_and_the_infotext_says_nv(app, nv, monkeypatch):
    seen = []
    real = engine_generate.initial_noise

    def recorded(model, request):
        generators, noise = real(model, request)
        seen.append(noise.float().cpu())
        return generators, noise

    monkeypatch.setattr(engine_generate, "initial_noise", recorded)
    done = app.runner.txt2img(job())
    (noise,) = seen
    for i, seed in enumerate((77, 78)):
        torch.testing.assert_close(noise[i], PhiloxGenerator(seed).randn(tuple(noise.shape[1:])))
    assert parse_infotext(done.infotexts[0])["RNG"] == "NV"


def test_nv_draws_other_pictures_than_the_cpu_source_and_the_same_again(app, nv):
    first, again = (app.runner.txt2img(job()).images[0].tobytes() for _ in range(2))
    app.settings.set({"randn_source": "CPU"})
    cpu = app.runner.txt2img(job()).images[0].tobytes()
    assert first == again and first != cpu


def test_every_sampler_runs_with_nv_noise(app, nv):
    for spec in SAMPLERS:
        done = app.runner.txt2img(job(sampler_name=spec.name, batch_size=1, steps=3))
        assert len(done.images) == 1 and "RNG: NV" in done.infotexts[0], spec.name


def test_an_override_of_the_source_in_the_job_uses_nv_for_that_job_only(app, nv):
    with_setting = app.runner.txt2img(job()).images[0].tobytes()
    app.settings.set({"randn_source": "CPU"})
    overridden = app.runner.txt2img(job(override_settings={"randn_source": "NV"}))
    assert overridden.images[0].tobytes() == with_setting and "RNG: NV" in overridden.infotexts[0]
    assert app.options.randn_source == "CPU"
