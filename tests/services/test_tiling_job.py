"""A job's tiling value (services.jobs.tiling): null means the `tiling` setting, and the value that ran
is stored on the job for the infotext."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs import tiling


@pytest.mark.parametrize(
    ("given", "setting", "ran"),
    [(None, False, False), (None, True, True), (False, True, False), (1, False, True)],
)
def test_null_is_the_setting_and_the_value_that_ran_is_kept(given, setting, ran):
    p = SimpleNamespace(tiling=given)
    assert tiling.resolve(p, SimpleNamespace(tiling=setting)) is ran
    assert p.tiling is ran
    assert tiling.infotext_value(p) == ("True" if ran else None)


def test_anything_else_is_a_clear_error():
    with pytest.raises(InvalidRequestError, match="tiling must be true, false or null"):
        tiling.resolve(SimpleNamespace(tiling="yes"), SimpleNamespace(tiling=False))
