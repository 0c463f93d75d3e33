"""The Extensions tab's "Backup/Restore" sub-tab, as A1111's: save the current extension state as a
config state, pick a saved one to see it beside the current state (what differs is highlighted and
listed under "Restoring changes"), and restore it after a confirmation that repeats that list.

Restoring checks out each extension's saved commit and enables or disables the extensions as saved
(`modules.sumi.services.extensions.config_states`), shows the result of each, then restarts Sumi as
"Apply and restart UI" does when everything went well. Sumi's own checkout is shown, never reset.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import results
from modules.sumi.services.extensions.config_states import (
    CURRENT,
    ConfigState,
    ConfigStates,
    ExtensionChange,
    RestoreResult,
)
from modules.sumi.services.extensions.model import ExtensionError

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)

CHANGED = ' style="color: var(--color-accent)" class="sumi-changed"'
# Restore: ask first, listing what will change (the list shown under the table).
CONFIRM_JS = """(confirmed, label) => {
    if (!label || label === 'Current') return [false, label];
    const changes = document.querySelector('#extension_backup_changes');
    const list = changes ? changes.innerText.trim() : 'Nothing changes.';
    return [confirm('Restore the extensions to "' + label + '"?\\n\\n' + list), label];
}"""


def config_states(app: App) -> ConfigStates:
    return ConfigStates(app.extensions, app.paths.repo_root)


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _date(timestamp: Any) -> str:
    return (
        time.asctime(time.gmtime(timestamp))
        if isinstance(timestamp, int | float) and timestamp
        else "<unknown>"
    )


def commit_link(commit: Any, remote: Any, text: str | None = None) -> str:
    """The commit (8 hex) linked to its GitHub page when the remote is on GitHub (A1111)."""
    if not commit:
        return _esc(text or "<unknown>")
    label = _esc(text if text is not None else str(commit)[:8])
    remote = str(remote or "")
    if remote.startswith("https://github.com/"):
        href = remote.removesuffix(".git").rstrip("/") + "/commit/" + str(commit)
        return f'<a href="{_esc(href)}" target="_blank" rel="noopener">{label}</a>'
    return label


def _cell(text: str, changed: bool) -> str:
    return f"<td><label{CHANGED if changed else ''}>{text}</label></td>"


def state_html(state: ConfigState, current: ConfigState, plan: list[ExtensionChange]) -> str:
    """The saved state beside the current one (A1111's layout) and what restoring it changes."""
    parts = [
        f"<h2>Config Backup: {_esc(state.name)}</h2>",
        f"<div><b>Filepath:</b> {_esc(state.path or '<current>')}</div>",
        f"<div><b>Created at:</b> {_esc(_date(state.created_at))}</div>",
    ]
    web, now = state.webui, current.webui
    parts.append(
        '<h2>Sumi State</h2><table id="config_state_webui"><thead><tr><th>URL</th><th>Branch</th>'
        "<th>Commit</th><th>Date</th></tr></thead><tbody><tr>"
        + _cell(_esc(web.get("remote") or ""), web.get("remote") != now.get("remote"))
        + _cell(_esc(web.get("branch") or ""), web.get("branch") != now.get("branch"))
        + _cell(
            commit_link(web.get("commit_hash"), web.get("remote")),
            web.get("commit_hash") != now.get("commit_hash"),
        )
        + _cell(_esc(_date(web.get("commit_date"))), web.get("commit_hash") != now.get("commit_hash"))
        + "</tr></tbody></table>"
    )
    rows = []
    for name, saved in state.extensions.items():
        cur = current.extensions.get(name)
        diff = {
            k: cur is None or cur.get(k) != saved.get(k)
            for k in ("enabled", "remote", "branch", "commit_hash")
        }
        box = f'<input type="checkbox" disabled{" checked" if saved.get("enabled") else ""}>'
        rows.append(
            f'<tr data-extension="{_esc(name)}">'
            + _cell(f"{box} {_esc(name)}", diff["enabled"])
            + _cell(_esc(saved.get("remote") or ""), diff["remote"])
            + _cell(_esc(saved.get("branch") or "<unknown>"), diff["branch"])
            + _cell(commit_link(saved.get("commit_hash"), saved.get("remote")), diff["commit_hash"])
            + _cell(_esc(_date(saved.get("commit_date"))), diff["commit_hash"])
            + "</tr>"
        )
    parts.append(
        '<h2>Extension State</h2><table id="config_state_extensions"><thead><tr><th>Extension</th>'
        "<th>URL</th><th>Branch</th><th>Commit</th><th>Date</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    if state.path is not None:
        parts.append("<h2>Restoring changes</h2>" + plan_html(plan))
    return "".join(parts)


def plan_html(plan: list[ExtensionChange]) -> str:
    if not plan:
        return '<ul id="extension_backup_changes"><li>Nothing: the extensions are as saved.</li></ul>'
    items = []
    for item in plan:
        what = item.changes + ([f"cannot be restored: {item.problem}"] if item.problem else [])
        items.append(f"<li><b>{_esc(item.name)}</b>: {_esc('; '.join(what))}</li>")
    return f'<ul id="extension_backup_changes">{"".join(items)}</ul>'


def results_html(restored: list[RestoreResult]) -> str:
    if not restored:
        return "<ul><li>Nothing to restore: the extensions are as saved.</li></ul>"
    items = [f"<li>{'✓' if r.ok else '✗'} <b>{_esc(r.name)}</b>: {_esc(r.message)}</li>" for r in restored]
    return f'<ul class="sumi-restore-results">{"".join(items)}</ul>'


def choices(app: App) -> list[str]:
    return [CURRENT] + [s.label for s in config_states(app).list()]


# -- handlers -------------------------------------------------------------------------------------------
def show(app: App, label: str | None) -> str:
    """The details of the chosen backup (or of the current state)."""
    try:
        states = config_states(app)
        current = states.current()
        state = current if not label or label == CURRENT else states.get(label)
        plan = states.plan(state) if state.path is not None else []
        problems = "".join(results.error_html(p) for p in states.problems)
        return problems + state_html(state, current, plan)
    except ExtensionError as exc:
        return results.error_html(str(exc))


def save(app: App, name: str | None) -> tuple[Any, str, str]:
    """Save Current Config: the dropdown (choices, the new one chosen), a message, the details."""
    try:
        path = config_states(app).save(name)
    except ExtensionError as exc:
        return gr.update(), results.error_html(str(exc)), gr.update()  # type: ignore[return-value]
    labels = choices(app)
    chosen = labels[1] if len(labels) > 1 else CURRENT
    message = f'<div class="sumi-note">Saved current webui/extension state to "{_esc(path)}"</div>'
    return gr.update(choices=labels, value=chosen), message, show(app, chosen)


def refresh_choices(app: App, label: str | None) -> Any:
    labels = choices(app)
    return gr.update(choices=labels, value=label if label in labels else CURRENT)


def restore(app: App, confirmed: bool, label: str | None) -> tuple[str, str, str]:
    """Restore Selected Config: message (results; restarting when all went well), details, installed table."""
    from modules.sumi.frontends.gradio import extensions_tab

    if not label or label == CURRENT:
        return '<div class="sumi-note">Select a config to restore from.</div>', gr.update(), gr.update()  # type: ignore[return-value]
    if not confirmed:
        return '<div class="sumi-note">Cancelled.</div>', gr.update(), gr.update()  # type: ignore[return-value]
    states = config_states(app)
    try:
        restored = states.restore(states.get(label))
    except ExtensionError as exc:
        return results.error_html(str(exc)), show(app, label), extensions_tab.table(app)
    report = results_html(restored)
    if any(not r.ok for r in restored):
        message = (
            results.error_html("Some extensions could not be restored; Sumi was not restarted.") + report
        )
    elif restored:
        message = extensions_tab.restart_html(app) + report
    else:
        message = '<div class="sumi-note">Nothing to restore.</div>' + report
    return message, show(app, label), extensions_tab.table(app)


# -- layout ---------------------------------------------------------------------------------------------
@dataclass
class BackupTab:
    saved: gr.Dropdown
    refresh: gr.Button
    restore: gr.Button
    name: gr.Textbox
    save: gr.Button
    info: gr.HTML
    details: gr.HTML
    confirmed: gr.Checkbox


def create_backup_tab(app: App, demo: gr.Blocks, installed_table: gr.HTML, reload_js: str) -> BackupTab:
    """Lay out the "Backup/Restore" sub-tab (call inside the extensions' `gr.Tabs`) and wire it."""
    with gr.Tab("Backup/Restore", id="backup_restore", elem_id="extensions_backup_tab"):
        with gr.Row(elem_id="extensions_backup_top_row", equal_height=True):
            saved = gr.Dropdown(
                [CURRENT],
                value=CURRENT,
                label="Saved Configs",
                elem_id="extension_backup_saved_configs",
                scale=4,
            )
            refresh = gr.Button("🔄", elem_id="refresh_config_states", scale=0, min_width=40)
            restore_button = gr.Button(
                "Restore Selected Config", variant="primary", elem_id="extension_backup_restore", scale=1
            )
        with gr.Row(elem_id="extensions_backup_top_row2", equal_height=True):
            name = gr.Textbox(
                "", placeholder="Config Name", show_label=False, elem_id="extension_backup_name", scale=4
            )
            save_button = gr.Button("Save Current Config", elem_id="extension_backup_save", scale=1)
        info = gr.HTML("", elem_id="extension_backup_info", js_on_load=None)
        details = gr.HTML("Loading…", elem_id="extension_backup_details", js_on_load=None)
        confirmed = gr.Checkbox(False, visible=False, elem_id="extension_backup_confirmed")
    tab = BackupTab(saved, refresh, restore_button, name, save_button, info, details, confirmed)
    quiet: dict[str, Any] = {"api_visibility": "undocumented", "show_progress": "hidden"}
    saved.input(partial(show, app), inputs=saved, outputs=details, **quiet)
    refresh.click(
        partial(refresh_choices, app), inputs=saved, outputs=saved, trigger_mode="always_last", **quiet
    )
    save_button.click(
        partial(save, app),
        inputs=name,
        outputs=[saved, info, details],
        concurrency_id="sumi_extensions",
        **quiet,
    )
    restore_button.click(
        partial(restore, app),
        js=CONFIRM_JS,
        inputs=[confirmed, saved],
        outputs=[info, details, installed_table],
        show_progress="full",
        api_visibility="undocumented",
        concurrency_id="sumi_extensions",
    ).then(None, js=reload_js, inputs=info, api_visibility="undocumented")
    demo.load(
        lambda: (gr.update(choices=choices(app), value=CURRENT), show(app, CURRENT)),
        outputs=[saved, details],
        **quiet,
    )
    return tab
