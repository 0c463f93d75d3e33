"""The img2img tab: A1111's sub-tabs, controls and element ids, and its Generate handler.

The top row (prompts, token counters, Generate/Interrupt/Skip, ↙️, styles), the extra networks panel,
sampler, seeds, ControlNet, scripts and the results column are txt2img's builders with the tab name
"img2img". What is img2img's own:

- the source sub-tabs (`mode_img2img`): img2img (an image), Sketch (an image drawn on), Inpaint (an
  image with a mask painted with the brush), Inpaint sketch (coloured strokes that are both the new
  content and the mask), Inpaint upload (an image and a mask file), Batch (folders on the server);
- resize mode, "Resize to" width/height or "Resize by" scale, denoising strength, image CFG scale
  (shown only for a model that uses it: instruct-pix2pix), and the inpaint controls (shown on the
  three inpaint sub-tabs; mask transparency only on Inpaint sketch).

Generate turns the sub-tab's canvas into `init_images` and `mask` as A1111's `modules.img2img.img2img`
does (`mask_from_editor`, `inpaint_sketch`), builds a `StableDiffusionProcessingImg2Img` and runs it
through `app.runner` like a txt2img job. Batch hands the same job and the folders to
`app.runner.img2img_batch` (A1111's `process_batch`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
from PIL import Image, ImageOps

from modules.sumi.frontends.gradio import output_panel, paste, refiner_ui
from modules.sumi.frontends.gradio import txt2img as t2i
from modules.sumi.frontends.gradio.controlnet import create_controlnet, wire_controlnet
from modules.sumi.frontends.gradio.extension_card_pages import create_page_tabs
from modules.sumi.frontends.gradio.extra_networks import create_extra_networks, wire_gallery
from modules.sumi.frontends.gradio.faces_ui import restore_faces_checkbox
from modules.sumi.frontends.gradio.generation_tabs import generation_tab, generation_tabs
from modules.sumi.frontends.gradio.interrogate_ui import wire_interrogate
from modules.sumi.frontends.gradio.paste import INPAINT_AREAS, MASK_MODES
from modules.sumi.frontends.gradio.paste_buttons import image_from_url_text, readable_roots
from modules.sumi.frontends.gradio.scripts_ui import ComponentHooks, create_scripts
from modules.sumi.frontends.gradio.tiling import create_tiling
from modules.sumi.services.jobs.img2img import MASKED_CONTENT, RESIZE_MODES, scaled_by, sketch_blend
from modules.sumi.services.jobs.img2img_batch import PNG_INFO_PROPS, BatchFolders
from modules.sumi.services.jobs.processing import StableDiffusionProcessingImg2Img

if TYPE_CHECKING:
    from modules.sumi.app import App

TAB = "img2img"
# The source sub-tabs: (title, Gradio id, elem_id); their index is A1111's `mode` (0..5).
MODES = (
    ("img2img", "img2img", "img2img_img2img_tab"),
    ("Sketch", "img2img_sketch", "img2img_img2img_sketch_tab"),
    ("Inpaint", "inpaint", "img2img_inpaint_tab"),
    ("Inpaint sketch", "inpaint_sketch", "img2img_inpaint_sketch_tab"),
    ("Inpaint upload", "inpaint_upload", "img2img_inpaint_upload_tab"),
    ("Batch", "batch", "img2img_batch_tab"),
)
MODE_IMG2IMG, MODE_SKETCH, MODE_INPAINT, MODE_INPAINT_SKETCH, MODE_INPAINT_UPLOAD, MODE_BATCH = range(6)
INPAINT_MODES = (MODE_INPAINT, MODE_INPAINT_SKETCH, MODE_INPAINT_UPLOAD)


@dataclass
class Img2ImgValues(t2i.Txt2ImgValues):
    """The values of the img2img controls, in the order of the Generate event's inputs: txt2img's
    (prompts, sampler, size, batch, CFG, seeds, styles), then img2img's own."""

    mode: float = MODE_IMG2IMG
    init_img: Any = None  # PIL image (img2img)
    sketch: Any = None  # ImageEditor value (Sketch)
    init_img_with_mask: Any = None  # ImageEditor value (Inpaint)
    inpaint_color_sketch: Any = None  # ImageEditor value (Inpaint sketch)
    init_img_inpaint: Any = None  # PIL image (Inpaint upload)
    init_mask_inpaint: Any = None  # PIL image (Inpaint upload)
    mask_blur: float = 4
    mask_alpha: float = 0
    inpainting_fill: int | None = 1  # index into MASKED_CONTENT
    inpainting_mask_invert: int | None = 0
    inpaint_full_res: int | None = 0
    inpaint_full_res_padding: float = 32
    resize_mode: int | None = 0
    scale_tab: float = 0  # 0: "Resize to", 1: "Resize by"
    scale_by: float = 1.0
    image_cfg_scale: float = 1.5
    denoising_strength: float = 0.75
    batch_input_dir: str = ""
    batch_output_dir: str = ""
    batch_inpaint_mask_dir: str = ""
    batch_use_png_info: bool = False
    batch_png_info_props: list[str] | None = None
    batch_png_info_dir: str = ""


INPUT_NAMES = tuple(f.name for f in fields(Img2ImgValues))


# -- from canvases to init image and mask ----------------------------------------------------------------
def editor_image(value: Any, key: str = "composite") -> Image.Image | None:
    """The background or composite of an ImageEditor value (or a plain image)."""
    if value is None:
        return None
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        image = value.get(key)
        if image is None and key == "composite":
            image = value.get("background")
        return image if isinstance(image, Image.Image) else None
    return None


def strokes(value: Any, size: tuple[int, int]) -> Image.Image:
    """What the brush painted on an ImageEditor value, as an "L" image: the layers' alpha (0 = untouched)."""
    mask = Image.new("L", size, 0)
    for layer in (value or {}).get("layers") or [] if isinstance(value, dict) else []:
        if not isinstance(layer, Image.Image):
            continue
        alpha = layer.convert("RGBA").split()[-1]
        if alpha.size != size:
            alpha = alpha.resize(size, Image.Resampling.NEAREST)
        mask = Image.fromarray(np.maximum(np.asarray(mask), np.asarray(alpha)))
    return mask


def painted_mask(value: Any, size: tuple[int, int]) -> Image.Image:
    """The Inpaint canvas's mask as A1111's canvas gives it: white, with the strokes as alpha (the job
    rounds it: alpha above 128 is redrawn). Nothing painted is a mistake worth saying."""
    alpha = strokes(value, size)
    if alpha.getextrema()[1] == 0:
        raise ValueError("Inpaint: paint over the part of the image to redraw first.")
    mask = Image.new("RGBA", size, (255, 255, 255, 0))
    mask.putalpha(alpha)
    return mask


def inpaint_sketch(value: Any, mask_blur: int, mask_alpha: float) -> tuple[Image.Image, Image.Image]:
    """(init image, mask) of the Inpaint sketch sub-tab, as A1111: the strokes are the mask, made
    fainter by the mask transparency, and the init image is the sketch blended into the original
    through the blurred mask."""
    original = editor_image(value, "background")
    drawn = editor_image(value, "composite")
    if original is None or drawn is None:
        raise ValueError("Inpaint sketch: upload an image and draw on it first.")
    return sketch_blend(original, drawn, strokes(value, original.size), mask_blur, mask_alpha)


def source_images(v: Img2ImgValues) -> tuple[Image.Image | None, Image.Image | None]:
    """(init image, mask) of the selected sub-tab, as A1111's `img2img` picks them."""
    mode = int(v.mode or 0)
    if mode == MODE_IMG2IMG:
        return editor_image(v.init_img), None
    if mode == MODE_SKETCH:
        return editor_image(v.sketch), None
    if mode == MODE_INPAINT:
        image = editor_image(v.init_img_with_mask, "background")
        if image is None:
            return None, None
        return image, painted_mask(v.init_img_with_mask, image.size)
    if mode == MODE_INPAINT_SKETCH:
        return inpaint_sketch(v.inpaint_color_sketch, int(v.mask_blur), float(v.mask_alpha or 0))
    if mode == MODE_INPAINT_UPLOAD:
        return editor_image(v.init_img_inpaint), editor_image(v.init_mask_inpaint)
    raise ValueError(f"not a sub-tab with an image: {mode}")


def mode_picture(mode: int, pictures: Sequence[Any]) -> Image.Image | None:
    """The picture of sub-tab `mode` (0-4) from the sub-tabs' values (init_img, sketch,
    init_img_with_mask, inpaint_color_sketch, init_img_inpaint), drawn strokes included as A1111
    interrogates them; the Inpaint tab's picture under its mask."""
    if mode == MODE_INPAINT:
        return editor_image(pictures[MODE_INPAINT], "background")
    return editor_image(pictures[mode]) if 0 <= mode < MODE_BATCH else None


def scaled_size(v: Img2ImgValues, image: Image.Image | None) -> tuple[int, int]:
    """The job's size: "Resize to" width/height, or the image's size times "Resize by" (multiples of 8)."""
    if int(v.scale_tab or 0) != 1:
        return t2i._int(v.width), t2i._int(v.height)
    if image is None:
        raise ValueError("Resize by: there is no image to scale.")
    return scaled_by(image, v.scale_by)


def build_processing(
    v: Img2ImgValues, controlnet_units: list | None = None
) -> StableDiffusionProcessingImg2Img:
    """The job the UI asks for (A1111's `modules.img2img.img2img`); the UI saves images. On the
    Batch sub-tab it has no image: the batch gives it one input at a time."""
    mode = int(v.mode or 0)
    image = mask = None
    if mode != MODE_BATCH:
        image, mask = source_images(v)
        if image is None:
            raise ValueError(f"{MODES[mode][0]}: choose an image first.")
        if mode == MODE_INPAINT_UPLOAD and mask is None:
            raise ValueError("Inpaint upload: choose a mask image too.")
    if image is not None:
        image = ImageOps.exif_transpose(image)
    width, height = scaled_size(v, image) if mode != MODE_BATCH else (t2i._int(v.width), t2i._int(v.height))
    p = StableDiffusionProcessingImg2Img(
        prompt=v.prompt or "",
        negative_prompt=v.negative_prompt or "",
        styles=list(v.styles or []),
        restore_faces=bool(v.restore_faces),
        sampler_name=v.sampler_name or t2i.DEFAULT_SAMPLER,
        scheduler=v.scheduler or t2i.DEFAULT_SCHEDULE,
        steps=t2i._int(v.steps),
        width=width,
        height=height,
        n_iter=t2i._int(v.n_iter),
        batch_size=t2i._int(v.batch_size),
        cfg_scale=float(v.cfg_scale),
        seed=t2i._seed(v.seed),
        seed_enable_extras=bool(v.seed_enable_extras),
        subseed=t2i._seed(v.subseed),
        subseed_strength=float(v.subseed_strength or 0.0),
        seed_resize_from_w=t2i._int(v.seed_resize_from_w or 0),
        seed_resize_from_h=t2i._int(v.seed_resize_from_h or 0),
        tiling=bool(v.tiling),
        do_not_save_samples=False,
        do_not_save_grid=False,
        controlnet_units=list(controlnet_units or []),
        **refiner_ui.job_fields(v.refiner_enabled, v.refiner_checkpoint, v.refiner_switch_at),
        init_images=[image] if image is not None else [],
        mask=mask,
        mask_blur=t2i._int(v.mask_blur),
        inpainting_fill=int(v.inpainting_fill or 0),
        resize_mode=int(v.resize_mode or 0),
        denoising_strength=float(v.denoising_strength),
        image_cfg_scale=float(v.image_cfg_scale),
        inpaint_full_res=bool(v.inpaint_full_res),
        inpaint_full_res_padding=t2i._int(v.inpaint_full_res_padding),
        inpainting_mask_invert=int(v.inpainting_mask_invert or 0),
    )
    return p


# -- Generate ------------------------------------------------------------------------------------------
def generate(app: App, *values: Any, layout: t2i.GenerateInputs | None = None) -> Iterator[tuple[Any, ...]]:
    """Gradio generator for img2img's Generate: as txt2img's, with Img2ImgValues first; the Batch
    sub-tab runs one job per image of its input folder."""
    n = len(INPUT_NAMES)
    v = Img2ImgValues(*values[:n])
    if int(v.mode or 0) == MODE_BATCH:
        yield from generate_batch(app, v, values, layout)
        return

    def make(main: Sequence[Any], units: list) -> StableDiffusionProcessingImg2Img:
        return build_processing(Img2ImgValues(*main), units)

    yield from t2i.run_generate(app, make, n, values, layout)


def batch_folders(v: Img2ImgValues) -> BatchFolders:
    """The Batch sub-tab's folders and PNG-info choices, as the services' batch takes them."""
    if not (v.batch_input_dir or "").strip():
        raise ValueError("Batch: enter the input directory (a folder on the machine where Sumi runs).")
    return BatchFolders(
        input_dir=v.batch_input_dir.strip(),
        output_dir=(v.batch_output_dir or "").strip(),
        inpaint_mask_dir=(v.batch_inpaint_mask_dir or "").strip(),
        to_scale=int(v.scale_tab or 0) == 1,
        scale_by=float(v.scale_by),
        use_png_info=bool(v.batch_use_png_info),
        png_info_props=list(v.batch_png_info_props or []),
        png_info_dir=(v.batch_png_info_dir or "").strip(),
    )


def generate_batch(
    app: App, v: Img2ImgValues, values: Sequence[Any], layout: t2i.GenerateInputs | None
) -> Iterator[tuple[Any, ...]]:
    """The Batch sub-tab: one queued job over every image of the input folder
    (`app.runner.submit_img2img_batch`), shown as any job is."""

    def submit(p: StableDiffusionProcessingImg2Img) -> Any:
        args = p.script_args if p.scripts is not None else []
        return app.runner.submit_img2img_batch(p, batch_folders(v), args)

    def make(main: Sequence[Any], units: list) -> StableDiffusionProcessingImg2Img:
        return build_processing(v, units)

    yield from t2i.run_generate(app, make, len(INPUT_NAMES), values, layout, submit=submit)


def image_cfg_visible(app: App) -> dict[str, Any]:
    """Image CFG scale shows only for a loaded model that takes the init image as conditioning
    (instruct-pix2pix: an 8-channel UNet), as A1111."""
    loaded = getattr(app.models, "active", None)
    unet = getattr(getattr(loaded, "sd", None), "unet", None)
    channels = getattr(getattr(unet, "config", None), "in_channels", None)
    return gr.update(visible=channels == 8)


def inpaint_visibility(mode: int) -> tuple[Any, Any]:
    """(inpaint controls, mask transparency) shown or hidden for the chosen sub-tab."""
    return gr.update(visible=mode in INPAINT_MODES), gr.update(visible=mode == MODE_INPAINT_SKETCH)


# -- layout ----------------------------------------------------------------------------------------------
@dataclass
class Img2ImgTab(t2i.Txt2ImgTab):
    mode_tabs: gr.Tabs | None = None
    inpaint_controls: gr.Group | None = None


def _editor(label: str, elem_id: str, color_option: str, app: App) -> gr.ImageEditor:
    """A canvas with a brush: one fixed colour for the Inpaint mask, a palette starting from the
    setting's colour for Sketch and Inpaint sketch."""
    mask = color_option == "img2img_inpaint_mask_brush_color"
    color = str(getattr(app.options, color_option, None) or "#ffffff")
    brush = gr.Brush(
        colors=[color], default_color=color, color_mode="fixed" if mask else "defaults", default_size=24
    )
    return gr.ImageEditor(
        label=label,
        elem_id=elem_id,
        type="pil",
        image_mode="RGBA",
        sources=["upload", "clipboard"],
        brush=brush,
        eraser=gr.Eraser(default_size=24),
        layers=False,
        transforms=(),
        height=int(getattr(app.options, "img2img_editor_height", 720) or 720),
        format="png",
    )


def _image_source(app: App, c: dict[str, Any]) -> None:
    c["init_img"] = gr.Image(
        label="Image for img2img", elem_id="img2img_image", type="pil", image_mode="RGBA", height=512,
        sources=["upload", "clipboard"], format="png",
    )  # fmt: skip


def _sketch_source(app: App, c: dict[str, Any]) -> None:
    c["sketch"] = _editor("Image for img2img", "img2img_sketch", "img2img_sketch_default_brush_color", app)


def _inpaint_source(app: App, c: dict[str, Any]) -> None:
    label, option = "Image for inpainting with mask", "img2img_inpaint_mask_brush_color"
    c["init_img_with_mask"] = _editor(label, "img2maskimg", option, app)


def _inpaint_sketch_source(app: App, c: dict[str, Any]) -> None:
    label, option = "Color sketch inpainting", "img2img_inpaint_sketch_default_brush_color"
    c["inpaint_color_sketch"] = _editor(label, "inpaint_sketch", option, app)


def _upload_source(app: App, c: dict[str, Any]) -> None:
    c["init_img_inpaint"] = gr.Image(
        label="Image for img2img", elem_id="img_inpaint_base", type="pil", sources=["upload"], format="png"
    )
    c["init_mask_inpaint"] = gr.Image(
        label="Mask",
        elem_id="img_inpaint_mask",
        type="pil",
        image_mode="RGBA",
        sources=["upload"],
        format="png",
    )


_CANVASES = (
    "init_img",
    "sketch",
    "init_img_with_mask",
    "inpaint_color_sketch",
    "init_img_inpaint",
    "init_mask_inpaint",
)


def _source_tabs(app: App, c: dict[str, Any]) -> tuple[gr.Tabs, list[gr.Tab]]:
    """The sub-tabs (MODES, in A1111's order) with their canvases or folder fields."""
    makers = (
        _image_source,
        _sketch_source,
        _inpaint_source,
        _inpaint_sketch_source,
        _upload_source,
        _batch_controls,
    )
    tabs: list[gr.Tab] = []
    with gr.Tabs(elem_id="mode_img2img") as mode_tabs:
        for (title, tab_id, elem_id), make in zip(MODES, makers, strict=True):
            with gr.Tab(title, id=tab_id, elem_id=elem_id) as tab:
                make(app, c)
            tabs.append(tab)
    return mode_tabs, tabs


def _batch_controls(app: App, c: dict[str, Any]) -> None:
    hidden = bool(getattr(app.args, "hide_ui_dir_config", False))
    note = "<br>Disabled when launched with --hide-ui-dir-config." if hidden else ""
    gr.HTML(
        "<p>Process images in a folder on the machine where Sumi runs.<br>Use an empty output folder to "
        f"save the images as usual instead of writing them to the output folder.{note}</p>",
        js_on_load=None,
    )
    c["batch_input_dir"] = gr.Textbox(
        label="Input directory", elem_id="img2img_batch_input_dir", visible=not hidden
    )
    c["batch_output_dir"] = gr.Textbox(
        label="Output directory", elem_id="img2img_batch_output_dir", visible=not hidden
    )
    c["batch_inpaint_mask_dir"] = gr.Textbox(
        label="Inpaint batch mask directory (required for inpaint batch processing only)",
        elem_id="img2img_batch_inpaint_mask_dir",
        visible=not hidden,
    )
    with gr.Accordion("PNG info", open=False):
        c["batch_use_png_info"] = gr.Checkbox(
            label="Append png info to prompts", elem_id="img2img_batch_use_png_info"
        )
        c["batch_png_info_dir"] = gr.Textbox(
            label="PNG info directory",
            placeholder="Leave empty to use input directory",
            elem_id="img2img_batch_png_info_dir",
            visible=not hidden,
        )
        c["batch_png_info_props"] = gr.CheckboxGroup(
            list(PNG_INFO_PROPS),
            value=list(PNG_INFO_PROPS),
            label="Parameters to take from png info",
            info="Prompts from png info will be appended to prompts set in ui.",
            elem_id="img2img_batch_png_info_props",
        )


def _inpaint_controls(c: dict[str, Any]) -> gr.Group:
    with gr.Group(visible=False, elem_id="inpaint_controls") as group:
        with gr.Row():
            c["mask_blur"] = gr.Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="img2img_mask_blur")
            c["mask_alpha"] = gr.Slider(
                0, 100, value=0, step=1, label="Mask transparency", elem_id="img2img_mask_alpha"
            )
        c["inpainting_mask_invert"] = gr.Radio(
            list(MASK_MODES),
            value=MASK_MODES[0],
            type="index",
            label="Mask mode",
            elem_id="img2img_mask_mode",
        )
        c["inpainting_fill"] = gr.Radio(
            list(MASKED_CONTENT),
            value="original",
            type="index",
            label="Masked content",
            elem_id="img2img_inpainting_fill",
        )
        with gr.Row():
            c["inpaint_full_res"] = gr.Radio(
                list(INPAINT_AREAS), value=INPAINT_AREAS[0], type="index", label="Inpaint area",
                elem_id="img2img_inpaint_full_res",
            )  # fmt: skip
            c["inpaint_full_res_padding"] = gr.Slider(
                0,
                256,
                value=32,
                step=4,
                label="Only masked padding, pixels",
                elem_id="img2img_inpaint_full_res_padding",
            )
    return group


def _size_rows(c: dict[str, Any], b: dict[str, gr.Button], mk: Any) -> list[gr.Tab]:
    with gr.Row(elem_id="img2img_dimensions_row", equal_height=True):
        with gr.Column(scale=4, min_width=180), gr.Tabs(elem_id="img2img_tabs_resize"):
            with (
                gr.Tab("Resize to", id="to", elem_id="img2img_tab_resize_to") as to_tab,
                gr.Row(equal_height=True),
            ):
                with gr.Column(scale=4, min_width=180):
                    c["width"] = mk(
                        gr.Slider, 64, 2048, value=512, step=8, label="Width", elem_id="img2img_width"
                    )
                    c["height"] = mk(
                        gr.Slider, 64, 2048, value=512, step=8, label="Height", elem_id="img2img_height"
                    )
                b["swap"] = t2i.tool_button("⇅", "img2img_res_switch_btn", mk)
            with gr.Tab("Resize by", id="by", elem_id="img2img_tab_resize_by") as by_tab:
                c["scale_by"] = mk(
                    gr.Slider, 0.05, 4.0, value=1.0, step=0.05, label="Scale", elem_id="img2img_scale"
                )
        with gr.Column(scale=2, min_width=120, elem_id="img2img_column_batch"):
            c["n_iter"] = mk(
                gr.Slider, 1, 100, value=1, step=1, label="Batch count", elem_id="img2img_batch_count"
            )
            c["batch_size"] = mk(
                gr.Slider, 1, 8, value=1, step=1, label="Batch size", elem_id="img2img_batch_size"
            )
    with gr.Row():
        c["cfg_scale"] = mk(
            gr.Slider, 1.0, 30.0, value=7.0, step=0.5, label="CFG Scale", elem_id="img2img_cfg_scale"
        )
        c["image_cfg_scale"] = mk(
            gr.Slider, 0, 3.0, value=1.5, step=0.05, label="Image CFG Scale", elem_id="img2img_image_cfg_scale",
            visible=False,
        )  # fmt: skip
    c["denoising_strength"] = mk(
        gr.Slider,
        0.0,
        1.0,
        value=0.75,
        step=0.01,
        label="Denoising strength",
        elem_id="img2img_denoising_strength",
    )
    return [to_tab, by_tab]


def create_img2img_tab(app: App) -> Img2ImgTab:
    """Lay out the tab (call inside a `gr.Tab`) and wire its events."""
    c: dict[str, Any] = {}
    b: dict[str, gr.Button] = {}
    hooks = ComponentHooks(app.callbacks, app.scripts.img2img)
    mk = hooks.make
    t2i.prompt_row(app, c, b, mk, TAB)
    with generation_tabs(TAB):
        with generation_tab(TAB):
            with gr.Column(scale=1, elem_id="img2img_settings"):
                c["mode"] = gr.Number(value=0, visible=False, precision=0, elem_id="img2img_selected_tab")
                mode_tabs, mode_tab_list = _source_tabs(app, c)
                for key in _CANVASES:  # A1111 calls after-component callbacks for them too (extensions hook
                    hooks.after(c[key], elem_id=c[key].elem_id)  # img2img_image, img2maskimg, ...)
                c["resize_mode"] = mk(
                    gr.Radio, list(RESIZE_MODES), value=RESIZE_MODES[0], type="index", label="Resize mode",
                    elem_id="resize_mode",
                )  # fmt: skip
                t2i.sampler_rows(c, mk, TAB)
                c["scale_tab"] = gr.Number(
                    value=0, visible=False, precision=0, elem_id="img2img_selected_scale_tab"
                )
                scale_tabs = _size_rows(c, b, mk)
                extras = t2i.seed_rows(c, b, mk, TAB, textbox=t2i.textbox_seed(app))
                restore_faces_checkbox(app, c, mk, TAB)
                create_tiling(app, c, mk, TAB)
                refiner_ui.create_refiner(app, c, mk, TAB)
                inpaint = _inpaint_controls(c)
                controlnet = create_controlnet(app, TAB)
                scripts = create_scripts(app, hooks, TAB)
            r = t2i.results_column(
                TAB, bool(getattr(app.args, "hide_ui_dir_config", False)), mk, t2i.gallery_height(app.options)
            )
        networks = create_extra_networks(app, TAB)
        create_page_tabs(app, TAB)  # the pages extensions registered
    wire_gallery(app, networks, r["gallery"], TAB)
    output_panel.wire_buttons(app, TAB, r, r["buttons"])
    tab = Img2ImgTab(c, r, b, controlnet, scripts, mode_tabs, inpaint)
    _wire(app, tab, extras)
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    # The mode and scale numbers are set in the page, so a Generate clicked right after a sub-tab reads
    # the new choice (a server round trip could still be in flight); only the inpaint controls'
    # visibility goes through the server.
    for i, mode_tab in enumerate(mode_tab_list):
        mode_tab.select(None, js=f"() => {i}", outputs=c["mode"], api_visibility="undocumented")
        mode_tab.select(partial(inpaint_visibility, i), outputs=[inpaint, c["mask_alpha"]], **quick)
    for i, scale_tab in enumerate(scale_tabs):
        scale_tab.select(None, js=f"() => {i}", outputs=c["scale_tab"], api_visibility="undocumented")
    wire_controlnet(app, controlnet, c["width"], c["height"], r["error"])
    return tab


def _wire(app: App, tab: Img2ImgTab, extras: gr.Group) -> None:
    t2i.wire_tab(app, tab, extras, generate, INPUT_NAMES, TAB, paste.IMG2IMG_FIELDS)
    wire_interrogate(app, tab.controls, tab.buttons, tab.results["error"], mode_picture)


# -- Send to img2img / inpaint --------------------------------------------------------------------------
def sent_values(
    app: App, images: Any, info: dict[str, Any] | None, names: Sequence[str]
) -> tuple[Image.Image | None, dict[str, Any]]:
    """The selected gallery image and the control values its infotext gives (A1111's opts
    `send_seed` and `send_size` say whether the seed and the image's size go along)."""
    items = list(images or [])
    index = t2i.results.selected_index(info)
    if not items:
        return None, {}
    item = items[index] if 0 <= index < len(items) else items[0]
    if isinstance(item, (list, tuple)):
        item = item[0]
    image = image_from_url_text(item, readable_roots(app.paths.outputs_dir))
    texts = list((info or {}).get("infotexts") or [])
    text = texts[index] if 0 <= index < len(texts) else (texts[0] if texts else "")
    pasted = paste.infotext_values(text, app.styles, app.options) if text else None
    values = {k: v for k, v in (pasted.values if pasted else {}).items() if k in names}
    options = app.options.data
    if not options.get("send_seed", True):
        for name in ("seed", "subseed", "subseed_strength", "seed_enable_extras"):
            values.pop(name, None)
    if options.get("send_size", True) and image is not None:
        values["width"], values["height"] = image.width, image.height
    return image, values


def send_to(
    app: App, tab: Img2ImgTab, target: str, images: Any, info: dict[str, Any] | None
) -> tuple[Any, ...]:
    """Outputs of a "Send to img2img/inpaint" click: the image into the sub-tab's canvas, the controls,
    the sub-tab and the top tab selected."""
    names = [n for n in paste.IMG2IMG_FIELDS if n in tab.controls]
    image, values = sent_values(app, images, info, names)
    if image is None:
        return (*(gr.skip() for _ in range(len(names) + 6)),)
    mode = MODE_INPAINT if target == "inpaint" else MODE_IMG2IMG
    image = image.convert("RGB")
    editor = {"background": image, "layers": [], "composite": image}
    return (
        image if mode == MODE_IMG2IMG else gr.skip(),
        editor if mode == MODE_INPAINT else gr.skip(),
        *(values[name] if name in values else gr.skip() for name in names),
        mode,
        gr.update(visible=mode in INPAINT_MODES),
        gr.Tabs(selected=MODES[mode][1]),
        gr.Tabs(selected=TAB),
    )


def wire_send_to(app: App, top_tabs: gr.Tabs, source: dict[str, Any], tab: Img2ImgTab) -> None:
    """Wire a results column's "Send to img2img" and "Send to inpaint" buttons (txt2img's or img2img's)."""
    c = tab.controls
    names = [n for n in paste.IMG2IMG_FIELDS if n in c]
    outputs = [
        c["init_img"],
        c["init_img_with_mask"],
        *(c[n] for n in names),
        c["mode"],
        tab.inpaint_controls,
        tab.mode_tabs,
        top_tabs,
    ]
    for target in ("img2img", "inpaint"):
        source["buttons"][f"send_{target}"].click(
            partial(send_to, app, tab, target),
            inputs=[source["gallery"], source["info_state"]],
            outputs=outputs,
            concurrency_limit=None,
            show_progress="hidden",
            api_visibility="undocumented",
        )
