"""Editing captions as comma-separated tags (the Train tab's Dataset panel): a tag is one
comma-separated part, compared with its surrounding spaces stripped; a caption is written back with
", " between its tags."""

from __future__ import annotations


def split_tags(caption: str) -> list[str]:
    return [tag.strip() for tag in caption.split(",") if tag.strip()]


def join_tags(tags: list[str]) -> str:
    return ", ".join(tags)


def add_tag(caption: str, tag: str, *, first: bool = True) -> str:
    """`caption` with `tag` at its start (or end) unless it already has it."""
    tags, tag = split_tags(caption), tag.strip()
    if not tag or tag in tags:
        return caption
    return join_tags([tag, *tags] if first else [*tags, tag])


def remove_tag(caption: str, tag: str) -> str:
    """`caption` without `tag` (every occurrence); unchanged when it does not have it."""
    tags = split_tags(caption)
    kept = [t for t in tags if t != tag.strip()]
    return caption if len(kept) == len(tags) else join_tags(kept)


def replace_text(caption: str, find: str, replacement: str) -> str:
    """Plain text replacement (not a pattern); the result tidied into tags when it changed."""
    if not find or find not in caption:
        return caption
    return join_tags(split_tags(caption.replace(find, replacement)))
