"""sd-webui-controlnet's `external_code`: the API other extensions use to drive ControlNet (ADetailer's
ControlNet model option, segment-anything, EasyPhoto...), answered by Sumi's built-in ControlNet.

Sumi's ControlNet is built in, so this folder presents it as the extension `sd-webui-controlnet` (in
`modules.extensions.active()`, as extensions look for it) and this module is importable under the
names they import it by: `<extensions folder>.sd-webui-controlnet.scripts.external_code` for the
`extensions`, `extensions-builtin` and `extensions_builtin` folders (ADetailer builds that name from the
extension's path and imports it with `importlib.import_module`).

Units live on the job (`p.controlnet_units`, Sumi's own units) rather than in `p.script_args`:
`update_cn_script_in_processing(p, units)` sets them and `get_all_units_in_processing(p)` reads them. A
unit without an image in an img2img job takes the job's image (and mask), as the extension does.
`find_cn_script` finds no script object, so code that edits script args by position through it
(`update_cn_script(runner, args, units)`) leaves them as they are: use the `p` forms.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import numpy as np

from modules import shared
from modules.sumi.engine.controlnet.image_fit import parse_resize_mode, pixel_perfect_resolution  # noqa: F401
from modules.sumi.engine.controlnet.preprocessors import list_preprocessors
from modules.sumi.services.controlnet.units import ControlNetUnit as _SumiUnit
from modules.sumi.services.controlnet.units import decode_image, unit_from_dict

log = logging.getLogger(__name__)

EXTENSION = "sd-webui-controlnet"


class ControlMode(Enum):
    BALANCED = "Balanced"
    PROMPT = "My prompt is more important"
    CONTROL = "ControlNet is more important"


class ResizeMode(Enum):
    RESIZE = "Just Resize"
    INNER_FIT = "Crop and Resize"
    OUTER_FIT = "Resize and Fill"

    def int_value(self) -> int:
        return list(ResizeMode).index(self)


class HiResFixOption(Enum):
    BOTH = "Both"
    LOW_RES_ONLY = "Low res only"
    HIGH_RES_ONLY = "High res only"


class InputMode(Enum):
    SIMPLE = "simple"  # one picture (or one per image of the batch)
    BATCH = "batch"  # one job per picture of `batch_images` (a folder inside the data folder)
    MERGE = "merge"  # the pictures of `image` together (Multi-Inputs)


@dataclass
class ControlNetUnit:
    """The extension's unit, with its field names and defaults (enabled by default, as there)."""

    enabled: bool = True
    module: str = "none"
    model: str = "None"
    weight: float = 1.0
    image: Any = None
    mask_image: Any = None
    resize_mode: Any = ResizeMode.INNER_FIT
    low_vram: bool = False
    processor_res: int = -1
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: Any = ControlMode.BALANCED
    save_detected_map: bool = True
    hr_option: Any = HiResFixOption.BOTH
    union_control_type: Any = "Unknown"
    input_mode: Any = InputMode.SIMPLE
    batch_images: Any = ""
    output_dir: str = ""
    advanced_weighting: list[float] | None = None
    effective_region_mask: Any = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlNetUnit:
        known = {f.name for f in fields(cls)}
        aliases = {
            "guidance": "guidance_end",
            "lowvram": "low_vram",
            "input_image": "image",
            "mask": "mask_image",
        }
        return cls(**{aliases.get(k, k): v for k, v in data.items() if aliases.get(k, k) in known})


def _value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _to_sumi(unit: Any, index: int) -> _SumiUnit:
    """Sumi's unit for an external one (this module's class, a dict, or any object with its fields)."""
    if isinstance(unit, dict):
        unit = ControlNetUnit.from_dict(unit)
    data = {f.name: _value(getattr(unit, f.name, f.default)) for f in fields(ControlNetUnit)}
    mask = data.pop("mask_image")
    data = {k: v for k, v in data.items() if v is not None}
    if mask is not None:
        data["mask"] = mask
    return unit_from_dict(data, index)


def _from_sumi(unit: _SumiUnit) -> ControlNetUnit:
    image = None
    if unit.images:
        image = {"image": unit.images[0], "mask": unit.masks[0] if unit.masks else None}
    return ControlNetUnit(
        enabled=unit.enabled,
        module=unit.module,
        model=unit.model,
        weight=unit.weight,
        image=image,
        resize_mode=ResizeMode(parse_resize_mode(unit.resize_mode).value),
        low_vram=unit.low_vram,
        processor_res=unit.processor_res,
        threshold_a=unit.threshold_a,
        threshold_b=unit.threshold_b,
        guidance_start=unit.guidance_start,
        guidance_end=unit.guidance_end,
        pixel_perfect=unit.pixel_perfect,
        control_mode=ControlMode(unit.control_mode),
        save_detected_map=unit.save_detected_map,
        hr_option=HiResFixOption(unit.hr_option),
        union_control_type=unit.union_control_type,
        input_mode=InputMode(unit.input_mode),
        batch_images=unit.batch_images,
        output_dir=unit.output_dir,
        advanced_weighting=list(unit.advanced_weighting) if unit.advanced_weighting else None,
        effective_region_mask=unit.effective_region_mask,
    )


def get_api_version() -> int:
    return 3


def _controlnet() -> Any:
    app = shared.running_app()
    if app is None or getattr(app, "controlnet", None) is None:
        raise RuntimeError("ControlNet is not available (no running Sumi app)")
    return app.controlnet


def get_models(update: bool = False) -> list[str]:
    """The ControlNet model names a unit's `model` accepts."""
    service = _controlnet()
    if update:
        service.models.refresh()
    return [model.name for model in service.models.list()]


def get_modules(alias_names: bool = False) -> list[str]:
    """The preprocessors a unit's `module` accepts (internal names, or the UI's labels)."""
    return [p.label if alias_names else p.name for p in list_preprocessors()]


def get_modules_detail(alias_names: bool = False) -> dict[str, Any]:
    detail = {}
    for preprocessor in list_preprocessors():
        sliders = [
            s for s in (preprocessor.resolution, preprocessor.threshold_a, preprocessor.threshold_b) if s
        ]
        detail[preprocessor.label if alias_names else preprocessor.name] = {
            "model_free": preprocessor.model_free,
            "sliders": [
                {"name": s.label, "value": s.default, "min": s.minimum, "max": s.maximum, "step": s.step}
                for s in sliders
            ],
        }
    return detail


def get_max_models_num() -> int:
    return int(shared.opts.data.get("control_net_unit_count", 3))


def to_base64_nparray(encoding: str) -> np.ndarray:
    """A base64 image as an HxWx3 uint8 array."""
    return decode_image(encoding)


def to_processing_unit(unit: dict[str, Any] | ControlNetUnit) -> ControlNetUnit:
    return ControlNetUnit.from_dict(unit) if isinstance(unit, dict) else unit


def update_cn_script_in_processing(p: Any, cn_units: list[Any], **_kwargs: Any) -> None:
    """Give the job `p` these units (in place of the ones it had)."""
    p.controlnet_units = [_to_sumi(unit, index) for index, unit in enumerate(cn_units)]


def get_all_units_in_processing(p: Any) -> list[ControlNetUnit]:
    return [_from_sumi(unit) for unit in getattr(p, "controlnet_units", [])]


def find_cn_script(script_runner: Any) -> None:
    """No script object holds Sumi's ControlNet (see the module's docstring)."""
    return None


def is_cn_script(script: Any) -> bool:
    return False


def get_all_units(script_runner: Any, script_args: Any) -> list[ControlNetUnit]:
    return []


def update_cn_script(script_runner: Any, script_args: Any, cn_units: list[Any]) -> Any:
    """The extension writes `cn_units` into the ControlNet script's slots of `script_args`. Sumi's
    ControlNet has no script slots (units live on the job), so the args come back unchanged, and the
    caller is told once how to reach the job instead."""
    if cn_units and not _warned.get("update_cn_script"):
        _warned["update_cn_script"] = True
        log.warning(
            "An extension called external_code.update_cn_script(...); Sumi's built-in ControlNet keeps "
            "units on the job, not in script args, so those %d unit(s) were not applied: call "
            "external_code.update_cn_script_in_processing(p, units) instead",
            len(cn_units),
        )
    return script_args


_warned: dict[str, bool] = {}


def _register_import_names() -> None:
    """Importable under the full names extensions import sd-webui-controlnet's external_code by
    (`importlib.import_module` finds a full name in `sys.modules` without importing its parents, so the
    real `extensions` namespace, where users' extensions live, is left alone)."""
    module = sys.modules.get(__name__)
    if module is not None:
        for folder in ("extensions", "extensions-builtin", "extensions_builtin"):
            sys.modules[f"{folder}.{EXTENSION}.scripts.external_code"] = module


_register_import_names()
