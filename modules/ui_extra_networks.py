"""A1111's `modules.ui_extra_networks`: the pages of the extra networks panel, as extensions read them
(`extra_pages`, each with `name`, `title` and `list_items()`), and `register_page`.

`extra_pages` holds one page per Sumi card tab (Textual Inversion, Hypernetworks, Checkpoints, Lora),
listing what the panel shows, then the pages extensions registered, each drawn as a card tab after
Sumi's (frontends/gradio/extension_card_pages.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from modules import shared
from modules.util import MassFileLister


class ExtraNetworksPage:
    """Base class of A1111's extra networks pages; subclasses override `list_items` and `refresh`."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.name = title.lower()
        self.id_page = self.name.replace(" ", "_")
        self.extra_networks_tabname = self.id_page
        self.allow_prompt = True
        self.allow_negative_prompt = False
        self.items: dict[str, dict[str, Any]] = {}
        self.metadata: dict[str, Any] = {}  # A1111's: item name -> its file's metadata, which pages fill
        self.lister = MassFileLister()

    def refresh(self) -> None:
        pass

    def list_items(self) -> Iterator[dict[str, Any]] | list[dict[str, Any]]:
        return []

    def allowed_directories_for_previews(self) -> list[str]:
        return []

    def create_item(self, name: str, index: int | None = None) -> dict[str, Any] | None:
        return None

    # A1111's helpers that pages call while they list their items
    def link_preview(self, filename: str) -> str:
        """The URL of a preview picture (served when it lies in a model folder)."""
        from modules.sumi.frontends.gradio.extra_networks import thumb_url

        return thumb_url(filename)

    def find_preview(self, path: str) -> str | None:
        """The preview beside `path` (`<path-without-ext>.png`, `.preview.png`, ...) as a URL, or None."""
        from modules.sumi.frontends.gradio.extra_networks import preview_url

        return preview_url(path) or None

    def find_description(self, path: str) -> str | None:
        """`<path-without-ext>.txt` or `.description.txt`, or None."""
        from modules.sumi.frontends.gradio.extra_networks import description_of

        return description_of(path, {}) or None

    def search_terms_from_path(self, filename: str, possible_directories: Any = None) -> str:
        return str(filename).replace("\\", "/")

    def read_user_metadata(self, item: dict[str, Any], use_cache: bool = True) -> dict[str, Any]:
        from modules.sumi.frontends.gradio.extra_networks import read_user_metadata

        filename = item.get("filename")
        item["user_metadata"] = read_user_metadata(filename) if filename else {}
        return item["user_metadata"]

    def get_sort_keys(self, path: str) -> dict[str, Any]:
        import os

        try:
            stat = os.stat(path)
            dates = {"date_created": int(stat.st_ctime), "date_modified": int(stat.st_mtime)}
        except OSError:
            dates = {"date_created": 0, "date_modified": 0}
        return {**dates, "name": os.path.basename(str(path)).lower(), "path": str(path).lower()}


def quote_js(s: str) -> str:
    """A JavaScript string literal of `s` (A1111's, for an item's `prompt`)."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


class _SumiPage(ExtraNetworksPage):
    """One of Sumi's card tabs, with its cards as A1111 item dicts."""

    def __init__(self, kind: str, title: str) -> None:
        super().__init__(title)
        self.kind = kind
        self.allow_negative_prompt = kind == "textual_inversion"

    def refresh(self) -> None:
        from modules.sumi.frontends.gradio.extra_networks import refresh_source

        refresh_source(shared.app(), self.kind)

    def list_items(self) -> list[dict[str, Any]]:
        from modules.sumi.frontends.gradio.extra_networks import CARD_SOURCES, read_user_metadata

        items = []
        for index, card in enumerate(CARD_SOURCES[self.kind](shared.app())):
            item = {
                "name": card.name,
                "filename": card.path,
                "shorthash": None,
                "preview": card.preview or None,
                "description": card.description,
                "search_term": card.search_terms,
                "local_preview": card.path.rsplit(".", 1)[0] + ".preview.png" if card.path else "",
                "prompt": json.dumps(card.prompt) if card.prompt else None,  # a JS string, as A1111
                "user_metadata": read_user_metadata(card.path) if card.path else {},
                "sort_keys": {"default": index, "name": card.name.lower()},
            }
            self.items[card.name] = item
            items.append(item)
        return items


_registered: list[ExtraNetworksPage] = []  # before an App runs


def _pages() -> list[Any]:
    app = shared.running_app()
    return app.card_pages if app is not None else _registered


def register_page(page: ExtraNetworksPage) -> None:
    """Add an extension's page (A1111): it gets a card tab after Sumi's, on txt2img and img2img. A page
    registered again under the same title (a UI reload runs `on_before_ui` again) replaces the first."""
    pages = _pages()
    pages[:] = [p for p in pages if getattr(p, "title", None) != getattr(page, "title", None)]
    pages.append(page)


def __getattr__(name: str) -> Any:
    if name == "extra_pages":
        from modules.sumi.frontends.gradio.extra_networks import TABS

        return [*(_SumiPage(kind, title) for kind, title in TABS), *_pages()]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
