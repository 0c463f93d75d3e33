"""Card tabs of the extra networks pages extensions register (A1111's `ui_extra_networks.register_page`,
`ExtraNetworksPage` subclasses: prompt cards, tag lists, their own kinds of models), after Sumi's card
tabs beside "Generation".

A page lists its cards with `list_items()`: A1111 item dicts (`name`, `filename`, `preview`,
`description`, `search_term(s)`, `prompt`); their files' sub-folders under the page's
`allowed_directories_for_previews()` get the folder buttons or tree Sumi's tabs have. A1111 writes `prompt` as a JavaScript expression for its
page's `onclick`; Sumi never runs it: string literals joined by `+` with `opts.<setting>` are read (what
A1111's own pages and the extensions' write), anything else inserts the card's name. 🔄 calls the page's
`refresh()`. A page that fails says so in its tab; the other tabs are not affected."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import card_folders, results
from modules.sumi.frontends.gradio.extra_networks import (
    TABS,
    Card,
    CardLook,
    card_pane,
    card_tools,
    cards_html,
    default_sort,
    folder_view,
    shown_cards,
    wire_search_and_sort,
)

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)
SUMI_KINDS = frozenset(kind for kind, _ in TABS)

_STRING = r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'"
_PART = re.compile(rf"\s*(?:(?P<string>{_STRING})|opts\.(?P<opt>[A-Za-z_][A-Za-z0-9_]*))\s*")


def prompt_text(expression: Any, options: Any) -> str | None:
    """The text an A1111 card's JS `prompt` expression stands for (`"<lora:x:" + opts.m + ">"`), or
    None for anything else (Sumi runs no page-supplied script)."""
    if not isinstance(expression, str) or not expression.strip():
        return None
    parts: list[str] = []
    for chunk in _split_plus(expression):
        m = _PART.fullmatch(chunk)
        if m is None:
            return None
        if m.group("opt"):
            value = getattr(options, m.group("opt"), None)
            if value is None:
                return None
            parts.append(f"{value:g}" if isinstance(value, float) else str(value))
        else:
            parts.append(_string_value(m.group("string")))
    return "".join(parts)


def _split_plus(expression: str) -> list[str]:
    """Split at the `+` signs outside string literals."""
    chunks, start = [], 0
    for m in re.finditer(rf"{_STRING}|\+", expression):
        if m.group(0) == "+":
            chunks.append(expression[start : m.start()])
            start = m.end()
    chunks.append(expression[start:])
    return chunks


def _string_value(literal: str) -> str:
    if literal.startswith("'"):  # a JS single-quoted string: the same escapes as JSON's, but for quotes
        literal = '"' + literal[1:-1].replace('\\"', '"').replace('"', '\\"').replace("\\'", "'") + '"'
    try:
        return str(json.loads(literal, strict=False))  # A1111's quote_js leaves line breaks as they are
    except ValueError:
        return literal[1:-1]


def page_kind(page: Any, taken: frozenset[str] | set[str] = frozenset(), tabname: str = "txt2img") -> str:
    """The page's id in element ids: A1111's `extra_networks_tabname` ("EZ-Tags" -> "ez-tags"), which the
    pages' own scripts look their tab up by (`#txt2img_ez-tags_cards_html`), safe for an HTML id. A page
    whose id is one of Sumi's kinds, or would give an element id the tab already has (`taken`: a page
    called "Settings" and `#txt2img_settings`), gets "ext_" before it."""
    raw = str(getattr(page, "extra_networks_tabname", "") or getattr(page, "title", "page"))
    kind = re.sub(r"[^A-Za-z0-9_-]", "_", raw.lower()) or "page"
    ids = {
        f"{tabname}_{kind}{suffix}" for suffix in ("", "_cards", "_cards_html", "_controls", "_extra_search")
    }
    if kind in SUMI_KINDS or ids & set(taken):
        return f"ext_{kind}"
    return kind


def item_card(page: Any, kind: str, item: dict[str, Any], options: Any, roots: Sequence[Path] = ()) -> Card:
    """An item of the page as a card; its folder is its file's under the first of `roots` (the page's
    `allowed_directories_for_previews()`) holding it, for the tab's folder buttons or tree."""
    name = str(item.get("name") or "")
    terms = item.get("search_terms") or item.get("search_term") or ""
    terms = " ".join(map(str, terms)) if isinstance(terms, list | tuple) else str(terms)
    card = Card(
        kind=kind,
        name=name,
        path=str(item.get("filename") or ""),
        prompt=prompt_text(item.get("prompt"), options) or name,
        description=str(item.get("description") or ""),
        negative=bool(getattr(page, "allow_negative_prompt", False)),
        search_terms=f"{name} {item.get('filename') or ''} {terms}".lower(),
        sort_keys=_sort_keys(item.get("sort_keys")),
    )
    card.folder = card_folders.folder_of(card_folders.relative_path(card.path, roots))
    card.hidden = card_folders.is_hidden(card.folder)
    preview = item.get("preview")
    card.found_preview = preview if isinstance(preview, str) else ""
    return card


def _sort_keys(keys: Any) -> dict[str, str]:
    """A1111's `sort_keys` of an item, written on its card as `data-sort-<key>` (pages' scripts group and
    order their cards by them)."""
    if not isinstance(keys, dict):
        return {}
    return {re.sub(r"[^A-Za-z0-9_-]", "_", str(k)): str(v) for k, v in keys.items()}


def page_cards(page: Any, kind: str, options: Any, roots: Sequence[Path] = ()) -> list[Card]:
    items = page.list_items()
    return [item_card(page, kind, dict(item), options, roots) for item in items if isinstance(item, dict)]


def page_roots(page: Any) -> list[Path]:
    """The page's `allowed_directories_for_previews()`, the folders its files are under ([] when it
    names none or fails: its cards then have no folders)."""
    listed = getattr(page, "allowed_directories_for_previews", None)
    if not callable(listed):
        return []
    try:
        folders: Any = listed() or []
        if isinstance(folders, str | os.PathLike):  # one folder, not a list of them
            folders = [folders]
        return [Path(os.fspath(folder)) for folder in folders if folder]
    except Exception:
        log.exception("the extra networks page %r could not name its folders", getattr(page, "title", page))
        return []


def render_page(
    app: App,
    page: Any,
    tabname: str,
    search: str | None = None,
    sort: str | None = None,
    refresh: bool = False,
    kind: str | None = None,
) -> str:
    kind = kind or page_kind(page, tabname=tabname)
    try:
        if refresh:
            page.refresh()
        roots = page_roots(page)
        cards = page_cards(page, kind, app.options, roots)
        look = CardLook.from_options(app.options)
        shown = cards_html(
            shown_cards(app, cards, search),
            search,
            tabname,
            sort or default_sort(app.options),
            look,
            f"{tabname}_{kind}_cards",
        )
        return card_pane(app, folder_view(app, cards, search, tabname, kind, roots), shown, tabname, kind)
    except Exception as exc:
        log.exception("the extra networks page %r failed", getattr(page, "title", page))
        return results.error_html(f"{getattr(page, 'title', 'This page')} could not list its cards: {exc}")


def create_page_tabs(app: App, tabname: str) -> None:
    """One tab per page extensions registered (call inside `{tabname}_extra_tabs`), wired."""
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    for page in list(getattr(app, "card_pages", [])):
        kind = page_kind(page, _ids_so_far(), tabname)
        with gr.Tab(
            str(getattr(page, "title", kind)), id=f"{tabname}_{kind}", elem_id=f"{tabname}_{kind}",
            elem_classes=["extra-page"],
        ):  # fmt: skip
            search, sort, refresh = card_tools(tabname, kind, default_sort(app.options))
            cards = gr.HTML(
                partial(render_page, app, page, tabname, kind=kind),
                elem_id=f"{tabname}_{kind}_cards_html",
                js_on_load=None,
            )
        wire_search_and_sort(search, sort, cards, partial(render_page, app, page, tabname, kind=kind))
        refresh.click(
            partial(render_page, app, page, tabname, refresh=True, kind=kind),
            inputs=[search, sort],
            outputs=cards,
            trigger_mode="always_last",
            **quick,
        )


def _ids_so_far() -> set[str]:
    """The element ids of the page being built (its blocks so far)."""
    from gradio.context import get_blocks_context

    context = get_blocks_context()
    blocks = getattr(context, "blocks", {}) if context is not None else {}
    return {str(b.elem_id) for b in blocks.values() if getattr(b, "elem_id", None)}
