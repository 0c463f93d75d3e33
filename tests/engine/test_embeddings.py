"""Textual inversion: file formats, model compatibility, the encoder hook, the folder database."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.sumi.engine.errors import ModelLoadError, UnsafeFileError
from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks.embeddings import (
    Embedding,
    EmbeddingHook,
    load_embedding_file,
    partition,
    ti_hashes,
)
from modules.sumi.engine.text.chunks import PLACEHOLDER_ID, chunk_prompt, tokenize_fragments
from modules.sumi.engine.text.encoder import encode_prompts
from modules.sumi.engine.text.prompt_syntax import attention_fragments
from modules.sumi.engine.text.token_count import count_tokens
from modules.sumi.engine.text.tokenizer import get_tokenizer
from modules.sumi.services.networks.embeddings import EmbeddingDatabase
from tests.fixtures import tiny_embeddings as te
from tests.fixtures.tiny_models import tiny_clip


def _model(family: str, specs: list[TextEncoderSpec]) -> SDModel:
    return SDModel(family=family, unet=None, vae=None, text_encoders=specs, scheduler_config={})


@pytest.fixture(scope="module")
def sd1() -> SDModel:
    return _model("SD1", [TextEncoderSpec(tiny_clip(11, 32, openclip=False), get_tokenizer())])


@pytest.fixture(scope="module")
def sdxl() -> SDModel:
    clip_l = TextEncoderSpec(tiny_clip(12, 16, openclip=False), get_tokenizer(), layer=-2, final_norm=False)
    clip_g = TextEncoderSpec(
        tiny_clip(13, 32, openclip=True, projection_dim=24),
        get_tokenizer("!"),
        layer=-2,
        final_norm=False,
        pooled=True,
    )
    return _model("SDXL", [clip_l, clip_g])


def word_vectors(spec: TextEncoderSpec, text: str) -> torch.Tensor:
    """The token-embedding rows of `text`: an embedding made of them must encode exactly like the text."""
    ids = tokenize_fragments(spec.tokenizer, [text])[0]
    return spec.model.get_input_embeddings().weight[ids].detach().clone()


def hook_for(model: SDModel, *embeddings: Embedding) -> EmbeddingHook:
    loaded, skipped = partition({e.name: e for e in embeddings}, model.family, model.text_encoders)
    assert not skipped
    keys = ["clip_l", "clip_g"] if model.is_sdxl else [None]
    return EmbeddingHook(loaded, model.text_encoders, keys)


# -- formats ---------------------------------------------------------------------------------------

VECTORS = te.random_vectors(3, te.SD1_WIDTH, seed=1)

WRITERS = {
    "a1111.pt": lambda p: te.write_a1111_pt(p, VECTORS),
    "rinongal.pt": lambda p: te.write_rinongal_pt(p, VECTORS),
    "kohya.safetensors": lambda p: te.write_safetensors(p, VECTORS),
    "text-chunk.png": lambda p: te.write_png_text(p, VECTORS, "text-chunk"),
    "pixels.png": lambda p: te.write_pixel_embedding(p, VECTORS, "pixels"),
    "pixels.webp": lambda p: te.write_pixel_embedding(p, VECTORS, "pixels", "WEBP"),
}


@pytest.mark.parametrize("filename", list(WRITERS))
def test_each_format_loads_its_vectors(tmp_path, filename):
    path = WRITERS[filename](tmp_path / filename)
    embedding = load_embedding_file(path)
    assert embedding.name == Path(filename).stem
    torch.testing.assert_close(embedding.vectors, VECTORS)
    assert (embedding.shape, embedding.vector_count) == (32, 3)
    assert embedding.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert embedding.shorthash == embedding.sha256[:12]
    if filename != "rinongal.pt" and not filename.endswith("safetensors"):
        assert (embedding.step, embedding.sd_checkpoint, embedding.sd_checkpoint_name) == (
            100,
            "0123456789",
            "tiny-sd1",
        )


def test_diffusers_bin_is_one_vector(tmp_path):
    vector = te.random_vectors(1, 32)[0]
    embedding = load_embedding_file(te.write_diffusers_bin(tmp_path / "concept.bin", vector))
    assert embedding.name == "concept"
    torch.testing.assert_close(embedding.vectors, vector[None])


def test_sdxl_file_keeps_both_encoders(tmp_path):
    clip_l, clip_g = te.random_vectors(2, 16, 1), te.random_vectors(2, 32, 2)
    embedding = load_embedding_file(te.write_sdxl_safetensors(tmp_path / "xl.safetensors", clip_l, clip_g))
    torch.testing.assert_close(embedding.vectors_for("clip_l"), clip_l)
    torch.testing.assert_close(embedding.vectors_for("clip_g"), clip_g)
    assert (embedding.shape, embedding.vector_count) == (48, 2)
    assert embedding.api_info() == {
        "step": None,
        "sd_checkpoint": None,
        "sd_checkpoint_name": None,
        "shape": 48,
        "vectors": 2,
    }


def test_image_without_embedding_is_not_one(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), (10, 200, 30)).save(tmp_path / "photo.png")
    assert load_embedding_file(tmp_path / "photo.png") is None


def test_files_with_several_terms_or_tensors_are_refused(tmp_path):
    torch.save({"string_to_param": {"a": VECTORS, "b": VECTORS}}, tmp_path / "two.pt")
    with pytest.raises(ModelLoadError, match="2 terms"):
        load_embedding_file(tmp_path / "two.pt")
    torch.save({"a": VECTORS, "b": VECTORS}, tmp_path / "pair.bin")
    with pytest.raises(ModelLoadError, match="not a textual-inversion embedding"):
        load_embedding_file(tmp_path / "pair.bin")


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return subprocess.call, (["touch", str(self.marker)],)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    torch.save({"string_to_param": {"*": _Payload(marker)}}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeFileError, match="refused"):
        load_embedding_file(tmp_path / "evil.pt")
    assert not marker.exists()


# -- compatibility ---------------------------------------------------------------------------------


def test_wrong_widths_are_skipped_with_the_reason(sd1, sdxl):
    embeddings = {
        "ok": Embedding("ok", te.random_vectors(1, 32)),
        "wide": Embedding("wide", te.random_vectors(1, 48)),
        "xl": Embedding("xl", {"clip_l": te.random_vectors(1, 16), "clip_g": te.random_vectors(1, 32)}),
        "xl-bad": Embedding(
            "xl-bad", {"clip_l": te.random_vectors(1, 8), "clip_g": te.random_vectors(1, 32)}
        ),
    }
    loaded, skipped = partition(embeddings, "SD1", sd1.text_encoders)
    assert list(loaded) == ["ok"]
    assert skipped == {"wide": "48 ≠ 32", "xl": "48 ≠ 32", "xl-bad": "40 ≠ 32"}
    loaded, skipped = partition(embeddings, "SDXL", sdxl.text_encoders)
    assert list(loaded) == ["xl"]
    assert skipped["ok"].startswith("32 ≠ 48")
    assert skipped["wide"].startswith("48 ≠ 48 (one tensor")
    assert skipped["xl-bad"] == "40 ≠ 48 (clip_l 8 ≠ 16)"


# -- the encoder hook ------------------------------------------------------------------------------


def test_multi_vector_embedding_takes_its_slots(sd1):
    spec = sd1.text_encoders[0]
    embedding = Embedding("my-emb", te.random_vectors(3, 32))
    hook = hook_for(sd1, embedding)
    chunk = chunk_prompt(spec.tokenizer, "x my-emb y", find_embedding=hook.finder(spec)).chunks[0]
    x, y = (tokenize_fragments(spec.tokenizer, [w])[0][0] for w in "xy")
    assert chunk.tokens[:6] == [spec.tokenizer.bos_token_id, x, *[PLACEHOLDER_ID] * 3, y]
    name_length = len(tokenize_fragments(spec.tokenizer, ["my-emb"])[0])
    assert [(pos, m.name, m.length) for pos, m in chunk.fixes] == [(2, "my-emb", name_length)]
    assert count_tokens(spec.tokenizer, "x my-emb y", find_embedding=hook.finder(spec)) == (5, 75)


def test_embedding_that_does_not_fit_starts_a_new_chunk(sd1):
    spec = sd1.text_encoders[0]
    hook = hook_for(sd1, Embedding("my-emb", te.random_vectors(3, 32)))
    chunks = chunk_prompt(spec.tokenizer, "a " * 73 + "my-emb", find_embedding=hook.finder(spec)).chunks
    assert len(chunks) == 2
    assert [pos for pos, _ in chunks[1].fixes] == [1]


def test_longest_name_matches_first(sd1):
    spec = sd1.text_encoders[0]
    short, long = Embedding("cat", te.random_vectors(1, 32)), Embedding("cat-girl", te.random_vectors(2, 32))
    hook = hook_for(sd1, short, long)
    chunk = chunk_prompt(spec.tokenizer, "cat-girl cat", find_embedding=hook.finder(spec)).chunks[0]
    assert [(pos, m.name) for pos, m in chunk.fixes] == [(1, "cat-girl"), (3, "cat")]


@pytest.mark.parametrize("emphasis", ["", "1.5"])
def test_encoding_uses_the_vectors(sd1, emphasis):
    """An embedding made of the token vectors of "red green blue" encodes exactly as those words."""
    spec = sd1.text_encoders[0]
    hook = hook_for(sd1, Embedding("my-emb", word_vectors(spec, "red green blue")))

    def encode(prompt: str, override=None) -> torch.Tensor:
        if emphasis:
            prompt = prompt.replace("WORDS", f"(WORDS:{emphasis})")
        return encode_prompts(
            sd1.text_encoders, [prompt], parse=attention_fragments, token_override=override
        ).context

    with_embedding = encode("x WORDS y".replace("WORDS", "my-emb"), hook)
    torch.testing.assert_close(with_embedding, encode("x WORDS y".replace("WORDS", "red green blue")))
    assert not torch.allclose(with_embedding, encode("x WORDS y".replace("WORDS", "my-emb")))
    assert list(hook.used) == ["my-emb"]


def test_other_vectors_change_only_prompts_naming_the_embedding(sd1):
    first = hook_for(sd1, Embedding("my-emb", te.random_vectors(2, 32, seed=1)))
    second = hook_for(sd1, Embedding("my-emb", te.random_vectors(2, 32, seed=2)))
    named = [
        encode_prompts(sd1.text_encoders, ["a my-emb"], token_override=h).context for h in (first, second)
    ]
    plain = [encode_prompts(sd1.text_encoders, ["a cat"], token_override=h).context for h in (first, second)]
    assert not torch.allclose(*named)
    torch.testing.assert_close(*plain)
    unused = hook_for(sd1, Embedding("my-emb", te.random_vectors(2, 32)))
    encode_prompts(sd1.text_encoders, ["a cat"], token_override=unused)
    assert not unused.used and unused.ti_hashes() == ""


def test_sdxl_vectors_go_to_their_encoders(sdxl):
    clip_l, clip_g = sdxl.text_encoders
    embedding = Embedding(
        "xl-emb", {"clip_l": word_vectors(clip_l, "red green"), "clip_g": word_vectors(clip_g, "red green")}
    )
    hook = hook_for(sdxl, embedding)
    got = encode_prompts(sdxl.text_encoders, ["x xl-emb y"], token_override=hook)
    want = encode_prompts(sdxl.text_encoders, ["x red green y"])
    torch.testing.assert_close(got.context, want.context)
    torch.testing.assert_close(got.pooled, want.pooled)


def test_ti_hashes():
    a = Embedding("a:b,c", te.random_vectors(1, 32), sha256="0123456789abcdef" * 4)
    b = Embedding("plain", te.random_vectors(1, 32), sha256="fedcba9876543210" * 4)
    assert ti_hashes([a, b]) == "abc: 0123456789ab, plain: fedcba987654"
    assert ti_hashes([Embedding("nohash", te.random_vectors(1, 32))]) == ""


# -- the database ----------------------------------------------------------------------------------


def test_database_scans_refreshes_and_reports(tmp_path, sd1):
    root = tmp_path / "embeddings"
    (root / "sub").mkdir(parents=True)
    te.write_a1111_pt(root / "my-emb.pt", te.random_vectors(2, 32, seed=1))
    te.write_safetensors(root / "sub" / "wide.safetensors", te.random_vectors(1, 48))
    (root / "notes.txt").write_text("ignored")
    (root / "broken.pt").write_bytes(b"not a pickle")
    database = EmbeddingDatabase([root])

    view = database.for_model(sd1)
    assert list(view.loaded) == ["my-emb"]
    assert view.skipped == {"wide": "48 ≠ 32"}
    assert list(database.errors) == [str(root / "broken.pt")]
    payload = view.api_payload()
    assert payload["loaded"]["my-emb"]["vectors"] == 2
    assert payload["skipped"]["wide"]["shape"] == 48
    assert database.for_model(sd1) is view
    assert database.refresh() is False

    hook = view.hook()
    before = encode_prompts(sd1.text_encoders, ["a my-emb"], token_override=hook).context
    assert hook.ti_hashes() == f"my-emb: {view.loaded['my-emb'].shorthash}"

    path = te.write_a1111_pt(root / "my-emb.pt", te.random_vectors(2, 32, seed=2))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    (root / "sub" / "wide.safetensors").unlink()
    assert database.refresh() is True
    view = database.for_model(sd1)
    assert view.skipped == {}
    after = encode_prompts(sd1.text_encoders, ["a my-emb"], token_override=view.hook()).context
    assert not torch.allclose(before, after)


def test_fields_in_a_safetensors_header_are_read_with_the_vectors(tmp_path):
    """Sumi and kohya write an SDXL embedding's step and checkpoint in the header (resume needs the step)."""
    sdxl = {"clip_l": torch.randn(2, 768), "clip_g": torch.randn(2, 1280)}
    save_file(sdxl, str(tmp_path / "xl.safetensors"), metadata={"step": "40", "sd_checkpoint": "abc123"})
    loaded = load_embedding_file(tmp_path / "xl.safetensors")
    assert loaded.step == 40 and loaded.sd_checkpoint == "abc123"
    save_file({"emb_params": torch.randn(1, 768)}, str(tmp_path / "one.safetensors"), metadata={"step": "x"})
    one = load_embedding_file(tmp_path / "one.safetensors")
    assert one.step is None and one.vectors.shape == (1, 768)
