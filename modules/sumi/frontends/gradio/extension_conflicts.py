"""The "Packages" area of the Extensions tab: what extensions asked for that Sumi did not give them.

One row per conflict (extension, what it asked for, the version Sumi keeps, where it was found:
requirements.txt, install.py's `launch.run_pip`, or pip's resolver), then the optional packages found
broken at start and kept away from transformers/diffusers, each with how to repair it. Refreshed when
the page loads and after an install.
"""

from __future__ import annotations

import html
import logging
from functools import partial
from typing import TYPE_CHECKING

import gradio as gr

from modules.sumi.frontends.gradio import results

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def packages_html(app: App) -> str:
    """The conflicts table and the broken packages (or a line saying there are none)."""
    try:
        conflicts = app.extensions.conflicts()
    except Exception as exc:  # an unreadable cache.json or extensions folder must not hide the tab
        log.exception("Listing package conflicts failed")
        return results.error_html(results.error_message(exc))
    parts = []
    if conflicts:
        head = "".join(f"<th>{h}</th>" for h in ("Extension", "Asked for", "Sumi keeps", "Found in"))
        rows = "".join(
            f'<tr data-extension="{_esc(c.extension)}" data-package="{_esc(c.package)}">'
            f"<td>{_esc(c.extension)}</td><td><code>{_esc(c.asked)}</code></td>"
            f"<td><code>{_esc(c.package)}{_esc(c.kept)}</code></td><td>{_esc(c.source)}</td></tr>"
            for c in conflicts
        )
        parts.append(
            '<p class="sumi-note">These extensions asked for versions of packages Sumi keeps at its own '
            "version; they were not installed. An extension may still work; if it does not, look for "
            "a newer release of it.</p>"
            f'<table id="extensions_conflicts_table" class="sumi-extensions"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>"
        )
    for broken in app.broken_packages:
        parts.append(results.error_html(broken.message()))
    return "".join(parts) or '<p class="sumi-note">No package conflicts.</p>'


def create_packages_area(app: App, demo: gr.Blocks) -> gr.HTML:
    """Lay out the area (inside the Installed tab); it is filled when the page loads."""
    gr.Markdown("### Packages", elem_id="extensions_conflicts_title")
    area = gr.HTML("", elem_id="extensions_conflicts", js_on_load=None)
    demo.load(
        partial(packages_html, app), outputs=area, show_progress="hidden", api_visibility="undocumented"
    )
    return area


def refresh_packages_after(app: App, area: gr.HTML, results_areas: list[gr.HTML]) -> None:
    """Fill the area again whenever one of `results_areas` changes (an install finished: it may
    have reported new conflicts)."""
    for shown in results_areas:
        shown.change(
            partial(packages_html, app), outputs=area, show_progress="hidden", api_visibility="undocumented"
        )
