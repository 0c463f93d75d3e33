"""Nothing ignored silently (issue 13 point 8): a walk over every field of A1111 1.10's txt2img and img2img
request models. For each field a request sets it to a value other than the default and a probe checks what
that field should change: the image, its size, the infotext, the files, the response (honoured), or a
warning in `info.warnings` that names the field (reported, services/jobs/ignored_fields.py).

The field lists are A1111's, written here from its source (commit 82a973c, v1.10.1): the `__init__`
parameters of `StableDiffusionProcessing`, `...Txt2Img` and `...Img2Img` (modules/processing.py) minus
`API_NOT_ALLOWED`, plus the `additional_fields` of modules/api/models.py. The walk fails when A1111's list,
Sumi's request models and the probes disagree: a field Sumi adds needs a probe, and an A1111 field Sumi's
model lacks is ignored (as unknown) unless a probe proves the warning.

PENDING_OTHER_STREAMS marks the probes of fields other issue-13 streams are implementing on their branches
(expected to fail here until those branches are merged; emptied at the merge).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diffusers import ControlNetModel
from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.frontends.http import models as m
from modules.sumi.services.jobs.infotext import parse_infotext
from tests.fixtures.tiny_controlnets import shapes_image, write_lllyasviel
from tests.fixtures.tiny_models import jitter

# -- A1111 1.10's request fields ----------------------------------------------------------------------
A1111_COMMON = (
    "prompt", "negative_prompt", "styles", "seed", "subseed", "subseed_strength", "seed_resize_from_h",
    "seed_resize_from_w", "sampler_name", "scheduler", "batch_size", "n_iter", "steps", "cfg_scale", "width",
    "height", "restore_faces", "tiling", "do_not_save_samples", "do_not_save_grid", "eta",
    "denoising_strength", "s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise", "override_settings",
    "override_settings_restore_afterwards", "refiner_checkpoint", "refiner_switch_at",
    "disable_extra_networks", "firstpass_image", "comments",
)  # fmt: skip
A1111_TXT2IMG_ONLY = (
    "enable_hr", "firstphase_width", "firstphase_height", "hr_scale", "hr_upscaler", "hr_second_pass_steps",
    "hr_resize_x", "hr_resize_y", "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "hr_prompt",
    "hr_negative_prompt", "force_task_id",
)  # fmt: skip
A1111_IMG2IMG_ONLY = (
    "init_images", "resize_mode", "image_cfg_scale", "mask", "mask_blur_x", "mask_blur_y", "mask_blur",
    "mask_round", "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding", "inpainting_mask_invert",
    "initial_noise_multiplier", "latent_mask", "force_task_id", "include_init_images",
)  # fmt: skip
A1111_API_ONLY = (
    "sampler_index", "script_name", "script_args", "send_images", "save_images", "alwayson_scripts",
    "force_task_id", "infotext",
)  # fmt: skip
A1111_TXT2IMG = frozenset(A1111_COMMON + A1111_TXT2IMG_ONLY + A1111_API_ONLY)
A1111_IMG2IMG = frozenset(A1111_COMMON + A1111_IMG2IMG_ONLY + A1111_API_ONLY)
# Fields Sumi's models have beyond A1111's (A1111 keeps them out of its API; Sumi honours them).
SUMI_ONLY = frozenset({"seed_enable_extras", "extra_generation_params"})
SUMI_TXT2IMG_ONLY = frozenset({"hr_cfg"})  # Hires CFG Scale (Forge's field; A1111 1.10 has none)

# Samplers and schedule types of issue 13 point 7 (stream F), each a probe of its own.
NEW_SAMPLERS = ("DPM++ 2M SDE Heun", "DPM++ 3M SDE", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++")
NEW_SCHEDULES = ("KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Polyexponential")

_HIRES = "B hires (issue 13 point 2)"
_REFINER = "C refiner (issue 13 point 3)"
_FACES = "E faces (issue 13 point 4)"
_SAMPLERS = "F samplers (issue 13 point 7)"
PENDING_OTHER_STREAMS: dict[str, str] = {
}  # fmt: skip

# A1111 fields Sumi's model lacks whose probe expects the unknown-field warning (A1111 itself ignores
# firstpass_image in img2img: only txt2img's Hires. fix reads it).
UNKNOWN_BUT_REPORTED = frozenset({"img2img:firstpass_image"})

SIZE = 64
TXT2IMG_BASE = {
    "prompt": "a red fox",
    "steps": 3,
    "width": SIZE,
    "height": SIZE,
    "seed": 21,
    "sampler_name": "Euler",
}
REFINER = "refiner_tiny"
STYLES_CSV = 'name,prompt,negative_prompt\nOil,"{prompt}, oil painting",\n'


# -- the App and the requests -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("walk")
    (data / "styles.csv").write_text(STYLES_CSV, encoding="utf-8")
    app = make_module_app(data, "--api", "--nowebui", loaded=True)
    demo = app.checkpoints.list()[0].filename
    shutil.copy(demo, Path(demo).parent / f"{REFINER}.safetensors")  # a second checkpoint (refiner, hires)
    app.checkpoints.refresh()
    controlnet = jitter(ControlNetModel.from_unet(load_checkpoint(demo).unet), 5)
    app.paths.controlnet_dir.mkdir(parents=True, exist_ok=True)
    write_lllyasviel(app.paths.controlnet_dir / "control_tiny_canny.safetensors", controlnet)
    app.controlnet.models.refresh()
    return app


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def picture(size=(SIZE, SIZE), flip: bool = False) -> Image.Image:
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, 255 - x], -1)
    return Image.fromarray(rgb[:, ::-1].copy() if flip else rgb)


def square(box=(16, 16, 48, 48), value: int = 255, size=(SIZE, SIZE)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(value, box)
    return mask


IMG2IMG_BASE = {**TXT2IMG_BASE, "init_images": [b64(picture())], "denoising_strength": 0.6}
MASKED = {"mask": b64(square()), "mask_blur": 0, "inpainting_fill": 1, "denoising_strength": 0.9}


@dataclass
class Result:
    data: dict
    info: dict = field(init=False)
    images: list[np.ndarray] = field(init=False)
    params: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.info = json.loads(self.data["info"])
        self.images = [
            np.asarray(Image.open(io.BytesIO(base64.b64decode(x))).convert("RGB")).astype(int)
            for x in self.data["images"] or []
        ]
        infotexts = self.info.get("infotexts") or [""]
        self.params = parse_infotext(infotexts[0]) if infotexts[0] else {}

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.images[0].shape[:2]
        return width, height

    @property
    def warnings(self) -> list[str]:
        return list(self.info.get("warnings") or [])


class Walk:
    """Requests to one endpoint: the base body with changes, and the assertions the probes make."""

    def __init__(self, app, client, tab: str) -> None:
        self.app, self.client, self.tab = app, client, tab
        self.base = TXT2IMG_BASE if tab == "txt2img" else IMG2IMG_BASE
        self._cache: dict[str, Result] = {}

    def post(self, changes: dict[str, Any] | None = None, drop: tuple[str, ...] = ()) -> Result:
        body = {k: v for k, v in {**self.base, **(changes or {})}.items() if k not in drop}
        key = json.dumps(body, sort_keys=True)
        if key not in self._cache:
            response = self.client.post(f"/sdapi/v1/{self.tab}", json=body)
            assert response.status_code == 200, response.text
            self._cache[key] = Result(response.json())
        return self._cache[key]

    def differs(self, changes: dict[str, Any], against: dict[str, Any] | None = None) -> Result:
        """The field changed the image (compared with `against`, default the base request)."""
        result, other = self.post(changes), self.post(against)
        assert (
            result.images[0].shape != other.images[0].shape
            or np.abs(result.images[0] - other.images[0]).max() > 0
        )
        return result

    def param(self, changes: dict[str, Any], key: str, value: str) -> Result:
        result = self.post(changes)
        assert result.params.get(key) == value, (key, result.params.get(key))
        return result

    def reported(self, changes: dict[str, Any], name: str) -> Result:
        result = self.post(changes)
        assert any(name in w for w in result.warnings), result.warnings
        return result

    def outputs(self) -> list[Path]:
        return sorted(p for p in self.app.paths.outputs_dir.rglob("*.png"))


Probe = Callable[[Walk], Any]
_EULER = {"sampler_name": "Euler"}  # churn is for Euler, Heun and DPM2 only
_CHURN = _EULER | {"s_churn": 2.0}


_RUNS = iter(range(1_000_000))


def _files_written(w: Walk, changes: dict[str, Any]) -> list[Path]:
    """The image files a request writes (a fresh prompt each time: never an answer from the cache)."""
    before = set(w.outputs())
    w.post({**changes, "save_images": True, "prompt": f"files run {next(_RUNS)}"})
    return [p for p in w.outputs() if p not in before]


def _force_task_id(w: Walk) -> None:
    seen: list[Any] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(
                w.client.get("/sdapi/v1/progress", params={"skip_current_image": True}).json()["current_task"]
            )

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        w.post({"steps": 30, "force_task_id": f"task(walk-{w.tab})"})
    finally:
        done.set()
        watcher.join()
    assert f"task(walk-{w.tab})" in seen


def _restore_afterwards(w: Walk) -> None:
    w.post(
        {"override_settings": {"CLIP_stop_at_last_layers": 3}, "override_settings_restore_afterwards": False}
    )
    try:
        assert w.client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 3
    finally:
        w.client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 1})


def _disable_extra_networks(w: Walk) -> None:
    tagged = {"prompt": "a red fox <lora:walk_missing_net:1>"}
    assert any("walk_missing_net" in x for x in w.post(tagged).warnings)  # the tag is read normally
    disabled = w.post({**tagged, "disable_extra_networks": True})
    assert not any("walk_missing_net" in x for x in disabled.warnings)


def _infotext(w: Walk) -> None:
    text = "a lake at dawn\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 77, Size: 64x64, Clip skip: 2"
    result = w.post({"infotext": text}, drop=("prompt", "steps", "sampler_name"))
    assert result.params["Steps"] == "4" and result.params["Sampler"] == "Euler a"
    assert result.params["Seed"] == "21"  # the request's own seed wins
    assert result.params["Clip skip"] == "2"  # settings in the infotext go to override_settings
    assert result.info["prompt"] == "a lake at dawn"


def _controlnet_unit() -> dict[str, Any]:
    unit = {"enabled": True, "module": "canny", "model": "control_tiny_canny", "processor_res": 64}
    return {**unit, "image": b64(Image.fromarray(shapes_image()))}


COMMON: dict[str, Probe] = {
    "prompt": lambda w: w.differs({"prompt": "a blue lake"}),
    "negative_prompt": lambda w: w.differs({"negative_prompt": "red"}),
    "styles": lambda w: w.param({"styles": ["Oil"]}, "Prompt", "a red fox, oil painting"),
    "seed": lambda w: w.differs({"seed": 99}).info["seed"] == 99 or pytest.fail("seed"),
    "subseed": lambda w: w.differs({"subseed": 7, "subseed_strength": 0.5}, {"subseed": 8, "subseed_strength": 0.5}),
    "subseed_strength": lambda w: w.param(
        {"subseed": 7, "subseed_strength": 0.5}, "Variation seed strength", "0.5"
    ) and w.differs({"subseed": 7, "subseed_strength": 0.5}),
    "seed_resize_from_w": lambda w: w.differs(
        {"seed_resize_from_w": 48, "seed_resize_from_h": 32}, {"seed_resize_from_w": 32, "seed_resize_from_h": 32}
    ),
    "seed_resize_from_h": lambda w: w.param(
        {"seed_resize_from_w": 32, "seed_resize_from_h": 48}, "Seed resize from-2", "48"
    ),
    "sampler_name": lambda w: w.param({"sampler_name": "Euler a"}, "Sampler", "Euler a"),
    "scheduler": lambda w: w.param({"scheduler": "Karras"}, "Schedule type", "Karras"),
    "batch_size": lambda w: len(w.post({"batch_size": 2}).info["all_seeds"]) == 2 or pytest.fail("batch_size"),
    "n_iter": lambda w: len(w.post({"n_iter": 2}).info["all_seeds"]) == 2 or pytest.fail("n_iter"),
    "steps": lambda w: w.param({"steps": 4}, "Steps", "4"),
    "cfg_scale": lambda w: w.param({"cfg_scale": 4}, "CFG scale", "4") and w.differs({"cfg_scale": 4}),
    "width": lambda w: w.post({"width": 96}).size == (96, SIZE) or pytest.fail("width"),
    "height": lambda w: w.post({"height": 80}).size == (SIZE, 80) or pytest.fail("height"),
    "restore_faces": lambda w: w.reported({"restore_faces": True}, "ace restoration"),
    "tiling": lambda w: w.param({"tiling": True}, "Tiling", "True") and w.differs({"tiling": True}),
    "do_not_save_samples": lambda w: (
        _files_written(w, {}) and not _files_written(w, {"do_not_save_samples": True})
    ) or pytest.fail("do_not_save_samples"),
    "do_not_save_grid": lambda w: (
        any(p.name.startswith("grid") for p in _files_written(w, {"n_iter": 2}))
        and not any(p.name.startswith("grid") for p in _files_written(w, {"n_iter": 2, "do_not_save_grid": True}))
    ) or pytest.fail("do_not_save_grid"),
    "eta": lambda w: w.differs({"sampler_name": "Euler a", "eta": 0.0}, {"sampler_name": "Euler a"})
    and w.differs({"sampler_name": "DDIM", "eta": 0.9}, {"sampler_name": "DDIM"}),
    "denoising_strength": lambda w: w.param({"denoising_strength": 0.3}, "Denoising strength", "0.3")
    and w.differs({"denoising_strength": 0.3}),
    "s_min_uncond": lambda w: w.param({"s_min_uncond": 100.0}, "NGMS", "100.0")
    and w.differs({"s_min_uncond": 100.0}),
    "s_churn": lambda w: w.param(_EULER | {"s_churn": 0.5}, "Sigma churn", "0.5")
    and w.differs(_EULER | {"s_churn": 0.5}, _EULER),
    "s_tmax": lambda w: w.param(_CHURN | {"s_tmax": 0.5}, "Sigma tmax", "0.5")
    and w.differs(_CHURN | {"s_tmax": 0.5}, _CHURN),
    "s_tmin": lambda w: w.param(_CHURN | {"s_tmin": 1.0}, "Sigma tmin", "1.0")
    and w.differs(_CHURN | {"s_tmin": 1.0}, _CHURN),
    "s_noise": lambda w: w.param(_CHURN | {"s_noise": 0.9}, "Sigma noise", "0.9")
    and w.differs(_CHURN | {"s_noise": 0.9}, _CHURN),
    "override_settings": lambda w: w.param({"override_settings": {"CLIP_stop_at_last_layers": 2}}, "Clip skip", "2"),
    "override_settings_restore_afterwards": _restore_afterwards,
    "refiner_checkpoint": lambda w: w.post({"refiner_checkpoint": REFINER, "refiner_switch_at": 0.5})
    .params["Refiner"]
    .startswith(REFINER)
    or pytest.fail("refiner_checkpoint"),
    "refiner_switch_at": lambda w: w.param(
        {"refiner_checkpoint": REFINER, "refiner_switch_at": 0.5}, "Refiner switch at", "0.5"
    ),
    "disable_extra_networks": _disable_extra_networks,
    "firstpass_image": lambda w: w.reported({"firstpass_image": b64(picture())}, "firstpass_image"),
    "comments": lambda w: w.reported({"comments": {"a note": 1}}, "comments"),
    # A1111's API-only fields
    "sampler_index": lambda w: w.param({"sampler_name": None, "sampler_index": "Euler a"}, "Sampler", "Euler a"),
    "script_name": lambda w: len(w.post({"script_name": "Prompt matrix", "prompt": "a fox|red"}).info["all_prompts"])
    == 2
    or pytest.fail("script_name"),
    "script_args": lambda w: "red, a fox"
    in w.post(
        {"script_name": "Prompt matrix", "prompt": "a fox|red", "script_args": [True, False, "positive", "comma", 0]}
    ).info["all_prompts"]
    or pytest.fail("script_args"),
    "send_images": lambda w: w.post({"send_images": False}).data["images"] == [] or pytest.fail("send_images"),
    "save_images": lambda w: _files_written(w, {}) or pytest.fail("save_images"),
    "alwayson_scripts": lambda w: "ControlNet 0"
    in w.post({"alwayson_scripts": {"ControlNet": {"args": [_controlnet_unit()]}}}).params
    or pytest.fail("alwayson_scripts"),
    "force_task_id": _force_task_id,
    "infotext": _infotext,
    # Sumi's own
    "seed_enable_extras": lambda w: np.array_equal(
        w.post({"subseed": 7, "subseed_strength": 0.5, "seed_enable_extras": False}).images[0], w.post().images[0]
    )
    or pytest.fail("seed_enable_extras"),
    "extra_generation_params": lambda w: w.param({"extra_generation_params": {"Walk key": "seen"}}, "Walk key", "seen"),
}  # fmt: skip

_HR = {"enable_hr": True}
TXT2IMG_ONLY: dict[str, Probe] = {
    "denoising_strength": lambda w: w.differs({**_HR, "denoising_strength": 0.2}, {**_HR, "denoising_strength": 0.9}),
    "firstpass_image": lambda w: w.post({**_HR, "firstpass_image": b64(picture())}).size == (128, 128)
    and w.differs({**_HR, "firstpass_image": b64(picture())}, {**_HR, "firstpass_image": b64(picture(flip=True))}),
    "enable_hr": lambda w: w.post({**_HR, "hr_scale": 2}).size == (128, 128) or pytest.fail("enable_hr"),
    "firstphase_width": lambda w: w.post(
        {**_HR, "width": 96, "height": 96, "firstphase_width": 80, "firstphase_height": 64}
    ).size == (160, 128) or pytest.fail("firstphase_width"),
    "firstphase_height": lambda w: w.post(
        {**_HR, "width": 96, "height": 96, "firstphase_width": 64, "firstphase_height": 80}
    ).size == (128, 160) or pytest.fail("firstphase_height"),
    "hr_scale": lambda w: w.post({**_HR, "hr_scale": 1.5}).size == (96, 96) or pytest.fail("hr_scale"),
    "hr_upscaler": lambda w: w.differs({**_HR, "hr_upscaler": "Nearest"}, {**_HR, "hr_upscaler": "Latent"}),
    "hr_second_pass_steps": lambda w: w.param({**_HR, "hr_second_pass_steps": 2}, "Hires steps", "2"),
    "hr_resize_x": lambda w: w.post({**_HR, "hr_resize_x": 96}).size == (96, 96) or pytest.fail("hr_resize_x"),
    "hr_resize_y": lambda w: w.post({**_HR, "hr_resize_y": 80}).size == (80, 80) or pytest.fail("hr_resize_y"),
    "hr_checkpoint_name": lambda w: w.post({**_HR, "hr_checkpoint_name": REFINER})
    .params["Hires checkpoint"]
    .startswith(REFINER)
    or pytest.fail("hr_checkpoint_name"),
    "hr_sampler_name": lambda w: w.param({**_HR, "hr_sampler_name": "Euler a"}, "Hires sampler", "Euler a"),
    "hr_scheduler": lambda w: w.param({**_HR, "hr_scheduler": "Karras"}, "Hires schedule type", "Karras"),
    "hr_prompt": lambda w: w.param({**_HR, "hr_prompt": "a green field"}, "Hires prompt", "a green field"),
    "hr_negative_prompt": lambda w: w.param(
        {**_HR, "hr_negative_prompt": "blurry"}, "Hires negative prompt", "blurry"
    ),
    "hr_cfg": lambda w: w.param({**_HR, "hr_cfg": 3.5}, "Hires CFG Scale", "3.5")
    and w.differs({**_HR, "hr_cfg": 1.0}, {**_HR, "hr_cfg": 9.0}),
}  # fmt: skip

_FULL = {**MASKED, "inpaint_full_res": True}
IMG2IMG_ONLY: dict[str, Probe] = {
    "init_images": lambda w: w.differs({"init_images": [b64(picture(flip=True))]}),
    "resize_mode": lambda w: w.differs(
        {"init_images": [b64(picture((64, 32)))], "resize_mode": 1}, {"init_images": [b64(picture((64, 32)))]}
    ),
    # only instruct-pix2pix models use it (A1111 drops it for others); the demo model is not one
    "image_cfg_scale": lambda w: w.reported({"image_cfg_scale": 2}, "image_cfg_scale"),
    "mask": lambda w: w.differs(MASKED, {"denoising_strength": 0.9}),
    "mask_blur_x": lambda w: w.differs({**MASKED, "mask_blur": None, "mask_blur_x": 8, "mask_blur_y": 0},
                                       {**MASKED, "mask_blur": None, "mask_blur_x": 0, "mask_blur_y": 0}),
    "mask_blur_y": lambda w: w.differs({**MASKED, "mask_blur": None, "mask_blur_x": 0, "mask_blur_y": 8},
                                       {**MASKED, "mask_blur": None, "mask_blur_x": 0, "mask_blur_y": 0}),
    "mask_blur": lambda w: w.differs({**MASKED, "mask_blur": 8}, MASKED),
    "mask_round": lambda w: w.differs({**MASKED, "mask": b64(square(value=100)), "mask_round": False},
                                      {**MASKED, "mask": b64(square(value=100))}),
    "inpainting_fill": lambda w: w.differs({**MASKED, "inpainting_fill": 2}, MASKED),
    "inpaint_full_res": lambda w: w.differs(_FULL, {**MASKED, "inpaint_full_res": False}),
    "inpaint_full_res_padding": lambda w: w.differs({**_FULL, "inpaint_full_res_padding": 16}, _FULL),
    "inpainting_mask_invert": lambda w: w.differs({**MASKED, "inpainting_mask_invert": 1}, MASKED),
    "initial_noise_multiplier": lambda w: w.param({"initial_noise_multiplier": 0.5}, "Noise multiplier", "0.5")
    and w.differs({"initial_noise_multiplier": 0.5}),
    "latent_mask": lambda w: w.differs({**MASKED, "latent_mask": b64(square((0, 0, 32, 64)))}, MASKED),
    "include_init_images": lambda w: w.post({"include_init_images": True}).data["parameters"]["init_images"]
    == IMG2IMG_BASE["init_images"]
    or pytest.fail("include_init_images"),
}  # fmt: skip

TXT2IMG_PROBES = {**{k: v for k, v in COMMON.items()}, **TXT2IMG_ONLY}
IMG2IMG_PROBES = {**COMMON, **IMG2IMG_ONLY}
EXTRA_PROBES: dict[str, Probe] = {
    **{
        f"sampler_name={n}": (lambda w, n=n: w.param({"sampler_name": n}, "Sampler", n)) for n in NEW_SAMPLERS
    },
    **{
        f"scheduler={n}": (lambda w, n=n: w.param({"scheduler": n}, "Schedule type", n))
        for n in NEW_SCHEDULES
    },
}


def _cases() -> list[Any]:
    cases = []
    for tab, probes in (("txt2img", {**TXT2IMG_PROBES, **EXTRA_PROBES}), ("img2img", IMG2IMG_PROBES)):
        for name in sorted(probes):
            key = f"{tab}:{name}"
            pending = PENDING_OTHER_STREAMS.get(key)
            marks = [pytest.mark.xfail(strict=False, reason=f"pending: stream {pending}")] if pending else []
            cases.append(pytest.param(tab, name, probes[name], id=key, marks=marks))
    return cases


@pytest.fixture(scope="module")
def walks(app, client) -> dict[str, Walk]:
    return {tab: Walk(app, client, tab) for tab in ("txt2img", "img2img")}


@pytest.mark.parametrize(("tab", "name", "probe"), _cases())
def test_every_request_field_is_honoured_or_reported(walks, tab, name, probe):
    outcome = probe(walks[tab])
    assert outcome is None or outcome, f"{tab}: {name} had no effect"


# -- the lists agree -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("probes", "a1111", "model", "sumi_only"),
    [
        (TXT2IMG_PROBES, A1111_TXT2IMG, m.Txt2ImgRequest, SUMI_ONLY | SUMI_TXT2IMG_ONLY),
        (IMG2IMG_PROBES, A1111_IMG2IMG, m.Img2ImgRequest, SUMI_ONLY),
    ],
    ids=["txt2img", "img2img"],
)
def test_the_walk_covers_every_field_of_a1111s_and_sumis_request_models(probes, a1111, model, sumi_only):
    assert set(probes) == a1111 | sumi_only  # one probe per A1111 field and per Sumi-only field
    accepted = set(model.model_fields)
    assert accepted - a1111 == sumi_only, "a field Sumi added needs a probe and a place in SUMI_ONLY"
    tab = "txt2img" if model is m.Txt2ImgRequest else "img2img"
    for name in a1111 - accepted:  # unknown to Sumi's model: pending, or its probe expects a warning
        assert f"{tab}:{name}" in set(PENDING_OTHER_STREAMS) | UNKNOWN_BUT_REPORTED, name


def test_pending_marks_name_only_probes_that_exist():
    known = {f"txt2img:{n}" for n in {**TXT2IMG_PROBES, **EXTRA_PROBES}} | {
        f"img2img:{n}" for n in IMG2IMG_PROBES
    }
    assert set(PENDING_OTHER_STREAMS) <= known


def test_unknown_fields_are_ignored_with_one_warning_naming_them(walks):
    result = walks["txt2img"].post({"made_up_field": 3, "another_one": "x"})
    assert any("made_up_field" in w and "another_one" in w for w in result.warnings), result.warnings
    assert "made_up_field" not in result.data["parameters"]
    assert np.array_equal(result.images[0], walks["txt2img"].post().images[0])


def test_harmless_values_of_fields_sumi_does_not_honour_give_no_warning(walks):
    harmless = {
        "s_churn": 0.0,
        "s_tmin": 0.0,
        "s_tmax": 0.0,
        "s_noise": 1.0,
        "s_min_uncond": 0.0,
        "comments": {},
    }
    assert walks["txt2img"].post(harmless).warnings == []
