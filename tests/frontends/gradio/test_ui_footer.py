"""The page's footer, as A1111's: links (API docs when the API is on, Reload UI) and the versions line
with the selected checkpoint's short hash in `#sd_checkpoint_hash`, made again at each page load."""

from __future__ import annotations

import platform
import re
import shutil

import gradio as gr

from modules.sumi.frontends.gradio.footer import footer_html
from modules.sumi.util.version import VERSION

HOSTILE = 'cat"<img src=x onerror=alert(1)>'


def _footer_block(demo: gr.Blocks) -> gr.HTML:
    (footer,) = [b for b in demo.blocks.values() if isinstance(b, gr.HTML) and b.elem_id == "footer"]
    return footer


def test_the_footer_names_the_versions_device_and_the_checkpoint_hash_and_escapes_its_name(
    make_app, tmp_path, tiny_sd1_ckpt
):
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(tiny_sd1_ckpt[0], models / f"{HOSTILE}.safetensors")
    app = make_app(tmp_path, start=False)
    before = footer_html(app)
    assert f"version: {VERSION}" in before and f"python: {platform.python_version()}" in before
    assert f"gradio: {gr.__version__}" in before and "(cpu, fp32)" in before  # --no-half on the CPU
    assert '<a id="sd_checkpoint_hash" title=' in before and ">N/A</a>" in before  # not hashed yet
    assert "<img" not in before and "&lt;img" in before  # the file's name is text, not markup
    # the first link of `.versions` is where extensions read the A1111 version (Civitai Helper: 1.8+)
    versions = before.split("class='versions'>", 1)[1]
    assert re.search(r"<a [^>]*>([^<]*)</a>", versions).group(1) == "v1.10.1"

    info = app.checkpoints.first()
    short = info.calculate_hash()
    after = footer_html(app)
    assert f">{short}</a>" in after and info.sha256 in after
    assert "Reload UI" in after and 'href="/docs"' not in after  # no API link without --api


def test_the_api_link_shows_with_api_and_the_page_rewrites_the_footer_at_each_load(make_app, tmp_path):
    from modules.sumi.frontends.gradio import build_ui

    app = make_app(tmp_path, "--api", start=False)
    assert '<a href="/docs"' in footer_html(app)
    demo = build_ui(app)
    footer = _footer_block(demo)
    (load,) = [f for f in demo.fns.values() if footer in f.outputs and any(e == "load" for _, e in f.targets)]
    assert "versions" in load.fn() and not load.queue  # answered at once, off the job queue
