"""A1111's `modules.patches`: replace a function of a module or class, remember the original per
caller, and put it back. Extensions (lycoris, supermerger) patch A1111's own functions with it; what
they patch must exist in Sumi (a missing attribute is an error naming it, unless they ask to add it).

`originals[key][(obj, field)]` is the replaced value, as in A1111.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

originals: defaultdict[str, dict[tuple[Any, str], Any]] = defaultdict(dict)


def patch(key: str, obj: Any, field: str, replacement: Any, add_if_not_exists: bool = False) -> Any:
    """Set `obj.field = replacement`, remembering the value it had under `key` (use `__name__`); the
    original value (None when the field was added). A second patch of the same field by the same key
    is refused: `undo` it first."""
    patch_key = (obj, field)
    if patch_key in originals[key]:
        raise RuntimeError(f"patch for {field} is already applied")
    if not hasattr(obj, field) and not add_if_not_exists:
        raise AttributeError(f"{obj!r} has no attribute {field!r} to patch")
    original_value = getattr(obj, field, None)
    originals[key][patch_key] = original_value
    setattr(obj, field, replacement)
    return original_value


def undo(key: str, obj: Any, field: str) -> None:
    """Put back what `patch(key, obj, field, ...)` replaced (a field it added is removed)."""
    patch_key = (obj, field)
    if patch_key not in originals[key]:
        raise RuntimeError(f"there is no patch for {field} to undo")
    original_value = originals[key].pop(patch_key)
    if original_value is None:
        delattr(obj, field)
    else:
        setattr(obj, field, original_value)


def original(key: str, obj: Any, field: str) -> Any:
    """The value `patch(key, obj, field, ...)` replaced, or None."""
    return originals[key].get((obj, field))


def patch_method(cls: Any, key: str | None = None) -> Callable[[Callable[..., Any]], None]:
    """Decorator: the function replaces the method of `cls` named like it."""

    def decorator(func: Callable[..., Any]) -> None:
        patch(func.__module__ if key is None else key, cls, func.__name__, func)

    return decorator


def add_method(cls: Any, key: str | None = None) -> Callable[[Callable[..., Any]], None]:
    """Decorator: as `patch_method`, and the method may be new to `cls`."""

    def decorator(func: Callable[..., Any]) -> None:
        patch(func.__module__ if key is None else key, cls, func.__name__, func, True)

    return decorator
