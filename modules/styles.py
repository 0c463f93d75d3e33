"""A1111's `modules.styles`: prompt styles kept in `styles.csv` (the running App's are
`shared.prompt_styles`). The implementation is `modules.sumi.services.settings.styles`."""

from __future__ import annotations

from modules.sumi.services.settings.styles import (
    PromptStyle,
    StyleDatabase,
    apply_styles_to_prompt,
    extract_original_prompts,
    extract_style_text_from_prompt,
    merge_prompts,
)

__all__ = [
    "PromptStyle",
    "StyleDatabase",
    "apply_styles_to_prompt",
    "extract_original_prompts",
    "extract_style_text_from_prompt",
    "merge_prompts",
]
