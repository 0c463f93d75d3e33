"""A1111's `modules.img2img`: `process_batch` (the Batch tab: every image of a folder through one img2img
job) runs on the running App; `img2img` is A1111's web UI handler, whose arguments are A1111's page
layout: Sumi's img2img tab has its own, so it stands in (adetailer patches `process_batch` for a moment;
agent-scheduler wraps `img2img`)."""

from __future__ import annotations

from typing import Any

from modules import shared
from modules.sumi.services.jobs.img2img_batch import PNG_INFO_PROPS, BatchFolders
from modules.sumi.services.jobs.processing import Processed
from modules.sumi.util.unsupported import stand_in

img2img = stand_in(
    "img2img.img2img()",
    "it is A1111's web UI handler; build a StableDiffusionProcessingImg2Img and call process_images",
)


def process_batch(
    p: Any,
    input: Any,  # noqa: A002 (A1111's name)
    output_dir: str,
    inpaint_mask_dir: str,
    args: Any,
    to_scale: bool = False,
    scale_by: float = 1.0,
    use_png_info: bool = False,
    png_info_props: list[str] | None = None,
    png_info_dir: str | None = None,
) -> Processed:
    """A1111: run `p` for every image of the folder `input` (or the list of files), with the mask of
    the same name from `inpaint_mask_dir` (or its one mask), writing to `output_dir` when given."""
    folders = BatchFolders(
        input_dir=input if isinstance(input, str) else [getattr(f, "name", f) for f in input],
        output_dir=output_dir or "",
        inpaint_mask_dir=inpaint_mask_dir or "",
        to_scale=to_scale,
        scale_by=scale_by,
        use_png_info=use_png_info,
        png_info_props=list(PNG_INFO_PROPS if png_info_props is None else png_info_props),
        png_info_dir=png_info_dir or "",
    )
    return shared.app().runner.img2img_batch(p, folders, list(args or []))


__all__ = ["img2img", "process_batch"]
