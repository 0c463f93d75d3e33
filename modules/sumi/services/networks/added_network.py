"""A1111's "Add network to prompt" (opt `sd_lora`): a LoRA that joins every job at the default
multiplier (opt `extra_networks_default_multiplier`) unless the batch's prompt names it already. Its tag
is written at the end of each prompt, so the infotext (and a paste of it) says what was applied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modules.sumi.services.networks.registry import ExtraNetworkData, ExtraNetworkParams

LORA_TAGS = ("lora", "lyco")


def add_network_to_prompt(
    p: Any, data: ExtraNetworkData, options: Any, known: Callable[[str], bool], write_prompts: bool = True
) -> None:
    """Add opt `sd_lora` to this batch's networks (`data`, as `parse_prompts` gave it) when it is a
    known LoRA the batch does not name; `write_prompts` also appends its tag to `p.all_prompts`
    (the first pass: the hires pass only applies it)."""
    name = str(getattr(options, "sd_lora", "None") or "None")
    if name == "None" or not known(name):
        return
    if any(params.items and params.items[0] == name for tag in LORA_TAGS for params in data.get(tag, [])):
        return
    weight = f"{float(getattr(options, 'extra_networks_default_multiplier', 1.0)):g}"
    if write_prompts:
        p.all_prompts = [f"{prompt}<lora:{name}:{weight}>" for prompt in p.all_prompts]
    data.setdefault("lora", []).append(ExtraNetworkParams.from_text(f"{name}:{weight}"))
