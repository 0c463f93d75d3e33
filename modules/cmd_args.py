"""A1111's `modules.cmd_args`: the command-line parser, with A1111's flag names.

Sumi's flags are built by `modules.sumi.services.settings.flags`; `parser` here is that parser
without the flags extensions add in `preload.py` (those are on `shared.cmd_opts`).
"""

from __future__ import annotations

import argparse
import functools

from modules.sumi.services.settings.flags import build_parser, parse_args

__all__ = ["build_parser", "parse_args"]


@functools.cache
def _a1111_parser() -> argparse.ArgumentParser:
    return build_parser()


def __getattr__(name: str) -> object:
    """A1111's module-level `parser` (extensions read e.g. `parser.description`)."""
    if name == "parser":
        return _a1111_parser()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
