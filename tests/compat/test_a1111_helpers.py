"""The A1111 helper modules added for the A, C and B-light extensions (tests/compat/a1111_surface.json):
what they do when an extension calls them, against a live App. Stand-ins must load and fail only when
called, with an error that says what Sumi lacks."""

from __future__ import annotations

import base64
import io
import json

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from modules import shared
from modules.processing import StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.util.unsupported import NotSupportedInSumi


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("helpers"), "--nowebui", loaded=True)


def _p(**kwargs) -> StableDiffusionProcessingTxt2Img:
    values = dict(prompt="a fox", steps=2, width=64, height=64, seed=3, sampler_name="Euler")
    return StableDiffusionProcessingTxt2Img(**{**values, **kwargs})


def test_api_base64_helpers_round_trip(app):
    from fastapi import HTTPException

    from modules.api import api

    image = Image.new("RGB", (8, 8), "red")
    image.info["parameters"] = "a fox\nSteps: 2"
    encoded = api.encode_pil_to_base64(image)
    assert isinstance(encoded, bytes)  # A1111 returns bytes; extensions call .decode()
    decoded = api.decode_base64_to_image(encoded.decode())
    assert decoded.getpixel((0, 0)) == (255, 0, 0) and decoded.info["parameters"] == "a fox\nSteps: 2"
    assert api.decode_base64_to_image("data:image/png;base64," + encoded.decode()).size == (8, 8)
    with pytest.raises(HTTPException) as failed:
        api.decode_base64_to_image("not an image")
    assert failed.value.status_code == 500 and failed.value.detail == "Invalid encoded image"


def test_api_object_runs_txt2img_on_the_app(app):
    from fastapi import FastAPI

    from modules.api.api import Api, encode_pil_to_base64
    from modules.api.models import StableDiffusionImg2ImgProcessingAPI, StableDiffusionTxt2ImgProcessingAPI
    from modules.call_queue import queue_lock

    api = Api(FastAPI(), queue_lock)
    req = StableDiffusionTxt2ImgProcessingAPI(prompt="a fox", steps=2, width=64, height=64, seed=5)
    res = api.text2imgapi(req)
    assert len(res.images) == 1 and json.loads(res.info)["seed"] == 5
    with pytest.raises(InvalidRequestError, match="Init image not found"):
        api.img2imgapi(StableDiffusionImg2ImgProcessingAPI(prompt="x", init_images=[]))
    image = encode_pil_to_base64(Image.new("RGB", (64, 64), (90, 20, 20))).decode()
    req = StableDiffusionImg2ImgProcessingAPI(
        prompt="a fox", steps=2, width=64, height=64, seed=6, init_images=[image]
    )
    res = api.img2imgapi(req)
    assert len(res.images) == 1 and json.loads(res.info)["seed"] == 6


def test_img2img_jobs_run_through_process_images(app):
    from modules import processing

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (8, 8, 24, 24))
    p = StableDiffusionProcessingImg2Img(
        prompt="x", steps=2, width=64, height=64, init_images=[Image.new("RGB", (64, 64))], mask=mask
    )
    assert p.image_mask is mask and p.mask is None  # A1111 moves the mask when the job is made
    assert p.denoising_strength == 0.75 and p.resize_mode == 0 and p.mask_blur == 4
    p.mask_blur = 7
    assert (p.mask_blur_x, p.mask_blur_y) == (7, 7)
    processed = processing.process_images(p)
    assert len(processed.images) == 1 and "Denoising strength: 0.75" in processed.infotexts[0]
    assert p.init_latent is not None and p.nmask is not None and len(p.overlay_images) == 1
    other = processing.Processed(p, processed.images, 12, "info text")
    assert other.seed == 12 and other.info == "info text" and other.infotexts == ["info text"]


def test_processing_helpers(app):
    from modules import processing

    p = _p(seed=-1, subseed=-1)
    processing.fix_seed(p)
    assert 0 <= p.seed < 4294967294 and p.subseed >= 0
    assert processing.get_fixed_seed("12") == 12 and processing.get_fixed_seed("") >= 0
    p.script_args_value = [1, 2]
    assert p.script_args == [1, 2]
    p.close()
    processed = processing.process_images(_p(seed=7))
    assert (
        processing.create_infotext(processed.p, processed.p.all_prompts, processed.p.all_seeds, [])
        == (processed.infotexts[0])
    )
    assert "Seed: 9," in processing.create_infotext(_p(seed=9))  # a job that has not run
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 0, 255))
    mask = processing.create_binary_mask(rgba)
    assert mask.mode == "L" and mask.getpixel((1, 1)) == 255 and mask.getpixel((0, 0)) == 0
    assert processing.setup_color_correction(Image.new("RGB", (4, 4), "white")).shape == (4, 4, 3)


def test_a1111_save_image_signature(app, tmp_path):
    from modules import images, script_callbacks

    seen = []

    def remember(params):
        seen.append(params.filename)

    script_callbacks.on_image_saved(remember)
    try:
        p = _p()
        p.sd_model_name = "tiny"
        fullfn, txt = images.save_image(
            Image.new("RGB", (8, 8)), str(tmp_path), "", 42, "a cat", "png", info="a cat\nSteps: 2", p=p,
            suffix="-ad-before",
        )  # fmt: skip
    finally:
        script_callbacks.remove_callbacks_for_function(remember)
    assert txt is None and seen == [fullfn]
    assert fullfn.endswith("/00000-42-ad-before.png") and fullfn.split("/")[-2][:2] == "20"  # [date] folder
    assert Image.open(fullfn).info["parameters"] == "a cat\nSteps: 2"
    grid, _ = images.save_image(Image.new("RGB", (8, 8)), str(tmp_path), "grid", 1, "x", "png", grid=True)
    assert grid.rsplit("/", 1)[-1].startswith("grid-0000")
    forced, _ = images.save_image(
        Image.new("RGB", (8, 8)), str(tmp_path), "", extension="png", info="i", forced_filename="mine",
        save_to_dirs=False,
    )  # fmt: skip
    assert forced == str(tmp_path / "mine.png")
    name = images.FilenameGenerator(p, 42, "a cat", None).apply("[seed]-[steps]-[model_name]-[none]")
    assert name == "42-2-tiny-"
    assert images.get_next_sequence_number(grid.rsplit("/", 1)[0], "grid") == 1


def test_image_resize_modes_and_flatten():
    from modules import images

    wide = Image.new("RGB", (100, 50), "red")
    assert images.resize_image(0, wide, 64, 32).size == (64, 32)
    cropped = images.resize_image(1, wide, 64, 64)
    assert cropped.size == (64, 64) and cropped.getpixel((0, 0)) == (255, 0, 0)
    filled = images.resize_image(2, wide, 64, 64)
    assert filled.size == (64, 64) and filled.getpixel((32, 0)) == (255, 0, 0)  # bars stretched, not black
    flat = images.flatten(Image.new("RGBA", (2, 2), (0, 0, 0, 0)), "#00ff00")
    assert flat.mode == "RGB" and flat.getpixel((0, 0)) == (0, 255, 0)


def test_masking():
    from modules import masking

    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:20, 30:40] = 255
    assert masking.get_crop_region(mask, 2) == (28, 8, 42, 22)
    assert masking.get_crop_region_v2(np.zeros((8, 8), dtype=np.uint8)) is None
    assert masking.get_crop_region(np.zeros((8, 8), dtype=np.uint8)) == (8, 8, 0, 0)
    x1, y1, x2, y2 = masking.expand_crop_region((28, 8, 42, 22), 64, 32, 64, 64)
    assert (x2 - x1) == 2 * (y2 - y1) and x1 >= 0 and x2 <= 64
    filled = masking.fill(Image.new("RGB", (16, 16), "blue"), Image.new("L", (16, 16), 0))
    assert filled.getpixel((8, 8))[2] > 200


def test_stand_ins_fail_only_when_called(app, tmp_path):
    from modules import modelloader
    from modules.textual_inversion import autocrop

    with pytest.raises(NotSupportedInSumi, match=r"download https://example.com/m.pth yourself"):
        modelloader.load_file_from_url("https://example.com/m.pth", model_dir=str(tmp_path))
    (tmp_path / "m.pth").write_bytes(b"x")
    assert modelloader.load_file_from_url("https://example.com/m.pth", model_dir=str(tmp_path)).endswith(
        "m.pth"
    )
    assert modelloader.load_models(str(tmp_path), "https://example.com/x", ext_filter=[".pth"]) == [
        str(tmp_path / "m.pth")
    ]
    with pytest.raises(NotSupportedInSumi, match="yunet"):
        autocrop.download_and_cache_models(str(tmp_path))


def test_face_restoration_and_upscalers_are_empty_and_harmless(app):
    from modules import face_restoration, gfpgan_model, upscaler

    image = np.zeros((4, 4, 3), dtype=np.uint8)
    assert face_restoration.restore_faces(image) is image and gfpgan_model.gfpgan_fix_faces(image) is image
    data = upscaler.UpscalerData("Mine", None, upscaler.UpscalerNone())
    assert data.name == "Mine" and data.scaler.upscale(Image.new("RGB", (8, 8)), 2).size == (8, 8)
    assert upscaler.Upscaler().upscale(Image.new("RGB", (8, 8)), 2).size == (16, 16)
    assert shared.opts.face_restoration_model == "CodeFormer"
    # A1111's default folder under the data dir, absolute as the data dir is not the working folder
    assert shared.opts.outdir_save == str(shared.app().paths.data_dir / "log" / "images")


def test_scripts_helpers(app):
    from modules import scripts

    assert scripts.script_callbacks.on_ui_settings
    runner = scripts.scripts_img2img
    titles = [s.title() for s in runner.alwayson_scripts]
    assert titles == ["Soft Inpainting", "Tiled Diffusion", "Tiled VAE"] and runner.is_img2img
    assert all(s.is_img2img for s in runner.scripts) and not any(
        s.is_img2img for s in scripts.scripts_txt2img.scripts
    )
    builtin = scripts.list_scripts("modules/sumi/builtin_scripts", ".py")  # Sumi's own folder, no extensions
    assert [f.filename for f in builtin] == [
        "__init__.py",
        "loopback.py",
        "outpainting_mk_2.py",
        "poor_mans_outpainting.py",
        "postprocessing_autosized_crop.py",
        "postprocessing_caption.py",
        "postprocessing_codeformer.py",
        "postprocessing_create_flipped_copies.py",
        "postprocessing_focal_crop.py",
        "postprocessing_gfpgan.py",
        "postprocessing_split_oversized.py",
        "postprocessing_upscale.py",
        "prompt_matrix.py",
        "prompts_from_file.py",
        "sd_upscale.py",
        "soft_inpainting.py",
        "tilediffusion.py",
        "tilevae.py",
        "xyz_grid.py",
    ]
    assert builtin[0].basedir == str(app.paths.repo_root) and builtin[0].path.endswith("__init__.py")


def test_shared_items_progress_and_extras(app):
    import modules
    from modules import extras, progress, shared_items

    assert modules.shared_items is shared_items
    assert shared_items.sd_vae_items()[:2] == ["Automatic", "None"]
    assert shared_items.list_checkpoint_tiles() == [app.checkpoints.list()[0].title]
    progress.add_task_to_queue("task(1)")
    progress.start_task("task(1)")
    assert progress.current_task == "task(1)" and "task(1)" not in progress.pending_tasks
    progress.finish_task("task(1)")
    assert progress.current_task is None and progress.finished_tasks[-1] == "task(1)"
    image = Image.open(io.BytesIO(base64.b64decode(_png_with_info("a fox\nSteps: 3"))))
    _, geninfo, html = extras.run_pnginfo(image)
    assert geninfo == "a fox\nSteps: 3" and "Steps: 3" in html


def _png_with_info(text: str) -> bytes:
    from modules.images import encode_png_base64

    return encode_png_base64(Image.new("RGB", (4, 4)), text).encode()


def test_extra_network_pages_list_sumis_cards(app):
    from modules import ui_extra_networks

    pages = {page.name: page for page in ui_extra_networks.extra_pages}
    assert set(pages) == {"textual inversion", "hypernetworks", "checkpoints", "lora"}
    items = list(pages["checkpoints"].list_items())
    assert items[0]["name"] == app.checkpoints.list()[0].name and items[0]["filename"].endswith(
        ".safetensors"
    )

    class Mine(ui_extra_networks.ExtraNetworksPage):
        def __init__(self):
            super().__init__("My Things")

    ui_extra_networks.register_page(Mine())
    assert ui_extra_networks.extra_pages[-1].id_page == "my_things"


def test_output_panel_and_save_files(app, tmp_path):
    from modules import ui_common
    from modules.ui import create_output_panel

    with gr.Blocks():
        panel = create_output_panel("mine", "outputs/mine")
    assert isinstance(panel.gallery, gr.Gallery) and panel.generation_info.elem_id == "generation_info_mine"
    source = app.paths.outputs_dir / "x.png"
    source.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(source)
    info = json.dumps({"infotexts": ["a cat\nSteps: 2, Sampler: Euler, Seed: 5"], "index_of_first_image": 0})
    update, status = ui_common.save_files(info, [str(source)], True, 0)
    saved = update["value"]
    assert saved[0].endswith(".zip") and saved[1].endswith("/00000-5.png") and "Saved:" in status
    assert Image.open(saved[1]).info["parameters"] == "a cat\nSteps: 2, Sampler: Euler, Seed: 5"
    html, _ = ui_common.update_generation_info(info, "old", 0)
    assert "Seed: 5" in html and ui_common.update_generation_info(info, "old", 3)[0] == "old"


def test_options_categories_and_cmd_args_parser():
    from modules import cmd_args, options

    assert options.categories.register_category("mine", "Mine") == "mine"
    assert options.categories.mapping["mine"].label == "Mine"
    assert cmd_args.parser.description.startswith("Sumi")
    assert cmd_args.parser.parse_args(["--gradio-allowed-path", "/x"]).gradio_allowed_path == ["/x"]
