"""The folder buttons above a card tab (A1111's "Dirs" view) and where each card sits in its folders.

People keep big libraries in sub-folders (`models/Lora/characters/anime/...`). Above the cards, one button
per folder that holds a card (and each folder above it), "all" first; a click writes the folder into the
tab's search box, so the cards shown are those whose path has it, and a second click on the chosen
folder clears the search (A1111 1.10). With A1111's `extra_networks_dir_button_function` the buttons read
"/characters" and search for "/characters/", which only the cards inside that folder carry, not the ones
whose name merely contains the word. A card's search terms are its name and its path under the folder it was
found in ("/characters/anime/x.safetensors"), as A1111's, not the absolute path (a search for "models"
found every card).

Folders whose name starts with "." are hidden: their buttons show only with
`extra_networks_show_hidden_directories`, and the cards inside them follow `extra_networks_hidden_models`
(Always / When searched: only while the search has 4 characters or more / Never), as A1111. Whether such
files are listed at all is `list_hidden_files`, read by the registries."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from modules.sumi.services.models.checkpoints import natural_sort_key

HIDDEN_SEARCH_LENGTH = 4  # A1111: "When searched" shows hidden cards for searches this long or longer


def relative_path(path: str, roots: Sequence[str | Path]) -> str | None:
    """`path` under the first of `roots` holding it, "/"-separated; None when none does."""
    if not path:
        return None
    candidates = list(dict.fromkeys((Path(path), _resolved(Path(path)))))
    for root in roots:
        for base in dict.fromkeys((Path(root), _resolved(Path(root)))):
            for candidate in candidates:
                try:
                    return candidate.relative_to(base).as_posix()
                except ValueError:
                    continue
    return None


def a1111_search_term(path: str, roots: Sequence[str | Path]) -> str:
    """A1111 1.8+'s `search_terms_from_path`: the path from the folder above the model folder holding it
    ("Lora/characters/x.safetensors"), which card scripts (Civitai Helper) read from `span.search_term` to
    find the file's sidecars; the path as it is for a file outside every model folder."""
    for root in roots:
        relative = relative_path(path, [root])
        if relative is not None:
            return f"{Path(root).name}/{relative}"
    return path


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def folder_of(relative: str | None) -> str:
    """The folder part of a relative path ("" for a file directly in its root or outside every root)."""
    if not relative or "/" not in relative:
        return ""
    return relative.rsplit("/", 1)[0]


def is_hidden(folder: str) -> bool:
    """A folder is hidden when it, or a folder above it, has a name starting with "."."""
    return any(part.startswith(".") for part in folder.split("/") if part)


def search_terms(name: str, relative: str | None, path: str) -> str:
    """What a search looks in: the name, and the path under its root with a leading "/" (A1111's), else
    the path as it is."""
    where = f"/{relative}" if relative is not None else path
    return f"{name} {where}".lower()


def hidden_card_shown(hidden: bool, rule: str, search: str | None) -> bool:
    """Whether a card in a hidden folder is shown, by opt `extra_networks_hidden_models`."""
    if not hidden or rule == "Always":
        return True
    if rule == "Never":
        return False
    return len((search or "").strip()) >= HIDDEN_SEARCH_LENGTH


def with_ancestors(folders: Iterable[str]) -> list[str]:
    """Every folder and each folder above it, once, in natural order ("" left out)."""
    found: set[str] = set()
    for folder in folders:
        parts = [p for p in folder.split("/") if p]
        for depth in range(1, len(parts) + 1):
            found.add("/".join(parts[:depth]))
    return sorted(found, key=natural_sort_key)


def button_search(folder: str, slash_first: bool) -> str:
    """What a folder's button writes into the search box: the folder, or with A1111's '/' option
    "/folder/", which only the paths inside that folder contain (not "/folder_x.safetensors")."""
    return f"/{folder}/" if slash_first else folder


def buttons_html(
    folders: Iterable[str],
    search: str | None,
    tabname: str,
    kind: str,
    *,
    slash_first: bool = False,
    show_hidden: bool = True,
) -> str:
    """The row of folder buttons (`#{tabname}_{kind}_dirs`), "" when every card sits in a root. The button
    whose folder is the search is marked selected (`data-selected`, class `selected`)."""
    shown = [f for f in with_ancestors(folders) if show_hidden or not is_hidden(f)]
    if not shown:
        return ""
    current = (search or "").strip().lower()
    e = html.escape
    data = f'data-tabname="{e(tabname)}" data-kind="{e(kind)}"'
    base = "lg secondary gradio-button custom-button extra-network-dirs-view-button sumi-dir"
    parts = [f'<button type="button" class="{base} search-all" {data} data-path="">all</button>']
    for folder in shown:
        path = button_search(folder, slash_first)
        label = f"/{folder}" if slash_first else folder
        selected = path.lower() == current
        mark = ' data-selected=""' if selected else ""
        classes = f"{base} selected" if selected else base
        parts.append(
            f'<button type="button" class="{classes}" {data} data-path="{e(path)}"{mark}>{e(label)}</button>'
        )
    return (
        f'<div class="extra-network-dirs sumi-dirs" id="{e(tabname)}_{e(kind)}_dirs">{"".join(parts)}</div>'
    )


def card_roots(app: object, kind: str) -> list[Path]:
    """The folders a tab's files are found in (the roots of their relative paths)."""
    source = {
        "lora": ("loras", "folders"),
        "hypernetworks": ("hypernetworks", "folders"),
        "textual_inversion": ("embeddings", "folders"),
        "checkpoints": ("checkpoints", "ckpt_dirs"),
    }.get(kind)
    if source is None:
        return []
    registry = getattr(app, source[0], None)
    return [Path(os.fspath(f)) for f in getattr(registry, source[1], None) or []]
