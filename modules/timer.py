"""A1111's `modules.timer`: `Timer`, `TimerSubcategory`, and the start-up timer.

`startup_timer` is the running App's start-up timer (what the console's "Startup time" line, Settings >
Startup profile and `/internal/profile-startup` show), so an extension's `startup_timer.record("...")`
lands in the profile under the script that was loading; before an App runs it is a timer of its own.
`startup_record` is the profile's `dump()` once the server is built (None before).
"""

from __future__ import annotations

from modules import shared
from modules.sumi.util.timer import Timer, TimerSubcategory

_before_the_app = Timer()


def __getattr__(name: str) -> object:
    app = shared.running_app()
    if name == "startup_timer":
        return app.startup_timer if app is not None else _before_the_app
    if name == "startup_record":
        return app.startup_record if app is not None else None
    raise AttributeError(f"module 'modules.timer' has no attribute {name!r}")


__all__ = ["Timer", "TimerSubcategory"]  # and startup_timer, startup_record (above)
