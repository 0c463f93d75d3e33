"""Fields of A1111's txt2img/img2img requests that Sumi accepts but does not honour, each with its reason.

Nothing is ignored silently (issue 13): a job whose processing object sets one of these fields to a value
that would change something in A1111 gets a warning naming the field (the API's `info.warnings`, the
UI's message area), whoever made the job (the API, the UI, a script). Values that change nothing in
A1111 either (None, A1111's setting default) give no warning. A field leaves this table the day it is
honoured; tests/frontends/http/test_request_fields_walk.py checks every request field is one or the other.

Unknown request fields (not in A1111's models) are ignored as A1111 ignores them (clients send extra
keys), and the API lists them in one warning (`unknown_fields_warning`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IgnoredField:
    """A field Sumi does not honour: why, and which values are harmless (A1111 does nothing with them)."""

    name: str
    reason: str
    harmless: Callable[[Any], bool]


def _empty(value: Any) -> bool:
    return not value


IGNORED_FIELDS: dict[str, IgnoredField] = {
    entry.name: entry
    for entry in (
        IgnoredField(
            "comments",
            "A1111 clears 'comments' when the job is made (scripts add comments while it runs); it is not "
            "part of the result",
            _empty,
        ),
    )
}


def warnings_for(p: Any, table: dict[str, IgnoredField] = IGNORED_FIELDS) -> list[str]:
    """One warning per field of `p` in the table whose value is not harmless."""
    found = []
    for entry in table.values():
        value = getattr(p, entry.name, None)
        if not entry.harmless(value):
            found.append(f"{entry.name}={value!r} is not honoured by Sumi and was ignored: {entry.reason}")
    return found


def unknown_fields_warning(names: Iterable[str]) -> list[str]:
    """The API's note on request keys that are no field of A1111's model (ignored, as A1111 does)."""
    unknown = sorted(names)
    if not unknown:
        return []
    return [f"Unknown request fields ignored (A1111 ignores them too): {', '.join(unknown)}"]
