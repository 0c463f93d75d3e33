"""A1111's txt2img submit functions, `modules.txt2img.txt2img` / `txt2img_create_processing` /
`txt2img_upscale`, called with A1111 1.10's argument list (as extensions do: agent-scheduler maps a
queued task's values onto `txt2img_create_processing`'s argument names and replays it through
`txt2img`): the job is built from the tab's values, run on the App's runner, and answered as
(gallery, generation info JSON, info HTML, comments HTML)."""

from __future__ import annotations

import inspect
import json

import pytest

from modules.sumi.engine.errors import InvalidRequestError

SIZE = 64
A1111_ARG_NAMES = [
    "id_task", "request", "prompt", "negative_prompt", "prompt_styles", "n_iter", "batch_size",
    "cfg_scale", "height", "width", "enable_hr", "denoising_strength", "hr_scale", "hr_upscaler",
    "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "hr_checkpoint_name", "hr_sampler_name",
    "hr_scheduler", "hr_prompt", "hr_negative_prompt", "override_settings_texts",
]  # fmt: skip


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), loaded=True)


def a1111_args(**values) -> list:
    """The positional arguments after (id_task, request) in A1111 1.10's order, with the tab's defaults."""
    tab = {
        "prompt": "a lighthouse",
        "negative_prompt": "fog",
        "prompt_styles": [],
        "n_iter": 1,
        "batch_size": 1,
        "cfg_scale": 7.0,
        "height": SIZE,
        "width": SIZE,
        "enable_hr": False,
        "denoising_strength": 0.7,
        "hr_scale": 2.0,
        "hr_upscaler": "Latent",
        "hr_second_pass_steps": 0,
        "hr_resize_x": 0,
        "hr_resize_y": 0,
        "hr_checkpoint_name": "Use same checkpoint",
        "hr_sampler_name": "Use same sampler",
        "hr_scheduler": "Use same scheduler",
        "hr_prompt": "",
        "hr_negative_prompt": "",
        "override_settings_texts": [],
    }
    assert set(values) <= set(tab)
    return list({**tab, **values}.values())


class Request:
    """What Gradio passes as `request`: the handler reads its `username`."""

    username = "tester"


def test_argument_names_are_a1111s_so_agent_scheduler_can_map_them():
    from modules import txt2img

    spec = inspect.getfullargspec(txt2img.txt2img_create_processing)
    assert spec.args == A1111_ARG_NAMES and spec.varargs == "args"
    assert "force_enable_hr" in spec.kwonlyargs
    assert inspect.getfullargspec(txt2img.txt2img_upscale).args[:5] == [
        "id_task", "request", "gallery", "gallery_index", "generation_info",
    ]  # fmt: skip


def test_create_processing_maps_the_tabs_values_onto_the_job(app):
    from modules import txt2img

    args = a1111_args(
        n_iter=2, batch_size=3, hr_sampler_name="Euler", hr_checkpoint_name="Use same checkpoint",
        override_settings_texts=["Clip skip: 2"],
    )  # fmt: skip
    p = txt2img.txt2img_create_processing("", Request(), *args, force_enable_hr=True, steps=4)
    assert (p.prompt, p.negative_prompt, p.n_iter, p.batch_size) == ("a lighthouse", "fog", 2, 3)
    assert p.enable_hr and p.hr_sampler_name == "Euler" and p.hr_checkpoint_name is None
    assert p.hr_scheduler is None and p.steps == 4 and getattr(p, "user", None) == "tester"
    assert p.override_settings == {"CLIP_stop_at_last_layers": 2}
    assert p.scripts is app.scripts.txt2img and p.script_args == app.scripts.txt2img.default_args()


def test_txt2img_returns_the_gallery_and_a1111s_info(app):
    from modules import txt2img

    images, info_js, info_html, comments_html = txt2img.txt2img(
        "task(t2i-handler)", Request(), *a1111_args(cfg_scale=5.5), steps=2, seed=11
    )
    assert len(images) == 1 and images[0].size == (SIZE, SIZE)
    info = json.loads(info_js)
    assert info["prompt"] == "a lighthouse" and info["seed"] == 11 and info["cfg_scale"] == 5.5
    assert "CFG scale: 5.5" in info["infotexts"][0] and "Seed: 11" in info["infotexts"][0]
    assert info_html.startswith("<p>") and "a lighthouse" in info_html
    assert comments_html.startswith("<p class='comments'>")


def test_a_wrapper_an_extension_installs_is_what_callers_get(app, monkeypatch):
    """agent-scheduler style: look the function up on the module at call time, so a wrapper counts."""
    from modules import txt2img

    calls = []
    original = txt2img.txt2img

    def wrapped(id_task, request, *args, **kwargs):
        calls.append(args[0])
        return original(id_task, request, *args, **kwargs)

    monkeypatch.setattr(txt2img, "txt2img", wrapped)
    images, *_ = txt2img.txt2img("", Request(), *a1111_args(prompt="a boat"), steps=1)
    assert calls == ["a boat"] and len(images) == 1


def test_unknown_keyword_fields_are_refused_by_name(app):
    from modules import txt2img

    with pytest.raises(TypeError, match="unknown job fields: stepz"):
        txt2img.txt2img("", Request(), *a1111_args(), stepz=3)


def test_upscale_replaces_the_chosen_gallery_image_with_its_hires_version(app):
    from modules import txt2img

    first, info_js, _, _ = txt2img.txt2img("", Request(), *a1111_args(batch_size=2), steps=1, seed=3)
    assert len(first) == 3  # the grid, then the two images
    gallery = [(image, None) for image in first]
    gallery2, info2_js, info_html, _ = txt2img.txt2img_upscale(
        "", Request(), gallery, 2, info_js, *a1111_args(hr_upscaler="Latent", hr_scale=1.5), steps=1
    )
    assert len(gallery2) == 3 and gallery2[1] is first[1]  # the other images stay as they were
    assert gallery2[2].size == (96, 96)
    info2 = json.loads(info2_js)
    assert "Seed: 4" in info2["infotexts"][2]  # the second image's seed, from its infotext
    assert "Hires upscale: 1.5" in info2["infotexts"][2] and "Hires" not in info2["infotexts"][1]
    assert "Seed: 4" in info_html


def test_upscale_without_an_image_is_a_clear_error(app):
    from modules import txt2img

    with pytest.raises(InvalidRequestError, match="No image to upscale"):
        txt2img.txt2img_upscale("", Request(), [], 0, "{}", *a1111_args())
    with pytest.raises(InvalidRequestError, match="Bad image index: 5"):
        txt2img.txt2img_upscale("", Request(), ["x.png"], 5, "{}", *a1111_args())
