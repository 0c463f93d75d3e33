"""Soft inpainting (A1111's built-in extension): blend the original into the inpainted result by how much
of the mask covers each pixel, instead of a hard edge. Always on in img2img, off until enabled.

Its args are A1111's, in A1111's order: enabled, schedule bias (`mask_blend_power`), preservation
strength (`mask_blend_scale`), transition contrast boost (`inpaint_detail_preservation`), mask influence,
difference threshold, difference contrast; so `alwayson_scripts: {"soft inpainting": {"args": [true, 1,
0.5, 4, 0, 0.5, 2]}}` works as in A1111. While sampling, the engine's `SoftInpainting` extension blends
the latents with the powered mask (no rounding of the mask, no final hard blend); after sampling the
pixel composite keeps the original where the latents barely changed (`post_sample`), swapped in as the
overlay of each image (`postprocess_maskoverlay`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

import modules.scripts as scripts
from modules import shared
from modules.sumi.engine.img2img import SoftInpainting
from modules.sumi.engine.img2img import soft_overlay as punch_overlay
from modules.sumi.services.images.resize import flatten, resize_image
from modules.sumi.services.jobs.processing import uncrop

TITLE = "Soft Inpainting"
ENABLED_LABEL = "Soft inpainting enabled"
# (A1111's UI label, infotext key, element id, minimum, maximum, step, default), in A1111's args order.
SETTINGS = [
    ("Schedule bias", "Soft inpainting schedule bias", "mask_blend_power", 0, 8, 0.1, 1.0),
    ("Preservation strength", "Soft inpainting preservation strength", "mask_blend_scale", 0, 8, 0.05, 0.5),
    (
        "Transition contrast boost",
        "Soft inpainting transition contrast boost",
        "inpaint_detail_preservation",
        1,
        32,
        0.5,
        4.0,
    ),
    ("Mask influence", "Soft inpainting mask influence", "composite_mask_influence", 0, 1, 0.05, 0.0),
    (
        "Difference threshold",
        "Soft inpainting difference threshold",
        "composite_difference_threshold",
        0,
        8,
        0.25,
        0.5,
    ),
    (
        "Difference contrast",
        "Soft inpainting difference contrast",
        "composite_difference_contrast",
        0,
        8,
        0.25,
        2.0,
    ),
]
_STATE = "_soft_inpainting_overlays"  # (masks, overlays) of the running job, on `p`


def uses_inpainting(p: Any) -> bool:
    """A1111: the job has a mask (before or after it is prepared)."""
    return any(getattr(p, name, None) is not None for name in ("image_mask", "mask", "nmask"))


class Script(scripts.Script):
    section = "inpaint"

    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible if is_img2img else False

    def ui(self, is_img2img: bool) -> list[Any]:
        from modules.ui_components import InputAccordion

        accordion = InputAccordion(False, label="Soft inpainting", elem_id="soft_inpainting_enabled")
        with accordion as enabled, gr.Group():
            gr.Markdown(
                "Soft inpainting blends original content with inpainted content by the mask's opacity. "
                "**High _Mask blur_** values are recommended!"
            )
            sliders = [
                gr.Slider(label=label, minimum=low, maximum=high, step=step, value=value, elem_id=elem_id)
                for label, _, elem_id, low, high, step, value in SETTINGS
            ]
        self.infotext_fields = [(enabled, ENABLED_LABEL)] + [
            (slider, key) for slider, (_, key, *_rest) in zip(sliders, SETTINGS, strict=True)
        ]
        self.paste_field_names = [key for _, key in self.infotext_fields]
        return [enabled, *sliders]

    def process(self, p, enabled=False, *values) -> None:
        if not enabled or not uses_inpainting(p):
            return
        settings = _settings(values)
        p.mask_round = False  # the soft mask keeps its grey levels
        p.engine_extensions["soft_inpainting"] = settings
        p.extra_generation_params[ENABLED_LABEL] = True
        for _, key, attr, *_rest in SETTINGS:
            p.extra_generation_params[key] = getattr(settings, attr)

    def post_sample(self, p, ps, enabled=False, *values) -> None:
        """The pixel composite of each image: masks from how far the latents moved, and the original
        with those pixels punched out as the overlay."""
        settings = p.engine_extensions.get("soft_inpainting")
        if not enabled or not isinstance(settings, SoftInpainting) or getattr(p, "nmask", None) is None:
            return
        masks = settings.composite_masks(p.nmask[:1][None], p.init_latent, ps.samples, p.width, p.height)
        originals = []
        for image in p.init_images:
            image = flatten(image, str(shared.opts.img2img_background_color))
            if p.paste_to is None and p.resize_mode != 3:
                image = resize_image(p.resize_mode, image, p.width, p.height)
            originals.append(image.convert("RGBA"))
        if len(originals) == 1:
            originals = originals * p.batch_size
        overlays, full_masks = [], []
        for mask, original in zip(masks, originals, strict=False):
            if p.paste_to is not None:
                mask = uncrop(mask, original.size, p.paste_to)
            full_masks.append(mask)
            overlays.append(punch_overlay(original, mask))
        setattr(p, _STATE, (full_masks, overlays))

    def postprocess_maskoverlay(self, p, ppmo, enabled=False, *values) -> None:
        masks, overlays = getattr(p, _STATE, ([], []))
        if not enabled or ppmo.index >= min(len(masks), len(overlays)):
            return
        ppmo.mask_for_overlay, ppmo.overlay_image = masks[ppmo.index], overlays[ppmo.index]


def _settings(values: tuple) -> SoftInpainting:
    """The six values (A1111's order), defaults for those not given."""
    numbers = [float(v) for v in values[: len(SETTINGS)]]
    numbers += [default for *_rest, default in SETTINGS[len(numbers) :]]
    return SoftInpainting(*numbers)
