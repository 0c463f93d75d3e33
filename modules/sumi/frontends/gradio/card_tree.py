"""A1111's "Tree" view of a card tab: its folders and files as a tree beside the cards.

With `extra_networks_tree_view_style` = "Tree" a tab shows, left of its cards, the model folder ("Lora")
with every sub-folder holding a card and every file in it, folders first, each level in natural order
("styles 2" before "styles 10"), in A1111 1.10's markup (`ul.tree-list`, `li.tree-list-item`,
`div.tree-list-content-dir` / `-file`) so themes and extensions that style or read it find it. A click on
a folder's row writes the folder into the tab's search box (as a folder button of the "Dirs" view does)
and opens it; a click on the chosen, open folder clears the search; its chevron only opens or closes it.
A click on a file does what a click on its card does (its text into the prompt, or the checkpoint
loaded). The server draws the tree again with the cards on every search, with the chosen folder and the
folders above it open; script.js keeps the folders a user opened open across those redraws.
`extra_networks_tree_view_default_width` is the tree's width (the user can drag it wider)."""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from modules.sumi.frontends.gradio.card_folders import button_search, is_hidden
from modules.sumi.services.models.checkpoints import natural_sort_key

# A1111 draws 🗀 and 🗎, which many fonts lack (a box is drawn instead): small inline pictures here
FOLDER_ICON = (
    '<svg class="sumi-tree-icon" viewBox="0 0 24 24" width="1em" height="1em" fill="none"'
    ' stroke="currentColor" stroke-width="2" aria-hidden="true">'
    '<path d="M3 6a1 1 0 0 1 1-1h5l2 2h9a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1z"/></svg>'
)
FILE_ICON = (
    '<svg class="sumi-tree-icon" viewBox="0 0 24 24" width="1em" height="1em" fill="none"'
    ' stroke="currentColor" stroke-width="2" aria-hidden="true">'
    '<path d="M6 3h8l4 4v14H6z"/><path d="M14 3v4h4"/></svg>'
)


class TreeCard(Protocol):
    """What the tree reads of a card (extra_networks.Card)."""

    kind: str
    name: str
    path: str
    prompt: str
    checkpoint: str
    negative: bool
    folder: str


@dataclass
class _Folder:
    folders: dict[str, _Folder] = field(default_factory=dict)
    files: list[TreeCard] = field(default_factory=list)


def _tree(cards: Iterable[TreeCard], show_hidden: bool) -> _Folder:
    root = _Folder()
    for card in cards:
        if not show_hidden and is_hidden(card.folder):
            continue
        node = root
        for part in (p for p in card.folder.split("/") if p):
            node = node.folders.setdefault(part, _Folder())
        node.files.append(card)
    return root


@dataclass(frozen=True)
class _Context:
    tabname: str
    kind: str
    search: str  # the search box, lower-cased and stripped
    slash_first: bool

    def data(self) -> str:
        return f'data-tabname="{html.escape(self.tabname)}" data-kind="{html.escape(self.kind)}"'


def tree_html(
    cards: Iterable[TreeCard],
    search: str | None,
    tabname: str,
    kind: str,
    *,
    root_label: str,
    slash_first: bool = False,
    show_hidden: bool = True,
) -> str:
    """The tree (`#{tabname}_{kind}_tree`): `root_label` (the model folder's name) open, holding every
    card's folders and files. A folder whose search text is the search is chosen (`data-selected`) and it
    and the folders above it are open."""
    ctx = _Context(tabname, kind, (search or "").strip().lower(), slash_first)
    root = _tree(cards, show_hidden)
    items = _folder_item(ctx, "", root_label, root, opened=True)
    return (
        f'<div class="extra-network-tree sumi-tree" id="{html.escape(tabname)}_{html.escape(kind)}_tree">'
        f'<ul class="tree-list tree-list--tree">{items}</ul></div>'
    )


def _folder_item(ctx: _Context, folder: str, label: str, node: _Folder, *, opened: bool = False) -> str:
    search = button_search(folder, ctx.slash_first) if folder else ""
    selected = bool(folder) and search.lower() == ctx.search
    children = [
        _folder_item(ctx, f"{folder}/{name}" if folder else name, name, child)
        for name, child in sorted(node.folders.items(), key=lambda item: natural_sort_key(item[0]))
    ]
    children += [_file_item(ctx, card) for card in sorted(node.files, key=lambda c: natural_sort_key(c.name))]
    is_open = opened or selected or _holds_choice(ctx, folder)
    marks = (' data-selected=""' if selected else "") + (' data-expanded=""' if is_open else "")
    e = html.escape
    row = (
        f'<div class="tree-list-content tree-list-content-dir sumi-tree-dir" role="button" tabindex="0"'
        f' {ctx.data()} data-path="{e(search)}" data-folder="{e(folder)}"{marks}>'
        '<span class="tree-list-item-action tree-list-item-action--leading">'
        '<i class="tree-list-item-action-chevron"></i></span>'
        f'<span class="tree-list-item-visual tree-list-item-visual--leading">{FOLDER_ICON}</span>'
        f'<span class="tree-list-item-label tree-list-item-label--truncate">{e(label)}</span></div>'
    )
    hidden = "" if is_open else " hidden"
    return (
        '<li class="tree-list-item tree-list-item--has-subitem" data-tree-entry-type="dir">'
        f'{row}<ul class="tree-list tree-list--subgroup"{hidden}>{"".join(children)}</ul></li>'
    )


def _holds_choice(ctx: _Context, folder: str) -> bool:
    """Whether the chosen folder (the search, when it is a folder's search text) lies inside `folder`."""
    if not folder or not ctx.search:
        return False
    chosen = ctx.search.strip("/")
    return chosen.startswith(folder.lower() + "/")


def _file_item(ctx: _Context, card: TreeCard) -> str:
    e = html.escape
    entry = (
        f'<div class="tree-list-content tree-list-content-file sumi-tree-file" role="button" tabindex="0"'
        f' data-tabname="{e(ctx.tabname)}" data-kind="{e(card.kind)}" data-name="{e(card.name)}"'
        f' data-prompt="{e(card.prompt)}" data-checkpoint="{e(card.checkpoint)}"'
        f' data-negative="{"1" if card.negative else ""}" title="{e(card.path)}">'
        f'<span class="tree-list-item-visual tree-list-item-visual--leading">{FILE_ICON}</span>'
        f'<span class="tree-list-item-label tree-list-item-label--truncate">{e(card.name)}</span></div>'
    )
    return f'<li class="tree-list-item tree-list-item--subitem" data-tree-entry-type="file">{entry}</li>'
