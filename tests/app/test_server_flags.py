"""A1111 flags about the server process: --skip-load-model-at-start, --loglevel, --timeout-keep-alive."""

from __future__ import annotations

import argparse
import logging

from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from webui import log_level, server_config


def test_skip_load_model_at_start_leaves_the_model_to_the_first_job(make_app, tmp_path):
    app = make_app(tmp_path, "--skip-load-model-at-start", "--nowebui")
    app.queue.call("wait for the start-up work", lambda: None)
    assert app.models.active is None and app.models.loaded_titles() == []
    p = StableDiffusionProcessingTxt2Img(prompt="a red star", steps=2, width=64, height=64)
    p.do_not_save_samples = p.do_not_save_grid = True
    assert len(app.runner.txt2img(p).images) == 1
    assert app.models.active is not None


def test_without_the_flag_the_model_is_loaded_at_start(make_app, tmp_path):
    app = make_app(tmp_path, "--nowebui")
    app.queue.call("wait for the start-up work", lambda: None)
    assert app.models.active is not None


def test_loglevel_takes_a1111_s_names_and_says_when_a_name_is_not_one():
    assert log_level(None) == (logging.INFO, None)
    assert log_level("debug") == (logging.DEBUG, None)
    assert log_level("WARNING") == (logging.WARNING, None)
    level, note = log_level("LOUD")
    assert level == logging.INFO and note is not None and "'LOUD'" in note


def test_timeout_keep_alive_reaches_the_http_server():
    assert (
        server_config(object(), argparse.Namespace(timeout_keep_alive=7), "127.0.0.1", 1).timeout_keep_alive
        == 7
    )
    assert server_config(object(), argparse.Namespace(), "127.0.0.1", 1).timeout_keep_alive == 30
