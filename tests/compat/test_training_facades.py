"""A1111's `modules.textual_inversion.textual_inversion` as extensions call it (lycoris and the built-in
Lora extension build bundled embeddings with `create_embedding_from_data`; supermerger reads the
database), and its train-tab functions run through Sumi's training service on the demo model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.networks.embeddings import load_embedding_file
from modules.textual_inversion import textual_inversion as ti

DEMO_WIDTH = 64  # the demo model's CLIP hidden size


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("ti-facade"), "--nowebui", loaded=True)
    folder = app.paths.data_dir / "dataset"
    folder.mkdir()
    for i, colour in enumerate([(200, 40, 40), (40, 40, 200)]):
        Image.fromarray(np.full((64, 64, 3), colour, dtype=np.uint8)).save(folder / f"{i}-flat.png")
    return app


def test_embedding_from_bundled_data_reads_a1111_formats():
    vectors = torch.randn(3, DEMO_WIDTH)
    made = ti.create_embedding_from_data(
        {"string_to_param": {"*": vectors}}, "bundled", filename="x.safetensors/b"
    )
    assert made.name == "bundled" and made.vectors == 3 and made.shape == DEMO_WIDTH
    assert torch.equal(made.vec, vectors) and made.filename == "x.safetensors/b" and made.loaded is None
    sdxl = ti.create_embedding_from_data(
        {"clip_l": torch.zeros(2, 768), "clip_g": torch.zeros(2, 1280)}, "xl"
    )
    assert sdxl.shape == 2048 and sdxl.vectors == 2
    with pytest.raises(ModelLoadError, match="not a textual-inversion embedding"):
        ti.create_embedding_from_data({"a": torch.zeros(1), "b": torch.zeros(1)}, "bad")


def test_embedding_built_as_a1111_does_saves_a_file_sumi_loads(app, tmp_path):
    emb = ti.Embedding(torch.randn(2, DEMO_WIDTH), "made-by-ext", step=7)
    assert emb.checksum() == emb.checksum() and len(emb.checksum()) == 4
    emb.save(str(tmp_path / "made-by-ext.pt"))
    loaded = load_embedding_file(tmp_path / "made-by-ext.pt")
    assert loaded is not None and loaded.step == 7 and torch.equal(loaded.vectors, emb.vec)


def test_create_embedding_writes_a_usable_file(app):
    path = ti.create_embedding("facade-made", 2, False, "red")
    assert path.endswith("facade-made.pt")
    db = ti.EmbeddingDatabase()
    assert db.word_embeddings["facade-made"].vectors == 2
    assert db.expected_shape == DEMO_WIDTH == db.get_expected_shape()
    assert "subject_filewords.txt" in ti.list_textual_inversion_templates()


def test_train_embedding_takes_a1111_positional_arguments(app):
    ti.create_embedding("facade-trained", 1, True, "blue")
    args = ["task(1)", "facade-trained", "0.05", 1, 1, "dataset", "textual_inversion", 64, 64, False, 2]
    args += ["disabled", "0.1", False, 0.0, "once", False, 0, 0, "subject_filewords.txt", False, False]
    args += ["", "", 2, "Euler", 7.0, 1, 64, 64]
    embedding, filename = ti.train_embedding(*args)
    assert filename.endswith("facade-trained.pt") and embedding is not None and embedding.step == 2
    with pytest.raises(Exception, match="data_root|dataset"):
        ti.train_embedding(*args[:5], "no-such-folder", *args[6:])
