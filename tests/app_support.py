"""Helpers that build a real App on a temporary data folder (with the tiny demo checkpoint)."""

from __future__ import annotations

from pathlib import Path

from modules import shared
from modules.app import App
from modules.cmd_args import build_parser

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_app(data_dir: Path, *flags: str) -> App:
    args = build_parser().parse_args(["--data-dir", str(data_dir), *flags])
    app = App(args, REPO_ROOT)
    shared.set_app(app)
    app.startup()
    return app
