"""A1111's `modules.ui`: the UI helpers extensions import from it.

Sumi's web UI is `modules.sumi.frontends.gradio` (`build_ui(app)`); the helpers below are A1111's,
from `modules.ui_common` and `modules.call_queue`.
"""

from __future__ import annotations

from typing import Any

from modules.call_queue import wrap_gradio_call, wrap_gradio_gpu_call, wrap_queued_call
from modules.ui_common import (
    create_output_panel,
    create_override_settings_dropdown,
    create_refresh_button,
    create_sampler_and_steps_selection,
    detect_image_size_symbol,
    gr_show,
    ordered_ui_categories,
    plaintext_to_html,
    resize_from_to_html,
    switch_values_symbol,
)

__all__ = [
    "create_output_panel",
    "create_override_settings_dropdown",
    "create_refresh_button",
    "create_sampler_and_steps_selection",
    "detect_image_size_symbol",
    "gr_show",
    "ordered_ui_categories",
    "plaintext_to_html",
    "resize_from_to_html",
    "switch_values_symbol",
    "versions_html",
    "wrap_gradio_call",
    "wrap_gradio_gpu_call",
    "wrap_queued_call",
]


def versions_html() -> str:
    """A1111's footer versions line (version, python, torch, gradio, checkpoint hash), as the page's."""
    from modules import shared
    from modules.sumi.frontends.gradio.footer import versions_html as footer_versions

    return footer_versions(shared.app())


def __getattr__(name: str) -> Any:
    """`txt2img_paste_fields` / `img2img_paste_fields`, which A1111's create_ui left at module level in
    its older versions (Civitai Helper takes the prompt boxes from them): the (component, infotext key)
    pairs the tab registered, prompt and negative prompt first; empty before the page is built."""
    if name in ("txt2img_paste_fields", "img2img_paste_fields"):
        from modules import infotext_utils

        return list(infotext_utils.paste_fields.get(name.split("_")[0], {}).get("fields", []))
    raise AttributeError(f"module 'modules.ui' has no attribute {name!r}")
