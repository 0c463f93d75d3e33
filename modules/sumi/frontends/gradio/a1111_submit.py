"""What A1111's tab submit functions (`modules.txt2img.txt2img`, `modules.img2img.img2img`) share:
the job's set-up (scripts, user, console prompt) and A1111's four outputs."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from modules.sumi.services.jobs.processing import Processed
from modules.sumi.services.settings.options import Options


def plaintext_to_html(text: str, classname: str | None = None) -> str:
    """A1111's `ui_common.plaintext_to_html`: escaped lines joined by <br>, in one <p>."""
    content = "<br>\n".join(html.escape(x) for x in text.split("\n"))
    return f"<p class='{classname}'>{content}</p>" if classname else f"<p>{content}</p>"


def check_job_fields(cls: type, job: dict[str, Any], caller: str) -> None:
    """TypeError naming the keyword arguments that are no field of the job `cls` (Sumi's addition)."""
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(job) - known)
    if unknown:
        raise TypeError(f"{caller}() got unknown job fields: {', '.join(unknown)}")


def with_scripts(
    p: Any, scripts: Any, args: Sequence[Any], request: Any, tabname: str, options: Options
) -> Any:
    """A1111's common job set-up: the tab's script runner and its args (none given: every script's
    defaults), the user of the Gradio request, and the prompt on the console with
    `enable_console_prompts`."""
    p.scripts = scripts
    p.script_args = list(args) if args else scripts.default_args()
    p.user = getattr(request, "username", None)  # A1111 sets it
    if options.enable_console_prompts:
        print(f"\n{tabname}: {p.prompt}")
    return p


def tab_outputs(processed: Processed, options: Options) -> tuple[list[Any], str, str, str]:
    """What A1111's submit functions return: (images, generation info JSON, info HTML, comments
    HTML), with the options `samples_log_stdout` and `do_not_show_images` applied."""
    generation_info_js = processed.js()
    if options.samples_log_stdout:
        print(generation_info_js)
    if options.do_not_show_images:
        processed.images = []
    return (
        processed.images,
        generation_info_js,
        plaintext_to_html(processed.info),
        plaintext_to_html(processed.comments, classname="comments"),
    )
