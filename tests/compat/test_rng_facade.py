"""A1111's `modules.rng` (and `devices.randn*`, which A1111 points at it) as extensions call it: the
source in Settings decides the numbers (CPU, GPU, NV), `ImageRNG` makes a batch's first noise as
Sumi's jobs do and then the generators' next draws, with ENSD."""

from __future__ import annotations

import pytest
import torch

from modules import devices, rng
from modules.sumi.engine.sampling.noise import draw, image_noise, make_generators
from modules.sumi.engine.sampling.philox import PhiloxGenerator


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("rng") / "data", "--nowebui", start=False)


@pytest.fixture(params=["CPU", "NV"])
def source(request, app):
    app.settings.set({"randn_source": request.param})
    yield request.param
    app.settings.set({"randn_source": "CPU", "eta_noise_seed_delta": 0})


def first_draw(source: str, seed: int, shape) -> torch.Tensor:
    if source == "NV":
        return PhiloxGenerator(seed).randn(shape)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_randn_is_the_seed_s_first_draw_and_the_global_generator_goes_on(source):
    shape = (2, 3, 4)
    assert torch.equal(rng.randn(42, shape), first_draw(source, 42, shape))
    follow = rng.randn_without_seed(shape)  # the same global stream, next draws
    stream = PhiloxGenerator(42) if source == "NV" else torch.Generator().manual_seed(42)
    draw(shape, stream)
    assert torch.equal(follow, draw(shape, stream))
    assert torch.equal(rng.randn_local(42, shape), first_draw(source, 42, shape))
    like = rng.randn_like(torch.zeros(shape, dtype=torch.float64))
    assert like.dtype == torch.float64 and like.shape == shape
    assert torch.equal(
        devices.randn(42, shape), first_draw(source, 42, shape)
    )  # A1111: devices.randn = rng.randn


def test_create_generator_is_of_the_source_and_continues_from_its_seed(source):
    generator = rng.create_generator(9)
    assert isinstance(generator, PhiloxGenerator if source == "NV" else torch.Generator)
    assert torch.equal(rng.randn_without_seed((5,), generator), first_draw(source, 9, (5,)))


def test_image_rng_first_is_the_job_s_first_noise_and_next_the_generators_draws(source, app):
    shape = (4, 8, 8)
    kind = "nv" if source == "NV" else "cpu"
    image = rng.ImageRNG(
        shape, [3, 4], subseeds=[30, 40], subseed_strength=0.25, seed_resize_from_h=48, seed_resize_from_w=40
    )
    expected = image_noise(
        shape,
        make_generators([3, 4], kind),
        subseeds=[30, 40],
        subseed_strength=0.25,
        seed_resize_from=(6, 5),
    )
    assert torch.equal(image.next(), expected)  # the first next() is first()
    again = make_generators([3, 4], kind)
    image_noise(shape, again, subseeds=[30, 40], subseed_strength=0.25, seed_resize_from=(6, 5))
    assert torch.equal(image.next(), torch.stack([draw(shape, g) for g in again]))

    app.settings.set({"eta_noise_seed_delta": 31337})
    with_ensd = rng.ImageRNG(shape, [3])
    with_ensd.first()
    assert torch.equal(with_ensd.next()[0], first_draw(source, 3 + 31337, shape))


def test_shared_state_is_the_class_of_shared_state(app):
    from modules import shared, shared_state

    assert isinstance(shared.state, shared_state.State) and shared.State is shared_state.State


def test_slerp_is_a1111_s():
    low, high = torch.ones(2, 4), torch.ones(2, 4) * 2  # parallel: A1111's reversed linear fallback
    torch.testing.assert_close(rng.slerp(0.25, low, high), low * 0.25 + high * 0.75)
