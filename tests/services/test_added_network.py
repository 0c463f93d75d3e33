"""A1111's "Add network to prompt" (opt `sd_lora`) on a batch's parsed networks."""

from __future__ import annotations

from types import SimpleNamespace

from modules.sumi.services.networks.added_network import add_network_to_prompt
from modules.sumi.services.networks.registry import parse_prompts

KNOWN = {"style"}.__contains__
OPTIONS = SimpleNamespace(sd_lora="style", extra_networks_default_multiplier=0.7)


def batch(*prompts: str):
    p = SimpleNamespace(all_prompts=list(prompts))
    _, data = parse_prompts(list(prompts))
    return p, data


def test_the_lora_joins_the_batch_and_its_tag_ends_each_prompt():
    p, data = batch("a cat", "a dog")
    add_network_to_prompt(p, data, OPTIONS, KNOWN)
    assert p.all_prompts == ["a cat<lora:style:0.7>", "a dog<lora:style:0.7>"]
    assert [(x.items, x.positional) for x in data["lora"]] == [(["style", "0.7"], ["style", "0.7"])]


def test_a_batch_that_names_it_keeps_its_own_tag_and_weight():
    for prompt in ("a cat <lora:style:0.2>", "a cat <lyco:style:0.2>"):
        p, data = batch(prompt)
        add_network_to_prompt(p, data, OPTIONS, KNOWN)
        assert p.all_prompts == [prompt] and sum(len(v) for v in data.values()) == 1


def test_none_or_an_unknown_name_adds_nothing():
    for name in ("None", "", "missing"):
        p, data = batch("a cat")
        add_network_to_prompt(p, data, SimpleNamespace(sd_lora=name), KNOWN)
        assert p.all_prompts == ["a cat"] and data == {}


def test_the_hires_pass_applies_it_without_writing_the_prompts_again():
    p, data = batch("a cat")
    add_network_to_prompt(p, data, OPTIONS, KNOWN, write_prompts=False)
    assert p.all_prompts == ["a cat"] and data["lora"][0].items == ["style", "0.7"]
