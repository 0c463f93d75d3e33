"""ControlNet units as sd-webui-controlnet's API and UI spell them: fields, defaults, aliases, images,
and the `ControlNet <i>` infotext entries.

Unknown keys are ignored (the extension does the same), so payloads written for A1111 work unchanged.
A wrong type or value is an `InvalidRequestError` naming the unit and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from PIL import Image

from modules.sumi.engine.controlnet.control import CONTROL_MODES
from modules.sumi.engine.controlnet.image_fit import MAX_PIXELS, check_size, parse_resize_mode
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.util.b64images import decode_base64_image

ALIASES = {"guidance": "guidance_end", "lowvram": "low_vram", "input_image": "image", "mask_image": "mask"}
SCRIPT_TITLE = "controlnet"  # the `alwayson_scripts` key, matched case-insensitively
INFOTEXT_FIELDS = (
    "module",
    "model",
    "weight",
    "resize_mode",
    "processor_res",
    "threshold_a",
    "threshold_b",
    "guidance_start",
    "guidance_end",
    "pixel_perfect",
    "control_mode",
)


@dataclass
class ControlNetUnit:
    """One unit's settings (sd-webui-controlnet names and defaults); `images` are decoded RGB arrays."""

    enabled: bool = False
    module: str = "none"
    model: str = "None"
    weight: float = 1.0
    images: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)  # HxW uint8, white = redraw (inpaint modules)
    resize_mode: str = "Crop and Resize"
    low_vram: bool = False
    processor_res: int = -1
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: str = "Balanced"
    save_detected_map: bool = True
    hr_option: str = "Both"  # with Hires. fix: "Both", "Low res only" or "High res only" pass
    union_control_type: str = "Unknown"  # for ControlNet Union models; "Unknown": from the preprocessor
    input_mode: str = "simple"  # "batch": one job per picture of `batch_images` (the extension's Batch tab);
    # "merge": the pictures of `image` together (Multi-Inputs: IP-Adapters average them, others split the weight)
    batch_images: str | list = ""  # a folder (inside the data folder) or a list of base64 pictures
    output_dir: str = ""  # batch mode: where the results go, named after the pictures ("": as usual)
    # one weight per level (ControlNet: residuals, middle last; T2I-Adapter: levels; IP-Adapter: transformer
    # blocks down, middle, up), replacing `weight` and the control mode's soft weights
    advanced_weighting: list[float] | None = None
    effective_region_mask: np.ndarray | None = (
        None  # HxW uint8: where the unit acts (white), None: everywhere
    )

    def infotext(self) -> str | None:
        """`Module: canny, Model: ..., Weight: 1.0, ...`; None when a value holds `,` or `:` (as the
        extension, which then leaves the unit out)."""
        values = [(name.replace("_", " ").title(), str(getattr(self, name))) for name in INFOTEXT_FIELDS]
        if any("," in v or ":" in v for _, v in values):
            return None
        return ", ".join(f"{k}: {v}" for k, v in values)


_BOOL_FIELDS = {"enabled", "low_vram", "pixel_perfect", "save_detected_map"}
_FLOAT_FIELDS = {"weight", "threshold_a", "threshold_b", "guidance_start", "guidance_end"}
_KNOWN = ({f.name for f in fields(ControlNetUnit)} - {"images", "masks"}) | {"image", "mask"}
MAX_LEVEL_WEIGHT = 10.0


def unit_from_dict(data: Mapping[str, Any], index: int = 0) -> ControlNetUnit:
    """Build a unit from an API/UI dict; unknown keys are ignored, aliases accepted."""
    if not isinstance(data, Mapping):
        raise InvalidRequestError(f"ControlNet unit {index}: expected an object, got {type(data).__name__}")
    if data.get("ipadapter_input") not in (None, "", []):
        raise InvalidRequestError(
            f"ControlNet unit {index}: ipadapter_input (the extension's pickled encoder output) is not accepted: "
            "Sumi never unpickles what a request sends; send the picture as `image` with an ip-adapter preprocessor"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = ALIASES.get(key, key)
        if name in _KNOWN and (name not in values or key == name):
            values[name] = value
    unit = ControlNetUnit()
    for name, value in values.items():
        if value is None and name not in ("image", "mask"):
            continue
        if name == "image":
            unit.images = decode_images(value, index)
            unit.masks = unit.masks or decode_masks(value, index)
        elif name == "mask":  # the unit's own mask (`mask` / `mask_image`) wins over one inside `image`
            unit.masks = decode_masks([None, value], index) or unit.masks
        elif name == "effective_region_mask":
            unit.effective_region_mask = decode_region_mask(
                value, f"ControlNet unit {index}: effective_region_mask"
            )
        elif name == "advanced_weighting":
            unit.advanced_weighting = _level_weights(value, f"ControlNet unit {index}: advanced_weighting")
        else:
            setattr(unit, name, _coerce(name, value, index))
    _check_ranges(unit, index)
    return unit


def _coerce(name: str, value: Any, index: int) -> Any:
    where = f"ControlNet unit {index}: {name}"
    if name in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidRequestError(f"{where} must be true or false, got {value!r}")
    if name in _FLOAT_FIELDS or name == "processor_res":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRequestError(f"{where} must be a number, got {value!r}")
        return int(value) if name == "processor_res" else float(value)
    if name == "resize_mode":
        if not isinstance(value, str):
            raise InvalidRequestError(f"{where} must be a name such as 'Crop and Resize', got {value!r}")
        return parse_resize_mode(value).value
    if name == "control_mode":
        return _control_mode(value, where)
    if name == "hr_option":
        return _hr_option(value, where)
    if name == "union_control_type":
        return union_control_type(value, where)
    if name == "input_mode":
        return _input_mode(value, where)
    if name == "batch_images":
        if isinstance(value, str) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        ):
            return value if isinstance(value, str) else list(value)
        raise InvalidRequestError(
            f"{where} must be a folder or a list of base64 pictures, got {type(value).__name__}"
        )
    if not isinstance(value, str):
        raise InvalidRequestError(f"{where} must be a string, got {value!r}")
    return value


def _level_weights(value: Any, where: str) -> list[float] | None:
    """A list of numbers, each from -10 to 10 (None and [] mean: no advanced weighting)."""
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        weights = [float(v) for v in value]
        if not all(abs(w) <= MAX_LEVEL_WEIGHT for w in weights):  # also refuses NaN
            raise InvalidRequestError(f"{where}: each weight must be from -10 to 10, got {value!r}")
        return weights or None
    raise InvalidRequestError(f"{where} must be a list of numbers (one per level), got {value!r}")


def _control_mode(value: Any, where: str) -> str:
    if isinstance(value, str):
        for mode in CONTROL_MODES:
            if mode.lower() == value.strip().lower():
                return mode
    raise InvalidRequestError(f"{where} must be one of: {', '.join(CONTROL_MODES)}; got {value!r}")


HR_OPTIONS = ("Both", "Low res only", "High res only")
INPUT_MODES = ("simple", "batch", "merge")  # sd-webui-controlnet's InputMode values


def _input_mode(value: Any, where: str) -> str:
    """`simple` / `batch` / `merge` (also the enum's `InputMode.MERGE` spelling)."""
    text = value.strip().lower().removeprefix("inputmode.") if isinstance(value, str) else None
    if text not in INPUT_MODES:
        raise InvalidRequestError(f"{where} must be one of: {', '.join(INPUT_MODES)}; got {value!r}")
    return text


def _hr_option(value: Any, where: str) -> str:
    """sd-webui-controlnet's `HiResFixOption`: its value, case-insensitively."""
    if isinstance(value, str):
        for option in HR_OPTIONS:
            if option.lower() == value.strip().lower():
                return option
    raise InvalidRequestError(f"{where} must be one of: {', '.join(HR_OPTIONS)}; got {value!r}")


def _check_ranges(unit: ControlNetUnit, index: int) -> None:
    where = f"ControlNet unit {index}"
    if not 0 <= unit.weight <= 2:
        raise InvalidRequestError(f"{where}: weight must be from 0 to 2, got {unit.weight}")
    for name in ("guidance_start", "guidance_end"):
        if not 0 <= getattr(unit, name) <= 1:
            raise InvalidRequestError(f"{where}: {name} must be from 0 to 1, got {getattr(unit, name)}")
    if unit.guidance_start > unit.guidance_end:
        raise InvalidRequestError(
            f"{where}: guidance_start ({unit.guidance_start}) is after guidance_end ({unit.guidance_end})"
        )


# -- images ----------------------------------------------------------------------------------------


def decode_images(value: Any, index: int = 0) -> list[np.ndarray]:
    """The extension's image forms: base64 (or data URL), {"image", "mask"}, [image, mask], a list of
    such dicts (one control image per generated image), a PIL image or an array."""
    if value is None or (isinstance(value, str) and not value):
        return []
    if isinstance(value, Mapping):
        return decode_images(value.get("image"), index)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value):
            return [img for v in value for img in decode_images(v, index)]
        return decode_images(value[0], index) if value else []  # [image, mask]
    return [decode_image(value, f"ControlNet unit {index}: image")]


def decode_masks(value: Any, index: int = 0) -> list[np.ndarray]:
    """The masks that go with `decode_images(value)`: `{"image", "mask"}`, `[image, mask]`, or a list of
    such dicts; HxW uint8, white = redraw. Empty when none is given."""
    if isinstance(value, Mapping):
        value = [value.get("image"), value.get("mask")]
    if not isinstance(value, (list, tuple)) or not value:
        return []
    if all(isinstance(v, Mapping) for v in value):
        masks = [m for v in value for m in decode_masks(v, index)]
        return masks if len(masks) == len(value) else []
    if len(value) < 2 or value[1] is None or (isinstance(value[1], str) and not value[1]):
        return []
    return [decode_mask(value[1], f"ControlNet unit {index}: mask")]


def decode_mask(value: Any, what: str = "ControlNet mask") -> np.ndarray:
    """A mask as HxW uint8 (white = redraw); a transparent mask counts as black where it is clear."""
    image = _flattened(_read_image(value, what), (0, 0, 0, 255))
    return np.ascontiguousarray(np.asarray(image.convert("L")))


def decode_region_mask(value: Any, what: str = "effective region mask") -> np.ndarray | None:
    """An effective region mask as HxW uint8: a grey picture as it is, a colour one's red channel (the
    extension reads the first channel); None for an empty value."""
    if value is None or (isinstance(value, str) and not value):
        return None
    if isinstance(value, Mapping):  # the UI's {"image", "mask"} / editor dicts
        value = value.get("image", value.get("background"))
        if value is None:
            return None
    image = _read_image(value, what)
    if image.mode in ("L", "LA", "I", "I;16", "F", "1"):
        return np.ascontiguousarray(np.asarray(image.convert("L")))
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, 0])


def decode_image(value: Any, what: str = "ControlNet image") -> np.ndarray:
    """One image as HxWx3 uint8 RGB (RGBA composited over white, as the extension does)."""
    image = _flattened(_read_image(value, what), (255, 255, 255, 255))
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def _read_image(value: Any, what: str) -> Image.Image:
    """An array, a PIL image or base64 text as a PIL image within the size limit (4xx otherwise)."""
    if isinstance(value, np.ndarray):
        image = Image.fromarray(value)
    elif isinstance(value, Image.Image):
        image = value
    elif isinstance(value, str):
        try:
            image = decode_base64_image(value, max_pixels=MAX_PIXELS)
        except ValueError as exc:
            raise InvalidRequestError(f"{what}: {exc}") from exc
    else:
        raise InvalidRequestError(f"{what} must be a base64-encoded image, got {type(value).__name__}")
    check_size(image.height, image.width, what)
    return image


def _flattened(image: Image.Image, background: tuple[int, int, int, int]) -> Image.Image:
    """Transparent images composited over `background`; others as they are."""
    if image.mode not in ("RGBA", "LA", "P"):
        return image
    image = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", image.size, background), image)


# -- payloads ----------------------------------------------------------------------------------------


def units_from_alwayson(alwayson_scripts: Mapping[str, Any] | None) -> list[ControlNetUnit]:
    """`alwayson_scripts: {"controlnet": {"args": [unit, ...]}}` (title matched case-insensitively)."""
    for title, entry in (alwayson_scripts or {}).items():
        if str(title).lower() != SCRIPT_TITLE:
            continue
        args = entry.get("args", []) if isinstance(entry, Mapping) else entry
        if not isinstance(args, (list, tuple)):
            raise InvalidRequestError("alwayson_scripts.controlnet.args must be a list of units")
        return [unit_from_dict(arg, i) for i, arg in enumerate(args)]
    return []


def parse_infotext_unit(text: str) -> dict[str, Any]:
    """`Module: canny, Weight: 1.0, ...` back into unit fields (True/False/int/float cast)."""
    result: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition(": ")
        if not sep:
            continue
        result[key.strip().lower().replace(" ", "_")] = _cast(value.strip())
    return result


def _cast(value: str) -> Any:
    if value in ("True", "False"):
        return value == "True"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


# sd-webui-controlnet's ControlNetUnionControlType, in its order (the index is the model's control type).
UNION_CONTROL_TYPES = (
    "OpenPose", "Depth", "Soft Edge", "Hard Edge", "Normal Map", "Segmentation", "Tile", "Inpaint",
)  # fmt: skip
_UNION_BY_TAG = {
    "openpose": "OpenPose",
    "depth": "Depth",
    "softedge": "Soft Edge",
    "scribble": "Soft Edge",
    "canny": "Hard Edge",
    "lineart": "Hard Edge",
    "mlsd": "Hard Edge",
    "normalmap": "Normal Map",
    "segmentation": "Segmentation",
    "tile": "Tile",
    "blur": "Tile",
    "inpaint": "Inpaint",
}


def union_control_type(value: Any, where: str) -> str:
    """A union control type by its name (any case) or the extension's tag names; "Unknown" allowed."""
    if isinstance(value, str):
        text = value.strip()
        for name in (*UNION_CONTROL_TYPES, "Unknown"):
            if name.lower() == text.lower():
                return name
        if text.lower().replace(" ", "") in _UNION_BY_TAG:
            return _UNION_BY_TAG[text.lower().replace(" ", "")]
    raise InvalidRequestError(
        f"{where} must be one of: {', '.join(UNION_CONTROL_TYPES)}, Unknown; got {value!r}"
    )


def union_type_index(unit_type: str, tags: tuple[str, ...]) -> int | None:
    """The control type index for a unit: its own type, else the first of the preprocessor's tags that
    names one (the extension's UI sets it from the tag); None when neither says."""
    if unit_type != "Unknown":
        return UNION_CONTROL_TYPES.index(unit_type)
    for tag in tags:
        name = _UNION_BY_TAG.get(tag.lower().replace(" ", ""))
        if name is not None:
            return UNION_CONTROL_TYPES.index(name)
    return None
