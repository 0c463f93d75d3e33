"""LoRA block weights (sd-webui-lora-block-weight's `lbw=`): block ids as the extension names them, its
list layouts and presets, and each layer's delta scaled by its block's ratio in the patcher."""

from __future__ import annotations

import re

import pytest
import torch

from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks import NetworkPatcher, network_from_state_dict
from modules.sumi.engine.networks.block_weights import (
    DEFAULT_PRESETS,
    LAYOUTS,
    parse_block_weights,
    parse_elements,
    read_element_presets,
    read_presets,
)
from modules.sumi.engine.networks.keys import a1111_layer_name, target_block
from modules.sumi.engine.unet_blocks import diffusers_block, ldm_block
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_models import tiny_sd1

SD1_UP_ATTENTION = [False, True, True, True]
SDXL_UP_ATTENTION = [True, True, False]


@pytest.mark.parametrize(
    ("layer", "block"),
    [
        ("conv_in", "IN00"),
        ("down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_q", "IN02"),
        ("down_blocks.0.downsamplers.0.conv", "IN03"),
        ("down_blocks.1.attentions.0.proj_in", "IN04"),
        ("down_blocks.3.resnets.1.conv1", "IN11"),
        ("mid_block.attentions.0.proj_out", "M00"),
        ("mid_block.resnets.1.conv2", "M00"),
        ("up_blocks.0.resnets.2.conv1", "OUT02"),
        ("up_blocks.0.upsamplers.0.conv", "OUT02"),
        ("up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2", "OUT03"),
        ("up_blocks.3.attentions.2.proj_out", "OUT11"),
        ("time_embedding.linear_1", None),
        ("conv_out", None),
    ],
)
def test_sd1_layers_fall_in_the_blocks_of_the_ldm_checkpoint(layer, block):
    assert diffusers_block(layer, 2, SD1_UP_ATTENTION) == block


@pytest.mark.parametrize(
    ("layer", "block"),
    [
        ("down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k", "IN04"),
        ("down_blocks.2.attentions.1.proj_out", "IN08"),
        ("mid_block.attentions.0.transformer_blocks.9.attn1.to_v", "M00"),
        ("up_blocks.0.attentions.2.proj_in", "OUT02"),
        ("up_blocks.1.attentions.0.proj_in", "OUT03"),
        ("up_blocks.2.resnets.2.conv1", "OUT08"),
        ("add_embedding.linear_1", None),
    ],
)
def test_sdxl_layers_fall_in_the_blocks_of_the_sgm_checkpoint(layer, block):
    assert diffusers_block(layer, 2, SDXL_UP_ATTENTION) == block


def test_checkpoint_keys_name_their_block_with_or_without_the_prefix():
    assert ldm_block("model.diffusion_model.input_blocks.10.0.in_layers.2.weight") == "IN10"
    assert ldm_block("output_blocks.7.1.proj_in.weight") == "OUT07"
    assert ldm_block("model.diffusion_model.middle_block.1.norm.bias") == "M00"
    assert ldm_block("model.diffusion_model.time_embed.0.weight") is None
    assert ldm_block("cond_stage_model.transformer.text_model.final_layer_norm.weight") is None


def test_a_preset_expands_to_the_extensions_26_blocks_with_the_left_out_ones_at_zero():
    weights = parse_block_weights("OUTD", DEFAULT_PRESETS)
    ratios = dict(weights.ratios)
    assert ratios["BASE"] == 1 and ratios["OUT03"] == ratios["OUT06"] == 1 and ratios["OUT07"] == 0
    assert ratios["IN04"] == 0 and ratios["M00"] == 0
    assert weights.ratio("IN00") == 0  # not in the 17 layout: 0, as the extension's to26
    assert weights.ratio(None) == 1  # outside every block: untouched by the ratios


@pytest.mark.parametrize("count", sorted(LAYOUTS))
def test_each_list_length_is_its_layout(count):
    values = ",".join(str(i / 100) for i in range(count))
    weights = parse_block_weights(values, {})
    assert [block for block, _ in weights.ratios] == list(LAYOUTS[count])
    assert [ratio for _, ratio in weights.ratios] == [i / 100 for i in range(count)]


def test_sdxl_lists_name_sdxl_blocks():
    weights = parse_block_weights("1,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.1", {})
    assert weights.ratio("IN04") == 0.1 and weights.ratio("M00") == 0.5 and weights.ratio("OUT05") == 1.1
    assert weights.ratio("IN01") == 0 and weights.ratio("OUT06") == 0


def test_random_and_inherited_values_follow_the_seed_and_x():
    spec = "R,U,X,X+0.5,X-0.25,0,0,0,0,0,0,0,0,0,0,0,0"
    a = parse_block_weights(spec, {}, inherited=0.5, seed=7)
    assert a == parse_block_weights(spec, {}, inherited=0.5, seed=7)
    assert a != parse_block_weights(spec, {}, inherited=0.5, seed=8)
    ratios = [r for _, r in a.ratios]
    assert 0 <= ratios[0] <= 1 and -0.5 <= ratios[1] <= 1.5
    assert ratios[2:5] == [0.5, 1.0, 0.25]


@pytest.mark.parametrize("spec", ["1,2,3", "NOPE", "1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,zero"])
def test_a_bad_spec_says_what_is_accepted(spec):
    with pytest.raises(ValueError, match="block weights"):
        parse_block_weights(spec, DEFAULT_PRESETS)


def test_a_presets_file_skips_comments_and_lines_of_other_lengths():
    text = (
        "MINE:1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\n"
        "# OLD:1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\n"
        "SHORT:1,0,1\n"
        "XL:1,1,1,1,1,0,0,0,0,0,0,0\n"
        "no colon here\n"
    )
    assert read_presets(text) == {
        "MINE": "1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0",
        "XL": "1,1,1,1,1,0,0,0,0,0,0,0",
    }


# -- in the patcher ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd1():
    components = tiny_sd1()
    specs = [TextEncoderSpec(model=m, tokenizer=None) for m in components["text_encoders"]]
    model = SDModel(components["family"], components["unet"], components["vae"], specs, scheduler_config={})
    return components, model


def _weights(model: SDModel) -> dict[str, torch.Tensor]:
    modules = {"unet": model.unet, "te0": model.text_encoders[0].model}
    return {
        f"{component}:{name}": module.weight.detach().clone()
        for component, root in modules.items()
        for name, module in root.named_modules()
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))
    }


def _every_block_its_own_ratio() -> str:
    return ",".join(f"{(i % 5) / 4:g}" for i in range(26))  # 0, 0.25, 0.5, 0.75, 1, 0, ...


def test_each_layer_gets_its_blocks_ratio_and_a_zero_block_stays_bit_exact(sd1):
    components, model = sd1
    state = tn.lora_state_dict(
        components, locon=True, pattern=re.compile(r".*(attn[12]\.to_q|proj_out|time_emb.*linear_1)$")
    )
    network = network_from_state_dict(state, "blocks")
    weights = parse_block_weights(_every_block_its_own_ratio(), {})
    patcher = NetworkPatcher(model)
    before = _weights(model)
    patcher.apply([(network, 0.5, 0.8)])
    full = {key: value - before[key] for key, value in _weights(model).items()}
    patcher.apply([(network.with_block_weights(weights), 0.5, 0.8)])
    after = _weights(model)
    patcher.restore()
    seen = set()
    for target in {p.target.key: p.target for p in patcher.results[0].patches}.values():
        block = target_block(model, target)
        ratio = weights.ratio(block)
        seen.add(ratio)
        key = target.key
        if ratio == 0:
            assert torch.equal(after[key], before[key]), key
        else:
            torch.testing.assert_close(after[key] - before[key], ratio * full[key], rtol=1e-4, atol=1e-6)
    assert {0.0, 1.0} <= seen and len(seen) >= 4  # the tiny model's blocks took several ratios
    assert any(target_block(model, p.target) is None for p in patcher.results[0].patches)  # time embedding: 1


def test_the_same_block_weights_rewrite_nothing_and_other_ones_rewrite_the_changed_blocks(sd1):
    components, model = sd1
    network = network_from_state_dict(tn.lora_state_dict(components), "again")
    patcher = NetworkPatcher(model)
    first = network.with_block_weights(parse_block_weights("OUTD", DEFAULT_PRESETS))
    patcher.apply([(first, 1.0, 1.0)])
    touched: list[str] = []
    original_patch, original_restore = patcher._patch_layer, patcher._restore_layer
    patcher._patch_layer = lambda key, deltas: (touched.append(key), original_patch(key, deltas))
    patcher._restore_layer = lambda key: (touched.append(key), original_restore(key))
    same = network.with_block_weights(parse_block_weights("OUTD", DEFAULT_PRESETS))
    patcher.apply([(same, 1.0, 1.0)])
    assert touched == []
    patcher.apply([(network.with_block_weights(parse_block_weights("OUTS", DEFAULT_PRESETS)), 1.0, 1.0)])
    assert touched and all(key.startswith("unet:") for key in touched)  # BASE is 1 in both
    patcher.restore()


def test_an_sdxl_lora_takes_the_twelve_block_layout():
    from tests.fixtures.tiny_models import tiny_sdxl

    components = tiny_sdxl()
    specs = [TextEncoderSpec(model=m, tokenizer=None) for m in components["text_encoders"]]
    model = SDModel(components["family"], components["unet"], components["vae"], specs, scheduler_config={})
    network = network_from_state_dict(tn.lora_state_dict(components), "xl")
    weights = parse_block_weights("0,1,1,1,1,1,0,0,0,0,0,0", {})  # BASE 0; IN04-IN08 and M00 1; OUT 0
    patcher = NetworkPatcher(model)
    patcher.apply([(network.with_block_weights(weights), 1.0, 1.0)])
    blocks = {target_block(model, p.target) for p in patcher.results[0].patches}
    touched = {key.split(":")[0] for key in patcher.patched_layers}
    patched_blocks = {
        target_block(model, p.target)
        for p in patcher.results[0].patches
        if p.target.key in patcher.patched_layers
    }
    patcher.restore()
    assert touched == {"unet"}  # BASE 0: neither text encoder
    assert patched_blocks <= {"IN04", "IN05", "IN07", "IN08", "M00", None} and patched_blocks
    assert blocks - patched_blocks  # the up blocks' layers were there and left alone


# -- element weights (lbwe=) ---------------------------------------------------------------------------


def _extension_ratio(name: str, block: str, base: float, directives: str) -> float:
    """sd-webui-lora-block-weight's ratiodealer for one layer, step by step (its flag logic)."""
    ratio, key = base, name + block
    for d in directives.replace("\n", ",").split(","):
        if d.count(":") != 2:
            continue
        blocks_text, elements_text, value = d.split(":")
        dbs, dws = _expand_ranges(blocks_text).split(" "), elements_text.split(" ")
        dbn, dbs = (True, dbs[1:]) if dbs[0] == "NOT" else (False, dbs)
        dwn, dws = (True, dws[1:]) if dws[0] == "NOT" else (False, dws)
        flag = dbn
        for db in dbs:
            if db in key:
                flag = not dbn
        if not flag:
            continue
        flag = dwn
        for dw in dws:
            if dw in key:
                flag = not dwn
        if flag:
            ratio = float(value)
    return ratio


def _expand_ranges(text: str) -> str:
    from modules.sumi.engine.networks.block_weights import BLOCK_ORDER

    items = text.split(" ")
    for i, item in enumerate(items):
        if "-" in item:
            a, b = (BLOCK_ORDER.index(x) for x in item.split("-"))
            items[i] = " ".join(BLOCK_ORDER[min(a, b) : max(a, b) + 1])
    return " ".join(items)


LAYERS = [
    ("diffusion_model_input_blocks_4_1_transformer_blocks_0_attn1_to_q", "IN04"),
    ("diffusion_model_input_blocks_7_1_transformer_blocks_0_attn2_to_k", "IN07"),
    ("diffusion_model_input_blocks_7_1_proj_in", "IN07"),
    ("diffusion_model_middle_block_1_transformer_blocks_0_ff_net_0_proj", "M00"),
    ("diffusion_model_output_blocks_5_1_transformer_blocks_0_attn1_to_out_0", "OUT05"),
    ("diffusion_model_output_blocks_9_0_in_layers_2", "OUT09"),
    ("transformer_text_model_encoder_layers_0_self_attn_q_proj", "BASE"),
]
DIRECTIVES = [
    "IN05-OUT05:attn:0",
    "OUT05-IN05:attn2:0.5",
    ":attn1:0.25\nNOT M00:NOT proj:0.75",
    "NOT:NOT:0.1",
    "IN04 IN07::2,BASE:self_attn:0",
    "::1",
    "broken,IN04:attn:x1",
]


@pytest.mark.parametrize("directives", DIRECTIVES[:-1])
def test_element_rules_give_each_layer_the_ratio_the_extension_would(directives):
    weights = parse_block_weights(_every_block_its_own_ratio(), {}).with_elements(parse_elements(directives))
    for name, block in LAYERS:
        expected = _extension_ratio(name, block, weights.ratio(block), directives)
        assert weights.layer_ratio(block, name) == expected, (name, directives)


def test_a_bad_element_ratio_says_which_directive():
    with pytest.raises(ValueError, match="'IN04:attn:x1'"):
        parse_elements(DIRECTIVES[-1])


def test_element_presets_are_paragraphs_of_name_and_directives():
    text = "ATTNON:IN05-OUT05:attn:1\n\nMINE:IN04:attn1:0,\nOUT03:proj:0.5\n\n# no colon here"
    presets = read_element_presets(text)
    assert presets == {"ATTNON": "IN05-OUT05:attn:1", "MINE": "IN04:attn1:0,\nOUT03:proj:0.5"}
    assert len(parse_elements(presets["MINE"])) == 2


def test_layers_are_named_as_a1111_names_them(sd1):
    components, model = sd1
    network = network_from_state_dict(tn.lora_state_dict(components), "names")
    patcher = NetworkPatcher(model)
    names = {a1111_layer_name(model, p.target) for p in patcher.check([(network, 1.0, 1.0)])[0].patches}
    assert any(n.startswith("diffusion_model_input_blocks_") and "_attn1_to_q" in n for n in names)
    assert any(n.startswith("transformer_text_model_encoder_layers_") for n in names)


def test_element_weights_scale_the_layers_they_reach_and_leave_the_rest_at_the_block_ratio(sd1):
    components, model = sd1
    network = network_from_state_dict(tn.lora_state_dict(components, locon=True), "elements")
    patcher = NetworkPatcher(model)
    before = _weights(model)
    patcher.apply([(network, 1.0, 1.0)])
    full = {key: value - before[key] for key, value in _weights(model).items()}
    weights = parse_block_weights(",".join(["1"] * 26), {}).with_elements(
        parse_elements(":attn1:0,:proj_in:0.5")
    )
    patcher.apply([(network.with_block_weights(weights), 1.0, 1.0)])
    after = _weights(model)
    patcher.restore()
    seen = {}
    for target in {p.target.key: p.target for p in patcher.results[0].patches}.values():
        name = a1111_layer_name(model, target)
        ratio = 0.0 if "attn1" in name else 0.5 if "proj_in" in name else 1.0
        seen[ratio] = seen.get(ratio, 0) + 1
        if ratio == 0:
            assert torch.equal(after[target.key], before[target.key]), name
        else:
            torch.testing.assert_close(
                after[target.key] - before[target.key], ratio * full[target.key], rtol=1e-4, atol=1e-6
            )
    assert set(seen) == {0.0, 0.5, 1.0}, seen
