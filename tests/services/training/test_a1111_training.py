"""A1111's training kinds on a real App (the demo model, 64x64 images the tests write): dataset reading,
create_embedding / create_hypernetwork, training that lowers the loss, files in A1111's layout that load
back and change generation, resume equal to an uninterrupted run, and a model left as it was."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.networks.embeddings import load_embedding_file
from modules.sumi.engine.networks.hypernetwork import load_hypernetwork
from modules.sumi.engine.text.encoder import encode_prompts
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.model_io import encode_images, unet_predictor
from modules.sumi.engine.training.objective import DiffusionObjective, ObjectiveSettings
from modules.sumi.services.training.a1111 import A1111Training
from modules.sumi.services.training.a1111_settings import (
    EmbeddingTrainingSettings,
    HypernetworkTrainingSettings,
)
from modules.sumi.services.training.dataset import FolderSettings, list_templates, read_folder, read_template
from modules.sumi.services.training.service import TrainingService
from modules.sumi.services.training.textual_inversion import create_embedding_file
from tests.app_support import with_random_weight_model

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}
SHIPPED = {
    "none.txt",
    "style.txt",
    "style_filewords.txt",
    "subject.txt",
    "subject_filewords.txt",
    "hypernetwork.txt",
}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("train")
    with_random_weight_model(data)  # the trainers' mechanics at 64x64, a size the trained demo never saw
    app = make_module_app(data, "--nowebui", loaded=True)
    _write_dataset(app.paths.data_dir / "dataset")
    return app


def _write_dataset(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate([(220, 30, 30), (30, 30, 220)]):
        pixels = np.zeros((64, 64, 4), dtype=np.uint8)
        pixels[..., :3] = colour
        pixels[16:48, 16:48, :3] = 255 - np.array(colour)
        pixels[..., 3] = 255
        pixels[:, :16, 3] = 0
        Image.fromarray(pixels, "RGBA").save(folder / f"{i:03d}-square, bright.png")
    (folder / "000-square, bright.txt").write_text("red square, white centre\n", encoding="utf-8")
    (folder / "broken.png").write_bytes(b"not a png")


def _image(client, prompt: str) -> bytes:
    r = client.post("/sdapi/v1/txt2img", json={**BODY, "prompt": prompt})
    assert r.status_code == 200, r.text
    return Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0]))).tobytes()


def _embedding_settings(name: str, **kw) -> EmbeddingTrainingSettings:
    base = dict(
        embedding_name=name,
        data_root="dataset",
        training_width=64,
        training_height=64,
        steps=4,
        learn_rate="0.05",
        create_image_every=0,
        save_embedding_every=0,
        template_filename="subject_filewords.txt",
        seed=3,
    )
    return EmbeddingTrainingSettings(**{**base, **kw})


# -- the dataset ------------------------------------------------------------------------------------------
def test_the_shipped_templates_are_listed_and_a_missing_one_is_named(app):
    assert set(list_templates(app.paths.templates_dir)) >= SHIPPED
    assert all("[name]" in line for line in read_template(app.paths.templates_dir, "subject.txt"))
    with pytest.raises(TrainingError, match="nope.txt"):
        read_template(app.paths.templates_dir, "nope.txt")


def test_the_folder_gives_captions_from_txt_or_names_and_skips_unreadable_files(app, tmp_path):
    contents = read_folder(FolderSettings(app.paths.data_dir / "dataset", 64, 64, use_weight=True))
    captions = {image.path.name: image.caption for image in contents.images}
    assert captions == {
        "000-square, bright.png": "red square, white centre",
        "001-square, bright.png": "square, bright",
    }
    assert contents.skipped == ["broken.png"]
    assert all(image.alpha is not None and image.pixels.shape == (3, 64, 64) for image in contents.images)
    with pytest.raises(TrainingError, match="does not exist"):
        read_folder(FolderSettings(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="holds no images"):
        read_folder(FolderSettings(tmp_path / "empty"))


# -- creating -----------------------------------------------------------------------------------------------
def test_create_embedding_writes_a1111s_file_from_the_init_text_and_refuses_to_overwrite(app):
    path = app.a1111_training.create_embedding("new emb!", 3, init_text="red square")
    assert path == app.paths.embeddings_dir / "new emb.pt"
    data = torch.load(path, weights_only=True)
    assert set(data) == {
        "string_to_token",
        "string_to_param",
        "name",
        "step",
        "sd_checkpoint",
        "sd_checkpoint_name",
    }
    assert data["step"] == 0 and data["string_to_param"]["*"].shape[0] == 3
    spec = app.models.get().sd.text_encoders[0]
    ids = spec.tokenizer("red square", add_special_tokens=False)["input_ids"]
    table = spec.model.get_input_embeddings().weight.detach()
    torch.testing.assert_close(data["string_to_param"]["*"][0], table[ids[0]].float())
    assert "new emb" in app.embeddings.embeddings
    with pytest.raises(TrainingError, match="already exists"):
        app.a1111_training.create_embedding("new emb", 1)
    empty = app.a1111_training.create_embedding("new emb", 1, overwrite_old=True, init_text="")
    assert torch.load(empty, weights_only=True)["string_to_param"]["*"].abs().sum() == 0


def test_an_sdxl_embedding_has_clip_l_and_clip_g(tiny_sdxl_ckpt, tmp_path):
    model = load_checkpoint(tiny_sdxl_ckpt[0])
    path = create_embedding_file(model, tmp_path, "xl", 2, init_text="a cat")
    assert path.suffix == ".safetensors"
    loaded = load_embedding_file(path)
    assert isinstance(loaded.vectors, dict) and set(loaded.vectors) == {"clip_l", "clip_g"}
    widths = [spec.model.get_input_embeddings().weight.shape[-1] for spec in model.text_encoders]
    assert [loaded.vectors[k].shape for k in ("clip_l", "clip_g")] == [(2, widths[0]), (2, widths[1])]


# -- training an embedding ------------------------------------------------------------------------------------
def _eval_loss(app, vectors: torch.Tensor) -> float:
    """The loss of the dataset's first image with `vectors` in the prompt, over fixed noise."""
    from modules.sumi.engine.networks.embeddings import Embedding, EmbeddingHook

    model = app.models.get().sd
    pixels = torch.from_numpy(
        np.asarray(
            Image.open(app.paths.data_dir / "dataset" / "000-square, bright.png").convert("RGB"),
            dtype=np.float32,
        )
        / 127.5
        - 1
    )
    latents = encode_images(model, pixels.permute(2, 0, 1)[None]).repeat(16, 1, 1, 1)
    hook = EmbeddingHook({"evalemb": Embedding("evalemb", vectors)}, model.text_encoders, [None])
    with torch.no_grad():
        cond = encode_prompts(model.text_encoders, ["evalemb"] * 16, token_override=hook)
        objective = DiffusionObjective(model.scheduler_config, model.prediction_type)
        return objective.loss(
            unet_predictor(model, cond, 64, 64), latents, torch.Generator().manual_seed(0)
        ).item()


def test_training_an_embedding_lowers_the_loss_and_leaves_generation_untouched(app, client):
    app.a1111_training.create_embedding("learnme", 2, init_text="thing")
    before_plain = _image(client, "a square")
    before_emb = _image(client, "a learnme square")
    initial = load_embedding_file(app.paths.embeddings_dir / "learnme.pt").vectors
    run = app.a1111_training.train_embedding(
        _embedding_settings(
            "learnme",
            steps=8,
            template_filename="subject.txt",
            create_image_every=4,
            save_embedding_every=4,
            preview_from_txt2img=True,
            preview_prompt="learnme",
            preview_steps=2,
            preview_width=64,
            preview_height=64,
        )
    )
    view = run.view()
    assert view.status == "done", view.message
    assert [p.step for p in view.losses] == list(range(1, 9)) and [s.step for s in view.samples] == [4, 8]
    assert "broken.png" in view.message
    trained = load_embedding_file(app.paths.embeddings_dir / "learnme.pt")
    assert trained.step == 8 and trained.sd_checkpoint_name
    assert _eval_loss(app, trained.vectors) < _eval_loss(app, initial)
    log = Path(view.samples[0].path).parent.parent
    assert (log / "embeddings" / "learnme-4.pt").is_file()
    assert load_embedding_file(log / "image_embeddings" / "learnme-8.png").name == "learnme"
    # the model is as before: no requires_grad, no train mode, same images without the embedding
    model = app.models.get().sd
    assert not any(p.requires_grad for m in model.modules() for p in m.parameters())
    assert not any(m.training for m in model.modules())
    assert _image(client, "a square") == before_plain
    assert _image(client, "a learnme square") != before_emb


def _interrupting_a1111(app, stop_at: int) -> A1111Training:
    """The A1111 kinds on a training service whose sample maker interrupts at step `stop_at`."""
    real = app.training._make_sample

    def sample(fields):
        image = real(fields)
        app.state.interrupt()
        return image

    service = TrainingService(
        app.queue, app.state, lambda: (app.models.get().sd, "demo", "0123456789"), sample
    )
    return A1111Training(
        service,
        app.queue,
        lambda: app.models.get().sd,
        app.paths,
        app.options,
        app.embeddings,
        app.hypernetworks,
    )


def test_an_interrupted_run_resumed_from_its_file_and_optimizer_state_ends_like_an_uninterrupted_one(app):
    app.options.save_optimizer_state = True
    try:
        app.a1111_training.create_embedding("resume", 2, init_text="thing")
        whole = app.a1111_training.train_embedding(_embedding_settings("resume", shuffle_tags=True))
        assert whole.view().status == "done"
        expected = load_embedding_file(app.paths.embeddings_dir / "resume.pt").vectors
        app.a1111_training.create_embedding("resume", 2, overwrite_old=True, init_text="thing")
        stopping = _interrupting_a1111(app, 2)
        first = stopping.train_embedding(
            _embedding_settings(
                "resume",
                shuffle_tags=True,
                create_image_every=2,
                preview_from_txt2img=True,
                preview_prompt="x",
                preview_steps=1,
                preview_width=64,
                preview_height=64,
            )
        )
        assert first.view().status == "interrupted" and first.view().step == 2
        assert load_embedding_file(app.paths.embeddings_dir / "resume.pt").step == 2
        assert (app.paths.embeddings_dir / "resume.pt.optim").is_file()
        rest = app.a1111_training.train_embedding(_embedding_settings("resume", shuffle_tags=True))
        assert [p.step for p in rest.view().losses] == [3, 4]
        torch.testing.assert_close(
            load_embedding_file(app.paths.embeddings_dir / "resume.pt").vectors, expected, rtol=0, atol=0
        )
    finally:
        app.options.save_optimizer_state = False


def test_debiased_estimation_weights_the_loss_by_one_over_the_square_root_of_the_snr(app):
    """The same first step (same seed, same fresh embedding) with and without the API's
    `debiased_estimation`: the loss is multiplied by the 1/sqrt(SNR) of one of the schedule's steps."""
    first_losses = []
    for debiased in (False, True):
        app.a1111_training.create_embedding("debiased", 1, overwrite_old=True, init_text="square")
        args = {"embedding_name": "debiased", "data_root": "dataset", "training_width": 64}
        args |= {"training_height": 64, "steps": 1, "save_embedding_every": 0, "create_image_every": 0}
        settings = EmbeddingTrainingSettings.from_args({**args, "seed": 3, "debiased_estimation": debiased})
        assert settings.debiased_estimation is debiased
        view = app.a1111_training.train_embedding(settings).view()
        assert view.status == "done", view.message
        first_losses.append(view.losses[0].loss)
    model = app.models.get().sd
    debiased = ObjectiveSettings(debiased_estimation=True)
    weights = DiffusionObjective(model.scheduler_config, model.prediction_type, debiased).snr_weights(
        torch.arange(1000)
    )
    assert weights is not None
    ratio = first_losses[1] / first_losses[0]
    assert abs(ratio - 1) > 1e-3
    assert ((weights - ratio).abs() / ratio).min().item() < 1e-4, (ratio, weights)


def test_an_embedding_trains_through_a_filewords_template_when_its_captions_name_it(app):
    """A1111 fills a template's [filewords] before its [name], so captions may carry [name] and a
    [filewords] template (hypernetwork.txt has no [name]) trains the embedding; without [name] in the
    captions it is refused, since nothing would train."""
    folder = app.paths.data_dir / "named"
    _write_dataset(folder)
    (folder / "000-square, bright.txt").write_text("[name], red square\n", encoding="utf-8")
    (folder / "001-square, bright.txt").write_text("[name], blue square\n", encoding="utf-8")
    path = app.a1111_training.create_embedding("captioned", 1, init_text="square")
    before = torch.load(path, weights_only=True)["string_to_param"]["*"]
    settings = _embedding_settings("captioned", data_root="named", template_filename="hypernetwork.txt")
    run = app.a1111_training.train_embedding(settings)
    assert run.view().status == "done", run.view().message
    trained = torch.load(path, weights_only=True)
    assert trained["step"] == 4 and not torch.equal(trained["string_to_param"]["*"], before)
    (folder / "000-square, bright.txt").write_text("red square\n", encoding="utf-8")
    (folder / "001-square, bright.txt").write_text("blue square\n", encoding="utf-8")
    with pytest.raises(TrainingError, match=r"never uses \[name\]"):
        app.a1111_training.submit_embedding(settings)


def test_bad_training_settings_are_refused_before_anything_is_queued(app):
    with pytest.raises(TrainingError, match="data_root"):
        app.a1111_training.submit_embedding(_embedding_settings("learnme", data_root="nowhere"))
    with pytest.raises(TrainingError, match="template_filename"):
        app.a1111_training.submit_embedding(_embedding_settings("learnme", template_filename="x.txt"))
    with pytest.raises(TrainingError, match=r"never uses \[name\]"):
        app.a1111_training.submit_embedding(_embedding_settings("learnme", template_filename="none.txt"))
    with pytest.raises(TrainingError, match="outside the data folder"):
        app.a1111_training.submit_embedding(_embedding_settings("learnme", data_root="/etc"))
    with pytest.raises(TrainingError, match="no embedding called"):
        app.a1111_training.submit_embedding(_embedding_settings("ghost"))
    with pytest.raises(TrainingError, match="learn_rate"):
        _embedding_settings("x", learn_rate="fast")
    with pytest.raises(TrainingError, match="unknown field 'bogus'"):
        EmbeddingTrainingSettings.from_args({"embedding_name": "x", "bogus": 1})
    with pytest.raises(TrainingError, match="batch_size"):
        EmbeddingTrainingSettings.from_args({"embedding_name": "x", "batch_size": "2"})


# -- hypernetworks ----------------------------------------------------------------------------------------------
def test_a_trained_hypernetwork_loads_back_changes_generation_and_leaves_the_model_clean(app, client):
    dim = int(app.models.get().sd.unet.config.cross_attention_dim)
    path = app.a1111_training.create_hypernetwork(
        "hn", [dim], layer_structure="1, 2, 1", use_dropout=True, dropout_structure="0, 0.1, 0"
    )
    created = torch.load(path, weights_only=True)
    assert created["activate_output"] is False and created["step"] == 0 and dim in created
    plain = _image(client, "a square")
    with_created = _image(client, "a square <hypernet:hn:1>")
    settings = HypernetworkTrainingSettings(
        hypernetwork_name="hn",
        data_root="dataset",
        training_width=64,
        training_height=64,
        steps=3,
        learn_rate="0.01",
        create_image_every=3,
        save_hypernetwork_every=0,
        template_filename="hypernetwork.txt",
        preview_from_txt2img=True,
        preview_prompt="a square",
        preview_steps=1,
        preview_width=64,
        preview_height=64,
    )
    run = app.a1111_training.train_hypernetwork(settings)
    assert run.view().status == "done", run.view().message
    trained = load_hypernetwork(path)
    assert trained.info["step"] == 3 and trained.options.dropout_structure == [0, 0.1, 0]
    assert not torch.equal(
        trained.layers[dim][0].linear[0].weight, load_hypernetwork_dict(created)[dim][0]["linear.0.weight"]
    )
    unet = app.models.get().sd.unet
    assert all(
        type(m.processor).__name__ != "HypernetworkProcessor"
        for m in unet.modules()
        if hasattr(m, "processor")
    )
    assert _image(client, "a square") == plain
    assert _image(client, "a square <hypernet:hn:1>") != with_created


def load_hypernetwork_dict(data: dict) -> dict:
    return {k: v for k, v in data.items() if isinstance(k, int)}


def test_an_interrupted_hypernetwork_run_keeps_a_usable_file(app):
    dim = int(app.models.get().sd.unet.config.cross_attention_dim)
    path = app.a1111_training.create_hypernetwork("hn-stop", [dim])
    stopping = _interrupting_a1111(app, 1)
    settings = HypernetworkTrainingSettings(
        hypernetwork_name="hn-stop",
        data_root="dataset",
        training_width=64,
        training_height=64,
        steps=5,
        create_image_every=1,
        save_hypernetwork_every=0,
        template_filename="hypernetwork.txt",
        preview_from_txt2img=True,
        preview_prompt="x",
        preview_steps=1,
        preview_width=64,
        preview_height=64,
    )
    run = stopping.train_hypernetwork(settings)
    assert run.view().status == "interrupted"
    assert load_hypernetwork(path).info["step"] == 1


def test_a_preview_sampler_must_exist_and_an_embedding_past_max_steps_is_left_alone(app):
    with pytest.raises(TrainingError, match="preview_sampler_name"):
        _embedding_settings("x", preview_from_txt2img=True, preview_sampler_name="Nope")
    with pytest.raises(TrainingError, match="preview_sampler_index"):
        _embedding_settings("x", preview_sampler_index=999)
    app.a1111_training.create_embedding("done-already", 1)
    path = app.paths.embeddings_dir / "done-already.pt"
    data = torch.load(path, weights_only=True)
    torch.save({**data, "step": 10}, path)
    run = app.a1111_training.train_embedding(_embedding_settings("done-already", steps=5))
    assert run.view().status == "done" and "already been trained to step 10" in run.view().message
    assert torch.load(path, weights_only=True)["step"] == 10


def test_a_hypernetwork_resumed_with_its_optimizer_state_ends_like_an_uninterrupted_run(app):
    dim = int(app.models.get().sd.unet.config.cross_attention_dim)
    path = app.a1111_training.create_hypernetwork(
        "hn-resume", [dim], use_dropout=True, dropout_structure="0, 0.2, 0"
    )
    fresh = path.read_bytes()
    settings: dict[str, Any] = dict(
        hypernetwork_name="hn-resume",
        data_root="dataset",
        training_width=64,
        training_height=64,
        steps=4,
        learn_rate="0.01",
        save_hypernetwork_every=0,
        template_filename="hypernetwork.txt",
    )
    preview: dict[str, Any] = dict(
        create_image_every=2,
        preview_from_txt2img=True,
        preview_prompt="x",
        preview_steps=1,
        preview_width=64,
        preview_height=64,
    )
    app.options.save_optimizer_state = True
    try:
        app.a1111_training.train_hypernetwork(HypernetworkTrainingSettings(**settings, create_image_every=0))
        expected = load_hypernetwork(path).layers[dim]
        path.write_bytes(fresh)
        path.with_name(path.name + ".optim").unlink()
        first = _interrupting_a1111(app, 2).train_hypernetwork(
            HypernetworkTrainingSettings(**settings, **preview)
        )
        assert first.view().status == "interrupted" and first.view().step == 2
        app.a1111_training.train_hypernetwork(HypernetworkTrainingSettings(**settings, create_image_every=0))
    finally:
        app.options.save_optimizer_state = False
    resumed = load_hypernetwork(path)
    assert resumed.info["step"] == 4
    for got, want in zip(resumed.layers[dim], expected, strict=True):
        for (name, a), b in zip(got.state_dict().items(), want.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_an_sdxl_embedding_trains_both_encoders_vectors(make_app, tiny_sdxl_ckpt, tmp_path):
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(tiny_sdxl_ckpt[0], models / "xl.safetensors")
    app = make_app(tmp_path, "--nowebui", loaded=True)
    _write_dataset(app.paths.data_dir / "dataset")
    path = app.a1111_training.create_embedding("xl-learn", 1, init_text="square")
    before = load_embedding_file(path).vectors
    run = app.a1111_training.train_embedding(_embedding_settings("xl-learn", steps=2))
    view = run.view()
    assert view.status == "done", view.message
    after = load_embedding_file(path)
    assert after.step == 2 and set(after.vectors) == {"clip_l", "clip_g"}
    for key in ("clip_l", "clip_g"):
        assert after.vectors[key].shape == before[key].shape and not torch.equal(
            after.vectors[key], before[key]
        )
