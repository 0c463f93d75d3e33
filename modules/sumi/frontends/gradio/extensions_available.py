"""The Extensions tab's "Available" sub-tab, as A1111's: load an extension index (A1111's index.json)
from a URL or a local file when the user presses "Load from:", hide tags, order, search, and install an
entry with its Install button (the same install as "Install from URL").

The loaded index lives in the page's session (`gr.State`), so two browsers can look at different
indexes. Install takes only URLs of the loaded index. Each row's Install button stores its URL in
`window.sumiExtensionToInstall` and clicks the hidden `#install_extension_button`, whose handler reads it.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import results
from modules.sumi.services.extensions.index import (
    DEFAULT_HIDDEN_TAGS,
    DEFAULT_INDEX_URL,
    DEFAULT_TAG_CHOICES,
    SORT_ORDERS,
    AvailableRow,
    ExtensionIndex,
    available,
    read_index,
)
from modules.sumi.services.extensions.install import normalize_git_url
from modules.sumi.services.extensions.model import ExtensionError

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)

# A click on a row's Install button: remember its URL, show that it is busy, start the hidden button.
ROW_CLICK_JS = """
element.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-install-url]');
    if (!button || button.disabled) return;
    window.sumiExtensionToInstall = button.dataset.installUrl;
    button.disabled = true;
    button.textContent = 'Installing…';
    document.querySelector('#install_extension_button')?.click();
});
"""
INSTALL_JS = """(index, url, hide, order, search) => [index, window.sumiExtensionToInstall || '', hide, order, search]"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _row_html(row: AvailableRow, tag_titles: dict[str, str], editable: bool) -> str:
    e = row.entry
    tags = ", ".join(
        f"<span class='extension-tag' title='{_esc(tag_titles.get(t, ''))}'>{_esc(t)}</span>"
        for t in row.tags
    )
    link = (
        f'<a href="{_esc(e.url)}" target="_blank" rel="noopener">{_esc(e.name)}</a>'
        if e.url.startswith(("https://", "http://"))
        else _esc(e.name)
    )
    label = "Installed" if row.installed_as else "Install"
    disabled = " disabled" if row.installed_as or not editable else ""
    button = (
        f'<button class="lg secondary gradio-button custom-button" data-install-url="{_esc(e.url)}"'
        f' aria-label="{label} {_esc(e.name)}"{disabled}>{label}</button>'
    )
    added = f'<p class="info"><span class="date_added">Added: {_esc(e.added or "unknown")}</span></p>'
    return (
        f'<tr data-extension="{_esc(e.name)}"><td>{link}<br>{tags}</td>'
        f"<td>{_esc(e.description)}{added}</td><td>{button}</td></tr>"
    )


def available_html(
    index: ExtensionIndex, rows: list[AvailableRow], hidden: int, editable: bool = True
) -> str:
    """A1111's table of available extensions, then how many are hidden."""
    body = "".join(_row_html(r, index.tags, editable) for r in rows)
    head = "<tr><th>Extension</th><th>Description</th><th>Action</th></tr>"
    table = f'<table id="available_extensions"><thead>{head}</thead><tbody>{body}</tbody></table>'
    source = f'<p class="sumi-note">{len(index.entries)} extension(s) in {_esc(index.source)}.</p>'
    return source + table + (f"<p>Extension hidden: {hidden}</p>" if hidden else "")


def installed_urls(app: App) -> dict[str, str]:
    """Normalized remote URL -> folder name of every installed (non-built-in) extension."""
    exts = app.extensions.list(with_repo_info=True)
    return {normalize_git_url(e.remote): e.name for e in exts if e.remote and not e.is_builtin}


def _editable(app: App) -> bool:
    try:
        app.extensions.check_access()
    except ExtensionError:
        return False
    return True


def render(app: App, index: ExtensionIndex | None, hide: list[str] | None, order: str, search: str) -> str:
    if index is None:
        return '<p class="sumi-note">Press "Load from:" to read the extension index.</p>'
    rows, hidden = available(index, installed_urls(app), hide or [], order, search or "")
    return available_html(index, rows, hidden, _editable(app))


# -- handlers -------------------------------------------------------------------------------------------
def load_index(app: App, url: str, hide: list[str] | None, order: str) -> tuple[Any, ...]:
    """ "Load from:": read the index; the table, the tag choices (hidden ones kept), a message, search cleared."""
    try:
        app.extensions.check_access()
        index = read_index(url)
        table = render(app, index, hide, order, "")
    except ExtensionError as exc:
        return gr.update(), gr.update(), gr.update(), results.error_html(str(exc)), gr.update()
    choices = index.tag_choices()
    hide_update = gr.update(choices=choices, value=[t for t in (hide or []) if t in choices])
    return index, table, hide_update, "", ""


def refresh(
    app: App, index: ExtensionIndex | None, hide: list[str] | None, order: str, search: str
) -> tuple[str, str]:
    """Tags, order or search changed: the table again (no reading of the index)."""
    try:
        return render(app, index, hide, order, search), ""
    except ExtensionError as exc:
        return gr.update(), results.error_html(str(exc))  # type: ignore[return-value]


def install_from_index(
    app: App, index: ExtensionIndex | None, url: str, hide: list[str] | None, order: str, search: str
) -> tuple[Any, Any, str]:
    """A row's Install: clone the entry's URL like "Install from URL"; available table, installed table, message."""
    from modules.sumi.frontends.gradio import extensions_tab
    from modules.sumi.services.extensions.install import InstallScriptError

    entry = index.find(url) if index is not None and url else None
    if entry is None:
        message = results.error_html(
            f"{url or 'Nothing'} is not in the loaded extension index; load it again"
        )
        return render(app, index, hide, order, search), gr.update(), message
    try:
        done = app.extensions.install_from_url(entry.url)
        message = f'<div class="sumi-note">{_esc(f"Installed {entry.name} into {done.path}. Use Installed tab to restart.")}</div>'
        message += extensions_tab.install_output_html(done.output)
    except InstallScriptError as exc:
        message = results.error_html(str(exc).split("\n", 1)[0]) + extensions_tab.install_output_html(
            exc.output
        )
    except ExtensionError as exc:
        message = results.error_html(str(exc))
    except Exception as exc:
        log.exception("Installing %s failed", entry.url)
        message = results.error_html(results.error_message(exc))
    return render(app, index, hide, order, search), extensions_tab.table(app), message


# -- layout ---------------------------------------------------------------------------------------------
@dataclass
class AvailableTab:
    index: gr.State
    index_url: gr.Textbox
    load: gr.Button
    hide_tags: gr.CheckboxGroup
    order: gr.Radio
    search: gr.Textbox
    result: gr.HTML
    table: gr.HTML
    to_install: gr.Textbox
    install: gr.Button


def create_available_tab(app: App, installed_table: gr.HTML) -> AvailableTab:
    """Lay out the "Available" sub-tab (call inside the extensions' `gr.Tabs`) and wire it."""
    with gr.Tab("Available", id="available", elem_id="extensions_available_tab"):
        with gr.Row(equal_height=True):
            load = gr.Button("Load from:", variant="primary", elem_id="extensions_available_load", scale=0)
            url = gr.Textbox(
                DEFAULT_INDEX_URL,
                label="Extension index URL (or a local index.json)",
                elem_id="extensions_index_url",
                scale=5,
            )
        with gr.Row():
            hide = gr.CheckboxGroup(
                list(DEFAULT_TAG_CHOICES),
                value=list(DEFAULT_HIDDEN_TAGS),
                label="Hide extensions with tags",
                elem_id="extensions_hide_tags",
            )
            order = gr.Radio(
                list(SORT_ORDERS), value=SORT_ORDERS[0], label="Order", elem_id="extensions_order"
            )
        search = gr.Textbox(label="Search", elem_id="extensions_search")
        result = gr.HTML("", elem_id="extensions_available_result", js_on_load=None)
        table = gr.HTML(
            '<p class="sumi-note">Press "Load from:" to read the extension index.</p>',
            elem_id="extensions_available_html",
            js_on_load=ROW_CLICK_JS,
        )
        to_install = gr.Textbox(visible=False, elem_id="extension_to_install")
        install = gr.Button(visible="hidden", elem_id="install_extension_button")
        index = gr.State(None)
    tab = AvailableTab(index, url, load, hide, order, search, result, table, to_install, install)
    _wire(app, tab, installed_table)
    return tab


def _wire(app: App, tab: AvailableTab, installed_table: gr.HTML) -> None:
    quiet = {"api_visibility": "undocumented", "show_progress": "hidden"}
    view = [tab.index, tab.hide_tags, tab.order, tab.search]
    tab.load.click(
        partial(load_index, app),
        inputs=[tab.index_url, tab.hide_tags, tab.order],
        outputs=[tab.index, tab.table, tab.hide_tags, tab.result, tab.search],
        show_progress="minimal",
        api_visibility="undocumented",
    )
    for event in (tab.hide_tags.input, tab.order.input, tab.search.change):
        event(partial(refresh, app), inputs=view, outputs=[tab.table, tab.result], **quiet)  # type: ignore[arg-type]
    tab.install.click(
        partial(install_from_index, app),
        js=INSTALL_JS,
        inputs=[tab.index, tab.to_install, tab.hide_tags, tab.order, tab.search],
        outputs=[tab.table, installed_table, tab.result],
        show_progress="full",
        api_visibility="undocumented",
        concurrency_id="sumi_extensions",
    )
