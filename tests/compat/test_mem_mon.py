"""A1111's `shared.mem_mon` (`modules.memmon.MemUsageMonitor`): one per App; on a machine without CUDA it is
disabled, as A1111's, and its calls still answer."""

from __future__ import annotations

import pytest
import torch

from modules import memmon, shared


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("memmon"), "--nowebui")


def test_the_monitor_answers_and_is_disabled_without_cuda(app):
    monitor = shared.mem_mon
    assert isinstance(monitor, memmon.MemUsageMonitor) and shared.mem_mon is monitor
    monitor.monitor()
    data = monitor.stop()
    if torch.cuda.is_available() and app.devices.device.type == "cuda":
        assert data["total"] > 0 and data["system_peak"] >= 0
    else:
        assert monitor.disabled and not monitor.is_alive() and dict(data) == {}
