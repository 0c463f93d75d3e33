"""What the live preview shows (A1111's `live_preview_content`): the denoised estimate of the prompt
alone ("Prompt", A1111's default), of the negative prompt alone, or of the guided result ("Combined").

One model call gives the guided prediction `out = uncond + cfg * w * (cond - uncond)` (one prompt part of
weight w), so with the unconditional prediction kept the prompt's own is `uncond + (out - uncond) /
(cfg * w)`. A prediction becomes an x0 estimate from the call's scaled input `x = a * (x0 + sigma * eps)`,
`a = 1 / sqrt(1 + sigma^2)`: `x0 = x / a - sigma * eps` (epsilon models) or `x0 = a * x - a * sigma * v`
(v-prediction). When the split is not known (AND prompts, instruct-pix2pix image guidance, a call
without a noise level), the preview shows the guided result.
"""

from __future__ import annotations

import math

import torch

from modules.sumi.engine.extensions import DenoiserCall

PROMPT, NEGATIVE, COMBINED = "Prompt", "Negative prompt", "Combined"
CONTENTS = (COMBINED, PROMPT, NEGATIVE)  # A1111's order in Settings


def wants_uncond(content: str, call: DenoiserCall) -> bool:
    """Whether the call must keep its unconditional prediction for `content` (never forces an extra
    UNet row: at CFG scale 1 with one plain part the guided prediction is the prompt's own)."""
    return content in (PROMPT, NEGATIVE) and _split_known(call) and call.cfg_scale != 1


def x0_estimate(
    content: str, call: DenoiserCall, guided: torch.Tensor, prediction_type: str
) -> torch.Tensor | None:
    """The first image's (1, C, h, w) x0 estimate for `content` from one call, or None to use the
    guided result (Combined, or a split that is not known)."""
    if content not in (PROMPT, NEGATIVE) or call.sigma is None or not _split_known(call):
        return None
    out = guided[:1].float()
    if call.cfg_scale == 1:
        prediction = out  # one plain part: cond only (A1111 also shows it for "Negative prompt")
    elif call.uncond_output is None:
        return None
    else:
        uncond = call.uncond_output[:1].float()
        if content == NEGATIVE:
            prediction = uncond
        else:
            weight = call.conds[0][0][0]
            prediction = uncond + (out - uncond) / (call.cfg_scale * weight)
    sigma = float(call.sigma)
    a = 1 / math.sqrt(1 + sigma * sigma)
    x = call.x[:1].float()
    if prediction_type == "v_prediction":
        return a * x - a * sigma * prediction
    return x / a - sigma * prediction


def _split_known(call: DenoiserCall) -> bool:
    first = call.conds[0] if call.conds else []
    return (
        len(first) == 1 and first[0][0] != 0 and (call.image_cfg_scale is None or call.image_cfg_scale == 1)
    )
