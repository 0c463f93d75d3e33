"""A1111's `modules.shared` for extensions: the one place that reads the running App.

`opts`, `cmd_opts`, `state` and `sd_model` resolve to the App's objects on access, so there is no
copy of state here to go stale. Sumi's own code receives what it needs explicitly instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modules.app import App

_app: App | None = None


def set_app(app: App | None) -> None:
    """Called once by webui.py (and by tests) to make the App visible to extensions."""
    global _app
    _app = app


def app() -> App:
    if _app is None:
        raise RuntimeError("Sumi's App is not running (modules.shared.set_app was not called)")
    return _app


def __getattr__(name: str) -> Any:
    resolvers = {
        "opts": lambda a: a.options,
        "cmd_opts": lambda a: a.args,
        "state": lambda a: a.state,
        "sd_model": lambda a: a.models.active.sd if a.models.active else None,
        "device": lambda a: a.devices.device,
        "prompt_styles": lambda a: a.styles,
    }
    if name in resolvers:
        return resolvers[name](app())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
