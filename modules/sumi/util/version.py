"""Sumi's version, written into infotexts (`Version: sumi-0.1.0`), and installed packages' versions."""

from __future__ import annotations

import importlib.metadata

VERSION = "sumi-0.1.0"


def installed_version(distribution: str) -> str | None:
    """The installed version of a pip distribution ("2.13.0+cpu"), None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
