"""The txt2img tab's "Hires. fix" accordion (A1111's controls, element ids and defaults), its values on
the job, the "from WxH to W'xH'" line, and the ✨ Upscale job built from a gallery image.

The accordion's checkbox is `enable_hr`; the checkpoint/sampler row shows with the setting
`hires_fix_show_sampler`, the prompts row with `hires_fix_show_prompts` (A1111). "Hires CFG Scale" 0
means the job's CFG scale.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, cast

import gradio as gr
from PIL import Image

from modules.sumi.engine.sampling.samplers import SAMPLERS, SCHEDULE_TYPES
from modules.sumi.engine.upscalers.latent import DEFAULT_LATENT_MODE
from modules.sumi.services.jobs import hires
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img

if TYPE_CHECKING:
    from modules.sumi.app import App


@dataclass
class HiresValues:
    """The accordion's values, in the order of Generate's inputs after the tab's own."""

    enable_hr: bool = False
    hr_upscaler: str = DEFAULT_LATENT_MODE
    hr_second_pass_steps: float = 0
    denoising_strength: float = 0.7
    hr_scale: float = 2.0
    hr_resize_x: float = 0
    hr_resize_y: float = 0
    hr_checkpoint_name: str = hires.USE_SAME_CHECKPOINT
    hr_sampler_name: str = hires.USE_SAME_SAMPLER
    hr_scheduler: str = hires.USE_SAME_SCHEDULER
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    hr_cfg: float = 0.0


HIRES_FIELDS = tuple(f.name for f in fields(HiresValues))


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def apply_values(p: StableDiffusionProcessingTxt2Img, v: HiresValues) -> StableDiffusionProcessingTxt2Img:
    """Put the accordion's values on the job ("Use same ..." and a CFG of 0 become None, as A1111's UI)."""
    p.enable_hr = bool(v.enable_hr)
    p.hr_upscaler = v.hr_upscaler or None
    p.hr_second_pass_steps = _int(v.hr_second_pass_steps or 0)
    p.denoising_strength = float(v.denoising_strength) if v.denoising_strength is not None else None
    p.hr_scale = float(v.hr_scale or 0)
    p.hr_resize_x, p.hr_resize_y = _int(v.hr_resize_x or 0), _int(v.hr_resize_y or 0)
    p.hr_checkpoint_name = hires._same(v.hr_checkpoint_name, hires.USE_SAME_CHECKPOINT)  # noqa: SLF001
    p.hr_sampler_name = hires._same(v.hr_sampler_name, hires.USE_SAME_SAMPLER)  # noqa: SLF001
    p.hr_scheduler = hires._same(v.hr_scheduler, hires.USE_SAME_SCHEDULER)  # noqa: SLF001
    p.hr_prompt, p.hr_negative_prompt = v.hr_prompt or "", v.hr_negative_prompt or ""
    p.hr_cfg = float(v.hr_cfg) if v.hr_cfg else None
    return p


def resolution_html(enable: bool, width: Any, height: Any, scale: Any, resize_x: Any, resize_y: Any) -> str:
    """A1111's "Upscaled resolution" line: "from WxH to W'xH'" ("" when Hires. fix is off)."""
    if not enable:
        return ""
    try:
        p = StableDiffusionProcessingTxt2Img(
            width=int(width), height=int(height), enable_hr=True, hr_scale=float(scale)
        )
        p.hr_resize_x, p.hr_resize_y = int(resize_x or 0), int(resize_y or 0)
        p.calculate_target_resolution(False)
    except (TypeError, ValueError, ZeroDivisionError):
        return ""
    to_x, to_y = p.hr_resize_x or p.hr_upscale_to_x, p.hr_resize_y or p.hr_upscale_to_y
    return (
        f"from <span class='resolution'>{p.width}x{p.height}</span> "
        f"to <span class='resolution'>{to_x}x{to_y}</span>"
    )


def upscaler_choices(app: App) -> list[str]:
    """Latent modes first, then the registry's upscalers (A1111's list)."""
    return [*app.upscalers.latent_modes(), *app.upscalers.names()]


def create_hires(app: App, c: dict[str, Any], mk: Any, tabname: str = "txt2img") -> gr.HTML:
    """The accordion (call inside the settings column); its controls go into `c` under HIRES_FIELDS.
    Returns the resolution line."""
    o = app.options
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{tabname}_hr"):
        with gr.Row(elem_id=f"{tabname}_hires_fix_header", equal_height=True):
            c["enable_hr"] = mk(gr.Checkbox, label="Enable", value=False, elem_id=f"{tabname}_hr-checkbox")
            final = mk(gr.HTML, "", elem_id="txtimg_hr_finalres", js_on_load=None)
        with gr.Row(elem_id=f"{tabname}_hires_fix_row1"):
            c["hr_upscaler"] = mk(
                gr.Dropdown,
                upscaler_choices(app),
                value=DEFAULT_LATENT_MODE,
                label="Upscaler",
                elem_id=f"{tabname}_hr_upscaler",
                allow_custom_value=True,  # a pasted upscaler this install lacks: the job says so
            )
            c["hr_second_pass_steps"] = mk(
                gr.Slider, 0, 150, value=0, step=1, label="Hires steps", elem_id=f"{tabname}_hires_steps"
            )
            c["denoising_strength"] = mk(
                gr.Slider,
                0.0,
                1.0,
                value=0.7,
                step=0.01,
                label="Denoising strength",
                elem_id=f"{tabname}_denoising_strength",
            )
        with gr.Row(elem_id=f"{tabname}_hires_fix_row2"):
            c["hr_scale"] = mk(
                gr.Slider, 1.0, 4.0, value=2.0, step=0.05, label="Upscale by", elem_id=f"{tabname}_hr_scale"
            )
            c["hr_resize_x"] = mk(
                gr.Slider, 0, 2048, value=0, step=8, label="Resize width to", elem_id=f"{tabname}_hr_resize_x"
            )
            c["hr_resize_y"] = mk(
                gr.Slider,
                0,
                2048,
                value=0,
                step=8,
                label="Resize height to",
                elem_id=f"{tabname}_hr_resize_y",
            )
        with gr.Row(elem_id=f"{tabname}_hires_fix_row3", visible=bool(o.hires_fix_show_sampler)):
            c["hr_checkpoint_name"] = mk(
                gr.Dropdown,
                [hires.USE_SAME_CHECKPOINT, *(i.short_title for i in app.checkpoints.list())],  # A1111's
                value=hires.USE_SAME_CHECKPOINT,
                label="Checkpoint",
                elem_id="hr_checkpoint",
                allow_custom_value=True,
            )
            c["hr_sampler_name"] = mk(
                gr.Dropdown,
                [hires.USE_SAME_SAMPLER, *(s.name for s in SAMPLERS)],
                value=hires.USE_SAME_SAMPLER,
                label="Hires sampling method",
                elem_id="hr_sampler",
            )
            c["hr_scheduler"] = mk(
                gr.Dropdown,
                [hires.USE_SAME_SCHEDULER, *(t.label for t in SCHEDULE_TYPES)],
                value=hires.USE_SAME_SCHEDULER,
                label="Hires schedule type",
                elem_id="hr_scheduler",
            )
            c["hr_cfg"] = mk(
                gr.Slider,
                0.0,
                30.0,
                value=0.0,
                step=0.5,
                label="Hires CFG Scale (0: the CFG Scale)",
                elem_id=f"{tabname}_hr_cfg",
            )
        with gr.Row(elem_id=f"{tabname}_hires_fix_row4", visible=bool(o.hires_fix_show_prompts)):
            c["hr_prompt"] = mk(
                gr.Textbox,
                label="Hires prompt",
                elem_id="hires_prompt",
                show_label=False,
                lines=3,
                placeholder="Prompt for hires fix pass.\nLeave empty to use the same prompt as in first pass.",
            )
            c["hr_negative_prompt"] = mk(
                gr.Textbox,
                label="Hires negative prompt",
                elem_id="hires_neg_prompt",
                show_label=False,
                lines=3,
                placeholder="Negative prompt for hires fix pass.\nLeave empty to use the same negative "
                "prompt as in first pass.",
            )
    return final


def wire_resolution(c: dict[str, Any], final: gr.HTML) -> None:
    """Keep the "from WxH to W'xH'" line up to date."""
    names = ("enable_hr", "width", "height", "hr_scale", "hr_resize_x", "hr_resize_y")
    inputs = [c[n] for n in names]
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    for name in names:
        cast(Any, c[name]).change(resolution_html, inputs=inputs, outputs=final, **quick)


# -- ✨ Upscale ---------------------------------------------------------------------------------------


def upscale_job(
    p: StableDiffusionProcessingTxt2Img, image: Image.Image, infotext: str
) -> StableDiffusionProcessingTxt2Img:
    """A1111's `txt2img_upscale`: the current settings with Hires. fix on, one image, the gallery
    image as the first pass, its seed and variation seed from its infotext, and no copy saved
    before the hires pass."""
    params = parse_infotext(infotext) if infotext else {}
    p.enable_hr = True
    p.batch_size = p.n_iter = 1
    p.txt2img_upscale = True
    p.firstpass_image = image.convert("RGB")
    p.seed = _int_or(params.get("Seed"), -1)
    p.subseed = _int_or(params.get("Variation seed"), -1)
    p.override_settings["save_images_before_highres_fix"] = False
    return p


def _int_or(text: Any, default: int) -> int:
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return default


def selected_image(gallery: Any, info: dict[str, Any] | None) -> tuple[int, Any, str]:
    """(index, gallery item, infotext) of the selected gallery image; ValueError when there is none."""
    items = list(gallery or [])
    if not items:
        raise ValueError("No image to upscale: generate an image first")
    index = int((info or {}).get("selected") or 0)
    if not 0 <= index < len(items):
        raise ValueError(f"Bad image index: {index}")
    texts = (info or {}).get("infotexts") or []
    return index, items[index], texts[index] if index < len(texts) else ""


def replaced(
    gallery: Any, info: dict[str, Any] | None, index: int, images: list[Any], texts: list[str]
) -> tuple[list[Any], dict[str, Any]]:
    """The gallery with image `index` replaced by `images` (their infotexts in the info too)."""
    items = [item[0] if isinstance(item, (list, tuple)) else item for item in list(gallery or [])]
    items[index : index + 1] = images
    info = dict(info or {})
    infotexts = list(info.get("infotexts") or [])
    infotexts[index : index + 1] = texts
    info["infotexts"], info["selected"] = infotexts, index
    return items, info


def paste_fields(c: dict[str, Any]) -> list[tuple[Any, Any]]:
    """A1111's `txt2img_paste_fields` entries of the accordion: (component, infotext key or function of
    the parsed infotext), for paste buttons (A1111's `infotext_utils`)."""
    if "enable_hr" not in c:
        return []

    def pasted(name: str) -> Any:
        return lambda d: hires.fields_from_infotext(d).get(name)

    keys = {
        "hr_scale": "Hires upscale",
        "hr_upscaler": "Hires upscaler",
        "hr_second_pass_steps": "Hires steps",
        "hr_resize_x": "Hires resize-1",
        "hr_resize_y": "Hires resize-2",
        "hr_checkpoint_name": "Hires checkpoint",
        "hr_prompt": "Hires prompt",
        "hr_negative_prompt": "Hires negative prompt",
        "hr_cfg": "Hires CFG Scale",
    }
    fields: list[tuple[Any, Any]] = [(c[name], key) for name, key in keys.items()]
    fields += [(c[name], pasted(name)) for name in ("enable_hr", "hr_sampler_name", "hr_scheduler")]
    return fields
