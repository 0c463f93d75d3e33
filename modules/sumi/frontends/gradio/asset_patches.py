"""Gradio's page scripts, served with small patches where Gradio 6's page differs from what A1111's
users and extensions rely on.

Each patch replaces one exact piece of one of Gradio's built `assets/*.js` files. Sumi serves those
files itself from the installed Gradio (`AssetPatchMiddleware`); when a piece is not found exactly once
(a Gradio upgrade changed it), that patch is left out with a warning naming it, the file is served with
the others, and tests/frontends/gradio/test_asset_patches.py fails so the change is looked at.

- `STATUS_PUSH`: Gradio 6 keeps a loading status for every input and output of every event that has
  run, and on every message of every event (pending, each update of a streamed Generate, complete) it
  pushes *all* of them into their components again, each push walking the component tree. On A1111's
  layout a Generate has a few hundred inputs, so after the first Generate every later message cost the
  page about 0.15 s of main-thread time on a 2-core machine, more with each extension's controls: a
  streamed job kept the page half busy, typing waited behind token-count events, clicks lagged. Patched:
  a status equal to the one last pushed to the same component is not pushed again (what the component
  shows is the same).
- `EVERY_TAB_DRAWN`: Gradio 6 draws a tab's contents only when the tab is first chosen. Gradio 3 drew
  them all at once, hidden, and A1111's extensions look up elements of tabs not opened yet when the page
  loads (img2img's size inputs and images, their own tab's container) and fail on a missing element.
  Patched: every tab is drawn when the page loads (hidden until chosen, as Gradio shows tabs anyway).
- `GROUP_ID_ONCE`: Gradio 6's `Group` (Gradio 3's `Box`) draws two nested divs that both carry its
  `elem_id` and `elem_classes`; Gradio 3 drew one. Two elements with one id broke what extensions and
  their users do with it: `querySelectorAll('#id')` and Playwright-style strict lookups found two, CSS
  on the id or a class applied twice (Config-Presets' `#config_preset_wrapper_txt2img` margin).
  Patched: the inner div is a plain styled div, so the id and the classes are on one element again.
- `ATTACHED_EVENTS_INDEX` and `NODE_INDEX`: a quick first page. While it draws the page, Gradio 6 asks,
  for every component, which events target it by scanning every event's targets (components x events),
  and finds a component by its id by walking the whole component tree (a reactive proxy, so each step
  costs) for each of the hundreds of state updates of the first load. Patched: the targets are indexed
  once per event list, and each id's path from the root is kept and checked step by step on use (a path
  that no longer holds, or an id not found, indexes the tree again), so lookups give what the walk gives.
  Measured (2-core CPU, headless Chromium, the demo model's page, 4 loads each, alternating): from
  opening the page to `onUiLoaded`, 9.87 s before, 5.08 s after (medians).

A patch whose `asset` pattern names many files (Gradio's components are all `Index-<hash>.js`) has a
`marker`: it applies to the one file that contains the marker, and the others are not its file.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssetPatch:
    name: str
    asset: re.Pattern[str]  # the built file's name (Gradio's build gives it a hash)
    original: bytes
    patched: bytes
    marker: bytes | None = None  # when `asset` matches several files: the one this patch is for has it


STATUS_PUSH = AssetPatch(
    "STATUS_PUSH",
    re.compile(r"^Blocks-[A-Za-z0-9_-]+\.js$"),
    original=(
        b"async update_loading_stati_state(){await Promise.all(Object.entries(this.loading_stati.current)"
        b".map(([e,t])=>this.update_state_cb(Number(e),{loading_status:t},!1)))}"
    ),
    patched=(
        b"async update_loading_stati_state(){const sumiPushed=this.sumi_pushed_stati||"
        b"(this.sumi_pushed_stati=new Map);await Promise.all(Object.entries(this.loading_stati.current)"
        b".filter(([e,t])=>{const k=JSON.stringify(t);if(sumiPushed.get(e)===k)return!1;"
        b"sumiPushed.set(e,k);return!0})"
        b".map(([e,t])=>this.update_state_cb(Number(e),{loading_status:t},!1)))}"
    ),
)

EVERY_TAB_DRAWN = AssetPatch(
    "EVERY_TAB_DRAWN",
    re.compile(r"^core-[A-Za-z0-9_-]+\.js$"),
    original=(
        b",e.type===`tabs`&&e.children.forEach(r=>{r.type===`tabitem`&&r.props.props.id!=="
        b"(e.props.props.selected??e.props.props.initial_tabs[0].id)&&(J(r,t),Y(r,n))}),e}"
    ),
    patched=b",e}",
)

GROUP_ID_ONCE = AssetPatch(
    "GROUP_ID_ONCE",
    re.compile(r"^Index-[A-Za-z0-9_-]+\.js$"),
    original=(
        b"d(b,`id`,_.shared.elem_id),x=l(b,1,`gr-group ${t??``}`,`svelte-1p9262q`,x,"
        b"{hide:_.shared.visible===`hidden`})"
    ),
    patched=b"x=l(b,1,``,`svelte-1p9262q`,x,{hide:_.shared.visible===`hidden`})",
    marker=b"`gr-group ",
)

ATTACHED_EVENTS_INDEX = AssetPatch(
    "ATTACHED_EVENTS_INDEX",
    re.compile(r"^core-[A-Za-z0-9_-]+\.js$"),
    original=(
        b"find_attached_events(e,t){let n=t.filter(t=>t.targets.find(([t])=>t===e.id)).map(t=>{let n="
        b"t.targets.find(([t])=>t===e.id);return n?n[1]:null}).filter(Boolean);"
    ),
    patched=(
        b"find_attached_events(e,t){let m=this.sumi_events_by_target;if(!m||this.sumi_events_of!==t||"
        b"this.sumi_events_count!==t.length){m=new Map;for(const d of t){const seen=new Set;"
        b"for(const[i,name]of d.targets){if(seen.has(i))continue;seen.add(i);let l=m.get(i);"
        b"l||m.set(i,l=[]);l.push(name)}}this.sumi_events_by_target=m;this.sumi_events_of=t;"
        b"this.sumi_events_count=t.length}let n=(m.get(e.id)||[]).filter(Boolean);"
    ),
)

NODE_INDEX = AssetPatch(
    "NODE_INDEX",
    re.compile(r"^core-[A-Za-z0-9_-]+\.js$"),
    original=b"function Z(e,t){if(e.id===t)return e;if(e.children)for(let n of e.children){let e=Z(n,t);if(e)return e}return null}",
    patched=(
        b"const sumiPaths=new WeakMap;"
        b"function sumiIndex(e){const m=new Map,walk=(n,path)=>{m.has(n.id)||m.set(n.id,path);"
        b"if(n.children)n.children.forEach((c,i)=>walk(c,[...path,[i,c]]))};walk(e,[]);sumiPaths.set(e,m);return m}"
        b"function sumiAt(e,path){let n=e;for(const[i,c]of path){if(!n.children||n.children[i]!==c)return null;n=c}return n}"
        b"function Z(e,t){let m=sumiPaths.get(e),p=m&&m.get(t),n=p&&sumiAt(e,p);if(n&&n.id===t)return n;"
        b"m=sumiIndex(e);p=m.get(t);return p?sumiAt(e,p):null}"
    ),
)

PATCHES = (STATUS_PUSH, EVERY_TAB_DRAWN, GROUP_ID_ONCE, ATTACHED_EVENTS_INDEX, NODE_INDEX)
SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+\.js$")


def assets_dir() -> Path:
    import gradio

    return Path(gradio.__file__).parent / "templates" / "frontend" / "assets"


@functools.cache
def patched_asset(name: str) -> bytes | None:
    """Gradio's asset `name` with the patches that apply to it; None when none does (then Gradio serves
    the file as it is)."""
    patches = [p for p in PATCHES if p.asset.match(name)]
    if not patches or not SAFE_NAME.match(name):
        return None
    try:
        body = (assets_dir() / name).read_bytes()
    except OSError:
        return None
    applied = 0
    for patch in patches:
        if patch.marker is not None and patch.marker not in body:
            continue  # another of the files its pattern names
        if body.count(patch.original) != 1:
            log.warning("%s.%s: Gradio's %s changed; served without this patch", __name__, patch.name, name)
            continue
        body = body.replace(patch.original, patch.patched)
        applied += 1
    return body if applied else None


def _asset_name(scope: Any) -> str | None:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    prefix = "/assets/"
    return path[len(prefix) :] if path.startswith(prefix) else None


class AssetPatchMiddleware:
    """Answers `GET /assets/<patched file>` with the patched file; everything else passes untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        name = _asset_name(scope) if scope["type"] == "http" and scope.get("method") == "GET" else None
        body = patched_asset(name) if name else None
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [
            (b"content-type", b"application/javascript; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def install(ui_app: Any) -> None:
    """Serve the patched assets from the Gradio app `ui_app` (call before the server starts)."""
    ui_app.add_middleware(AssetPatchMiddleware)
