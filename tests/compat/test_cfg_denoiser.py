"""A1111's denoiser extension points, checked against computations by hand: the on_cfg_* batch layout
(cond rows per AND part of each image, then the uncond rows), a Latent-Couple-style region blend in
on_cfg_denoised, `CFGDenoiser.combine_denoised` replaced on the class, and a neutral-prompt-style wrap of
`sd_samplers.create_sampler` that patches the sampler's `model_wrap_cfg.combine_denoised`."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from modules import processing, prompt_parser, script_callbacks, sd_samplers, sd_samplers_cfg_denoiser


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("cfg") / "data", "--nowebui", loaded=True)


ONE = {"prompt": "a red circle", "batch_size": 1, "n_iter": 2}  # two batches of one image


@pytest.fixture(scope="module")
def plain(app) -> np.ndarray:
    """The `ONE` job's images with no callback and no override: Sumi's own guidance."""
    return _pixels(processing.process_images(_job(**ONE)))


def _job(**kwargs) -> processing.StableDiffusionProcessingTxt2Img:
    fields = {
        "prompt": "a red circle AND a blue square",
        "negative_prompt": "green",
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 5,
        "cfg_scale": 6.0,
        "sampler_name": "Euler",
        "batch_size": 2,
        "do_not_save_samples": True,
        "do_not_save_grid": True,
    }
    return processing.StableDiffusionProcessingTxt2Img(**{**fields, **kwargs})


def _pixels(processed) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.int16) for image in processed.images])


@pytest.fixture
def registered():
    """Register A1111 callbacks for one test; all are removed afterwards."""
    added = []

    def register(kind: str, function) -> None:
        getattr(script_callbacks, f"on_cfg_{kind}")(function)
        added.append(function)

    yield register
    for function in added:
        script_callbacks.remove_callbacks_for_function(function)


def test_the_rows_are_a1111s_and_a_latent_couple_blend_is_what_the_guidance_combines(app, registered):
    """on_cfg_denoiser sees the cond rows per AND part of each image, then the uncond rows; a two-shot
    style region blend of the on_cfg_denoised rows is what A1111's composable CFG combines."""
    seen, before, blended, after = [], [], [], []
    mask = torch.zeros(1, 8, 8)
    mask[..., :4] = 1  # part 0 on the left half, part 1 on the right half

    def couple(params) -> None:  # two-shot's loop: each cond row blended with its image's uncond row
        x = params.x
        before.append(x.clone())
        batch = 2
        parts = (x.shape[0] - batch) // batch
        for b in range(batch):
            uncond = x[batch * parts + b]
            for part in range(parts):
                row = b * parts + part
                region = mask if part == 0 else 1 - mask
                x[row] = x[row] * region + uncond * (1 - region)
        blended.append(x.clone())

    registered("denoiser", lambda params: seen.append(params))
    registered("denoised", couple)
    registered("after_cfg", lambda params: after.append(params.x.clone()))
    processing.process_images(_job())
    first = seen[0]
    # 2 images x 2 AND parts, then 2 uncond rows
    assert first.x.shape[0] == 6 and first.sigma.shape == (6,) and first.image_cond.shape[0] == 6
    x = first.x
    assert torch.equal(x[0], x[1]) and torch.equal(x[2], x[3])  # image 0's parts, image 1's parts
    assert torch.equal(x[4], x[0]) and torch.equal(x[5], x[2]) and not torch.equal(x[0], x[2])
    cond, uncond = first.text_cond, first.text_uncond
    assert cond.shape[0] == 4 and uncond.shape[0] == 2
    assert (
        torch.equal(cond[0], cond[2]) and torch.equal(cond[1], cond[3]) and not torch.equal(cond[0], cond[1])
    )
    assert [p.sampling_step for p in seen] == [0, 1] and {p.total_sampling_steps for p in seen} == {2}
    assert isinstance(first.denoiser, sd_samplers_cfg_denoiser.CFGDenoiser)
    assert len(before) == len(after) == 2
    rows, result = blended[0], after[0]
    for b in range(2):  # A1111's composable CFG by hand: uncond + sum_i w_i * cfg * (cond_i - uncond)
        uncond = rows[4 + b]
        expected = uncond + 6.0 * (rows[2 * b] - uncond) + 6.0 * (rows[2 * b + 1] - uncond)
        torch.testing.assert_close(result[b], expected, rtol=1e-4, atol=1e-4)
    left, right = rows[0][..., 4:], rows[1][..., :4]
    torch.testing.assert_close(left, before[0][4][..., 4:])  # outside its region a part is the uncond
    torch.testing.assert_close(right, before[0][4][..., :4])


def test_a_no_op_callback_leaves_the_image_as_sumis_own_guidance_makes_it(app, registered, plain):
    registered("denoised", lambda params: None)
    with_callback = _pixels(processing.process_images(_job(**ONE)))
    assert np.abs(plain - with_callback).max() <= 1


def test_combine_denoised_replaced_on_the_class_changes_the_job(app, plain):
    """A combine that keeps only the uncond rows gives the image of the negative prompt at CFG 1."""
    original = sd_samplers_cfg_denoiser.CFGDenoiser.combine_denoised

    def uncond_only(self, x_out, conds_list, uncond, cond_scale):
        return x_out[-uncond.shape[0] :]

    sd_samplers_cfg_denoiser.CFGDenoiser.combine_denoised = uncond_only
    try:
        replaced = _pixels(processing.process_images(_job(**ONE)))
    finally:
        sd_samplers_cfg_denoiser.CFGDenoiser.combine_denoised = original
    negative = _pixels(processing.process_images(_job(**{**ONE, "prompt": "green", "cfg_scale": 1.0})))
    assert np.abs(replaced - negative).max() <= 1
    assert np.abs(plain - negative).max() > 8


def test_a_neutral_prompt_style_create_sampler_wrap_changes_the_guidance(app, registered, plain):
    calls, combined, after = [], [], []

    def rescaled(x_out, conds_list, uncond, cond_scale, original_function):
        """A rescale of the webui's combination (like neutral-prompt's cfg_rescale, made strong)."""
        denoised = original_function(x_out, conds_list, uncond, cond_scale)
        out = denoised.clone()
        for i, conds in enumerate(conds_list):
            cond = x_out[conds[0][0]]
            factor = cond.std() / denoised[i].std()
            out[i] = 1.5 * denoised[i] * factor
        combined.append((x_out.clone(), conds_list, out.clone()))
        return out

    original_create = sd_samplers.create_sampler

    def create_sampler_hijack(name, model):
        sampler = original_create(name, model)
        calls.append(sampler)
        wrap = sampler.model_wrap_cfg
        wrap.combine_denoised = functools.partial(rescaled, original_function=wrap.combine_denoised)
        return sampler

    registered("after_cfg", lambda params: after.append(params.x.clone()))
    sd_samplers.create_sampler = create_sampler_hijack
    try:
        p = _job(**ONE)
        wrapped = _pixels(processing.process_images(p))
    finally:
        sd_samplers.create_sampler = original_create
    assert len(calls) == 2 and p.sampler is calls[-1]  # one sampler per batch, the job's `p.sampler`
    assert calls[0].name == "Euler" and calls[0].model_wrap_cfg.p is not None
    assert len(combined) == 4 and combined[0][1] == [[(0, 1.0)]]  # 2 batches x 2 steps
    x_out, _, out = combined[0]
    denoised = x_out[1] + 6.0 * (x_out[0] - x_out[1])  # the webui's own combination, by hand
    expected = 1.5 * denoised * (x_out[0].std() / denoised.std())
    torch.testing.assert_close(out[0], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(after[0], out)  # what the job went on with
    assert np.abs(wrapped - plain).max() > 2


def test_create_sampler_builds_a1111s_sampler_object_and_refuses_a_bad_name(app):
    sampler = sd_samplers.create_sampler("k_euler_a", None)
    assert sampler.name == "Euler a" and sampler.config is sd_samplers.all_samplers_map["Euler a"]
    assert isinstance(sampler.model_wrap_cfg, sd_samplers_cfg_denoiser.CFGDenoiser)
    assert sampler.model_wrap_cfg.sampler is sampler
    with pytest.raises(ValueError, match="bad sampler name: nope"):
        sd_samplers.create_sampler("nope", None)


def test_the_conditioning_helpers_work_on_tensors_and_sdxl_dicts():
    a, b = torch.ones(1, 77, 4), torch.zeros(2, 77, 4)
    assert sd_samplers_cfg_denoiser.catenate_conds([a, b]).shape == (3, 77, 4)
    joined = sd_samplers_cfg_denoiser.catenate_conds(
        [{"crossattn": a, "vector": torch.ones(1, 6)}, {"crossattn": b, "vector": torch.zeros(2, 6)}]
    )
    assert joined["crossattn"].shape == (3, 77, 4) and joined["vector"].shape == (3, 6)
    assert torch.equal(sd_samplers_cfg_denoiser.subscript_cond(joined, 1, 3)["vector"], torch.zeros(2, 6))
    assert torch.equal(sd_samplers_cfg_denoiser.subscript_cond(b, 0, 1), b[:1])
    empty = torch.full((1, 77, 4), 2.0)
    padded = sd_samplers_cfg_denoiser.pad_cond(a, 2, empty)
    assert padded.shape == (1, 231, 4) and bool((padded[:, 77:] == 2).all())
    padded_dict = sd_samplers_cfg_denoiser.pad_cond({"crossattn": b, "vector": torch.zeros(2, 6)}, 1, empty)
    assert padded_dict["crossattn"].shape == (2, 154, 4)


def test_a_neutral_prompt_style_get_multicond_prompt_list_wrap_gives_the_job_its_and_parts(app, registered):
    """neutral-prompt turns AND_PERP into AND parts by replacing prompt_parser.get_multicond_prompt_list;
    the job's cond rows follow what the replacement returns, the infotext keeps the user's prompt."""
    original = prompt_parser.get_multicond_prompt_list
    listed, rows = [], []

    def hijack(prompts):
        listed.append(list(prompts))
        return original([p.replace("AND_PERP", "AND") + " AND a green triangle :0.5" for p in prompts])

    registered("denoiser", lambda params: rows.append(params.text_cond.shape[0]))
    registered("denoised", lambda params: None)
    prompt_parser.get_multicond_prompt_list = hijack
    try:
        prompt = "a red circle AND_PERP a blue square"
        processed = processing.process_images(_job(prompt=prompt, batch_size=1, steps=1))
    finally:
        prompt_parser.get_multicond_prompt_list = original
    assert listed == [[prompt]] and rows == [3] and processed.prompt == prompt
