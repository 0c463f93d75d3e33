"""The captioning service: models found in A1111's folders when a call is made (a missing one named
with where it goes, nothing downloaded), run on the job worker with the Interrogate settings, and a
folder of pictures captioned into .txt files."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.captioning.files import CaptionModelMissing
from tests.fixtures.tiny_captioners import write_blip, write_deepdanbooru

TAGS = ["red_hair", "smile", "rating:safe", "blurry", "open_(mouth)"]
LOGITS = [3.0, 2.0, 5.0, -4.0, 1.0]  # scores 0.95, 0.88, (rating), 0.02, 0.73


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("captioning") / "data", "--nowebui", start=False)


@pytest.fixture(autouse=True)
def _defaults(app):
    yield
    for key in (
        "interrogate_deepbooru_score_threshold",
        "deepbooru_sort_alpha",
        "deepbooru_use_spaces",
        "deepbooru_escape",
        "deepbooru_filter_tags",
        "interrogate_return_ranks",
        "interrogate_clip_max_length",
        "interrogate_clip_min_length",
        "interrogate_blip_model",
    ):
        app.options.set(key, app.options.data_labels[key].default)


@pytest.fixture
def deepdanbooru(app):
    path = write_deepdanbooru(
        app.paths.models_dir / "torch_deepdanbooru" / "model-resnet_custom_v3.pt", TAGS, logits=LOGITS
    )
    yield path
    shutil.rmtree(path.parent)


@pytest.fixture
def blip(app):
    folder = write_blip(app.paths.models_dir / "BLIP" / "blip-image-captioning-base", word="fox")
    yield folder
    shutil.rmtree(folder.parent)


def picture() -> Image.Image:
    return Image.new("RGB", (48, 40), (90, 160, 30))


def test_missing_models_are_named_with_where_they_go(app):
    with pytest.raises(CaptionModelMissing) as missing:
        app.captioning.interrogate(picture(), "deepdanbooru")
    where = app.paths.models_dir / "torch_deepdanbooru"
    assert "model-resnet_custom_v3.pt" in str(missing.value) and str(where) in str(missing.value)
    with pytest.raises(CaptionModelMissing, match="Hugging Face layout") as missing:
        app.captioning.interrogate(picture(), "clip")
    assert str(app.paths.models_dir / "BLIP") in str(missing.value)
    old = app.paths.models_dir / "BLIP" / "model_base_caption_capfilt_large.pth"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"x")
    try:
        with pytest.raises(CaptionModelMissing, match="model_base_caption_capfilt_large.pth is A1111's"):
            app.captioning.caption(picture())
    finally:
        old.unlink()
    with pytest.raises(InvalidRequestError, match="clip or deepdanbooru"):
        app.captioning.interrogate(picture(), "wd14")


def test_an_incomplete_blip_folder_names_what_it_lacks(app, blip):
    (blip / "vocab.txt").unlink()
    (blip / "tokenizer.json").unlink(missing_ok=True)
    with pytest.raises(CaptionModelMissing, match="tokenizer.json or vocab.txt"):
        app.captioning.caption(picture())


def test_deepdanbooru_tags_follow_the_interrogate_settings(app, deepdanbooru):
    assert app.captioning.interrogate(picture(), "deepdanbooru") == "open \\(mouth\\), red hair, smile"
    app.options.set("deepbooru_sort_alpha", False)
    app.options.set("deepbooru_use_spaces", False)
    app.options.set("deepbooru_escape", False)
    assert app.captioning.tag(picture()) == "red_hair, smile, open_(mouth)"
    app.options.set("interrogate_deepbooru_score_threshold", 0.9)
    app.options.set("interrogate_return_ranks", True)
    assert app.captioning.tag(picture()) == "(red_hair:0.953)"
    assert app.captioning.tag(picture(), ranks=False) == "red_hair"  # A1111's force_disable_ranks
    app.options.set("interrogate_deepbooru_score_threshold", 0.5)
    app.options.set("deepbooru_filter_tags", "red hair, smile")
    assert app.captioning.tag(picture()) == "(open_(mouth):0.731)"


def test_the_file_is_read_again_when_it_changes(app, deepdanbooru):
    assert app.captioning.tag(picture()).startswith("open")
    write_deepdanbooru(deepdanbooru, ["cat", "dog"], logits=[4.0, -4.0])
    assert app.captioning.tag(picture()) == "cat"


def test_blip_captions_with_the_length_settings(app, blip):
    app.options.set("interrogate_clip_min_length", 1)
    app.options.set("interrogate_clip_max_length", 4)
    assert app.captioning.interrogate(picture(), "clip") == "fox fox fox"
    other = write_blip(blip.parent / "another", word="cat")
    assert app.captioning.blip_choices()["choices"] == ["", "another", "blip-image-captioning-base"]
    assert app.captioning.caption(picture()) == "cat cat cat"  # the first folder by name
    app.options.set("interrogate_blip_model", "blip-image-captioning-base")
    assert app.captioning.caption(picture()) == "fox fox fox"
    shutil.rmtree(other)
    app.options.data["interrogate_blip_model"] = "another"  # as a stale config.json would hold it
    with pytest.raises(CaptionModelMissing, match="'another'"):
        app.captioning.caption(picture())


def test_captions_run_as_jobs_on_the_worker(app, deepdanbooru):
    jobs = []
    original = app.queue.submit

    def spy(name, run, job_id=None):
        jobs.append(name)
        return original(name, run, job_id)

    app.queue.submit = spy
    try:
        app.captioning.tag(picture())
    finally:
        app.queue.submit = original
    assert jobs == ["interrogate"]


def test_a_folder_is_captioned_into_text_files(app, deepdanbooru):
    source, target = app.paths.data_dir / "to-caption", app.paths.data_dir / "captions"
    source.mkdir()
    for name in ("a.png", "b.jpg"):
        picture().save(source / name)
    (source / "notes.md").write_text("not a picture")
    (source / "broken.png").write_bytes(b"not a png")
    written = app.captioning.interrogate_folder(source, target, "deepdanbooru")
    assert [p.name for p in written] == ["a.txt", "b.txt"]
    assert (target / "a.txt").read_text() == "open \\(mouth\\), red hair, smile\n"
    app.captioning.interrogate_folder(source, None, "deepdanbooru")  # beside the pictures
    assert sorted(p.name for p in source.glob("*.txt")) == ["a.txt", "b.txt"]
    app.captioning.interrogate_folder(source, target, "deepdanbooru")  # A1111 appends
    assert (target / "a.txt").read_text().count("\n") == 2
    with pytest.raises(InvalidRequestError, match="does not exist"):
        app.captioning.interrogate_folder(source / "nowhere", None, "deepdanbooru")
