"""The Extensions tab, as A1111's: "Installed", "Available" (extensions_available.py), "Install from
URL" and "Backup/Restore" (extensions_backup.py), plus the errors extensions caused.

Installed: a table of every extension (enable checkbox, name, URL, branch, version, date, update
status with an update checkbox when there are new commits), "Apply and restart UI" (saves the
disabled list through `ExtensionManager.set_disabled`, updates the ticked extensions through git,
then asks the App for a restart: the page says "Restarting…" and reloads once `/internal/ping`
answers with a new boot id), "Check for updates", and the "Disable all extensions" choice. The
checkboxes live in the table's HTML; Apply's JavaScript collects them, as A1111's does.

Install from URL: URL (anything git accepts, local paths too), optional branch and folder name;
shows install.py's output or the error. With --listen/--share (without
--enable-insecure-extension-access) every action answers A1111's "extension access disabled because
of command line flags"; the tab stays visible.

Errors: scripts that failed to import or raised in a hook, callbacks that raised, problems with
extension folders (duplicate names, missing requirements) and with what extensions added to the UI
(duplicate tabs or settings), each with the extension and file it came from and its traceback.
Packages (`extension_conflicts`): versions of core packages extensions asked for and did not get,
and optional packages found broken at start.
"""

from __future__ import annotations

import html
import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import results
from modules.sumi.frontends.gradio.extension_conflicts import create_packages_area, refresh_packages_after
from modules.sumi.frontends.gradio.extensions_available import create_available_tab
from modules.sumi.frontends.gradio.extensions_backup import commit_link, config_states, create_backup_tab
from modules.sumi.frontends.gradio.restart import RELOAD_JS, restarting_html
from modules.sumi.services.extensions.config_states import PRE_UPDATE_NAME
from modules.sumi.services.extensions.manager import DISABLE_MODES
from modules.sumi.services.extensions.model import ExtensionError
from modules.sumi.services.settings.secrets import without_userinfo

if TYPE_CHECKING:
    from modules.sumi.app import App
    from modules.sumi.services.extensions.model import Extension

log = logging.getLogger(__name__)

KNOWN_STATUSES = ("new commits", "behind HEAD", "latest")
RESTART_NOTE = "Saved. Restart Sumi (stop it and start it again) to apply the changes."

# Apply: read the table's checkboxes into the hidden inputs (A1111's `extensions_apply`).
APPLY_JS = """(disabled, updates, disableAll) => {
    const root = document.querySelector('#extensions_installed_html');
    const boxes = root ? Array.from(root.querySelectorAll('input[type=checkbox][data-extension]')) : [];
    const off = boxes.filter(b => b.dataset.role === 'enable' && !b.checked).map(b => b.dataset.extension);
    const update = boxes.filter(b => b.dataset.role === 'update' && b.checked).map(b => b.dataset.extension);
    return [JSON.stringify(off), JSON.stringify(update), disableAll];
}"""


# -- pure helpers ---------------------------------------------------------------------------------------
def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def format_date(timestamp: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def _remote_link(remote: str | None) -> str:
    remote = without_userinfo(remote)  # a token in the URL stays off the page
    if not remote:
        return ""
    if remote.startswith(("https://", "http://")):
        return f'<a href="{_esc(remote)}" target="_blank" rel="noopener">{_esc(remote)}</a>'
    return _esc(remote)


def _remote_commit(ext: Extension) -> str:
    """After "Check for updates": the remote branch's commit, its date and how many commits it is ahead."""
    if not ext.remote_commit_hash:
        return ""
    ahead = ext.remote_commits_ahead
    count = f"{ahead} new commit{'s' * (ahead != 1)}, " if ahead else ""
    date = f", {format_date(ext.remote_commit_date)}" if ext.remote_commit_date else ""
    link = commit_link(ext.remote_commit_hash, ext.remote)
    return f'<div class="sumi-remote-commit">{count}remote: {link}{_esc(date)}</div>'


def _update_cell(ext: Extension, editable: bool) -> str:
    status = ext.status or "unknown"
    if ext.can_update:
        box = _checkbox(ext, "update", True, editable)
        return f"<label>{box} {_esc(status)}</label>{_remote_commit(ext)}"
    return _esc(status) + _remote_commit(ext)


def _checkbox(ext: Extension, role: str, checked: bool, editable: bool) -> str:
    attrs = ' checked="checked"' * checked + " disabled" * (not editable)
    label = f"{'Enable' if role == 'enable' else 'Update'} {ext.name}"
    return (
        f'<input type="checkbox" data-role="{role}" data-extension="{_esc(ext.name)}"'
        f' aria-label="{_esc(label)}"{attrs}>'
    )


def installed_html(extensions: list[Extension], editable: bool = True) -> str:
    """A1111's table of installed extensions (the checkboxes are read by APPLY_JS)."""
    if not extensions:
        return '<p class="sumi-note">No extensions are installed.</p>'
    rows = []
    for ext in extensions:
        css = "extension_builtin" if ext.is_builtin else "extension"
        rows.append(
            f'<tr class="{css}" data-extension="{_esc(ext.name)}">'
            f"<td><label>{_checkbox(ext, 'enable', ext.enabled, editable)} {_esc(ext.name)}</label></td>"
            f"<td>{_remote_link(ext.remote)}</td><td>{_esc(ext.branch)}</td>"
            f"<td>{commit_link(ext.commit_hash, ext.remote) if ext.commit_hash else ''}</td><td>{_esc(format_date(ext.commit_date))}</td>"
            f"<td>{_update_cell(ext, editable)}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("Extension", "URL", "Branch", "Version", "Date", "Update"))
    return f'<table id="extensions" class="sumi-extensions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def source_label(app: App, path: str) -> str:
    """Which extension (and file in it) `path` belongs to; Sumi's own files say so."""
    if not path:
        return "Sumi"
    try:
        target = Path(path).resolve()
    except (OSError, ValueError):
        return path
    for ext in app.extensions.list():
        root = ext.path.resolve()
        if target == root or root in target.parents:
            return f"{ext.name} ({target.relative_to(root).as_posix()})"
    repo = Path(app.scripts.repo_root).resolve()
    if repo in target.parents:
        return f"Sumi ({target.relative_to(repo).as_posix()})"
    return path


@dataclass
class ErrorItem:
    source: str
    title: str
    traceback: str = ""


def error_items(app: App) -> list[ErrorItem]:
    """Everything extensions did wrong so far, oldest first within each kind."""
    items = [ErrorItem("Extensions", p) for p in app.extensions.problems]
    items += [ErrorItem("Extensions", p) for p in app.settings.extension_problems]
    items += [
        ErrorItem(source_label(app, e.script), f"{e.where}: {e.message}", e.traceback)
        for e in app.scripts.errors.items
    ]
    items += [
        ErrorItem(
            source_label(app, e.script),
            f"{e.category} callback {e.name.rsplit('/', 1)[-1]}: {e.message}",
            e.traceback,
        )
        for e in app.callbacks.errors
    ]
    return items


def errors_html(items: list[ErrorItem]) -> str:
    if not items:
        return '<p class="sumi-note">No errors.</p>'
    parts = []
    for item in items:
        summary = f"<b>{_esc(item.source)}</b>: {_esc(item.title)}"
        body = f"<pre>{_esc(item.traceback)}</pre>" if item.traceback else ""
        parts.append(f'<details class="sumi-extension-error"><summary>{summary}</summary>{body}</details>')
    return "".join(parts)


def _names(text: str | None) -> list[str]:
    """A JSON list of extension names from APPLY_JS (empty or broken input: none)."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _note(text: str) -> str:
    return f'<div class="sumi-note">{_esc(text)}</div>'


def access_note(app: App) -> str:
    try:
        app.extensions.check_access()
    except ExtensionError as exc:
        return results.error_html(
            f"{exc}: installing, updating and enabling extensions needs a local server "
            "(no --listen, --share or --server-name) or --enable-insecure-extension-access."
        )
    return ""


def _editable(app: App) -> bool:
    return not access_note(app)


def table(app: App) -> str:
    try:
        return installed_html(app.extensions.list(with_repo_info=True), _editable(app))
    except Exception as exc:  # e.g. the extensions folder went away
        log.exception("Listing extensions failed")
        return results.error_html(results.error_message(exc))


# -- handlers -------------------------------------------------------------------------------------------
def load(app: App) -> tuple[str, str, str, Any]:
    """Page load: the table, the errors, the access note and the current "disable all" choice."""
    mode = getattr(app.options, "disable_all_extensions", "none")
    return table(app), errors_html(error_items(app)), access_note(app), gr.update(value=mode)


def apply_changes(app: App, disabled_json: str, update_json: str, disable_all: str | None) -> tuple[str, str]:
    """Apply and restart UI: save the disabled list, update the ticked extensions, restart."""
    try:
        app.extensions.check_access()
        mode = disable_all if disable_all in DISABLE_MODES else None
        app.extensions.set_disabled(_names(disabled_json), mode)
    except ExtensionError as exc:
        return results.error_html(str(exc)), table(app)
    failures = []
    if _names(update_json):  # as A1111: a backup before updating, to go back from Backup/Restore
        try:
            config_states(app).save(PRE_UPDATE_NAME)
        except ExtensionError as exc:
            log.warning("%s", exc)
    for name in _names(update_json):
        ext = app.extensions.get(name)
        if ext is None:
            failures.append(f"{name}: not installed")
            continue
        try:
            app.extensions.update(ext)
        except ExtensionError as exc:
            failures.append(str(exc))
    if failures:
        message = "The enabled extensions were saved, but Sumi was not restarted: " + "; ".join(failures)
        return results.error_html(message), table(app)
    return restart_html(app), table(app)


def restart_html(app: App) -> str:
    """Ask the App to restart: "Restarting…" (RELOAD_JS reloads the page) or, embedded, how to restart."""
    return restarting_html(app) or _note(RESTART_NOTE)


def check_updates(app: App) -> tuple[str, str]:
    """Check for updates: ask each enabled extension's remote (nothing is changed)."""
    try:
        statuses = app.extensions.check_all_for_updates()
    except ExtensionError as exc:
        return results.error_html(str(exc)), table(app)
    problems = [f"{name}: {status}" for name, status in statuses.items() if status not in KNOWN_STATUSES]
    note = _note(f"Checked {len(statuses)} extension(s).") if statuses else _note("Nothing to check.")
    return note + "".join(results.error_html(p) for p in problems), table(app)


def install_extension(app: App, url: str, branch: str, dirname: str) -> tuple[str, str]:
    """Install from URL: clone, run install.py, show its output (or the error and whatever it printed)."""
    from modules.sumi.services.extensions.install import InstallScriptError

    try:
        result = app.extensions.install_from_url(
            url, (branch or "").strip() or None, (dirname or "").strip() or None
        )
    except InstallScriptError as exc:
        return results.error_html(str(exc).split("\n", 1)[0]) + install_output_html(exc.output), table(app)
    except ExtensionError as exc:
        return results.error_html(str(exc)), table(app)
    except Exception as exc:
        log.exception("Installing %s failed", url)
        return results.error_html(results.error_message(exc)), table(app)
    message = _note(f"Installed into {result.path}. Use Installed tab to restart.")
    return message + install_output_html(result.output), table(app)


def install_output_html(text: str) -> str:
    return f'<pre class="sumi-install-output">{_esc(text)}</pre>' if text and text.strip() else ""


# -- layout ---------------------------------------------------------------------------------------------
@dataclass
class ExtensionsTab:
    table: gr.HTML
    errors: gr.HTML
    result: gr.HTML
    apply: gr.Button
    check: gr.Button
    disable_all: gr.Radio
    disabled_list: gr.Textbox
    update_list: gr.Textbox
    install_url: gr.Textbox
    install_branch: gr.Textbox
    install_dirname: gr.Textbox
    install: gr.Button
    install_result: gr.HTML
    access: gr.HTML


def create_extensions_tab(app: App, demo: gr.Blocks) -> ExtensionsTab:
    """Lay out the tab (call inside a `gr.Tab`) and wire it."""
    with gr.Tabs(elem_id="tabs_extensions"):
        with gr.Tab("Installed", id="installed", elem_id="extensions_installed_tab"):
            access = gr.HTML(access_note(app), elem_id="extensions_access", js_on_load=None)
            with gr.Row(elem_id="extensions_installed_top", equal_height=False):
                apply = gr.Button(
                    "Apply and restart UI", elem_id="extensions_apply", variant="primary", size="md"
                )
                check = gr.Button("Check for updates", elem_id="extensions_check", size="md")
                disable_all = gr.Radio(
                    list(DISABLE_MODES),
                    value="none",
                    label="Disable all extensions",
                    elem_id="extensions_disable_all",
                )
            disabled_list = gr.Textbox(visible=False, elem_id="extensions_disabled_list")
            update_list = gr.Textbox(visible=False, elem_id="extensions_update_list")
            result = gr.HTML("", elem_id="extensions_result", js_on_load=None)
            installed = gr.HTML("Loading…", elem_id="extensions_installed_html", js_on_load=None)
            gr.Markdown("### Errors", elem_id="extensions_errors_title")
            errors = gr.HTML("", elem_id="extensions_errors", js_on_load=None)
            packages = create_packages_area(app, demo)
        create_available_tab(app, installed)
        with gr.Tab("Install from URL", id="install_from_url", elem_id="extensions_install_tab"):
            url = gr.Textbox(label="URL for extension's git repository", elem_id="extension_install_url")
            branch = gr.Textbox(
                label="Specific branch name",
                placeholder="Leave empty for default main branch",
                elem_id="extension_install_branch",
            )
            dirname = gr.Textbox(
                label="Local directory name",
                placeholder="Leave empty for auto",
                elem_id="extension_install_dirname",
            )
            install = gr.Button("Install", elem_id="extension_install_button", variant="primary")
            install_result = gr.HTML("", elem_id="extension_install_result", js_on_load=None)
        create_backup_tab(app, demo, installed, RELOAD_JS)
    tab = ExtensionsTab(
        installed, errors, result, apply, check, disable_all, disabled_list, update_list,
        url, branch, dirname, install, install_result, access,
    )  # fmt: skip
    _wire(app, tab, demo)
    refresh_packages_after(app, packages, [tab.install_result])
    return tab


def _wire(app: App, tab: ExtensionsTab, demo: gr.Blocks) -> None:
    tab.apply.click(
        partial(apply_changes, app),
        js=APPLY_JS,
        inputs=[tab.disabled_list, tab.update_list, tab.disable_all],
        outputs=[tab.result, tab.table],
        show_progress="minimal",
        api_visibility="undocumented",
        concurrency_id="sumi_extensions",
    ).then(None, js=RELOAD_JS, inputs=tab.result, api_visibility="undocumented")
    tab.check.click(
        partial(check_updates, app),
        outputs=[tab.result, tab.table],
        show_progress="minimal",
        api_visibility="undocumented",
        concurrency_id="sumi_extensions",
    )
    tab.install.click(
        partial(install_extension, app),
        inputs=[tab.install_url, tab.install_branch, tab.install_dirname],
        outputs=[tab.install_result, tab.table],
        show_progress="full",
        api_visibility="undocumented",
        concurrency_id="sumi_extensions",
    )
    demo.load(
        partial(load, app),
        outputs=[tab.table, tab.errors, tab.access, tab.disable_all],
        show_progress="hidden",
        api_visibility="undocumented",
    )
