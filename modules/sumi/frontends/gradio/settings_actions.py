"""The Settings tab's "Actions" and "Sysinfo" sections, with A1111's element ids (extensions and user
scripts click `#sett_unload_sd_model` by id).

Actions: ask the browser for notifications (shown when a job ends while the page is in the background;
notification.js), unload the checkpoint to RAM and load it back (the API's unload-checkpoint and
reload-checkpoint), and hash every checkpoint file. Sysinfo: download the system information for a bug
report (`/internal/sysinfo-download`) or open it as text, and check that a report was not edited.
Each action says what it did in the tab's result line; a failure is shown there, never raised.
The top row's "Reload UI" restarts Sumi (settings marked "requires Reload UI" then apply) and reloads the
page; the search box shows only the settings whose label or key holds the words typed.
"""

from __future__ import annotations

import html
from functools import partial
from typing import TYPE_CHECKING

import gradio as gr

from modules.sumi.frontends.gradio import results
from modules.sumi.frontends.gradio.restart import RELOAD_JS, restarting_html
from modules.sumi.services import sysinfo

if TYPE_CHECKING:
    from modules.sumi.app import App

SYSINFO_LINKS = (
    '<a href="./internal/sysinfo-download" class="sysinfo_big_link" download>Download system info</a><br />'
    '<a href="./internal/sysinfo" target="_blank">(or open as text in a new page)</a>'
)
RELOAD_UI_EMBEDDED = "Sumi runs inside another program here: restart that program to reload the UI."
# Show the settings (and the sections holding them) whose label or key contains every word typed; a
# section of buttons (Actions, Sysinfo) shows when its text does.
SEARCH_JS = """(query) => {
    const words = (query || '').toLowerCase().split(/\\s+/).filter(Boolean);
    const root = document.querySelector('#tab_settings') || document;
    for (const field of root.querySelectorAll('[id^="setting_"]')) {
        const text = (field.id.slice(8) + ' ' + field.innerText).toLowerCase();
        field.style.display = words.every(w => text.includes(w)) ? '' : 'none';
    }
    for (const section of root.querySelectorAll('.settings-section')) {
        const fields = Array.from(section.querySelectorAll('[id^="setting_"]'));
        const shown = fields.length
            ? fields.some(f => f.style.display !== 'none')
            : words.every(w => section.innerText.toLowerCase().includes(w));
        section.style.display = shown ? '' : 'none';
    }
    return [];
}"""


def reload_ui(app: App) -> str:
    return restarting_html(app) or html.escape(RELOAD_UI_EMBEDDED)


def wire_reload_ui(app: App, button: gr.Button, result: gr.HTML) -> None:
    button.click(lambda: reload_ui(app), outputs=result, api_visibility="undocumented").then(
        None, js=RELOAD_JS, inputs=result, api_visibility="undocumented"
    )


def unload_checkpoint(app: App) -> str:
    active = app.models.active
    if active is None:
        return "No checkpoint is loaded."
    try:
        app.models.offload()
    except Exception as exc:
        return results.error_html(results.error_message(exc))
    if not app.devices.is_cuda:
        return html.escape(f"{active.checkpoint.title} computes on the CPU: it stays in RAM.")
    return html.escape(f"{active.checkpoint.title} moved to RAM; the next job, or Load, brings it back.")


def reload_checkpoint(app: App) -> str:
    try:
        loaded = app.models.load()
    except Exception as exc:
        return results.error_html(results.error_message(exc))
    return html.escape(f"{loaded.checkpoint.title} is loaded on {app.devices.device}.")


def calculate_all_hashes(app: App, threads: float | None) -> str:
    try:
        hashed, failed = app.checkpoints.calculate_all_hashes(int(threads or 1))
    except Exception as exc:
        return results.error_html(results.error_message(exc))
    text = f"Hashed {len(hashed)} checkpoint{'' if len(hashed) == 1 else 's'}"
    text += f": {', '.join(hashed)}." if hashed else " (every checkpoint already had its hash)."
    if failed:
        return html.escape(text) + results.error_html("Could not read " + "; ".join(failed))
    return html.escape(text)


def check_sysinfo_file(data: bytes | None) -> str:
    """A1111's validity check of a downloaded system info file: "Valid" or "Invalid"."""
    if data is None:
        return ""
    return "Valid" if sysinfo.check(data.decode("utf-8", errors="ignore")) else "Invalid"


def create_actions_and_sysinfo(app: App, result: gr.HTML) -> None:
    """Both sections (call inside the Settings tab); their messages go to `result`."""
    with gr.Accordion(
        "Actions", open=True, elem_id="settings_tab_actions", elem_classes=["settings-section"]
    ):
        gr.Button("Request browser notifications", elem_id="request_notifications")  # notification.js
        with gr.Row():
            unload = gr.Button("Unload SD checkpoint to RAM", elem_id="sett_unload_sd_model")
            reload = gr.Button("Load SD checkpoint to VRAM from RAM", elem_id="sett_reload_sd_model")
        with gr.Row():
            hash_all = gr.Button("Calculate hash for all checkpoint", elem_id="calculate_all_checkpoint_hash")
            threads = gr.Number(
                value=1,
                label="Number of parallel calculations",
                elem_id="calculate_all_checkpoint_hash_threads",
                precision=0,
                minimum=1,
            )
    with gr.Accordion(
        "Sysinfo", open=True, elem_id="settings_tab_sysinfo", elem_classes=["settings-section"]
    ):
        gr.HTML(SYSINFO_LINKS, elem_id="sysinfo_download", js_on_load=None)
        with gr.Row():
            check_file = gr.File(
                label="Check system info for validity", type="binary", elem_id="sysinfo_check_file"
            )
            validity = gr.HTML("", elem_id="sysinfo_validity", js_on_load=None)
    for button, action in ((unload, unload_checkpoint), (reload, reload_checkpoint)):
        button.click(
            partial(action, app),
            outputs=result,
            concurrency_id="sumi_checkpoint",  # model changes one at a time, as the quick settings'
            show_progress="minimal",
            api_visibility="undocumented",
        )
    hash_all.click(
        lambda n: calculate_all_hashes(app, n),
        inputs=threads,
        outputs=result,
        show_progress="minimal",
        api_visibility="undocumented",
    )
    check_file.change(
        check_sysinfo_file,
        inputs=check_file,
        outputs=validity,
        show_progress="hidden",
        api_visibility="undocumented",
    )
