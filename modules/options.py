"""A1111's `modules.options`: `OptionInfo`, `Options`, `options_section` and the option categories.

Settings are Sumi's `modules.sumi.services.settings.options`; the running App's `Options` object is
`shared.opts`.
"""

from __future__ import annotations

from modules.sumi.services.settings.options import (
    OptionHTML,
    OptionInfo,
    Options,
    OptionsCategories,
    OptionsCategory,
    categories,
    options_section,
)

__all__ = [
    "OptionHTML",
    "OptionInfo",
    "Options",
    "OptionsCategories",
    "OptionsCategory",
    "categories",
    "options_section",
]
