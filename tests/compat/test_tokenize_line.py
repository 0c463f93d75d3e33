"""`shared.sd_model.cond_stage_model.tokenize_line(line)`, A1111's per-line tokenizer, as Regional
Prompter counts each region's tokens with it: (chunks of 77 ids, A1111's token count)."""

from __future__ import annotations

import pytest

from modules import shared


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--nowebui", loaded=True)


def test_a_line_is_counted_as_a1111_counts_it_break_and_emphasis_included(app):
    clip = shared.sd_model.cond_stage_model
    chunks, count = clip.tokenize_line("a red circle")
    assert count == 3 and len(chunks) == 1
    chunk = chunks[0]
    assert len(chunk.tokens) == 77 and len(chunk.multipliers) == 77
    assert chunk.tokens[0] == clip.tokenizer.bos_token_id
    chunks, count = clip.tokenize_line("a red circle BREAK (blue:1.5) square")
    assert len(chunks) == 2 and count == 75 + 2  # a chunk before BREAK counts 75, as in A1111
    assert chunks[1].multipliers[1] == pytest.approx(1.5)


def test_the_count_is_the_token_counter_s(app):
    text = "a red circle, " * 30
    _, count = shared.sd_model.cond_stage_model.tokenize_line(text)
    assert count == app.text.count_tokens(text)[0]


def test_sdxl_s_embedders_tokenize_lines_too(make_app, tmp_path):
    from modules.sumi.engine.tiny_models import tiny, write_checkpoint

    data = tmp_path / "data"
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    write_checkpoint(data / "models" / "Stable-diffusion" / "xl.safetensors", tiny("SDXL"))
    make_app(data, "--nowebui", loaded=True)
    embedders = shared.sd_model.conditioner.embedders
    assert len(embedders) == 2
    assert embedders[0].transformer is shared.sd_model.text_encoders[0].model
    _, count = embedders[0].tokenize_line("a red circle BREAK a blue square")
    assert count == 75 + 3
