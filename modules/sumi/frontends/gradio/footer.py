"""The page's footer, as A1111's (`#footer`): links (API docs when the API is on, Reload UI) and the
versions line (`.versions`: Sumi, python, torch with the device and precision, gradio, and the selected
checkpoint's short hash in `#sd_checkpoint_hash`, its full sha256 as the title).

Written again at each page load, so a reloaded page names the checkpoint and device of now. Every value
is HTML-escaped: a checkpoint's file name is the user's text."""

from __future__ import annotations

import html
import platform
from typing import TYPE_CHECKING

import gradio as gr

from modules.sumi.frontends.gradio.quicksettings import current_checkpoint
from modules.sumi.util.version import A1111_API_VERSION, VERSION, installed_version

if TYPE_CHECKING:
    from modules.sumi.app import App

# The Settings tab's "Reload UI" button (settings.py); the link clicks it, as A1111's footer does.
RELOAD_UI_JS = "gradioApp().getElementById('settings_restart_gradio')?.click(); return false"
SEPARATOR = "&#x2000;•&#x2000;"


def create_footer(app: App) -> gr.HTML:
    """The footer, below the tabs; its HTML is made again when a page loads."""
    return gr.HTML(lambda: footer_html(app), elem_id="footer")


def footer_html(app: App) -> str:
    links = []
    if getattr(app.args, "api", False):
        links.append('<a href="/docs" target="_blank" rel="noopener">API</a>')
    links.append(f'<a href="/" onclick="{RELOAD_UI_JS}">Reload UI</a>')
    return f"<div>{SEPARATOR.join(links)}</div><br /><div class='versions'>{versions_html(app)}</div>"


def versions_html(app: App) -> str:
    """A1111's `versions_html`, with Sumi's version and where the model computes."""
    summary = app.devices.summary()
    device = f"{summary['device']}, {summary['unet']}"
    parts = [
        f"version: {html.escape(VERSION)} (A1111 {_a1111_link()} extension API)",
        f"python: {html.escape(platform.python_version())}",
        f"torch: {html.escape(installed_version('torch') or 'N/A')} ({html.escape(device)})",
        f"gradio: {html.escape(gr.__version__)}",
        f"checkpoint: {_checkpoint_link(app)}",
    ]
    return SEPARATOR.join(parts)


def _a1111_link() -> str:
    """The A1111 version Sumi's extension API follows, as the first link of `.versions`, where A1111 has
    its own version: extensions read it there (Civitai Helper takes the 1.8+ path for "v1.10.1")."""
    tag = html.escape(A1111_API_VERSION)
    url = f"https://github.com/AUTOMATIC1111/stable-diffusion-webui/releases/tag/{tag}"
    return f'<a href="{url}" target="_blank" rel="noopener">{tag}</a>'


def _checkpoint_link(app: App) -> str:
    info = current_checkpoint(app)
    if info is None:
        return '<a id="sd_checkpoint_hash">N/A</a>'
    short = info.shorthash or "N/A"
    title = html.escape(f"{info.title}\n{info.sha256 or 'not hashed yet'}", quote=True)
    return f'<a id="sd_checkpoint_hash" title="{title}">{html.escape(short)}</a>'
