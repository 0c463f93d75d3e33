"""A tile_colorfix(+sharp) unit's colour fix takes the unit's Variation (doubled in the hires pass, as
the extension), Sharpness, weight and window, with the extension's defaults for missing values."""

from __future__ import annotations

import torch

from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from modules.sumi.services.controlnet.service import Target, _color_fix_unit
from modules.sumi.services.controlnet.units import ControlNetUnit


def test_variation_sharpness_and_window_come_from_the_unit_and_double_in_the_hires_pass():
    latents = torch.zeros(1, 4, 8, 8)
    unit = ControlNetUnit(
        module="tile_colorfix+sharp", threshold_a=5, threshold_b=1.5, weight=0.6, guidance_end=0.7
    )
    sharp = get_preprocessor("tile_colorfix+sharp")
    first = _color_fix_unit(unit, sharp, latents, Target(64, 64, 1))
    assert (first.variation, first.sharpness, first.weight, first.guidance_end) == (5, 1.5, 0.6, 0.7)
    assert _color_fix_unit(unit, sharp, latents, Target(128, 128, 1, hires_pass=True)).variation == 10
    plain = _color_fix_unit(
        ControlNetUnit(module="tile_colorfix"), get_preprocessor("tile_colorfix"), latents, Target(64, 64, 1)
    )
    assert (plain.variation, plain.sharpness) == (8, None)  # the extension's default, no sharpening
