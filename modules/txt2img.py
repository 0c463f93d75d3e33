"""A1111's `modules.txt2img`: the txt2img tab's submit function. Sumi's tab runs jobs through its own
handler (`modules.sumi.frontends.gradio.txt2img`), so wrapping or calling this one (agent-scheduler) has no effect on the
tab and raises; extensions run jobs with `processing.process_images` or the HTTP API instead."""

from __future__ import annotations

from modules.sumi.util.unsupported import stand_in

txt2img = stand_in(
    "txt2img.txt2img()", "run jobs with modules.processing.process_images or /sdapi/v1/txt2img"
)
txt2img_create_processing = stand_in("txt2img.txt2img_create_processing()")
txt2img_upscale = stand_in(
    "txt2img.txt2img_upscale()", "send firstpass_image with enable_hr to /sdapi/v1/txt2img (✨ Upscale)"
)
