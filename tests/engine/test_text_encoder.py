"""Text conditioning: A1111 chunking, emphasis and clip skip, checked against diffusers' encode_prompt."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from transformers import CLIPTextModel

from modules.sumi.engine.model import TextEncoderSpec
from modules.sumi.engine.text.chunks import EmbeddingMatch, chunk_prompt
from modules.sumi.engine.text.encoder import Conditioning, encode_prompts, pad_to_same_length
from modules.sumi.engine.text.tokenizer import BOS_ID, EOS_ID, get_tokenizer, tokenize
from modules.sumi.engine.tiny_models import tiny_clip as factory_clip

COMMA = 267


def tiny_clip(seed: int, hidden: int = 32, projection: bool = False) -> CLIPTextModel:
    """Three layers (clip skip 1, 2 and 3 differ), four heads, transformers' initial weights."""
    return factory_clip(
        seed,
        hidden,
        openclip=False,
        projection_dim=32 if projection else None,
        layers=3,
        heads=4,
        intermediate=37,
        jittered=False,
    )


@pytest.fixture(scope="module")
def sd1() -> TextEncoderSpec:
    return TextEncoderSpec(tiny_clip(0), get_tokenizer())


@pytest.fixture(scope="module")
def sd2() -> TextEncoderSpec:
    return TextEncoderSpec(tiny_clip(1), get_tokenizer("!"))


@pytest.fixture(scope="module")
def sdxl() -> list[TextEncoderSpec]:
    clip_l = TextEncoderSpec(tiny_clip(2), get_tokenizer(), layer=-2, final_norm=False)
    clip_g = TextEncoderSpec(
        tiny_clip(3, hidden=64, projection=True), get_tokenizer("!"), layer=-2, final_norm=False, pooled=True
    )
    return [clip_l, clip_g]


def sd_pipeline(spec: TextEncoderSpec) -> StableDiffusionPipeline:
    return StableDiffusionPipeline(
        vae=None,
        text_encoder=spec.model,
        tokenizer=spec.tokenizer,
        unet=None,
        scheduler=EulerDiscreteScheduler(steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def sdxl_pipeline(specs: list[TextEncoderSpec]) -> StableDiffusionXLPipeline:
    return StableDiffusionXLPipeline(
        vae=None,
        text_encoder=specs[0].model,
        text_encoder_2=specs[1].model,
        tokenizer=specs[0].tokenizer,
        tokenizer_2=specs[1].tokenizer,
        unet=None,
        scheduler=EulerDiscreteScheduler(steps_offset=1),
    )


def encode_ids(spec: TextEncoderSpec, ids: Sequence[int]) -> torch.Tensor:
    with torch.no_grad():
        return spec.model(torch.tensor([list(ids)]), output_hidden_states=True)


def words(count: int, word: str = "a") -> str:
    return " ".join([word] * count)


def weighted(fragments: list[tuple[str, float]]):
    return lambda _prompt: fragments


# --- SD1 / SD2 against diffusers ---------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["a photo of a cat, masterpiece", ""])
def test_one_chunk_equals_diffusers(sd1: TextEncoderSpec, prompt: str) -> None:
    expected, _ = sd_pipeline(sd1).encode_prompt(prompt, "cpu", 1, False)
    cond = encode_prompts([sd1], [prompt])
    assert cond.context.shape == (1, 77, 32)
    assert cond.pooled is None
    torch.testing.assert_close(cond.context, expected)


def test_sd2_style_tokenizer_equals_diffusers(sd2: TextEncoderSpec) -> None:
    expected, _ = sd_pipeline(sd2).encode_prompt("a red fox", "cpu", 1, False)
    torch.testing.assert_close(encode_prompts([sd2], ["a red fox"]).context, expected)


def test_padding_ids() -> None:
    sd1_tokens = chunk_prompt(get_tokenizer(), "a cat").chunks[0].tokens
    sd2_tokens = chunk_prompt(get_tokenizer("!"), "a cat").chunks[0].tokens
    body = [BOS_ID, *tokenize("a cat"), EOS_ID]
    assert sd1_tokens == body + [EOS_ID] * (77 - len(body))
    assert sd2_tokens == body + [0] * (77 - len(body))
    assert len(chunk_prompt(get_tokenizer("!"), words(75)).chunks[0].tokens) == 77
    assert chunk_prompt(get_tokenizer("!"), words(75)).chunks[0].tokens[-1] == EOS_ID


def test_clip_skip(sd1: TextEncoderSpec) -> None:
    ids = chunk_prompt(sd1.tokenizer, "a castle on a hill").chunks[0].tokens
    out = encode_ids(sd1, ids)
    norm = sd1.model.final_layer_norm
    skip1 = encode_prompts([sd1], ["a castle on a hill"], clip_skip=1).context
    skip2 = encode_prompts([sd1], ["a castle on a hill"], clip_skip=2).context
    skip3 = encode_prompts([sd1], ["a castle on a hill"], clip_skip=3).context
    torch.testing.assert_close(skip1[0], out.last_hidden_state[0])
    torch.testing.assert_close(skip2[0], norm(out.hidden_states[-2])[0])
    torch.testing.assert_close(skip3[0], norm(out.hidden_states[-3])[0])
    # diffusers counts one lower: its clip_skip=1 is `hidden_states[-(1 + 1)]` + final norm, i.e. our 2.
    # (Its SD1 code path reads `text_encoder.text_model`, which transformers 5 removed, so it is
    # reproduced here rather than called.)
    diffusers_clip_skip = 1
    torch.testing.assert_close(skip2[0], norm(out.hidden_states[-(diffusers_clip_skip + 1)])[0])
    # Skipping more layers than the model has stops at the embeddings.
    torch.testing.assert_close(
        encode_prompts([sd1], ["a castle on a hill"], clip_skip=99).context[0], norm(out.hidden_states[0])[0]
    )


# --- chunking ----------------------------------------------------------------------------------


def test_80_tokens_make_two_chunks(sd1: TextEncoderSpec) -> None:
    chunked = chunk_prompt(sd1.tokenizer, words(80))
    assert len(chunked.chunks) == 2
    assert chunked.token_count == 80
    cond = encode_prompts([sd1], [words(80)])
    assert cond.context.shape == (1, 154, 32)
    torch.testing.assert_close(cond.context[:, :77], encode_prompts([sd1], [words(75)]).context)
    torch.testing.assert_close(cond.context[:, 77:], encode_prompts([sd1], [words(5)]).context)


def test_break_starts_a_new_chunk(sd1: TextEncoderSpec) -> None:
    cond = encode_prompts([sd1], ["a cat BREAK a dog"])
    assert cond.context.shape[1] == 154
    torch.testing.assert_close(cond.context[:, :77], encode_prompts([sd1], ["a cat"]).context)
    torch.testing.assert_close(cond.context[:, 77:], encode_prompts([sd1], ["a dog"]).context)
    tokenizer = sd1.tokenizer
    assert len(chunk_prompt(tokenizer, "a cat BREAK").chunks) == 1
    assert len(chunk_prompt(tokenizer, "BREAK a cat").chunks) == 2  # A1111 emits the empty first chunk
    assert len(chunk_prompt(tokenizer, "a break b").chunks) == 1  # case-sensitive
    assert len(chunk_prompt(tokenizer, "aBREAK b").chunks) == 1  # whole word only
    assert chunk_prompt(tokenizer, "a cat BREAK a dog").token_count == 77


def test_emphasis_none_keeps_break_literal(sd1: TextEncoderSpec) -> None:
    assert encode_prompts([sd1], ["a cat BREAK a dog"], emphasis="None").context.shape[1] == 77


def test_comma_backtrack_moves_tokens_after_comma() -> None:
    tokenizer = get_tokenizer()
    prompt = words(70) + ", " + words(10, "b")
    b = tokenize("b")[0]
    moved = chunk_prompt(tokenizer, prompt).chunks
    assert moved[0].tokens[1:72] == tokenize(words(70) + ",")
    assert moved[0].tokens[72] == EOS_ID
    assert moved[1].tokens[1:12] == [b] * 10 + [EOS_ID]
    kept = chunk_prompt(tokenizer, prompt, comma_padding_backtrack=0).chunks
    assert kept[0].tokens[71:76] == [COMMA] + [b] * 4
    assert kept[1].tokens[1:8] == [b] * 6 + [EOS_ID]
    far = chunk_prompt(tokenizer, words(10) + ", " + words(70, "b")).chunks
    assert far[0].tokens[12:76] == [b] * 64  # comma 65 tokens back: beyond the 20-token limit


def test_chunk_count_pads_with_empty_chunks(sd1: TextEncoderSpec) -> None:
    cond = encode_prompts([sd1], ["a cat"], chunk_count=3)
    empty = encode_prompts([sd1], [""]).context
    assert cond.chunk_count == 3
    torch.testing.assert_close(cond.context[:, 77:154], empty)
    torch.testing.assert_close(cond.context[:, 154:], empty)
    batch = encode_prompts([sd1], ["a cat", words(80)])
    assert batch.context.shape == (2, 154, 32)
    torch.testing.assert_close(batch.context[:1, 77:], empty)


def test_duplicate_prompts_are_encoded_once(sd1: TextEncoderSpec) -> None:
    seen: list[int] = []
    handle = sd1.model.register_forward_hook(
        lambda _m, args, kwargs, _out: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        cond = encode_prompts([sd1], ["a cat", "a dog", "a cat"])
    finally:
        handle.remove()
    assert seen == [2]
    torch.testing.assert_close(cond.context[0], cond.context[2])
    torch.testing.assert_close(cond.context[1:2], encode_prompts([sd1], ["a dog"]).context)


# --- emphasis ----------------------------------------------------------------------------------


def test_unit_weights_change_nothing(sd1: TextEncoderSpec) -> None:
    plain = encode_prompts([sd1], ["a cat with a hat"]).context
    split = weighted([("a cat ", 1.0), ("with a hat", 1.0)])
    for mode in ("Original", "No norm", "Ignore"):
        torch.testing.assert_close(encode_prompts([sd1], ["x"], emphasis=mode, parse=split).context, plain)


def test_emphasis_modes(sd1: TextEncoderSpec) -> None:
    parse = weighted([("a cat ", 1.5), ("with a hat", 0.5)])
    ignore = encode_prompts([sd1], ["x"], emphasis="Ignore", parse=parse).context
    no_norm = encode_prompts([sd1], ["x"], emphasis="No norm", parse=parse).context
    original = encode_prompts([sd1], ["x"], emphasis="Original", parse=parse).context
    weights = torch.tensor([1.0, 1.5, 1.5, 0.5, 0.5, 0.5] + [1.0] * 71)
    torch.testing.assert_close(no_norm, ignore * weights[None, :, None])
    torch.testing.assert_close(original.mean(), ignore.mean())
    torch.testing.assert_close(original, no_norm * (ignore.mean() / no_norm.mean()))
    assert not torch.allclose(original, ignore)


def test_unknown_emphasis_is_rejected(sd1: TextEncoderSpec) -> None:
    with pytest.raises(ValueError, match="emphasis"):
        encode_prompts([sd1], ["a"], emphasis="Loud")


# --- SDXL --------------------------------------------------------------------------------------


def test_sdxl_equals_diffusers(sdxl: list[TextEncoderSpec]) -> None:
    pipe = sdxl_pipeline(sdxl)
    context, _, pooled, _ = pipe.encode_prompt(
        "a cat in a hat", device="cpu", do_classifier_free_guidance=False
    )
    cond = encode_prompts(sdxl, ["a cat in a hat"])
    assert cond.context.shape == (1, 77, 32 + 64)
    assert cond.pooled is not None and cond.pooled.shape == (1, 32)
    torch.testing.assert_close(cond.context, context)
    torch.testing.assert_close(cond.pooled, pooled)
    # diffusers' SDXL clip_skip=1 (hidden_states[-3]) is our clip skip 2.
    context, _, pooled, _ = pipe.encode_prompt(
        "a cat in a hat", device="cpu", do_classifier_free_guidance=False, clip_skip=1
    )
    cond = encode_prompts(sdxl, ["a cat in a hat"], clip_skip=2)
    torch.testing.assert_close(cond.context, context)
    torch.testing.assert_close(cond.pooled, pooled)


def test_sdxl_pooled_comes_from_first_chunk(sdxl: list[TextEncoderSpec]) -> None:
    long = encode_prompts(sdxl, [words(75) + " " + words(10, "dog")])
    first = encode_prompts(sdxl, [words(75)])
    assert long.context.shape == (1, 154, 96)
    torch.testing.assert_close(long.pooled, first.pooled)
    zeros = long.zeros_like()
    assert zeros.context.abs().sum() == 0 and zeros.pooled is not None and zeros.pooled.abs().sum() == 0


# --- padding -----------------------------------------------------------------------------------


def test_pad_to_same_length(sd1: TextEncoderSpec) -> None:
    short = encode_prompts([sd1], ["a cat"])
    long = encode_prompts([sd1], [words(160)])
    empty = encode_prompts([sd1], [""])
    a, b = pad_to_same_length(short, long)
    assert a.context.shape == b.context.shape == (1, 231, 32)
    assert b is long
    torch.testing.assert_close(a.context[:, 77:], short.context[:, -1:].expand(-1, 154, -1))
    b, a = pad_to_same_length(long, short, empty)
    torch.testing.assert_close(a.context[:, :77], short.context)
    torch.testing.assert_close(a.context[:, 77:154], empty.context)
    torch.testing.assert_close(a.context[:, 154:], empty.context)
    pooled = Conditioning(short.context, torch.ones(1, 4))
    assert pad_to_same_length(pooled, long)[0].pooled is pooled.pooled


# --- textual inversion hook --------------------------------------------------------------------


def test_token_override_substitutes_vectors(sd1: TextEncoderSpec) -> None:
    name, replacement = tokenize("mytoken"), tokenize("big dog")
    vectors = sd1.model.get_input_embeddings().weight[replacement].detach()

    def override(_spec: TextEncoderSpec, tokens: Sequence[int], position: int) -> EmbeddingMatch | None:
        if list(tokens[position : position + len(name)]) == name:
            return EmbeddingMatch(vectors, len(name), "mytoken")
        return None

    cond = encode_prompts([sd1], ["a mytoken on grass"], token_override=override)
    torch.testing.assert_close(cond.context, encode_prompts([sd1], ["a big dog on grass"]).context)
    chunks = chunk_prompt(
        sd1.tokenizer, words(74) + " mytoken", find_embedding=lambda t, p: override(sd1, t, p)
    )
    assert len(chunks.chunks) == 2  # two vectors do not fit in the one slot left
    assert chunks.chunks[1].fixes[0][0] == 1


# --- any input ---------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=2000))
@example("😀🎨 (masterpiece:1.3), [bad] \x00\x07\x1b\r\n\t BREAK ,,,, \u200b\ufeff")
@example("🐱" * 2000)
@example("\x00" * 2000)
@example(",BREAK," * 285)
def test_any_text_encodes(sd2: TextEncoderSpec, prompt: str) -> None:
    cond = encode_prompts([sd2], [prompt, ""])
    assert cond.context.shape[0] == 2
    assert cond.context.shape[1] % 77 == 0 and cond.context.shape[1] > 0
    assert torch.isfinite(cond.context).all()
