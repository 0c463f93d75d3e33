"""A1111's page contract: what the served page holds before Gradio's app starts.

A1111 rewrites its index page: into `<head>` go `window.localization`, then `script.js` and the app's
`javascript/*.js`, then every enabled extension's `javascript/*.js` in load order, so they all run
before `DOMContentLoaded` (extensions wait for that event, or register `onUiLoaded` callbacks); before
`</body>` go the extensions' `style.css` and the data folder's `user.css`. Sumi does the same with a
small ASGI middleware on its Gradio app (`install`): the index page's HTML is rewritten on the way out.

Sumi's versions of A1111's page scripts are in `javascript/` beside this file (`script.js` first, then
the others by name, as A1111 orders its own). Besides A1111: `window.opts` is filled from the current
settings before any script runs (A1111 fills it a moment after the page loads). Each file is inlined
in its own `<script>` (one that throws does not stop the next; `//# sourceURL` names it in the
console). Not done: `*.mjs` modules; relative `url(...)` in an extension's CSS.

The extensions' files are read when the UI is built (as A1111, whose "Reload UI" reads them again);
`opts` and `localization` are read for every page load, so a changed setting shows on the next load.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modules.sumi.services.settings.secrets import redacted_options

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)
NOTIFICATION_SOUND_URL = "./sumi/notification.mp3"  # served by frontends/http/files.py

HELPERS_DIR = Path(__file__).parent / "javascript"
# A1111 loads script.js, then its javascript/ folder sorted by name.
HELPER_FILES = ["script.js", *sorted(p.name for p in HELPERS_DIR.glob("*.js") if p.name != "script.js")]
PAGE_MARKER = b"window.gradio_config"


def _json(value: Any) -> str:
    # "</" inside a script would end it early; "<\/" means the same to JavaScript.
    return json.dumps(value, default=str, ensure_ascii=False).replace("</", "<\\/")


def _script(text: str, source: str) -> str:
    body = text.replace("</script", "<\\/script")
    return f"<script>{body}\n//# sourceURL={source}\n</script>"


def _style(text: str, owner: str) -> str:
    body = text.replace("</style", "<\\/style")
    return f'<style data-extension="{html.escape(owner)}">{body}</style>'


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("Could not read %s: %s", path, exc)
        return None


def helper_scripts() -> str:
    """Sumi's A1111 page scripts (`script.js`, `ui.js`, `hints.js`, ...), in A1111's order."""
    return "".join(
        _script((HELPERS_DIR / name).read_text(encoding="utf-8"), f"sumi/{name}") for name in HELPER_FILES
    )


def extension_scripts(app: App) -> str:
    """Every enabled extension's `javascript/*.js`, in A1111's load order."""
    parts = []
    for item in app.extensions.javascript_files():
        text = _read(item.path)
        if text is not None:
            name = item.extension.name if item.extension is not None else "sumi"
            parts.append(_script(text, f"extensions/{name}/javascript/{item.path.name}"))
    return "".join(parts)


def extension_modules(app: App) -> str:
    """Every enabled extension's `javascript/*.mjs` as a module script loaded from `/file=` (A1111 loads
    them so; their relative imports then resolve next to them). Modules run after the page is parsed."""
    parts = []
    for item in app.extensions.javascript_files(".mjs"):
        src = html.escape(file_url(item.path), quote=True)
        parts.append(f'<script type="module" src="{src}"></script>')
    return "".join(parts)


def file_url(path: Path) -> str:
    """`./file=<absolute path>?<mtime>`, relative to the page (A1111's `webpath`: the mtime defeats caches)."""
    try:
        stamp = int(path.stat().st_mtime)
    except OSError:
        stamp = 0
    return f"./file={path.resolve().as_posix()}?{stamp}"


_CSS_URL = re.compile(r"""url\(\s*(['"]?)(?P<ref>[^'")\s]+)\1\s*\)""")


def with_urls_from(css: str, folder: Path) -> str:
    """`css` (inlined in the page) with its relative `url(...)`s pointing at `folder`'s files through
    `/file=`, where a `<link>`ed stylesheet's would have resolved (A1111 links style.css)."""

    def rewrite(match: re.Match[str]) -> str:
        ref = match["ref"]
        if re.match(r"^(?:[a-z][a-z0-9+.-]*:|/|#|\./file=|file=)", ref, re.IGNORECASE):
            return match[0]  # data:, http(s):, absolute, fragment (SVG filters) or already /file=
        target = folder / ref.split("?", 1)[0].split("#", 1)[0]
        return f'url("{file_url(target)}")'

    return _CSS_URL.sub(rewrite, css)


def page_styles(app: App) -> str:
    """The enabled extensions' `style.css`, then `<data-dir>/user.css` (A1111 puts them before `</body>`)."""
    parts = []
    for item in app.extensions.style_files():
        text = _read(item.path)
        if text is not None and item.extension is not None:
            parts.append(_style(with_urls_from(text, item.path.parent), item.extension.name))
    user_css = app.paths.data_dir / "user.css"
    if user_css.is_file() and (text := _read(user_css)) is not None:
        parts.append(_style(text, "user.css"))
    return "".join(parts)


def settings_scripts(app: App) -> str:
    """`window.localization` (the "Localization" setting's files), `window.sumiPageOpts` (the settings,
    without secrets) and `window.sumiNotificationSound` (notification.mp3's URL, or null), for the page
    being served now. script.js copies the settings into `opts` once the
    page is drawn, as A1111 fills `opts` only then: extensions wait for an option to be set as their sign
    that the elements they move exist (aspect-ratio-helper)."""
    localization = app.localizations.data(str(getattr(app.options, "localization", "None") or "None"))
    opts = redacted_options(app.options.as_dict())
    sound = NOTIFICATION_SOUND_URL if app.paths.notification_sound() is not None else None
    return _script(
        f"window.localization = {_json(localization)};\nwindow.sumiPageOpts = {_json(opts)};\n"
        f"window.sumiNotificationSound = {_json(sound)};",
        "sumi/settings.js",
    )


class PageHead:
    """The parts A1111 adds to its index page, for one built UI."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.scripts = helper_scripts() + extension_scripts(app) + extension_modules(app)
        self.styles = page_styles(app)

    def rewrite(self, page: bytes) -> bytes:
        head = (settings_scripts(self.app) + self.scripts).encode("utf-8")
        page = scoped_tail_scripts(page.replace(b"</head>", head + b"</head>", 1))
        return page.replace(b"</body>", self.styles.encode("utf-8") + b"</body>", 1)


# An inline classic script after Gradio's <gradio-app> element (Gradio 6's index page ends with one that
# declares `const ce`): its body, to be put in a block.
_TAIL_SCRIPT = re.compile(rb"<script>(?!\s*\{)(.*?)</script>", re.S)


def scoped_tail_scripts(page: bytes) -> bytes:
    """Gradio's own inline scripts at the end of the page, each in a block, so their `const`s are theirs.

    Classic scripts share one global scope: Gradio 6's `const ce = ...` (which sets the body's padding)
    failed with "Identifier 'ce' has already been declared" whenever an extension's minified bundle in the
    head had a global `ce` (lobe-theme's main.js does); Gradio 3, which A1111 extensions were written for,
    declared no such global."""
    cut = page.find(b"</gradio-app>")
    if cut < 0:
        return page
    head, tail = page[:cut], page[cut:]
    return head + _TAIL_SCRIPT.sub(lambda m: b"<script>{" + m.group(1) + b"}</script>", tail)


class PageHeadMiddleware:
    """Rewrites the Gradio app's index page (`GET /`, HTML holding `window.gradio_config`) with `rewrite`;
    every other response passes untouched."""

    def __init__(self, app: Any, rewrite: Callable[[bytes], bytes]) -> None:
        self.app = app
        self.rewrite = rewrite

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or not _is_index(scope):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def buffered(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            await _send_page(send, start, b"".join(chunks), self.rewrite)

        await self.app(scope, receive, buffered)


# Gradio's index page before a UI login: its config says the login is still required.
_LOGIN_PAGE = re.compile(rb'"auth_required"\s*:\s*true')


def _is_index(scope: Any) -> bool:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path in ("", "/")


async def _send_page(
    send: Any, start: dict[str, Any], body: bytes, rewrite: Callable[[bytes], bytes]
) -> None:
    headers = list(start.get("headers", []))
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    if (
        start.get("status") == 200
        and content_type.startswith(b"text/html")
        and PAGE_MARKER in body
        and not _LOGIN_PAGE.search(body)  # the login page gets no settings or extension scripts
    ):
        try:
            body = rewrite(body)
        except Exception:  # the page without the extensions' parts beats no page at all
            log.exception("Could not add the extensions' scripts to the page")
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def install(ui_app: Any, app: App) -> PageHead:
    """Serve the Gradio app `ui_app`'s index page with A1111's additions (call before the server starts)."""
    head = PageHead(app)
    ui_app.add_middleware(PageHeadMiddleware, rewrite=head.rewrite)
    return head
