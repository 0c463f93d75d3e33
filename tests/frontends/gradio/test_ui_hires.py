"""The Hires. fix accordion's pure parts: its values on the job, the resolution line, ↙️ paste into the
accordion (and A1111's paste fields for extensions' buttons), and the ✨ Upscale job."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from modules.sumi.frontends.gradio import hires_ui, paste
from modules.sumi.frontends.gradio.paste_buttons import field_value
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img

INFOTEXT = (
    "a fox\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 77, "
    "Size: 512x512, Variation seed: 9, Variation seed strength: 0.1, Denoising strength: 0.45, "
    "Hires resize: 1024x768, Hires steps: 12, Hires upscaler: Lanczos, Hires sampler: Euler a, "
    'Hires schedule type: Exponential, Hires prompt: "a fox, detailed", Hires CFG Scale: 5.5'
)


def test_the_accordion_values_go_on_the_job_with_a1111s_use_same_rules():
    p = hires_ui.apply_values(StableDiffusionProcessingTxt2Img(), hires_ui.HiresValues(enable_hr=True))
    assert (p.enable_hr, p.hr_upscaler, p.denoising_strength, p.hr_scale) == (True, "Latent", 0.7, 2.0)
    assert p.hr_checkpoint_name is None and p.hr_sampler_name is None and p.hr_scheduler is None
    assert p.hr_cfg is None and p.hr_second_pass_steps == 0
    v = hires_ui.HiresValues(
        True, "Nearest", 10.0, 0.3, 1.5, 512.0, 0.0, "other", "Euler", "Karras", "x", "y", 4.0
    )
    p = hires_ui.apply_values(StableDiffusionProcessingTxt2Img(), v)
    assert (p.hr_second_pass_steps, p.hr_resize_x, p.hr_checkpoint_name, p.hr_sampler_name) == (
        10,
        512,
        "other",
        "Euler",
    )
    assert (p.hr_scheduler, p.hr_prompt, p.hr_negative_prompt, p.hr_cfg) == ("Karras", "x", "y", 4.0)


def test_the_resolution_line_says_from_and_to():
    assert hires_ui.resolution_html(False, 512, 512, 2, 0, 0) == ""
    line = hires_ui.resolution_html(True, 512, 768, 1.5, 0, 0)
    assert "512x768" in line and "768x1152" in line
    assert "1024x1024" in hires_ui.resolution_html(True, 512, 768, 2, 1024, 1024)  # the resize box


def test_paste_fills_the_accordion():
    out = paste.infotext_values(INFOTEXT)
    assert out is not None
    got = {k: out.values[k] for k in hires_ui.HIRES_FIELDS if k in out.values}
    assert got == {
        "enable_hr": True, "hr_upscaler": "Lanczos", "hr_second_pass_steps": 12, "denoising_strength": 0.45,
        "hr_resize_x": 1024, "hr_resize_y": 768, "hr_checkpoint_name": "Use same checkpoint",
        "hr_sampler_name": "Euler a", "hr_scheduler": "Exponential", "hr_prompt": "a fox, detailed",
        "hr_negative_prompt": "", "hr_cfg": 5.5,
    }  # fmt: skip
    names = (*paste.FIELDS, *hires_ui.HIRES_FIELDS)
    outputs = paste.paste(INFOTEXT, Path("/nonexistent"), None, None, names)
    assert len(outputs) == len(names) + 1 and outputs[names.index("hr_upscaler")] == "Lanczos"


def test_a1111_paste_fields_for_extension_buttons():
    import gradio as gr

    from modules.sumi.services.jobs.infotext import parse_infotext

    with gr.Blocks():
        c = {
            "enable_hr": gr.Checkbox(value=False),
            "hr_sampler_name": gr.Dropdown(["Use same sampler", "Euler a"], value="Use same sampler"),
            "hr_scheduler": gr.Dropdown(["Use same scheduler", "Exponential"], value="Use same scheduler"),
            **{name: gr.Textbox() for name in ("hr_upscaler", "hr_checkpoint_name", "hr_prompt", "hr_negative_prompt")},
            **{name: gr.Number(value=0) for name in ("hr_scale", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "hr_cfg")},
        }  # fmt: skip
    params = parse_infotext(INFOTEXT)
    values = {
        id(component): field_value(component, key, params) for component, key in hires_ui.paste_fields(c)
    }
    assert values[id(c["enable_hr"])] is True and values[id(c["hr_sampler_name"])] == "Euler a"
    assert values[id(c["hr_scheduler"])] == "Exponential" and values[id(c["hr_resize_x"])] == 1024.0
    assert values[id(c["hr_prompt"])] == "a fox, detailed"


def test_the_upscale_job_uses_the_image_and_its_seeds():
    image = Image.new("RGB", (64, 64), "red")
    p = hires_ui.upscale_job(StableDiffusionProcessingTxt2Img(batch_size=4, n_iter=2), image, INFOTEXT)
    assert (p.enable_hr, p.batch_size, p.n_iter, p.seed, p.subseed) == (True, 1, 1, 77, 9)
    assert p.firstpass_image.size == (64, 64) and p.txt2img_upscale
    assert p.override_settings["save_images_before_highres_fix"] is False
    gallery = [(Image.new("RGB", (8, 8)), None), (image, None)]
    index, item, text = hires_ui.selected_image(gallery, {"selected": 1, "infotexts": ["a", "b"]})
    assert (index, text) == (1, "b")
    items, info = hires_ui.replaced(gallery, {"infotexts": ["a", "b"]}, 1, ["new"], ["c"])
    assert items[1] == "new" and info["infotexts"] == ["a", "c"] and info["selected"] == 1
