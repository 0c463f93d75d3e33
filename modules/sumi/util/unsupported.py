"""Stand-ins for A1111 features Sumi does not have, so extensions that import them still load.

Importing or reading such a name always works; calling it raises `NotSupportedInSumi` (a
`NotImplementedError`) that says what is missing, which the extension's error handling or Sumi's
report of the failing callback shows to the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn


class NotSupportedInSumi(NotImplementedError):
    """An A1111 feature that Sumi does not provide was called."""


def not_supported(what: str, hint: str = "") -> NoReturn:
    raise NotSupportedInSumi(f"{what} is not supported in Sumi" + (f": {hint}" if hint else ""))


def stand_in(what: str, hint: str = "") -> Callable[..., NoReturn]:
    """A function that raises `NotSupportedInSumi` naming `what` when called."""

    def call(*args: Any, **kwargs: Any) -> NoReturn:
        not_supported(what, hint)

    call.__name__ = call.__qualname__ = what.rsplit(".", 1)[-1].rstrip("()")
    call.__doc__ = f"Stand-in: {what} is not supported in Sumi."
    return call


class Unsupported:
    """An object (A1111's `shared.interrogator`, `deepbooru.model`, ...) every method of which raises.

    Attributes read from it are stand-ins too, so `obj.load()` fails with a clear message instead of
    an AttributeError on None; it is falsy, so `if shared.interrogator:` checks see it is missing."""

    def __init__(self, what: str, hint: str = "") -> None:
        self._what = what
        self._hint = hint

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        if name.startswith("__"):
            raise AttributeError(name)
        return stand_in(f"{self._what}.{name}()", self._hint)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        not_supported(self._what, self._hint)

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<{self._what}: not supported in Sumi>"
