"""`import modules`, then `modules.<facade>`: A1111 had imported its modules before any extension ran, so
extensions reach them as attributes of the package (Civitai Helper: `modules.ui.txt2img_paste_fields`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_facades_are_attributes_of_the_package_in_a_fresh_interpreter():
    code = (
        "import modules\n"
        "assert modules.ui.create_refresh_button is not None\n"
        "assert modules.ui.txt2img_paste_fields == []  # nothing before the page is built\n"
        "assert callable(modules.images.save_image)\n"
        "try:\n"
        "    modules.no_such_module\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('an unknown name must stay an AttributeError')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_tabs_paste_fields_start_with_the_prompt_boxes_once_the_page_is_built(make_app, tmp_path):
    import modules
    from modules.sumi.frontends.gradio import build_ui

    build_ui(make_app(tmp_path, start=False))
    for tab in ("txt2img", "img2img"):
        fields = getattr(modules.ui, f"{tab}_paste_fields")
        assert [key for _, key in fields[:2]] == ["Prompt", "Negative prompt"]
        assert fields[0][0].elem_id == f"{tab}_prompt" and fields[1][0].elem_id == f"{tab}_neg_prompt"
    with pytest.raises(AttributeError):
        modules.ui.no_such_name  # noqa: B018
