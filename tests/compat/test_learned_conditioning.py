"""A1111's text conditioning as extensions call it: `sd_model.get_learned_conditioning(texts)` encodes as a
job does (emphasis, BREAK, clip skip), `prompt_parser.get_learned_conditioning` / `reconstruct_cond_batch`
follow prompt editing by step, and the multicond pair splits at AND with weights and evens lengths."""

from __future__ import annotations

import pytest
import torch

from modules import prompt_parser, shared
from modules.sumi.engine.text.encoder import encode_prompts
from modules.sumi.engine.text.prompt_syntax import attention_fragments


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("learned-cond"), "--nowebui", loaded=True)


def job_encoding(texts: list[str]) -> torch.Tensor:
    """What a job's encoder gives for `texts` with the default settings."""
    sd = shared.sd_model.sumi_model
    return encode_prompts(sd.text_encoders, texts, 1, emphasis="Original", parse=attention_fragments).context


def test_the_models_encoding_is_the_jobs(app):
    texts = ["a (red:1.4) circle", "a blue square BREAK white background"]
    cond = shared.sd_model.get_learned_conditioning(texts)
    assert cond.shape[0] == 2 and cond.shape[1] == 154  # BREAK: two chunks, the batch evened
    torch.testing.assert_close(cond, job_encoding(texts))
    assert not torch.allclose(cond[0, :77], shared.sd_model.get_learned_conditioning(["a red circle"])[0])


def test_prompt_editing_switches_cond_at_its_step(app):
    c = prompt_parser.get_learned_conditioning(shared.sd_model, ["a [red:blue:2] circle", "a green star"], 4)
    assert [entry.end_at_step for entry in c[0]] == [2, 4] and len(c[1]) == 1
    red, blue, green = (job_encoding([t])[0] for t in ("a red circle", "a blue circle", "a green star"))
    early, late = prompt_parser.reconstruct_cond_batch(c, 1), prompt_parser.reconstruct_cond_batch(c, 3)
    assert early.shape == (2, 77, red.shape[-1])
    torch.testing.assert_close(early[0], red)
    torch.testing.assert_close(late[0], blue)
    torch.testing.assert_close(late[1], green)


def test_and_parts_come_with_their_weights_and_even_lengths(app):
    long = "a red circle, " + ", ".join(["white background"] * 30)  # over 75 tokens: two chunks
    c = prompt_parser.get_multicond_learned_conditioning(
        shared.sd_model, [f"{long} AND a blue square :0.5"], 2
    )
    conds_list, tensor = prompt_parser.reconstruct_multicond_batch(c, 0)
    assert conds_list == [[(0, 1.0), (1, 0.5)]]
    assert tensor.shape[:2] == (2, 154)
    square = job_encoding(["a blue square"])[0]
    torch.testing.assert_close(tensor[1, :77], square)
    assert torch.equal(tensor[1, 77:], square[-1:].expand(77, -1))  # the shorter part repeats its last vector
