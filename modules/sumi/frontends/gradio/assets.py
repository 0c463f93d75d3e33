"""The page's CSS and script, read from `style.css`, `script.js` and `edit_attention.js` beside this file,
and what extensions add to the page.

`extension_head(app)` is the `<head>` part for extensions: A1111's page helpers that extensions'
scripts call (`a1111_compat.js`: `gradioApp`, `onUiLoaded`, `onUiUpdate`, `onAfterUiUpdate`,
`onUiTabChange`, `onOptionsChanged`, `get_uiCurrentTab(Content)`, `opts`), then every enabled
extension's `style.css` and `javascript/*.js` in A1111's load order. Files are inlined (each script
in its own `<script>`, so one that throws does not stop the next; `//# sourceURL` names it in the
browser's console). Differences from A1111: `*.mjs` modules are not loaded, and relative `url(...)`
in an extension's CSS does not reach its folder.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from modules.sumi.services.settings.secrets import redacted_options

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
CSS = (_HERE / "style.css").read_text(encoding="utf-8")
JS = "\n".join((_HERE / name).read_text(encoding="utf-8") for name in ("script.js", "edit_attention.js"))
# Injected into the document <head> by an always-visible component (gr.HTML's `head`).
HEAD = f'<style id="sumi-style">{CSS}</style><script id="sumi-script">{JS}</script>'
COMPAT_JS = (_HERE / "a1111_compat.js").read_text(encoding="utf-8")
# The component that carries extension_head() takes no room on the page.
EXTENSION_HEAD_ELEM_ID = "sumi_extension_assets"


def _script(text: str, source: str) -> str:
    # "</script" inside a script would end the tag early; "<\/script" means the same to JavaScript.
    body = text.replace("</script", "<\\/script")
    return f"<script>{body}\n//# sourceURL={source}\n</script>"


def _style(text: str, extension: str) -> str:
    body = text.replace("</style", "<\\/style")
    return f'<style data-extension="{html.escape(extension)}">{body}</style>'


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("Could not read %s: %s", path, exc)
        return None


def extension_head(app: App) -> str:
    """A1111's helpers, the current settings as `opts`, and the enabled extensions' CSS and scripts."""
    opts = json.dumps(redacted_options(app.options.as_dict()), default=str, ensure_ascii=False).replace(
        "</", "<\\/"
    )
    parts = [
        f"<style>#{EXTENSION_HEAD_ELEM_ID} {{ display: none !important; }}</style>",
        _script(f"window.opts = Object.assign(window.opts || {{}}, {opts});", "sumi/opts.js"),
        _script(COMPAT_JS, "sumi/a1111_compat.js"),
    ]
    for item in app.extensions.style_files():
        text = _read(item.path)
        if text is not None and item.extension is not None:
            parts.append(_style(text, item.extension.name))
    for item in app.extensions.javascript_files():
        text = _read(item.path)
        if text is not None:
            name = item.extension.name if item.extension is not None else "sumi"
            parts.append(_script(text, f"extensions/{name}/javascript/{item.path.name}"))
    return "".join(parts)
