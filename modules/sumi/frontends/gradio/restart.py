"""Restarting Sumi from the page (Extensions' "Apply and restart UI", Settings' "Reload UI"): the App restarts
its process, the result box shows a marker with the old boot id, and RELOAD_JS reloads the page once
`/internal/ping` answers with a new one."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modules.sumi.app import App

# When a restart was started (the result holds its marker), wait for a server with another boot id, then
# load the page again; after 2 minutes say so in the box that holds the marker.
RELOAD_JS = """(result) => {
    const found = /data-sumi-restart="([0-9a-f]+)"/.exec(result || '');
    if (!found) return;
    const old = found[1];
    const started = Date.now();
    const later = () => {
        if (Date.now() - started > 120000) {
            const box = document.querySelector('[data-sumi-restart]');
            if (box) box.innerText = 'Sumi has not come back after 2 minutes; look at its console.';
            return;
        }
        setTimeout(poll, 500);
    };
    const poll = () => fetch('./internal/ping', {cache: 'no-store'})
        .then(r => r.ok ? r.json() : null)
        .then(d => { if (d && d.boot_id && d.boot_id !== old) location.reload(); else later(); })
        .catch(later);
    later();
}"""


def restarting_html(app: App) -> str | None:
    """Ask the App to restart: the "Restarting…" note RELOAD_JS looks for, or None when nothing can
    restart this process (an App embedded in another program)."""
    if not app.request_restart():
        return None
    return (
        f'<div class="sumi-note" data-sumi-restart="{html.escape(app.boot_id)}">'
        "Restarting… the page reloads when Sumi is back.</div>"
    )
