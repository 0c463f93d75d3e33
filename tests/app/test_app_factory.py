"""The tests' App factory (tests/app_support.py, the make_app fixtures): every App it builds is
`modules.shared`'s while the test runs, and afterwards all are shut down and the previous App is back,
also when the test failed or a shutdown raised."""

from __future__ import annotations

import pytest

from modules import shared
from tests.app_support import AppFactory, app_factory


def test_each_app_becomes_shared_and_the_previous_one_comes_back(tmp_path):
    before = shared.running_app()
    with app_factory() as make_app:
        first = make_app(tmp_path / "one", start=False)
        assert shared.running_app() is first and make_app.apps == [first]
        second = make_app(tmp_path / "two", "--nowebui", start=False)
        assert shared.running_app() is second and second.args.nowebui
    assert shared.running_app() is before and make_app.apps == []


def test_a_failing_test_still_restores_shared_and_stops_the_workers(tmp_path):
    before = shared.running_app()
    with pytest.raises(RuntimeError, match="the test failed"), app_factory() as make_app:
        app = make_app(tmp_path, start=False)
        app.queue.start()  # a worker thread, as a started App has
        raise RuntimeError("the test failed")
    assert shared.running_app() is before
    assert app.queue._thread is None  # shut down


def test_every_app_is_shut_down_even_when_one_shutdown_raises(tmp_path, monkeypatch):
    before = shared.running_app()
    make_app = AppFactory()
    first, second = make_app(tmp_path / "a", start=False), make_app(tmp_path / "b", start=False)
    first.queue.start()
    monkeypatch.setattr(second, "shutdown", lambda: (_ for _ in ()).throw(OSError("stuck")))
    with pytest.raises(OSError, match="stuck"):
        make_app.close()
    assert first.queue._thread is None and shared.running_app() is before


def test_the_fixture_starts_the_app_with_the_demo_model(make_app, tmp_path):
    app = make_app(tmp_path, "--nowebui", loaded=True)
    assert shared.running_app() is app
    assert app.models.active is not None and app.checkpoints.list()[0].filename.endswith(".safetensors")
