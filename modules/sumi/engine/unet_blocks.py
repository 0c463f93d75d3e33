"""The UNet's blocks by the names block-weight tools give them (A1111's merge tools, supermerger,
sd-webui-lora-block-weight): IN00..IN11, M00, OUT00..OUT11 for SD1/SD2, IN00..IN08, M00, OUT00..OUT08
for SDXL — the LDM checkpoint's `input_blocks.N`, `middle_block` and `output_blocks.N`. Layers outside
them (time embedding, conv_out, ...) belong to no block.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from modules.sumi.engine.ldm_export import unet_key

_LDM_BLOCK = re.compile(r"(?:model\.diffusion_model\.)?(input_blocks|middle_block|output_blocks)\.(\d+)\.")
_PREFIX = {"input_blocks": "IN", "output_blocks": "OUT"}


def ldm_block(key: str) -> str | None:
    """The block of an LDM UNet key (`input_blocks.4.1.proj_in.weight` -> "IN04", with or without the
    checkpoint's `model.diffusion_model.` prefix); None outside the blocks."""
    found = _LDM_BLOCK.match(key)
    if found is None:
        return None
    if found[1] == "middle_block":
        return "M00"
    return f"{_PREFIX[found[1]]}{int(found[2]):02d}"


def diffusers_block(name: str, layers_per_block: int, up_has_attention: Sequence[bool]) -> str | None:
    """The block of a diffusers UNet layer (`down_blocks.1.attentions.0.to_q` -> "IN04" on SD1)."""
    try:
        return ldm_block(unet_key(name + ".weight", layers_per_block, up_has_attention))
    except ValueError:
        return None
