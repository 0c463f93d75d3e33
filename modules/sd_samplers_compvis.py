"""A1111's `modules.sd_samplers_compvis`: the class its DDIM / PLMS / UniPC sampler objects had,
`VanillaStableDiffusionSampler`, for extensions that subclass it when they load (sd-dynamic-thresholding
does, for its UniPC path). Sumi runs DDIM, PLMS and UniPC in its own sampling loop with A1111's
CFGDenoiser like every sampler, so there are no such objects: making one is an error that says so.
"""

from __future__ import annotations

from typing import Any

samplers_data_compvis: list[Any] = []  # A1111 1.6+ lists these samplers with the others


class VanillaStableDiffusionSampler:
    """A1111's LDM DDIM/PLMS/UniPC sampler object; not available in Sumi."""

    def __init__(self, constructor: Any, sd_model: Any) -> None:
        raise NotImplementedError(
            "A1111's LDM DDIM/PLMS/UniPC sampler objects (sd_samplers_compvis.VanillaStableDiffusionSampler) "
            "do not exist in Sumi: its DDIM, PLMS and UniPC run in Sumi's own loop. Choose another sampler "
            "for the extension that needs one."
        )
