"""The ControlNet training kind on a real App (the demo model, 64x64 images the tests write): a run from a
conditioning folder and one from a preprocessor write lllyasviel-layout files that Sumi's ControlNet
registry lists and loads at once to the trained weights; samples use the ControlNet being trained;
interrupt + resume equal an uninterrupted run; settings and folders are checked before anything is queued;
generation is left exactly as it was."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.resume import load_resume_state
from modules.sumi.services.training.controlnet import ControlNetTraining
from modules.sumi.services.training.controlnet_dataset import preprocessed_maps
from modules.sumi.services.training.controlnet_settings import (
    SAVE_PRECISIONS,
    ControlNetTrainingSettings,
    model_free_preprocessors,
)
from modules.sumi.services.training.dataset import FolderSettings, read_folder
from modules.sumi.services.training.service import TrainingService

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}
SQUARES = {"000-square": (8, 8), "001-square": (28, 20)}  # stem -> the square's top-left corner


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("controlnet"), "--nowebui", loaded=True)
    _write_dataset(app.paths.data_dir / "cn-set")
    return app


def _square(corner: tuple[int, int], colour=(230, 60, 30), background=(20, 20, 20)) -> np.ndarray:
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[...] = background
    x, y = corner
    pixels[y : y + 28, x : x + 28] = colour
    return pixels


def _write_dataset(folder: Path) -> None:
    """Coloured squares with captions, and their outlines as control images in `conditioning/`."""
    (folder / "conditioning").mkdir(parents=True, exist_ok=True)
    for stem, corner in SQUARES.items():
        Image.fromarray(_square(corner)).save(folder / f"{stem}.png")
        (folder / f"{stem}.txt").write_text("an orange square on black\n", encoding="utf-8")
        outline = np.zeros((64, 64, 3), np.uint8)
        cv2.rectangle(outline, corner, (corner[0] + 27, corner[1] + 27), (255, 255, 255), 1)
        Image.fromarray(outline).save(folder / "conditioning" / f"{stem}.png")


def _settings(name: str, **kw) -> ControlNetTrainingSettings:
    base = dict(
        output_name=name,
        data_root="cn-set",
        learn_rate="0.001",
        steps=2,
        training_width=64,
        training_height=64,
        preview_steps=1,
        preview_sampler_name="Euler",
        preview_seed=1,
        seed=3,
    )
    return ControlNetTrainingSettings(**{**base, **kw})  # type: ignore[arg-type]


def _image(client, prompt: str) -> bytes:
    r = client.post("/sdapi/v1/txt2img", json={**BODY, "prompt": prompt})
    assert r.status_code == 200, r.text
    return Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]))).tobytes()


def _tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118


def _recording(app, interrupt: bool = False) -> tuple[ControlNetTraining, list[dict]]:
    """The ControlNet kind on a training service whose sample maker records each sample's fields and the
    ControlNet model its unit names (and interrupts the run at its first sample when asked)."""
    real, seen = app.training._make_sample, []

    def sample(fields):
        unit = fields["controlnet_units"][0]
        seen.append({**fields, "lent": app.controlnet.models.find(unit.model).lent})
        image = real(fields)
        if interrupt:
            app.state.interrupt()
        return image

    service = TrainingService(
        app.queue, app.state, lambda: (app.models.get().sd, "demo", "0123456789"), sample
    )
    return ControlNetTraining(service, app.paths, app.options, app.controlnet.models), seen


# -- a run through the queue --------------------------------------------------------------------------------
def test_a_run_from_a_conditioning_folder_writes_a_controlnet_usable_at_once(app, client):
    base = _image(client, "a square")
    model = app.models.get().sd
    weights = {k: v.clone() for m in model.modules() for k, v in m.state_dict().items()}
    kind, samples = _recording(app)
    run, job = kind.submit(_settings("cn-folder", create_image_every=2, save_every=1))
    job.future.result(timeout=300)
    view = run.view()
    assert view.status == "done", view.message
    assert [p.step for p in view.losses] == [1, 2]
    assert [s.step for s in view.samples] == [2] and Path(view.samples[0].path).is_file()
    [fields] = samples
    assert fields["prompt"] == "an orange square on black" and fields["lent"] is not None
    unit = fields["controlnet_units"][0]
    assert unit.model == "cn-folder [training]" and unit.module == "none"
    assert np.array_equal(
        unit.images[0], np.asarray(Image.open(app.paths.data_dir / "cn-set/conditioning/000-square.png"))
    )

    path = app.paths.controlnet_dir / "cn-folder.safetensors"
    assert view.files[-1] == path
    log = Path(view.samples[0].path).parent.parent
    assert (log / "ControlNet" / "cn-folder-1.safetensors").is_file()
    tensors, meta = _tensors(path)
    assert all(k.startswith("control_model.") for k in tensors)
    assert all(t.dtype == torch.float16 for t in tensors.values())
    assert meta["ss_output_name"] == "cn-folder" and meta["ss_steps"] == "2"
    assert meta["ss_num_train_images"] == "2" and meta["ss_resolution"] == "(64, 64)"
    assert meta["sumi_controlnet_conditioning"] == "folder cn-set/conditioning"
    assert meta["ss_sd_model_name"] == "demo"

    names = client.get("/controlnet/model_list").json()["model_list"]
    assert any(n.startswith("cn-folder [") and not n.endswith("[training]") for n in names)
    found = app.controlnet.models.find("cn-folder [training]")  # the lent model went with the sample
    assert found is not None and found.lent is None and found.path == path
    loaded = app.controlnet.models.load(app.controlnet.models.find("cn-folder"), model)
    trained = load_resume_state(path.with_name(path.name + ".state"), "controlnet").tensors
    state = loaded.model.state_dict()
    assert set(state) == set(trained)
    for key, value in trained.items():
        torch.testing.assert_close(state[key], value.half().float(), rtol=0, atol=0)

    assert not any(p.requires_grad for m in model.modules() for p in m.parameters())
    assert not any(m.training for m in model.modules()) and not model.unet.is_gradient_checkpointing
    now = {k: v for m in model.modules() for k, v in m.state_dict().items()}
    assert all(torch.equal(weights[k], now[k]) for k in weights)
    assert _image(client, "a square") == base


def test_a_preprocessor_makes_the_control_images_from_the_training_images(app):
    settings = _settings(
        "cn-canny", preprocessor="canny", preprocessor_threshold_a=50, preprocessor_threshold_b=150, steps=1
    )
    contents = read_folder(FolderSettings(app.paths.data_dir / "cn-set", 64, 64))
    maps = preprocessed_maps(get_preprocessor("canny"), settings, contents, lambda: False)
    for source in contents.images:
        edges = maps[source.path.name][:, :, 0] > 0
        x, y = SQUARES[source.path.stem]
        assert edges[y + 14, x] or edges[y + 14, x - 1]  # the square's left side
        assert not edges[y + 10 : y + 18, x + 10 : x + 18].any()  # inside
    run = app.controlnet_training.train(settings)
    assert run.view().status == "done", run.view().message
    _, meta = _tensors(app.paths.controlnet_dir / "cn-canny.safetensors")
    assert meta["sumi_controlnet_conditioning"] == "canny (50, 150)"
    assert "cn-canny" in {n.split(" [")[0] for n in app.controlnet.models.names()}


# -- interrupt and resume ----------------------------------------------------------------------------------
def test_an_interrupted_run_keeps_a_usable_file_and_resumes_to_the_uninterrupted_result(app):
    extra = dict(steps=3, cache_latents=False, proportion_empty_prompts=0.5, offset_noise=0.05)
    whole = app.controlnet_training.train(_settings("cn-whole", **extra))
    assert whole.view().status == "done", whole.view().message
    expected = load_resume_state(
        app.paths.controlnet_dir / "cn-whole.safetensors.state", "controlnet"
    ).tensors
    kind, _ = _recording(app, interrupt=True)
    first = kind.train(_settings("cn-part", create_image_every=1, **extra))
    assert first.view().status == "interrupted" and first.view().step == 1
    path = app.paths.controlnet_dir / "cn-part.safetensors"
    tensors, meta = _tensors(path)
    assert meta["ss_steps"] == "1" and tensors
    assert load_resume_state(path.with_name(path.name + ".state"), "controlnet").step == 1
    rest = app.controlnet_training.train(_settings("cn-part", resume=True, **extra))
    assert rest.view().status == "done", rest.view().message
    assert [p.step for p in rest.view().losses] == [2, 3]
    got = load_resume_state(path.with_name(path.name + ".state"), "controlnet").tensors
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)
    again = app.controlnet_training.train(_settings("cn-part", resume=True, **extra))
    assert "already been trained" in again.view().message


# -- settings and checks ----------------------------------------------------------------------------------
def test_folders_and_pairs_are_checked_before_anything_is_queued(app):
    folder = app.paths.data_dir / "cn-unpaired"
    (folder / "conditioning").mkdir(parents=True)
    Image.fromarray(_square((8, 8))).save(folder / "lonely.png")
    Image.fromarray(_square((8, 8))).save(folder / "paired.png")
    Image.fromarray(_square((8, 8))).save(folder / "conditioning" / "paired.jpg")
    (folder / "notes.md").write_text("not an image", encoding="utf-8")
    queued = len(app.training.runs.runs)
    for kw, words in (
        ({"data_root": "missing"}, "data_root"),
        ({"data_root": "../.."}, "data_root"),
        ({"data_root": "cn-unpaired"}, "lonely.png"),
        ({"conditioning_data_root": "nowhere"}, "conditioning_data_root"),
        ({"conditioning_data_root": "../.."}, "conditioning_data_root"),
        ({"preview_conditioning": "cn-set/none.png"}, "preview_conditioning"),
        ({"preview_conditioning": "/etc/hostname"}, "preview_conditioning"),
    ):
        with pytest.raises(TrainingError, match=words):
            app.controlnet_training.submit(_settings("x", **kw))
    assert len(app.training.runs.runs) == queued
    (folder / "lonely.png").unlink()
    run, job = app.controlnet_training.submit(_settings("x-paired", data_root="cn-unpaired", steps=1))
    job.future.result(timeout=300)
    assert run.view().status == "done", run.view().message


def test_bad_settings_name_the_field():
    for kw, field in (
        ({"output_name": "../evil"}, "output_name"),
        ({"output_name": " "}, "output_name"),
        ({"preprocessor": "sharpen"}, "preprocessor"),
        ({"preprocessor": "depth_midas"}, "preprocessor"),
        ({"preprocessor": "inpaint_only"}, "preprocessor"),
        (
            {"preprocessor": "canny", "conditioning_data_root": "cn-set/conditioning"},
            "conditioning_data_root",
        ),
        ({"preprocessor_resolution": 10}, "preprocessor_resolution"),
        ({"proportion_empty_prompts": 1.5}, "proportion_empty_prompts"),
        ({"save_precision": "bf16"}, "save_precision"),
        ({"learn_rate": "fast"}, "learn_rate"),
        ({"training_width": 100}, "training_width"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"preview_sampler_name": "Nope"}, "preview_sampler_name"),
        ({"min_snr_gamma": 0.0}, "min_snr_gamma"),
    ):
        with pytest.raises(TrainingError, match=field):
            _settings("x", **kw)
    with pytest.raises(TrainingError, match="colour"):
        ControlNetTrainingSettings.from_args({"output_name": "x", "colour": 1})
    with pytest.raises(TrainingError, match="steps"):
        ControlNetTrainingSettings.from_args({"output_name": "x", "steps": "many"})
    parsed = ControlNetTrainingSettings.from_args(
        {"output_name": "x", "learn_rate": 1e-5, "preprocessor": "Canny"}
    )
    assert parsed.learn_rate == "1e-05" and parsed.conditioning_source() == "canny (100, 200)"
    assert SAVE_PRECISIONS == ("fp16", "fp32")
    assert {"canny", "scribble_xdog", "lineart_standard"} <= set(model_free_preprocessors())
    assert "depth_midas" not in model_free_preprocessors()
