"""A1111's `modules.ui_extra_networks`: the pages of the extra networks panel, as extensions read them
(`extra_pages`, each with `name`, `title` and `list_items()`), and `register_page`.

`extra_pages` holds one page per Sumi card tab (Textual Inversion, Hypernetworks, Checkpoints, Lora),
listing what the panel shows, then the pages extensions registered. Sumi's panel draws only its own
tabs: a registered page is listed here but gets no tab.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from modules import shared


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

    def refresh(self) -> None:
        pass

    def list_items(self) -> Iterator[dict[str, Any]] | list[dict[str, Any]]:
        return []

    def allowed_directories_for_previews(self) -> list[str]:
        return []

    def create_item(self, name: str, index: int | None = None) -> dict[str, Any] | None:
        return None


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


_registered: list[ExtraNetworksPage] = []


def register_page(page: ExtraNetworksPage) -> None:
    """Add an extension's page to `extra_pages` (A1111); Sumi's panel does not draw it."""
    _registered.append(page)


def __getattr__(name: str) -> Any:
    if name == "extra_pages":
        from modules.sumi.frontends.gradio.extra_networks import TABS

        return [*(_SumiPage(kind, title) for kind, title in TABS), *_registered]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
