"""The start-up timer keeps A1111's `modules.timer.Timer` contract: records add the time since the last
one, a subcategory files its records under "name/" and its whole time under "name", summary() is the
console line and dump() what /internal/profile-startup answers."""

from __future__ import annotations

import pytest

from modules.sumi.util import timer as timer_module
from modules.sumi.util.timer import Timer


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves by hand (seconds)."""
    now = [100.0]
    monkeypatch.setattr(timer_module.time, "perf_counter", lambda: now[0])
    return now


def test_a_record_takes_the_time_since_the_last_record_and_adds_up_per_category(clock):
    t = Timer()
    clock[0] += 2.0
    t.record("import")
    clock[0] += 0.5
    t.record("load")
    clock[0] += 0.25
    t.record("load", extra_time=1.0)
    assert t.dump() == {"total": 3.75, "records": {"import": 2.0, "load": 1.75}}


def test_a_subcategory_files_inner_records_under_its_name_and_its_whole_time_as_its_own(clock):
    t = Timer()
    clock[0] += 1.0  # before the block: not the block's
    with t.subcategory("load scripts"):
        clock[0] += 0.5
        t.record("a.py")
        clock[0] += 0.25
        t.record("ext/b.py")
        clock[0] += 0.125  # after the last inner record: the block's, and the total's
    records = t.dump()["records"]
    assert records == {"load scripts/a.py": 0.5, "load scripts/ext/b.py": 0.25, "load scripts": 0.875}
    assert t.total == pytest.approx(0.875)  # the second before the block was never recorded


def test_nested_subcategories_build_the_path(clock):
    t = Timer()
    with t.subcategory("create ui"):
        clock[0] += 1.0
        t.record("txt2img")
        with t.subcategory("extension tabs"):
            clock[0] += 2.0
            t.record("x/tab.py")
    assert t.dump()["records"] == {
        "create ui/txt2img": 1.0,
        "create ui/extension tabs/x/tab.py": 2.0,
        "create ui/extension tabs": 2.0,
        "create ui": 3.0,
    }
    assert t.base_category == ""


def test_the_summary_lists_top_level_records_of_a_tenth_of_a_second_or_more(clock):
    t = Timer()
    assert t.summary() == "0.0s"
    clock[0] += 1.25
    t.record("import")
    clock[0] += 0.05
    t.record("tiny")
    with t.subcategory("load scripts"):
        clock[0] += 2.0
        t.record("slow.py")
    assert t.summary() == "3.3s (import: 1.2s, load scripts: 2.0s)"


def test_reset_starts_over(clock):
    t = Timer()
    clock[0] += 1.0
    t.record("x")
    t.reset()
    clock[0] += 0.5
    t.record("y")
    assert t.dump() == {"total": 0.5, "records": {"y": 0.5}}
