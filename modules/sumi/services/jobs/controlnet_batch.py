"""Jobs for sd-webui-controlnet's batch input mode (see `services.controlnet.batch`): one job per picture
of the batch units, or, in img2img's Batch tab, the input image's own picture.

The seed is fixed once, so every job of the batch starts from the same one (the extension's default);
with an output folder the results are written there named after the pictures (`<name>-1`... for more
than one image per job) and not saved as usual; they are always returned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modules.sumi.services.controlnet.batch import ControlBatch
from modules.sumi.services.images.saving import SaveSettings
from modules.sumi.services.jobs.img2img_batch import write_result
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessing, fix_seed

BATCH_INDEX = "controlnet_batch_index"  # set on `p` by img2img's Batch tab: which picture goes with the image


def run_control_batch(
    p: StableDiffusionProcessing,
    batch: ControlBatch,
    process: Callable[[StableDiffusionProcessing], Processed],
    *,
    interrupted: Callable[[], bool],
    output_dir: Path | None,
    samples_format: str = "png",
    settings: SaveSettings | None = None,
) -> Processed:
    """Run `p` once per picture (or for the picture of `p.controlnet_batch_index`), collecting results."""
    index = getattr(p, BATCH_INDEX, None)
    if index is not None and index >= batch.count:
        warning = f"ControlNet batch: {batch.count} pictures for more input images; image {index + 1} skipped"
        return Processed(p, [], p.seed, "", infotexts=[], warnings=[warning])
    fix_seed(p)
    original, saving = p.controlnet_units, p.do_not_save_samples
    if output_dir is not None:
        p.do_not_save_samples = True
    images: list = []
    infotexts: list[str] = []
    warnings: list[str] = []
    try:
        for k in range(batch.count) if index is None else (index,):
            if interrupted():
                break
            p.controlnet_units = batch.units_for(original, k)
            done = process(p)
            first = done.index_of_first_image
            for n, (image, text) in enumerate(zip(done.images[first:], done.infotexts[first:], strict=False)):
                if output_dir is not None:
                    name = batch.names[k] + (f"-{n}" if n else "")
                    write_result(output_dir, name, image, text, samples_format, settings)
                images.append(image)
                infotexts.append(text)
            warnings.extend(w for w in done.warnings if w not in warnings)
    finally:
        p.controlnet_units, p.do_not_save_samples = original, saving
    return Processed(
        p, images, p.seed, infotexts[0] if infotexts else "", infotexts=infotexts, warnings=warnings
    )
