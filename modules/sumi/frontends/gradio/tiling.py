"""The "Tiling" checkbox of the txt2img and img2img tabs (A1111's `{tab}_tiling`).

Its value on page load is the `tiling` setting; the job tiles when it is ticked (services.jobs.tiling).
↙️ ticks it for an infotext with `Tiling: True` and unticks it for one without.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

if TYPE_CHECKING:
    from modules.sumi.app import App


def create_tiling(app: App, c: dict[str, Any], mk: Any, tabname: str) -> None:
    """Place the checkbox as `c["tiling"]`; `mk` is the tab's ComponentHooks.make."""
    c["tiling"] = mk(
        gr.Checkbox,
        value=lambda: bool(app.options.tiling),
        label="Tiling",
        info="seamless texture: the picture wraps around its edges",
        elem_id=f"{tabname}_tiling",
    )
