"""ControlNet file layouts: recognising a ControlNet state dict and naming its keys.

Layouts (sd-webui-controlnet `build_model_by_guess`, a1111.md §5.5):
- lllyasviel (cldm): `control_model.input_hint_block.0.weight`, `zero_convs.N.0`, `middle_block_out.0`,
  `input_blocks...`; the prefix may be missing. Old full checkpoints also hold the SD model beside the
  `control_model.*` keys: only those are read.
- "diff": an lllyasviel file with a `difference` key; the weights the base UNet also has are stored
  as differences to it.
- diffusers single file: `controlnet_cond_embedding.conv_in.weight`, `down_blocks...`.

Shapes are always read from lllyasviel names (`ControlNetFile.ldm`); keys are checked in the file's
own names so an error names the key as the file spells it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.ldm_export import CONTROLNET_PREFIX, controlnet_key

StateDict = dict[str, Tensor]
HINT_KEY = "input_hint_block.0.weight"
DIFFUSERS_HINT_KEY = "controlnet_cond_embedding.conv_in.weight"
DIFFERENCE_KEY = "difference"
LLLYASVIEL, DIFFUSERS = "lllyasviel", "diffusers"


@dataclass(frozen=True)
class ControlNetFile:
    """The ControlNet part of a file.

    `weights`: the file's own keys (other models' keys and the `difference` marker left out).
    `ldm`: the same tensors under lllyasviel names without prefix, for reading sizes.
    """

    weights: StateDict
    ldm: StateDict
    layout: str
    prefix: str = ""
    difference: bool = False


def count(state_dict: Mapping[str, Tensor], pattern: str) -> int:
    """1 + the largest index captured by `pattern` (matched at the start of keys), 0 if none."""
    regex = re.compile(pattern)
    indices = [int(m[1]) for k in state_dict if (m := regex.match(k))]
    return max(indices) + 1 if indices else 0


def parse_controlnet_file(state_dict: Mapping[str, Tensor], source: str) -> ControlNetFile:
    """Recognise the layout; ModelLoadError (saying what the file looks like instead) if not a ControlNet."""
    difference = DIFFERENCE_KEY in state_dict or CONTROLNET_PREFIX + DIFFERENCE_KEY in state_dict
    rest = {
        k: v for k, v in state_dict.items() if k not in (DIFFERENCE_KEY, CONTROLNET_PREFIX + DIFFERENCE_KEY)
    }
    if DIFFUSERS_HINT_KEY in rest and not difference:
        return ControlNetFile(weights=rest, ldm=diffusers_to_ldm(rest), layout=DIFFUSERS)
    prefix = CONTROLNET_PREFIX if any(k.startswith(CONTROLNET_PREFIX) for k in rest) else ""
    weights = {k: v for k, v in rest.items() if k.startswith(prefix)}
    ldm = {k[len(prefix) :]: v for k, v in weights.items()}
    if HINT_KEY not in ldm:
        raise ModelLoadError(f"{source}: not a ControlNet model{_what_else(state_dict)}")
    return ControlNetFile(weights=weights, ldm=ldm, layout=LLLYASVIEL, prefix=prefix, difference=difference)


def diffusers_to_ldm(state_dict: Mapping[str, Tensor]) -> StateDict:
    """diffusers ControlNetModel keys -> lllyasviel names; keys with no such name are kept as they are."""
    layers = count(state_dict, r"down_blocks\.0\.resnets\.(\d+)\.")
    hint_convs = count(state_dict, r"controlnet_cond_embedding\.blocks\.(\d+)\.")
    out = {}
    for key, value in state_dict.items():
        try:
            out[controlnet_key(key, layers, hint_convs)] = value
        except ValueError:
            out[key] = value
    return out


def file_names(model_keys: list[str], config: Mapping, file: ControlNetFile) -> dict[str, str]:
    """{diffusers key of the model: the name the file stores it under}."""
    if file.layout == DIFFUSERS:
        return {k: k for k in model_keys}
    layers = int(config["layers_per_block"])
    hint_convs = 2 * (len(config["conditioning_embedding_out_channels"]) - 1)
    return {k: file.prefix + controlnet_key(k, layers, hint_convs) for k in model_keys}


# What a file that is not a ControlNet looks like: (test on the keys, what to tell the user).
_LOOKALIKES = (
    (
        lambda keys: "control_add_embedding.linear_1.bias" in keys or "task_embedding" in keys,
        "it is a ControlNet Union model in a layout Sumi does not read (diffusers' layout is read)",
    ),
    (
        lambda keys: any(k.startswith(("ip_adapter.", "image_proj.")) for k in keys),
        "it looks like part of an IP-Adapter; a whole one has both image_proj and ip_adapter weights",
    ),
    (
        lambda keys: any(k.startswith("lora_") or ".lora_" in k for k in keys),
        "it looks like a LoRA: put it in models/Lora",
    ),
    (
        lambda keys: any(k.startswith("model.diffusion_model.") for k in keys),
        "it looks like a Stable Diffusion checkpoint: put it in models/Stable-diffusion",
    ),
)


def _what_else(state_dict: Mapping[str, Tensor]) -> str:
    keys = list(state_dict)
    for test, says in _LOOKALIKES:
        if test(keys):
            return f" ({says})"
    return (
        f" (expected {CONTROLNET_PREFIX}{HINT_KEY} as in lllyasviel's .pth files, or "
        f"{DIFFUSERS_HINT_KEY} as in diffusers ControlNets)"
    )
