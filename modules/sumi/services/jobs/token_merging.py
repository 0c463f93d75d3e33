"""A1111's token merging ratios for a job (settings `token_merging_ratio`, `..._img2img`, `..._hr`, and
`p.token_merging_ratio` / `p.token_merging_ratio_hr` that scripts set), as A1111's
`get_token_merging_ratio`; the engine applies them (engine/accel/token_merging.py)."""

from __future__ import annotations

from typing import Any

from modules.sumi.services.jobs import img2img
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img


def _own(p: Any, name: str) -> float:
    return float(getattr(p, name, 0) or 0)


def ratio(p: Any, options: Any, *, hires_pass: bool = False) -> float:
    """The ratio of the job's sampling (`hires_pass`: of its hires pass)."""
    if hires_pass:
        return (
            _own(p, "token_merging_ratio_hr")
            or float(options.token_merging_ratio_hr)
            or _own(p, "token_merging_ratio")
            or float(options.token_merging_ratio)
        )
    if img2img.is_img2img(p):
        overridden = "token_merging_ratio" in (p.override_settings or {})
        return (
            _own(p, "token_merging_ratio")
            or (float(options.token_merging_ratio) if overridden else 0.0)
            or float(options.token_merging_ratio_img2img)
            or float(options.token_merging_ratio)
        )
    return _own(p, "token_merging_ratio") or float(options.token_merging_ratio)


def infotext(p: Any, options: Any) -> dict[str, float | None]:
    """A1111's infotext entries: each ratio when not 0, the hires one only for a hires job."""
    first, second = ratio(p, options), ratio(p, options, hires_pass=True)
    return {
        "Token merging ratio": first or None,
        "Token merging ratio hr": second if _hires_job(p) and second else None,
    }


def _hires_job(p: Any) -> bool:
    return isinstance(p, StableDiffusionProcessingTxt2Img) and bool(p.enable_hr)
