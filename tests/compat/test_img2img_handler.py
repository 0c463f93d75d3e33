"""A1111's img2img submit function, `modules.img2img.img2img`, called with A1111 1.10's argument list (as
extensions do: agent-scheduler wraps it and calls it later): it builds the job from the mode and the
tab's values, runs it on the App's runner and answers (gallery, generation info JSON, info HTML,
comments HTML)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

SIZE = 64


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), loaded=True)


def picture() -> Image.Image:
    pixels = np.zeros((SIZE, SIZE, 3), np.uint8)
    pixels[..., 0] = np.arange(SIZE)[None, :] * 4
    pixels[..., 2] = 180
    return Image.fromarray(pixels)


def a1111_args(mode: int, **values) -> list:
    """The positional arguments after (id_task, request) in A1111 1.10's order, with the tab's defaults."""
    tab = {
        "mode": mode,
        "prompt": "a lighthouse",
        "negative_prompt": "",
        "prompt_styles": [],
        "init_img": None,
        "sketch": None,
        "init_img_with_mask": None,
        "inpaint_color_sketch": None,
        "inpaint_color_sketch_orig": None,
        "init_img_inpaint": None,
        "init_mask_inpaint": None,
        "mask_blur": 4,
        "mask_alpha": 0,
        "inpainting_fill": 1,
        "n_iter": 1,
        "batch_size": 1,
        "cfg_scale": 7.0,
        "image_cfg_scale": 1.5,
        "denoising_strength": 0.75,
        "selected_scale_tab": 0,
        "height": SIZE,
        "width": SIZE,
        "scale_by": 1.0,
        "resize_mode": 0,
        "inpaint_full_res": False,
        "inpaint_full_res_padding": 32,
        "inpainting_mask_invert": 0,
        "img2img_batch_input_dir": "",
        "img2img_batch_output_dir": "",
        "img2img_batch_inpaint_mask_dir": "",
        "override_settings_texts": [],
        "img2img_batch_use_png_info": False,
        "img2img_batch_png_info_props": [],
        "img2img_batch_png_info_dir": "",
        "img2img_batch_source_type": "from dir",
        "img2img_batch_upload": [],
    }
    assert set(values) <= set(tab)
    return list({**tab, **values}.values())


class Request:
    """What Gradio passes as `request`: the handler reads its `username`."""

    username = "tester"


def test_img2img_mode_returns_the_gallery_and_a1111s_info(app):
    from modules import img2img

    images, info_js, info_html, comments_html = img2img.img2img(
        "task(handler-1)", Request(), *a1111_args(0, init_img=picture(), denoising_strength=0.5)
    )
    assert len(images) == 1 and images[0].size == (SIZE, SIZE)
    info = json.loads(info_js)
    assert info["prompt"] == "a lighthouse" and info["denoising_strength"] == 0.5
    assert "Denoising strength: 0.5" in info["infotexts"][0]
    assert info_html.startswith("<p>") and "a lighthouse" in info_html
    assert comments_html.startswith("<p class='comments'>")


def test_inpaint_mode_redraws_only_the_painted_mask(app):
    from modules import img2img

    original = picture()
    mask = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 255))  # A1111's canvas: white strokes
    mask.paste((255, 255, 255, 255), (16, 16, 48, 48))
    canvas = {"image": original.convert("RGBA"), "mask": mask}
    args = a1111_args(2, init_img_with_mask=canvas, mask_blur=0, inpainting_fill=2)
    images, info_js, _, _ = img2img.img2img("", Request(), *args, steps=3, sampler_name="Euler", seed=5)
    result = np.asarray(images[0].convert("RGB")).astype(int)
    source = np.asarray(original).astype(int)
    outside = np.ones((SIZE, SIZE), bool)
    outside[16:48, 16:48] = False
    assert np.abs(result[outside] - source[outside]).max() <= 1  # the original laid back over it
    assert np.abs(result[~outside] - source[~outside]).mean() > 5  # redrawn from latent noise
    info = json.loads(info_js)
    assert info["seed"] == 5 and "Masked content: latent noise" in info["infotexts"][0]


def test_inpaint_sketch_masks_the_pixels_the_drawing_changed():
    from modules.img2img import source_images

    original = picture()
    drawn = original.copy()
    drawn.paste((255, 255, 0), (8, 8, 24, 24))
    image, mask = source_images(3, None, None, None, drawn, original, None, None, 0, 50)
    values = np.asarray(mask)
    assert values[8:24, 8:24].min() == values[8:24, 8:24].max() == 127  # 50% transparency
    assert values.sum() == 127 * 16 * 16
    assert np.asarray(image)[10, 10].tolist() != np.asarray(original)[10, 10].tolist()
    assert np.asarray(image)[40, 40].tolist() == np.asarray(original)[40, 40].tolist()


def test_a_missing_image_is_refused_before_anything_runs(app):
    from modules import img2img
    from modules.sumi.engine.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="img2img: no input image"):
        img2img.img2img("", Request(), *a1111_args(0))


def test_an_extension_wrapping_img2img_sees_and_changes_the_call(app, monkeypatch):
    """agent-scheduler's way: replace `modules.img2img.img2img` by a wrapper that calls the original."""
    import modules.img2img

    original = modules.img2img.img2img
    seen = []

    def wrapper(id_task, request, *args, **kwargs):
        seen.append((id_task, args[0]))
        kwargs.setdefault("steps", 2)
        return original(id_task, request, *args, **kwargs)

    monkeypatch.setattr(modules.img2img, "img2img", wrapper)
    images, info_js, _, _ = modules.img2img.img2img(
        "task(wrapped)", Request(), *a1111_args(0, init_img=picture(), batch_size=2)
    )
    assert seen == [("task(wrapped)", 0)]
    assert [image.size for image in images] == [(2 * SIZE, SIZE), (SIZE, SIZE), (SIZE, SIZE)]  # grid first
    assert json.loads(info_js)["steps"] == 2


def test_inpaint_upload_takes_the_image_and_the_mask_file():
    from modules.img2img import source_images

    mask = Image.new("L", (SIZE, SIZE), 255)
    image, got = source_images(4, None, None, None, None, None, picture(), mask, 4, 0)
    assert image.tobytes() == picture().tobytes() and got.tobytes() == mask.tobytes()


def test_batch_mode_runs_every_image_of_the_input_folder(app):
    from modules import img2img

    folder = app.paths.data_dir / "handler-batch"
    folder.mkdir()
    for name in ("one", "two"):
        picture().save(folder / f"{name}.png")
    args = a1111_args(5, img2img_batch_input_dir=str(folder), img2img_batch_output_dir=str(folder / "out"))
    images, _, _, _ = img2img.img2img("", Request(), *args, steps=2)
    assert len(images) == 2
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["one.png", "two.png"]
