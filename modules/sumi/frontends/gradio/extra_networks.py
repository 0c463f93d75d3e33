"""The extra networks under the prompt: A1111 1.6+'s Textual Inversion, Hypernetworks, Checkpoints and
Lora tabs of cards, beside the "Generation" tab in `txt2img_extra_tabs` / `img2img_extra_tabs` (the ids,
classes and card markup A1111's extensions and themes look up: `.extra-page`, `.extra-network-cards`,
`.card[data-name]`, `span.name`).

Each card shows a preview (`<path-without-ext>.png` / `.preview.png` ..., a thumbnail the page loads from
`/sd_extra_networks/thumb` when the card scrolls into view; without one, the first cover picture stored in a
.safetensors file's metadata, from `/sd_extra_networks/cover-images`), the name and the description (sidecar
`<path-without-ext>.json` "description", else `.txt`). Clicking a card toggles its text in the prompt box
that had focus last (script.js `sumiExtraNetworkClick`; the same rule as `toggle_prompt_text` here):
`<lora:NAME:W>` + activation text, `<hypernet:NAME:1>`, or the embedding name. A checkpoint card switches
the model through `app.settings.set`. Search filters by name and path under the model folder, the folder
buttons above the cards search for a sub-folder (card_folders), the sort menu orders by name or date
modified (server-side, like search); 🔄 rescans the folders. Under the cards, "Edit card" picks a card by
name: 🖼️ saves the selected txt2img gallery image as `<path-without-ext>.preview.png`, and the sidecar
editor writes description, activation text, preferred weight and notes to `<path-without-ext>.json` (other
keys kept, written atomically). Above the Textual Inversion cards a notice lists the embedding files that
could not be loaded and the embeddings skipped for the loaded model (wrong vector width); it is redrawn with
the cards (🔄 too)."""

from __future__ import annotations

import contextlib
import contextvars
import html
import json
import logging
import os
import re
import sys
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import card_folders, card_tree, results
from modules.sumi.services.files.cover_images import covers_in, embedded_covers
from modules.sumi.services.networks.training_info import dataset_tags, model_version, training_summary
from modules.sumi.util.atomic import temp_beside, write_json_atomic

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)

PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")
SEPARATOR = " "  # A1111's opt extra_networks_add_text_separator
TABS = (
    ("textual_inversion", "Textual Inversion"),
    ("hypernetworks", "Hypernetworks"),
    ("checkpoints", "Checkpoints"),
    ("lora", "Lora"),
)


@dataclass
class Card:
    kind: str  # one of TABS' ids
    name: str
    path: str  # file path ("" when unknown)
    prompt: str = ""  # what a click inserts ("" for checkpoints)
    description: str = ""
    checkpoint: str = ""  # checkpoint title to switch to
    negative: bool = False  # embeddings may go to the negative prompt (the box focused last)
    search_terms: str = ""
    folder: str = ""  # "/"-separated, under the folder the file was found in ("" directly in it)
    search_term: str = ""  # A1111's: "Lora/<folder>/<file>" (card_folders.a1111_search_term)
    hidden: bool = False  # in a folder whose name starts with "." (A1111's hidden directories)
    skipped: str = ""  # why the loaded model cannot use this embedding ("48 ≠ 64"), else ""
    sort_keys: dict[str, str] = field(default_factory=dict)  # an extension page's: `data-sort-<key>`
    found_preview: str | None = field(default=None, repr=False)  # None: not looked up yet
    # the file's metadata when the list read it (LoRAs, as A1111); None: read from the file if needed
    file_metadata: Mapping[str, str] | None = field(default=None, repr=False)

    @property
    def preview(self) -> str:
        """The preview thumbnail's URL, or "". Looked up when first asked for: a search shows a few
        cards of a big library, and only their previews are looked up."""
        if self.found_preview is None:
            self.found_preview = preview_url(self.path) or self._cover_url()
        return self.found_preview

    def _cover_url(self) -> str:
        """The first cover stored in the file, looked up only for a card shown without a preview file."""
        if self.file_metadata is not None:
            covers = covers_in(self.file_metadata)
        else:
            covers = embedded_covers(self.path) if self.path else ()
        return embedded_cover_url(self.kind, self.name, covers)


# -- one directory listing per render ----------------------------------------------------------------
class _DirectoryNames:
    """The file names of each folder, listed once: a tab's cards look up about a dozen sidecar and
    preview names per file, so a library of 10,000 LoRAs cost 130,000 stat calls per search (1-2 s)."""

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str]] = {}

    def has(self, folder: str, name: str) -> bool:
        names = self._names.get(folder)
        if names is None:
            try:
                names = frozenset(os.listdir(folder or "."))
            except OSError:
                names = frozenset()
            self._names[folder] = names
        if name in names:
            return True
        # a case-insensitive file system finds "x.PNG" for "x.png", as A1111's isfile does there
        return not _CASE_SENSITIVE_NAMES and os.path.isfile(os.path.join(folder, name))


_CASE_SENSITIVE_NAMES = sys.platform.startswith("linux")
_listing: contextvars.ContextVar[_DirectoryNames | None] = contextvars.ContextVar(
    "sumi_listing", default=None
)


@contextlib.contextmanager
def _one_listing() -> Iterator[None]:
    """Within it, files are looked up in one listing of their folder, made on first use."""
    token = _listing.set(_listing.get() or _DirectoryNames())
    try:
        yield
    finally:
        _listing.reset(token)


def _beside(path: str | Path) -> tuple[str, str, str]:
    """(folder, file name, file name without its last extension)."""
    folder, file = os.path.split(os.fspath(path))
    return folder, file, os.path.splitext(file)[0]


def _may_exist(folder: str, name: str) -> bool:
    """False only when the file is surely not there (outside `_one_listing`: always True)."""
    listing = _listing.get()
    return listing is None or listing.has(folder, name)


def _is_file(folder: str, name: str) -> bool:
    listing = _listing.get()
    return listing.has(folder, name) if listing is not None else os.path.isfile(os.path.join(folder, name))


# -- sidecar metadata ------------------------------------------------------------------------------
def read_user_metadata(path: str | Path) -> dict[str, Any]:
    """The sidecar `<path-without-ext>.json` (A1111's user metadata); {} when missing or unreadable."""
    if not path:
        return {}
    folder, _, stem = _beside(path)
    if not _may_exist(folder, stem + ".json"):
        return {}
    sidecar = Path(path).with_suffix(".json")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable user metadata %s: %s", sidecar, exc)
        return {}
    return data if isinstance(data, dict) else {}


def description_of(path: str | Path, meta: dict[str, Any]) -> str:
    """The sidecar's "description", else `<path>.txt` / `<path>.description.txt`."""
    text = meta.get("description")
    if isinstance(text, str) and text.strip():
        return text.strip()
    if not path:
        return ""
    folder, _, stem = _beside(path)
    for name in (stem + ".txt", stem + ".description.txt"):
        if not _may_exist(folder, name):
            continue
        candidate = Path(folder, name)
        try:
            return candidate.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
    return ""


def preferred_weight(meta: dict[str, Any], default: float = 1.0) -> float:
    """The sidecar's "preferred weight" when it is a non-zero number, else `default`."""
    try:
        weight = float(meta.get("preferred weight") or 0)
    except (TypeError, ValueError):
        return default
    return weight if weight and weight == weight else default


def format_weight(weight: float) -> str:
    return f"{weight:g}"


def default_multiplier(options: Any) -> float:
    """Opt `extra_networks_default_multiplier`: a card's weight when it has no preferred weight."""
    try:
        return float(getattr(options, "extra_networks_default_multiplier", 1.0))
    except (TypeError, ValueError):
        return 1.0


def lora_prompt(name: str, meta: dict[str, Any], default: float = 1.0) -> str:
    """`<lora:NAME:W>` then " " + activation text, as A1111's Lora card."""
    text = f"<lora:{name}:{format_weight(preferred_weight(meta, default))}>"
    activation = meta.get("activation text")
    if isinstance(activation, str) and activation.strip():
        text += " " + activation.strip()
    return text


# -- prompt editing (script.js `sumiToggleText` does the same in the page) ---------------------------
_EXTRANET = re.compile(r"<([^:^>]+:[^:]+):[\d.]+>(.*)", re.S)
_EXTRANET_G = re.compile(r"<([^:^>]+:[^:]+):[\d.]+>")


def toggle_prompt_text(prompt: str, text: str, separator: str = SEPARATOR) -> str:
    """A1111's card click: remove `text` from the prompt when it is there (a network tag with any
    weight, with its separator and following activation text), else append it after `separator`."""
    prompt = prompt or ""
    removed = _remove(prompt, text, separator)
    if removed is not None:
        return removed
    return f"{prompt}{separator}{text}" if prompt.strip() else text


def _remove(prompt: str, text: str, separator: str) -> str | None:
    m = _EXTRANET.match(text)
    if m is None:
        pattern = re.compile("(?:" + re.escape(separator) + ")?" + re.escape(text))
        new = pattern.sub("", prompt)
        return new if new != prompt else None
    key, after = m.group(1), m.group(2)
    for found in _EXTRANET_G.finditer(prompt):
        if found.group(1) != key:
            continue
        start, end = found.span()
        if after and prompt[end : end + len(after)] == after:
            end += len(after)
        if separator and start >= len(separator) and prompt[start - len(separator) : start] == separator:
            start -= len(separator)
        return prompt[:start] + prompt[end:]
    return None


# -- previews --------------------------------------------------------------------------------------
def find_preview(path: str | Path) -> Path | None:
    """A1111's lookup, first hit wins: `<base>.<e>` then `<base>.preview.<e>`."""
    if not path:
        return None
    folder, file, stem = _beside(path)
    for ext in PREVIEW_EXTENSIONS:
        for name in (f"{stem}.{ext}", f"{stem}.preview.{ext}"):
            if name != file and _is_file(folder, name):
                return Path(folder, name)
    return None


def thumb_url(image_path: str | Path) -> str:
    """`./sd_extra_networks/thumb?filename=...&mtime=...` for a picture, or "" when it is not there."""
    try:
        mtime = os.path.getmtime(image_path)
    except OSError:
        return ""
    return f"./sd_extra_networks/thumb?filename={urllib.parse.quote(str(image_path))}&mtime={mtime}"


def preview_url(path: str | Path) -> str:
    """The URL of the card's preview thumbnail, relative to the page (A1111's `link_preview`:
    `./sd_extra_networks/thumb?filename=...&mtime=...`), or "" when it has none. The browser loads it
    when the card scrolls into view; the server makes the thumbnail then."""
    image_path = find_preview(path)
    return "" if image_path is None else thumb_url(image_path)  # "": the preview went away meanwhile


def embedded_cover_url(kind: str, name: str, covers: tuple[str, ...]) -> str:
    """The URL of the first of a card's `covers` (pictures stored in its .safetensors file's metadata:
    A1111's `find_embedded_preview`, for every kind of card), or "" when it has none. A checksum of the
    picture is in the URL, so a changed cover is a new URL."""
    if not covers:
        return ""
    version = zlib.crc32(covers[0].encode())
    query = urllib.parse.urlencode({"page": kind, "item": name, "thumbnail": 1, "v": version})
    return f"./sd_extra_networks/cover-images?{query}"


# -- cards per tab ---------------------------------------------------------------------------------
def _card(kind: str, name: str, path: str, roots: Sequence[Path] = (), **kw: Any) -> Card:
    meta = kw.pop("meta", None)
    if meta is None:
        meta = read_user_metadata(path)
    relative = card_folders.relative_path(path, roots)
    folder = card_folders.folder_of(relative)
    return Card(
        kind=kind,
        name=name,
        path=path,
        description=description_of(path, meta),
        search_terms=card_folders.search_terms(name, relative, path),
        folder=folder,
        search_term=card_folders.a1111_search_term(path, roots),
        hidden=card_folders.is_hidden(folder),
        **kw,
    )


def lora_prompt_name(app: App, info: Any) -> str:
    """The name a LoRA card writes: its alias (`ss_output_name`) when no other file answers to it,
    unless opt `lora_preferred_name` is "Filename" (A1111)."""
    if str(getattr(app.options, "lora_preferred_name", "Alias from file")) == "Filename":
        return info.name
    return info.alias if info.alias and app.loras.find(info.alias) is info else info.name


def lora_version(info: Any, meta: dict[str, Any]) -> str:
    """The model version a LoRA is for (A1111): its sidecar's "sd version" when set, else from its kohya
    metadata (`ss_base_model_version` sdxl_... -> SDXL, `ss_v2` -> SD2, any other metadata -> SD1), else
    "Unknown"."""
    chosen = meta.get("sd version")
    if chosen in ("SD1", "SD2", "SDXL", "Unknown"):
        return str(chosen)
    return model_version(getattr(info, "metadata", None) or {})


def lora_shown(app: App, version: str) -> bool:
    """A LoRA card is listed unless it is for another version than the loaded model's (A1111's Lora page;
    opt `lora_show_all` lists all; "Unknown" ones are hidden only for the versions in opt
    `lora_hide_unknown_for_versions`)."""
    if getattr(app.options, "lora_show_all", True):
        return True
    active = getattr(getattr(app, "models", None), "active", None)
    family = str(getattr(getattr(active, "sd", None), "family", "") or "").removesuffix("-refiner")
    if family not in ("SD1", "SD2", "SDXL"):
        return True
    if version == "Unknown":
        return family not in (getattr(app.options, "lora_hide_unknown_for_versions", None) or [])
    return version == family


def lora_cards(app: App) -> list[Card]:
    cards = []
    default = default_multiplier(app.options)
    roots = card_folders.card_roots(app, "lora")
    for info in app.loras.list():
        meta = read_user_metadata(info.path)
        if not lora_shown(app, lora_version(info, meta)):
            continue
        prompt = lora_prompt(lora_prompt_name(app, info), meta, default)
        card = _card("lora", info.name, str(info.path), roots, meta=meta, prompt=prompt)
        card.file_metadata = info.metadata  # read with the list, as A1111: no file opened per card
        cards.append(card)
    return cards


def hypernetwork_cards(app: App) -> list[Card]:
    cards = []
    default = default_multiplier(app.options)
    roots = card_folders.card_roots(app, "hypernetworks")
    for info in app.hypernetworks.list():
        meta = read_user_metadata(info.path)
        weight = format_weight(preferred_weight(meta, default))
        cards.append(
            _card(
                "hypernetworks",
                info.name,
                str(info.path),
                roots,
                meta=meta,
                prompt=f"<hypernet:{info.name}:{weight}>",
            )
        )
    return cards


def skipped_embeddings(app: App) -> dict[str, str]:
    """{name: reason} of the embeddings the loaded model cannot use ({} before a model is loaded)."""
    active = app.models.active
    if active is None:
        return {}
    try:
        return dict(app.embeddings.for_model(active.sd).skipped)
    except Exception as exc:  # listing must not fail because the model view did
        log.warning("embedding compatibility not known: %s", exc)
        return {}


def embedding_cards(app: App) -> list[Card]:
    embeddings = app.embeddings.embeddings
    skipped = skipped_embeddings(app)
    roots = card_folders.card_roots(app, "textual_inversion")
    cards = []
    for name, embedding in embeddings.items():
        card = _card("textual_inversion", name, embedding.filename, roots, prompt=name, negative=True)
        if name in skipped:
            card.skipped = skipped[name]
            note = f"Not usable with the loaded model ({skipped[name]})."
            card.description = f"{card.description} {note}".strip()
        cards.append(card)
    return cards


def checkpoint_cards(app: App) -> list[Card]:
    roots = card_folders.card_roots(app, "checkpoints")
    return [
        _card("checkpoints", info.name, info.filename, roots, checkpoint=info.title)
        for info in app.checkpoints.list()
    ]


CARD_SOURCES: dict[str, Callable[[App], list[Card]]] = {
    "textual_inversion": embedding_cards,
    "hypernetworks": hypernetwork_cards,
    "checkpoints": checkpoint_cards,
    "lora": lora_cards,
}


# -- notices above the cards -----------------------------------------------------------------------
NOTICE_LIMIT = 20  # problems listed one by one; the rest are counted


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _shown_path(path: str, folders: list[Path]) -> str:
    """`path` relative to the folder it was found in (as card names are), else as it is."""
    for folder in folders:
        try:
            return Path(path).relative_to(folder).as_posix()
        except ValueError:
            continue
    return path


def _problem_list(items: list[str]) -> str:
    shown = "".join(f"<li>{html.escape(item)}</li>" for item in items[:NOTICE_LIMIT])
    if len(items) > NOTICE_LIMIT:
        shown += f"<li>… and {len(items) - NOTICE_LIMIT} more (see the console)</li>"
    return f"<ul>{shown}</ul>"


def embedding_notice_html(
    errors: dict[str, str], skipped: dict[str, str], folders: list[Path] | None = None
) -> str:
    """The Textual Inversion tab's notice: embedding files that could not be loaded (`errors`, path ->
    message) and embeddings skipped for the loaded model (`skipped`, name -> "48 ≠ 64", A1111's
    "Textual inversion embeddings skipped" list). "" when there is nothing to say."""
    parts = []
    if errors:
        items = []
        for path in sorted(errors):
            message = errors[path]
            if message.startswith(f"{path}: "):  # the loaders name the file first; once is enough
                message = message[len(path) + 2 :]
            items.append(f"{_shown_path(path, folders or [])} ({message})")
        heading = f"Could not load {_plural(len(items), 'embedding file')}:"
        parts.append(f'<div class="sumi-embedding-errors"><b>{heading}</b>{_problem_list(items)}</div>')
    if skipped:
        items = [f"{name} ({skipped[name]})" for name in sorted(skipped, key=str.lower)]
        heading = f"Skipped {_plural(len(items), 'embedding')} whose vectors do not fit the loaded model:"
        parts.append(f'<div class="sumi-embedding-skipped"><b>{heading}</b>{_problem_list(items)}</div>')
    if not parts:
        return ""
    return '<div class="sumi-notice sumi-extra-notice">' + "".join(parts) + "</div>"


def embedding_notice(app: App) -> str:
    database = app.embeddings
    return embedding_notice_html(
        dict(database.errors), skipped_embeddings(app), list(getattr(database, "folders", []))
    )


NOTICE_SOURCES: dict[str, Callable[[App], str]] = {"textual_inversion": embedding_notice}


def tab_notice(app: App, kind: str) -> str:
    source = NOTICE_SOURCES.get(kind)
    if source is None:
        return ""
    try:
        return source(app)
    except Exception as exc:  # a notice must never hide the cards
        log.warning("extra networks %s notice not shown: %s", kind, exc)
        return ""


def refresh_source(app: App, kind: str) -> None:
    if kind == "lora":
        app.loras.refresh()
    elif kind == "hypernetworks":
        app.hypernetworks.refresh()
    elif kind == "textual_inversion":
        app.embeddings.refresh()
    elif kind == "checkpoints":
        app.models.refresh()


SORT_CHOICES = ("Name", "Name (desc)", "Date modified", "Date modified (desc)")
DEFAULT_SORT = SORT_CHOICES[0]


def default_sort(options: Any) -> str:
    """The sort a tab starts with, from A1111's opts `extra_networks_card_order_field` (Path and Name
    sort by name, Date Created and Date Modified by the file's date) and `extra_networks_card_order`."""
    field_name = str(getattr(options, "extra_networks_card_order_field", "Path"))
    sort = "Date modified" if field_name.startswith("Date") else "Name"
    descending = str(getattr(options, "extra_networks_card_order", "Ascending")) == "Descending"
    return f"{sort} (desc)" if descending else sort


def _mtime(card: Card) -> float:
    try:
        return Path(card.path).stat().st_mtime if card.path else 0.0
    except OSError:
        return 0.0


def sort_cards(cards: list[Card], sort: str | None = None) -> list[Card]:
    """Order cards by one of SORT_CHOICES (unknown values sort by name); ties fall back to the name."""
    sort = sort if sort in SORT_CHOICES else DEFAULT_SORT
    by_name = sorted(cards, key=lambda c: c.name.lower(), reverse=sort.endswith("(desc)"))
    if sort.startswith("Date modified"):
        return sorted(by_name, key=_mtime, reverse=sort.endswith("(desc)"))
    return by_name


def filter_cards(cards: list[Card], search: str | None, sort: str | None = None) -> list[Card]:
    words = (search or "").lower().split()
    return sort_cards([c for c in cards if all(w in c.search_terms for w in words)], sort)


# -- HTML ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CardLook:
    """How cards are drawn, from A1111's Extra Networks settings."""

    width: int = 0  # px; 0 = the stylesheet's
    height: int = 0
    text_scale: float = 1.0
    show_description: bool = True

    @classmethod
    def from_options(cls, options: Any) -> CardLook:
        def number(key: str, default: float) -> float:
            try:
                value = float(getattr(options, key, default))
            except (TypeError, ValueError):
                return default
            return value if value == value and value >= 0 else default

        return cls(
            width=int(number("extra_networks_card_width", 0)),
            height=int(number("extra_networks_card_height", 0)),
            text_scale=number("extra_networks_card_text_scale", 1.0),
            show_description=bool(getattr(options, "extra_networks_card_show_desc", True)),
        )

    def style(self) -> str:
        parts = [
            f"width: {self.width}px" if self.width else "",
            f"height: {self.height}px" if self.height else "",
        ]
        parts.append(f"font-size: {self.text_scale:g}em" if self.text_scale != 1 else "")
        return "; ".join(p for p in parts if p)


def card_html(card: Card, tabname: str = "txt2img", look: CardLook = CardLook()) -> str:
    """A card in A1111's markup (`.card` > `.button-row`, `.actions` > `.additional` (`.search_term`, `ul`),
    `span.name`, `span.description`), which extensions that add buttons to cards look up."""
    e = partial(html.escape, quote=True)
    if card.preview:
        image = f'<img class="sumi-card-preview" src="{e(card.preview)}" alt="" loading="lazy">'
    else:
        image = '<div class="sumi-card-preview sumi-card-noimage">no preview</div>'
    description = (
        f'<span class="sumi-card-description description">{e(card.description)}</span>'
        if card.description and look.show_description
        else ""
    )
    style = f' style="{e(look.style())}"' if look.style() else ""
    classes = "card sumi-card sumi-card-skipped" if card.skipped else "card sumi-card"
    buttons = card_buttons(card)
    sort_attrs = "".join(f' data-sort-{e(key)}="{e(value)}"' for key, value in card.sort_keys.items())
    return (
        f'<div class="{classes}" tabindex="0" role="button" data-kind="{e(card.kind)}"'
        f' data-name="{e(card.name)}" data-prompt="{e(card.prompt)}" data-checkpoint="{e(card.checkpoint)}"'
        f' data-negative="{"1" if card.negative else ""}" data-tabname="{e(tabname)}"{sort_attrs}'
        f' title="{e(card.path)}"{style}>'
        f'{image}<div class="button-row">{buttons}</div><div class="actions">'
        f'<div class="additional"><span class="search_term search_terms" hidden>'
        f"{e(card.search_term or card.path or card.name)}</span>"
        f"<ul></ul></div>"
        f'<span class="sumi-card-name name">{e(card.name)}</span>{description}</div></div>'
    )


METADATA_KINDS = ("lora", "checkpoints", "hypernetworks")  # files whose metadata A1111 shows (ⓘ)


def card_buttons(card: Card) -> str:
    """A1111 1.6+'s buttons on a card (shown on hover; script.js acts on them, a click on them never
    toggles the card's text): copy the file's path, show the file's metadata, edit the card."""
    e = partial(html.escape, quote=True)
    parts = []
    if card.path:
        parts.append(
            f'<div class="copy-path-button card-button" title="Copy path to clipboard"'
            f' data-clipboard-text="{e(card.path)}"></div>'
        )
    if card.kind in METADATA_KINDS and card.path:
        parts.append('<div class="metadata-button card-button" title="Show internal metadata"></div>')
    if card.kind in CARD_SOURCES:
        parts.append('<div class="edit-button card-button" title="Edit metadata"></div>')
    return "".join(parts)


def cards_html(
    cards: list[Card],
    search: str | None = None,
    tabname: str = "txt2img",
    sort: str | None = None,
    look: CardLook = CardLook(),
    cards_id: str = "",
) -> str:
    """The cards in A1111's `div.extra-network-cards` (with the id `{tabname}_{kind}_cards`, as A1111)."""
    shown = filter_cards(cards, search, sort)
    id_attr = f' id="{html.escape(cards_id, quote=True)}"' if cards_id else ""
    if not shown:
        what = "Nothing matches the search." if (search or "").strip() else "Nothing here yet."
        return f'<div class="sumi-cards extra-network-cards sumi-cards-empty"{id_attr}><div class="sumi-note">{what}</div></div>'
    return (
        f'<div class="sumi-cards extra-network-cards"{id_attr}>'
        + "".join(card_html(c, tabname, look) for c in shown)
        + "</div>"
    )


def render_tab(
    app: App, kind: str, search: str | None = None, tabname: str = "txt2img", sort: str | None = None
) -> str:
    try:
        with _one_listing():
            cards = CARD_SOURCES[kind](app)
            look = CardLook.from_options(app.options)
            shown = shown_cards(app, cards, search)
            page = card_pane(
                app,
                folder_view(app, cards, search, tabname, kind),
                cards_html(
                    shown, search, tabname, sort or default_sort(app.options), look, f"{tabname}_{kind}_cards"
                ),
                tabname,
                kind,
            )
    except Exception as exc:
        log.exception("extra networks tab %s failed", kind)
        page = results.error_html(f"Could not list {kind}: {exc}")
    return tab_notice(app, kind) + page


def shown_cards(app: App, cards: list[Card], search: str | None) -> list[Card]:
    """The cards a search may show: those in hidden folders by opt `extra_networks_hidden_models`."""
    rule = str(getattr(app.options, "extra_networks_hidden_models", "When searched"))
    return [c for c in cards if card_folders.hidden_card_shown(c.hidden, rule, search)]


def folder_buttons(app: App, cards: list[Card], search: str | None, tabname: str, kind: str) -> str:
    """The tab's folder buttons (card_folders), from the folders its cards sit in."""
    return card_folders.buttons_html(
        (c.folder for c in cards if c.folder),
        search,
        tabname,
        kind,
        slash_first=bool(getattr(app.options, "extra_networks_dir_button_function", False)),
        show_hidden=bool(getattr(app.options, "extra_networks_show_hidden_directories", True)),
    )


def folder_view(
    app: App,
    cards: list[Card],
    search: str | None,
    tabname: str,
    kind: str,
    roots: Sequence[Path] | None = None,
) -> str:
    """The tab's folders as A1111's opt `extra_networks_tree_view_style` asks: a tree of its folders and
    files (card_tree; the files a search may show, by `extra_networks_hidden_models`), or a row of folder
    buttons (card_folders). `roots`: the folders the cards were found in (the kind's, by default)."""
    if not tree_style(app):
        return folder_buttons(app, cards, search, tabname, kind)
    roots = card_folders.card_roots(app, kind) if roots is None else roots
    if not cards or not roots:  # A1111: a page naming no folder has no tree
        return ""
    return card_tree.tree_html(
        shown_cards(app, cards, search),
        search,
        tabname,
        kind,
        root_label=roots[0].name,
        slash_first=bool(getattr(app.options, "extra_networks_dir_button_function", False)),
        show_hidden=bool(getattr(app.options, "extra_networks_show_hidden_directories", True)),
    )


def tree_style(app: App) -> bool:
    """Whether A1111's opt `extra_networks_tree_view_style` asks for the tree (else the folder buttons)."""
    return str(getattr(app.options, "extra_networks_tree_view_style", "Dirs")) == "Tree"


def card_pane(app: App, folders: str, cards: str, tabname: str, kind: str) -> str:
    """The folders (when there are any) beside or above the cards, with the button that shows or hides
    them; shown at first by A1111's opt `extra_networks_tree_view_default_enabled` (script.js keeps what
    the user chose across redraws), the tree `extra_networks_tree_view_default_width` pixels wide."""
    if not folders:
        return cards
    shown = bool(getattr(app.options, "extra_networks_tree_view_default_enabled", True))
    width = _tree_width(getattr(app.options, "extra_networks_tree_view_default_width", 180))
    classes = "sumi-card-pane " + ("sumi-pane-tree" if tree_style(app) else "sumi-pane-dirs")
    if not shown:
        classes += " extra-network-dirs-hidden"
    e = partial(html.escape, quote=True)
    toggle = (
        f'<button type="button" class="sumi-folders-toggle extra-network-control--tree-view"'
        f' data-tabname="{e(tabname)}" data-kind="{e(kind)}" title="Show or hide the folders"'
        f' aria-label="Show or hide the folders">{card_tree.FOLDER_ICON}</button>'
    )
    return (
        f'<div class="{classes}" data-tabname="{e(tabname)}" data-kind="{e(kind)}"'
        f' style="--sumi-tree-width: {width}px">{toggle}'
        f'<div class="sumi-pane-folders">{folders}</div><div class="sumi-pane-cards">{cards}</div></div>'
    )


def _tree_width(value: Any) -> int:
    try:
        return min(2048, max(10, int(float(value))))
    except (TypeError, ValueError, OverflowError):  # not a number, NaN, infinity (a hand-edited config)
        return 180


def refresh_tab(
    app: App, kind: str, search: str | None = None, tabname: str = "txt2img", sort: str | None = None
) -> str:
    try:
        refresh_source(app, kind)
    except Exception as exc:
        log.exception("refreshing %s failed", kind)
        return results.error_html(f"Could not refresh {kind}: {exc}")
    return render_tab(app, kind, search, tabname, sort)


# -- editing: sidecar and preview ------------------------------------------------------------------
EDIT_KEYS = ("description", "activation text", "preferred weight", "notes")


def write_user_metadata(path: str | Path, updates: dict[str, Any]) -> tuple[Path, str]:
    """Merge `updates` into the sidecar `<path-without-ext>.json` (other keys kept) and write it
    atomically. A sidecar that is not a JSON object is started over; the second value says so."""
    sidecar = Path(path).with_suffix(".json")
    note = ""
    data: dict[str, Any] = {}
    try:
        loaded = json.loads(sidecar.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            data = loaded
        else:
            note = f"{sidecar.name} did not hold a JSON object; it was started over."
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        note = f"{sidecar.name} was not valid JSON ({exc}); it was started over."
    data.update(updates)
    write_json_atomic(sidecar, data)
    return sidecar, note


def preview_path(path: str | Path) -> Path:
    base = Path(path).with_suffix("")
    return base.with_name(f"{base.name}.preview.png")


def _to_image(item: Any) -> Any:
    """A gallery entry ((media, caption), PIL image, numpy array, file path) as a PIL image."""
    from PIL import Image

    if isinstance(item, (tuple, list)) and item:
        item = item[0]
    if isinstance(item, dict):
        item = item.get("path") or (item.get("image") or {}).get("path")
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, (str, Path)):
        with Image.open(item) as image:
            image.load()
            return image.copy()
    if item is not None and hasattr(item, "shape"):
        return Image.fromarray(item)  # pyright: ignore[reportArgumentType]  # an array
    raise ValueError("no image")


def save_preview(path: str | Path, image: Any) -> Path:
    """Write `image` as the card's `<path-without-ext>.preview.png` (atomically) and return that path."""
    target = preview_path(path)
    image = _to_image(image)
    with temp_beside(target) as tmp:
        image.save(tmp, format="PNG")
        os.replace(tmp, target)
    return target


def card_names(app: App, kind: str) -> list[str]:
    try:
        with _one_listing():
            return sorted((c.name for c in CARD_SOURCES[kind](app)), key=str.lower)
    except Exception as exc:
        log.warning("extra networks %s not listed: %s", kind, exc)
        return []


def _card_path(app: App, kind: str, name: str | None) -> str:
    if not name:
        raise ValueError("Choose a card first.")
    for card in CARD_SOURCES[kind](app):
        if card.name == name:
            if not card.path:
                raise ValueError(f"{name} has no file to write beside.")
            return card.path
    raise ValueError(f"{name} is not in this tab any more; refresh it.")


def load_edit_fields(app: App, kind: str, name: str | None) -> tuple[str, str, float, str]:
    """The editor's fields (description, activation text, preferred weight, notes) for a card."""
    try:
        meta = read_user_metadata(_card_path(app, kind, name))
    except ValueError:
        meta = {}

    def text(key: str) -> str:
        value = meta.get(key)
        return value if isinstance(value, str) else ""

    try:
        weight = float(meta.get("preferred weight") or 0)
    except (TypeError, ValueError):
        weight = 0.0
    return text("description"), text("activation text"), weight, text("notes")


def lora_file_info(app: App, name: str | None) -> str:
    """The LoRA's file (size, date) and what its metadata says about its training, with the tags of its
    training captions and their counts (where its trigger words are found), as A1111's LoRA editor."""
    info = app.loras.find(name) if name else None
    if info is None:
        return ""
    try:
        stat = os.stat(info.path)
    except OSError as exc:
        return _note(f"{info.path.name}: {exc.strerror or exc}", error=True)
    rows = [
        ("File", info.path.name),
        ("Size", f"{stat.st_size / 1024 / 1024:.1f} MB"),
        ("Modified", time.strftime("%Y-%m-%d %H:%M", time.localtime(stat.st_mtime))),
        *training_summary(info.metadata),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    tags = dataset_tags(info.metadata)
    listed = ", ".join(
        f'<span class="sumi-training-tag">{html.escape(tag)} <small>({count})</small></span>'
        for tag, count in tags
    )
    tag_part = (
        f"<p><b>Training tags</b>: {listed}</p>" if tags else "<p>The file records no training tags.</p>"
    )
    return f'<table class="sumi-file-info">{table}</table>{tag_part}'


def _note(text: str, error: bool = False) -> str:
    if error:
        return results.error_html(text)
    return f'<div class="sumi-note">{html.escape(text)}</div>'


def save_edit(
    app: App,
    kind: str,
    name: str | None,
    description: str | None,
    activation: str | None,
    weight: float | None,
    notes: str | None,
    search: str | None = None,
    sort: str | None = None,
    tabname: str = "txt2img",
) -> tuple[str, str]:
    """The editor's Save: write the sidecar, then (status, the tab's cards)."""
    try:
        path = _card_path(app, kind, name)
        try:
            weight_value = float(weight or 0)
        except (TypeError, ValueError):
            weight_value = 0.0
        updates = {
            "description": description or "",
            "activation text": activation or "",
            "preferred weight": weight_value if weight_value == weight_value else 0.0,
            "notes": notes or "",
        }
        sidecar, note = write_user_metadata(path, updates)
    except Exception as exc:
        return _note(f"Not saved: {results.error_message(exc)}", error=True), render_tab(
            app, kind, search, tabname, sort
        )
    status = f"Saved {sidecar.name}." + (f" {note}" if note else "")
    return _note(status), render_tab(app, kind, search, tabname, sort)


def pick_gallery_image(gallery: Any, index: int | None) -> Any:
    """The selected gallery entry, else the first; None when the gallery is empty."""
    items = list(gallery or [])
    if not items:
        return None
    i = index if isinstance(index, int) and 0 <= index < len(items) else 0
    return items[i]


def save_preview_action(
    app: App,
    kind: str,
    name: str | None,
    gallery: Any,
    index: int | None,
    search: str | None = None,
    sort: str | None = None,
    tabname: str = "txt2img",
) -> tuple[str, str]:
    """🖼️: save the selected (else first) gallery image as the card's preview; (status, cards)."""
    try:
        path = _card_path(app, kind, name)
        item = pick_gallery_image(gallery, index)
        if item is None:
            raise ValueError("The gallery is empty; generate an image first.")
        target = save_preview(path, item)
    except Exception as exc:
        return _note(f"Preview not saved: {results.error_message(exc)}", error=True), render_tab(
            app, kind, search, tabname, sort
        )
    status = f"Saved {target.name}."
    shown = find_preview(path)
    if shown is not None and shown != target:
        status += f" {shown.name} is found first and still shows on the card."
    return _note(status), render_tab(app, kind, search, tabname, sort)


def switch_checkpoint(app: App, title: str | None) -> str:
    """A checkpoint card: load that checkpoint now (errors become a message)."""
    title = (title or "").strip()
    if not title:
        return ""
    try:
        app.settings.set({"sd_model_checkpoint": title})
    except Exception as exc:
        return results.error_html(f"Could not switch to {title}: {results.error_message(exc)}")
    return f'<div class="sumi-note">Checkpoint: {html.escape(str(app.options.sd_model_checkpoint))}</div>'


# -- layout ----------------------------------------------------------------------------------------
@dataclass
class CardEditor:
    card: gr.Dropdown
    save_preview: gr.Button
    description: gr.Textbox
    activation: gr.Textbox
    weight: gr.Number
    notes: gr.Textbox
    save: gr.Button
    status: gr.HTML
    accordion: gr.Accordion | None = None
    file_info: gr.HTML | None = None  # LoRA: what the file says about its training
    # a card's 🛠 button: script.js writes the card's name and clicks the hidden button, which opens the
    # editor on that card (outside the accordion, whose contents Gradio draws only once it is opened)
    open_button: gr.Button | None = None


@dataclass
class ExtraNetworksPanel:
    tabs: dict[str, gr.Tab]  # one per kind, in `{tabname}_extra_tabs` after "Generation"
    cards: dict[str, gr.HTML]
    search: dict[str, gr.Textbox]
    refresh: dict[str, gr.Button]
    checkpoint_choice: gr.Textbox
    checkpoint_button: gr.Button
    status: gr.HTML
    sort: dict[str, gr.Dropdown]
    editors: dict[str, CardEditor]


def _editor(app: App, kind: str, tabname: str) -> CardEditor:
    prefix = f"{tabname}_{kind}_extra_edit"
    with gr.Accordion("Edit card", open=False, elem_id=prefix, elem_classes=["sumi-extra-edit"]) as accordion:
        with gr.Row(equal_height=True):
            card = gr.Dropdown(
                choices=card_names(app, kind),
                value=None,
                label="Card",
                elem_id=f"{prefix}_card",
                scale=1,
            )
            save_preview_button = gr.Button(
                "🖼️ Save preview",
                elem_id=f"{tabname}_{kind}_extra_save_preview",
                size="sm",
                scale=0,
                min_width=140,
            )
        description = gr.Textbox(label="Description", lines=2, elem_id=f"{prefix}_description")
        activation = gr.Textbox(label="Activation text", lines=1, elem_id=f"{prefix}_activation_text")
        weight = gr.Number(
            label="Preferred weight (0 = default)", value=0, step=0.05, elem_id=f"{prefix}_preferred_weight"
        )
        notes = gr.Textbox(label="Notes", lines=2, elem_id=f"{prefix}_notes")
        save = gr.Button("Save", elem_id=f"{prefix}_save", size="sm")
        status = gr.HTML("", elem_id=f"{prefix}_status", js_on_load=None)
        file_info = gr.HTML("", elem_id=f"{prefix}_file_info", js_on_load=None) if kind == "lora" else None
    open_button = gr.Button(visible="hidden", elem_id=f"{prefix}_open")
    return CardEditor(
        card,
        save_preview_button,
        description,
        activation,
        weight,
        notes,
        save,
        status,
        accordion,
        file_info,
        open_button,
    )


def ordered_tabs(options: Any) -> list[tuple[str, str]]:
    """TABS in the order of opt `ui_extra_networks_tab_reorder` (A1111: comma-separated names; a tab
    goes by the first entry its lowercased title contains, the others keep their order after them)."""
    wanted = [
        part.lower().strip() for part in str(getattr(options, "ui_extra_networks_tab_reorder", "")).split(",")
    ]

    def rank(tab: tuple[str, str]) -> int:
        title = tab[1].lower()
        return next((i for i, part in enumerate(wanted) if part in title), len(wanted))

    return sorted(TABS, key=rank)


def card_tools(tabname: str, kind: str, sort_value: str) -> tuple[gr.Textbox, gr.Dropdown, gr.Button]:
    """Search, sort and 🔄 above a tab's cards."""
    with gr.Row(equal_height=True, elem_id=f"{tabname}_{kind}_controls", elem_classes=["sumi-extra-tools"]):
        search = gr.Textbox(
            show_label=False,
            label="Search",
            placeholder="Search...",
            container=False,
            lines=1,
            max_lines=1,
            elem_id=f"{tabname}_{kind}_extra_search",
            elem_classes=["search"],
            scale=1,
        )
        sort = gr.Dropdown(
            choices=list(SORT_CHOICES),
            value=sort_value,
            show_label=False,
            label="Sort",
            container=False,
            elem_id=f"{tabname}_{kind}_extra_sort",
            elem_classes=["sumi-extra-sort"],
            scale=0,
            min_width=180,
        )
        refresh = gr.Button(
            "🔄",
            elem_id=f"{tabname}_{kind}_extra_refresh",
            elem_classes=["tool"],
            size="sm",
            min_width=40,
            scale=0,
        )
    return search, sort, refresh


def _checkpoint_switch(tabname: str) -> tuple[gr.HTML, gr.Textbox, gr.Button]:
    """What a checkpoint card's click says, and the hidden pair script.js fills and clicks."""
    status = gr.HTML("", elem_id=f"{tabname}_extra_networks_status", js_on_load=None)
    choice = gr.Textbox(visible="hidden", elem_id=f"{tabname}_extra_checkpoint_choice", label="Checkpoint")
    button = gr.Button(visible="hidden", elem_id=f"{tabname}_extra_checkpoint_switch")
    return status, choice, button


def create_extra_networks(app: App, tabname: str = "txt2img") -> ExtraNetworksPanel:
    """Lay out one tab per kind of card (call inside the tab's `{tabname}_extra_tabs` Tabs, after its
    "Generation" tab, as A1111 1.6+ does) and wire them. Call `wire_gallery` once the results gallery
    exists to enable 🖼️ Save preview."""
    tabs: dict[str, gr.Tab] = {}
    cards: dict[str, gr.HTML] = {}
    search: dict[str, gr.Textbox] = {}
    refresh: dict[str, gr.Button] = {}
    sort: dict[str, gr.Dropdown] = {}
    editors: dict[str, CardEditor] = {}
    for kind, label in ordered_tabs(app.options):
        with gr.Tab(
            label, id=f"{tabname}_{kind}", elem_id=f"{tabname}_{kind}", elem_classes=["extra-page"]
        ) as tabs[kind]:
            search[kind], sort[kind], refresh[kind] = card_tools(tabname, kind, default_sort(app.options))
            cards[kind] = gr.HTML(
                partial(render_tab, app, kind, None, tabname),
                elem_id=f"{tabname}_{kind}_cards_html",  # A1111's; `{tabname}_{kind}_cards` is the cards' div
                elem_classes=["extra-network-pane"],
                js_on_load=None,
            )
            editors[kind] = _editor(app, kind, tabname)
            if kind == "checkpoints":
                status, choice, button = _checkpoint_switch(tabname)
    panel = ExtraNetworksPanel(tabs, cards, search, refresh, choice, button, status, sort, editors)
    _wire(app, panel, tabname)
    return panel


def _refresh_with_names(
    app: App, kind: str, search: str | None, sort: str | None, tabname: str
) -> tuple[str, Any]:
    page = refresh_tab(app, kind, search, tabname, sort)
    return page, gr.update(choices=card_names(app, kind))


def _open_editor(app: App, kind: str, name: str | None) -> tuple[Any, Any]:
    """A card's 🛠: the "Edit card" accordion opens with that card chosen (its fields then load)."""
    names = card_names(app, kind)
    chosen = name if name in names else None
    return gr.update(open=True), gr.update(choices=names, value=chosen)


def _card_choices(app: App, kind: str) -> Any:
    """The editor's card list as the tab lists it now (the page may be older than the last 🔄)."""
    return gr.update(choices=card_names(app, kind))


def _render_view(app: App, kind: str, tabname: str, search: str | None, sort: str | None) -> str:
    return render_tab(app, kind, search, tabname, sort)


def wire_search_and_sort(
    search: gr.Textbox, sort: gr.Dropdown, cards: gr.HTML, render: Callable[..., str]
) -> None:
    """A new text in `search` or choosing a `sort` redraws `cards` with `render(search, sort)`. Typing while
    a search runs (a big library takes a moment) searches again for the text typed last; Gradio's
    default for input events ("once") dropped it and left older cards shown. `change`, not `input`:
    Gradio 6 raises a Textbox's `input` on key presses only, so text pasted with the mouse or written by
    a folder button (card_folders) would not search."""
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    view = [search, sort]
    search.change(render, inputs=view, outputs=cards, trigger_mode="always_last", **quick)
    sort.change(render, inputs=view, outputs=cards, trigger_mode="always_last", **quick)


def _wire(app: App, panel: ExtraNetworksPanel, tabname: str) -> None:
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    for kind in panel.cards:
        out = panel.cards[kind]
        editor = panel.editors[kind]
        view = [panel.search[kind], panel.sort[kind]]
        panel.refresh[kind].click(
            partial(_refresh_with_names, app, kind, tabname=tabname),
            inputs=view,
            outputs=[out, editor.card],
            # a click while a rescan runs (a file dropped in meanwhile) rescans again afterwards;
            # Gradio's default ("once") would drop it and leave the older listing on the page
            trigger_mode="always_last",
            **quick,
        )
        wire_search_and_sort(
            panel.search[kind], panel.sort[kind], out, partial(_render_view, app, kind, tabname)
        )
        if editor.accordion is not None:
            editor.accordion.expand(partial(_card_choices, app, kind), outputs=editor.card, **quick)
        if editor.open_button is not None and editor.accordion is not None:
            editor.open_button.click(
                partial(_open_editor, app, kind),
                inputs=editor.card,
                outputs=[editor.accordion, editor.card],
                js="(x) => window.sumiEditCardName || ''",
                **quick,
            )
        fields = [editor.description, editor.activation, editor.weight, editor.notes]
        editor.card.change(partial(load_edit_fields, app, kind), inputs=editor.card, outputs=fields, **quick)
        if editor.file_info is not None:
            editor.card.change(
                partial(lora_file_info, app), inputs=editor.card, outputs=editor.file_info, **quick
            )
        editor.save.click(
            partial(save_edit, app, kind, tabname=tabname),
            inputs=[editor.card, *fields, *view],
            outputs=[editor.status, out],
            **quick,
        )
    # script.js stores the clicked card's checkpoint title and clicks the hidden button
    panel.checkpoint_button.click(
        partial(switch_checkpoint, app),
        inputs=panel.checkpoint_choice,
        outputs=panel.status,
        js="(x) => window.sumiCheckpointChoice || ''",
        concurrency_limit=None,
        show_progress="minimal",
        api_visibility="undocumented",
    )


def _gallery_selected(evt: gr.SelectData) -> int:
    return evt.index if isinstance(evt.index, int) else 0


def wire_gallery(app: App, panel: ExtraNetworksPanel, gallery: gr.Gallery, tabname: str = "txt2img") -> None:
    """Track the gallery's selected image and let each tab's 🖼️ save it as a card preview."""
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    gallery_index = gr.State(0)
    gallery.select(_gallery_selected, outputs=gallery_index, **quick)
    for kind, editor in panel.editors.items():
        editor.save_preview.click(
            partial(save_preview_action, app, kind, tabname=tabname),
            inputs=[editor.card, gallery, gallery_index, panel.search[kind], panel.sort[kind]],
            outputs=[editor.status, panel.cards[kind]],
            **quick,
        )
