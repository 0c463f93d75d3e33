"""Settings > Startup profile: where the server's start went (A1111's "Startup profile" page), from the
App's start-up timer: each phase, and inside "load scripts" and "app_started_callback" each script
file, slowest first, so a slow extension is plain to see. Filled when the section is opened (nothing
on page load) and by its Refresh button."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING

import gradio as gr

if TYPE_CHECKING:
    from modules.sumi.app import App

HIDDEN_BELOW_S = 0.005  # rows shorter than this are counted, not listed
NOT_YET = "<p>The server is still starting; the profile is there once it has started.</p>"


def profile_rows(records: Mapping[str, float]) -> list[tuple[int, str, float]]:
    """(depth, name, seconds): top-level categories in the order they were recorded, each followed by
    its own sub-categories ("load scripts/x.py"), slowest first. A record's parent is the longest
    recorded prefix of its name ending before a "/" (names may hold "/" of their own)."""
    children: dict[str, list[tuple[str, float]]] = {}
    for name, seconds in records.items():
        parent = _parent(name, records)
        children.setdefault(parent, []).append((name[len(parent) + 1 :] if parent else name, seconds))

    rows: list[tuple[int, str, float]] = []

    def add(parent: str, depth: int) -> None:
        entries = children.get(parent, [])
        if depth > 0:
            entries = sorted(entries, key=lambda e: -e[1])
        for child, seconds in entries:
            rows.append((depth, child, seconds))
            add(f"{parent}/{child}" if parent else child, depth + 1)

    add("", 0)
    return rows


def _parent(name: str, records: Mapping[str, float]) -> str:
    cut = name.rfind("/")
    while cut > 0:
        if name[:cut] in records:
            return name[:cut]
        cut = name.rfind("/", 0, cut)
    return ""


def profile_html(record: Mapping[str, object] | None) -> str:
    """The profile as a table with a bar per row (its share of the whole start)."""
    if not record:
        return NOT_YET
    total = float(record.get("total", 0.0) or 0.0)  # type: ignore[arg-type]
    records = record.get("records") or {}
    rows = profile_rows(records)  # type: ignore[arg-type]
    shown = [r for r in rows if r[2] >= HIDDEN_BELOW_S]
    lines = [
        '<table class="sumi-startup-profile"><thead><tr><th>Category</th><th>Time</th><th></th></tr></thead>',
        "<tbody>",
    ]
    for depth, name, seconds in shown:
        share = 100.0 * seconds / total if total > 0 else 0.0
        lines.append(
            f'<tr class="sumi-profile-depth-{depth}"><td style="padding-left: {0.4 + 1.4 * depth:.1f}em">'
            f"{html.escape(name)}</td><td>{seconds:.3f}s</td>"
            f'<td class="sumi-profile-bar"><span style="width: {min(share, 100.0):.1f}%"></span></td></tr>'
        )
    lines.append(f'<tr class="sumi-profile-total"><td>Total</td><td>{total:.3f}s</td><td></td></tr>')
    lines.append("</tbody></table>")
    hidden = len(rows) - len(shown)
    if hidden:
        lines.append(f"<p>{hidden} entries under {HIDDEN_BELOW_S * 1000:.0f} ms are not listed.</p>")
    return "".join(lines)


def create_startup_profile(app: App) -> None:
    """The section (call inside the Settings tab)."""
    with gr.Accordion(
        "Startup profile",
        open=False,
        elem_id="settings_tab_startup_profile",
        elem_classes=["settings-section"],
    ) as section:
        table = gr.HTML("", elem_id="startup_profile")
        refresh = gr.Button("Refresh", elem_id="startup_profile_refresh")

    def fill() -> str:
        return profile_html(app.startup_record)

    for event in (section.expand, refresh.click):
        event(
            fill,
            outputs=table,
            show_progress="hidden",
            api_visibility="undocumented",
            trigger_mode="always_last",
        )
