"""A1111's `run_extras` arguments (the API's and old extensions' names) as the Extras scripts' named
arguments, and the run order its `upscale_first` asks for."""

from __future__ import annotations

from typing import Any

FACE_SCRIPTS = ("GFPGAN", "CodeFormer")


def run_extras_scripts_args(
    *,
    resize_mode: int,
    gfpgan_visibility: float,
    codeformer_visibility: float,
    codeformer_weight: float,
    upscaling_resize: float,
    upscaling_resize_w: int,
    upscaling_resize_h: int,
    upscaling_crop: bool,
    extras_upscaler_1: str | None,
    extras_upscaler_2: str | None,
    extras_upscaler_2_visibility: float,
    max_side_length: int = 0,
) -> dict[str, dict[str, Any]]:
    """{script name: {argument: value}} for `ScriptPostprocessingRunner.create_args_for_run` (A1111)."""
    return {
        "Upscale": {
            "upscale_enabled": True,
            "upscale_mode": resize_mode,
            "upscale_by": upscaling_resize,
            "max_side_length": max_side_length,
            "upscale_to_width": upscaling_resize_w,
            "upscale_to_height": upscaling_resize_h,
            "upscale_crop": upscaling_crop,
            "upscaler_1_name": extras_upscaler_1,
            "upscaler_2_name": extras_upscaler_2,
            "upscaler_2_visibility": extras_upscaler_2_visibility,
        },
        "GFPGAN": {"enable": True, "gfpgan_visibility": gfpgan_visibility},
        "CodeFormer": {
            "enable": True,
            "codeformer_visibility": codeformer_visibility,
            "codeformer_weight": codeformer_weight,
        },
    }


def run_order(upscale_first: bool, faces: bool) -> list[str] | None:
    """The order `upscale_first` asks for when a face restorer is used; None: the configured order."""
    if not faces:
        return None
    return ["Upscale", *FACE_SCRIPTS] if upscale_first else [*FACE_SCRIPTS, "Upscale"]
