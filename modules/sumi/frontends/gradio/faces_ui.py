"""The "Restore faces" checkbox of txt2img and img2img (A1111's `<tab>_restore_faces`); it starts at the
setting `face_restoration`. A job that asks for it with no restorer installed shows the warning under
the images (the job's warnings), naming the file to put in models/GFPGAN or models/Codeformer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

if TYPE_CHECKING:
    from modules.sumi.app import App


def restore_faces_checkbox(app: App, c: dict[str, Any], mk: Any, tabname: str) -> None:
    installed = ", ".join(app.faces.names()) or "none installed: put GFPGANv1.4.pth in models/GFPGAN"
    with gr.Row(elem_id=f"{tabname}_checkboxes", elem_classes="checkboxes-row"):
        c["restore_faces"] = mk(
            gr.Checkbox,
            label="Restore faces",
            value=bool(app.options.face_restoration),
            elem_id=f"{tabname}_restore_faces",
            info=f"GFPGAN / CodeFormer ({installed}); Settings > Face restoration picks the model",
        )
