"""Error boxes on the page never show a secret the server was started with."""

from __future__ import annotations

from modules.sumi.frontends.gradio.results import error_message
from modules.sumi.services.settings.secrets import MASK


def test_error_boxes_mask_the_passwords(make_app, tmp_path):
    make_app(tmp_path, "--gradio-auth", "u:Page-Error-Pass-1729", start=False)
    assert error_message(ValueError("bad Page-Error-Pass-1729")) == f"bad {MASK}"
    assert error_message(RuntimeError("Page-Error-Pass-1729")) == f"RuntimeError: {MASK}"
