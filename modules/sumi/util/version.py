"""Sumi's version, written into infotexts (`Version: sumi-0.1.0`), and installed packages' versions."""

from __future__ import annotations

import importlib.metadata

VERSION = "sumi-0.1.0"
# The A1111 release whose extension API Sumi provides: `launch.git_tag()`, and the version link of the
# page's footer, which extensions read to pick their code path (Civitai Helper: 1.8+'s card toolbars).
A1111_API_VERSION = "v1.10.1"


def installed_version(distribution: str) -> str | None:
    """The installed version of a pip distribution ("2.13.0+cpu"), None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
