"""The Refiner accordion of txt2img and img2img (A1111 1.6+'s built-in script "Refiner"): enable, the
refiner checkpoint with its 🔄, and "Switch at"; A1111's element ids (`txt2img_enable`,
`txt2img_checkpoint`, `txt2img_checkpoint_refresh`, `txt2img_switch_at`) and infotext fields."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.services.jobs.refiner import NO_REFINER

if TYPE_CHECKING:
    from modules.sumi.app import App

NONE = "None"
DEFAULT_SWITCH_AT = 0.8
# Txt2ImgValues / Img2ImgValues field names of the three controls
FIELDS = ("refiner_enabled", "refiner_checkpoint", "refiner_switch_at")


def checkpoint_choices(app: App) -> list[tuple[str, str]]:
    """(label, value): titles show the hash once known; the value is the name, which stays the same."""
    return [(NONE, NONE), *((info.title, info.name) for info in app.checkpoints.list())]


def create_refiner(app: App, c: dict[str, Any], mk: Any, tab: str = "txt2img") -> gr.Accordion:
    """Lay out the accordion (in a settings column) and put its controls in `c` under FIELDS."""
    with gr.Accordion("Refiner", open=False, elem_id=f"{tab}_enable") as accordion:
        c["refiner_enabled"] = mk(gr.Checkbox, value=False, label="Refiner", elem_id=f"{tab}_enable-checkbox")
        with gr.Row(equal_height=True):
            c["refiner_checkpoint"] = mk(
                gr.Dropdown,
                checkpoint_choices(app),
                value=NONE,
                label="Checkpoint",
                info="(use model of same architecture)",
                elem_id=f"{tab}_checkpoint",
            )
            refresh = gr.Button(
                "🔄",
                elem_id=f"{tab}_checkpoint_refresh",
                elem_classes=["tool"],
                size="sm",
                scale=0,
                min_width=40,
            )
            c["refiner_switch_at"] = mk(
                gr.Slider,
                0.01,
                1.0,
                value=DEFAULT_SWITCH_AT,
                step=0.01,
                label="Switch at",
                elem_id=f"{tab}_switch_at",
                info="fraction of sampling steps when the switch to refiner model should happen; "
                "1=never, 0.5=switch in the middle of generation",
            )
    refresh.click(
        partial(_refresh, app),
        outputs=c["refiner_checkpoint"],
        trigger_mode="always_last",
        show_progress="hidden",
        concurrency_limit=None,
        api_visibility="undocumented",
    )
    return accordion


def _refresh(app: App) -> dict[str, Any]:
    app.models.refresh()
    return gr.update(choices=checkpoint_choices(app))


def job_fields(enabled: Any, checkpoint: Any, switch_at: Any) -> dict[str, Any]:
    """The job's `refiner_checkpoint` / `refiner_switch_at` from the controls (A1111's script `setup`)."""
    if not enabled or checkpoint in NO_REFINER:
        return {"refiner_checkpoint": None, "refiner_switch_at": None}
    return {"refiner_checkpoint": str(checkpoint), "refiner_switch_at": float(switch_at)}


def paste_fields(app: App, c: dict[str, Any]) -> list[tuple[Any, Any]]:
    """A1111's `infotext_fields` of the script: ticked when the infotext names a refiner, the checkpoint
    it names (unchanged when no file matches), and the switch fraction."""
    if "refiner_enabled" not in c:
        return []

    def checkpoint(params: dict[str, Any]) -> str | None:
        info = app.checkpoints.match(params.get("Refiner"))
        return None if info is None else info.name

    return [
        (c["refiner_enabled"], lambda params: "Refiner" in params),
        (c["refiner_checkpoint"], checkpoint),
        (c["refiner_switch_at"], "Refiner switch at"),
    ]
