"""The Extras job (A1111's `modules.postprocessing.run_postprocessing`): one image, uploaded images or
a folder's images through the Extras scripts, on the one job worker, saved to opt
`outdir_extras_samples` (or the batch's output folder) with their infotext.

Folders a batch reads or writes must be inside the data folder (or a folder allowed with
--gradio-allowed-path), as every path Sumi is given, and are refused with --hide-ui-dir-config (A1111).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.saving import SaveSettings, read_info_from_image
from modules.sumi.services.jobs.infotext import quote
from modules.sumi.services.jobs.queue import Job, JobQueue
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.postprocessing.saving import save_extras_image
from modules.sumi.services.scripts.postprocessing_base import PostprocessedImage
from modules.sumi.services.scripts.postprocessing_runner import ScriptPostprocessingRunner
from modules.sumi.services.settings import limits

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif")
MAX_OUTPUT_PIXELS = 64 * 1024 * 1024  # what a decoded request image may hold: 8192x8192
SINGLE, BATCH, DIRECTORY = 0, 1, 2


@dataclass
class BatchImage:
    """An uploaded image of a batch, with the file name it came with (for opt use_original_name_batch)."""

    image: Image.Image
    name: str = ""


@dataclass
class ExtrasRequest:
    """What the Extras tab or the API asks for (A1111's run_postprocessing arguments)."""

    mode: int = SINGLE  # 0 single image, 1 batch of uploads, 2 batch from a folder
    image: Image.Image | None = None
    images: Sequence[BatchImage | Image.Image | str | Path] = ()
    input_dir: str = ""
    output_dir: str = ""
    show_results: bool = True
    args: Sequence[Any] = ()  # the scripts' flat argument list (ScriptPostprocessingRunner)
    order: Sequence[str] | None = None  # run order by script name (the API's upscale_first)
    save: bool = True  # A1111's API does not save (save_output=False)


@dataclass
class ExtrasResult:
    images: list[Image.Image] = field(default_factory=list)
    infotext: str = ""  # the last image's operations, A1111's html_info source
    saved: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    changed: bool = False  # some operation replaced a picture, added one, a caption or infotext

    @property
    def html_info(self) -> str:
        """A1111's `plaintext_to_html(infotext)`, then Sumi's warnings."""
        body = "<br>\n".join(html.escape(line) for line in self.infotext.split("\n"))
        text = f'<div class="infotext"><p>{body}</p></div>'
        return text + "".join(f'<p class="sumi-warning">{html.escape(w)}</p>' for w in self.warnings)


class ExtrasService:
    """Runs Extras jobs; the UI and the API submit here."""

    def __init__(
        self,
        runner: ScriptPostprocessingRunner,
        queue: JobQueue,
        state: JobState,
        options: Any,
        paths: Any,
        hide_dirs: Callable[[], bool] = lambda: False,
    ) -> None:
        self.runner = runner
        self.queue = queue
        self.state = state
        self.options = options
        self.paths = paths
        self.hide_dirs = hide_dirs

    # -- entry points --------------------------------------------------------------------------------
    def submit(self, request: ExtrasRequest, job_id: str | None = None) -> Job:
        """Check `request` now (InvalidRequestError before anything is queued), then queue it."""
        self.validate(request)
        return self.queue.submit("extras", lambda: self.run_job(request), job_id)

    def run(self, request: ExtrasRequest, job_id: str | None = None) -> ExtrasResult:
        """Submit and wait (inline when called from inside a job)."""
        if self.queue.on_worker():
            self.validate(request)
            return self.run_job(request)
        return self.submit(request, job_id).future.result()

    def validate(self, request: ExtrasRequest) -> None:
        if request.mode not in (SINGLE, BATCH, DIRECTORY):
            raise InvalidRequestError(f"unknown Extras mode {request.mode!r}; use 0, 1 or 2")
        if request.mode == SINGLE and request.image is None:
            raise InvalidRequestError("image not selected: upload an image first")
        if request.mode == BATCH and not request.images:
            raise InvalidRequestError("no images: add images to Batch Process first")
        if request.mode == DIRECTORY:
            if self.hide_dirs():
                raise InvalidRequestError("Batch from Directory is turned off (--hide-ui-dir-config)")
            if not request.input_dir.strip():
                raise InvalidRequestError("input directory not selected")
            folder = self._confined(request.input_dir, "input")
            if not folder.is_dir():
                raise InvalidRequestError(f"the input directory {request.input_dir!r} does not exist")
            if request.output_dir.strip():
                self._confined(request.output_dir, "output")

    def _confined(self, folder: str, what: str) -> Path:
        try:
            return self.paths.confine(folder.strip())
        except ValueError as exc:
            raise InvalidRequestError(f"Extras {what} directory: {exc}") from exc

    # -- the job ------------------------------------------------------------------------------------
    def run_job(self, request: ExtrasRequest) -> ExtrasResult:
        """The body of an Extras job (on the worker)."""
        with self.options.job_view():
            inputs = self._inputs(request)
            self.state.begin(job="extras", job_count=len(inputs))
            outdir = self._outdir(request)
            result = ExtrasResult()
            for source, name in inputs:
                self.state.nextjob()
                self.state.textinfo = name or ""
                if self.state.interrupted:
                    break
                image = self._open(source, result)
                if image is None:
                    continue
                self._one(request, image, name, outdir, result)
            if not result.changed and result.images:
                result.warnings.append(
                    "No operation changed the image: pick an Upscaler 1 other than None, or enable an operation."
                )
            return result

    def _inputs(self, request: ExtrasRequest) -> list[tuple[Any, str | None]]:
        if request.mode == SINGLE:
            return [(request.image, None)]
        if request.mode == BATCH:
            return [_batch_item(item) for item in request.images]
        folder = self._confined(request.input_dir, "input")
        files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        return [(f, str(f)) for f in files]

    def _outdir(self, request: ExtrasRequest) -> Path:
        if request.mode == DIRECTORY and request.output_dir.strip():
            return self._confined(request.output_dir, "output")
        o = self.options
        return self.paths.resolve(o.outdir_samples or o.outdir_extras_samples)

    def _open(self, source: Any, result: ExtrasResult) -> Image.Image | None:
        if isinstance(source, Image.Image):
            return source
        try:
            image = Image.open(source)
            image.load()
            return image
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            result.warnings.append(f"Skipped {Path(str(source)).name}: not a readable image ({exc})")
            return None

    def _one(
        self, request: ExtrasRequest, image: Image.Image, name: str | None, outdir: Path, result: ExtrasResult
    ) -> None:
        parameters, existing = read_info_from_image(image)
        existing_info: dict[str, object] = {k: v for k, v in existing.items() if isinstance(k, str)}
        if parameters:
            existing_info["parameters"] = parameters
        pp = PostprocessedImage(ImageOps.exif_transpose(image).convert("RGB"))
        self.state.assign_current_image(pp.image)  # the live preview (RGB: it is sent as JPEG)
        original = pp.image
        self.runner.run(pp, request.args, request.order)
        result.changed |= bool(pp.image is not original or pp.extra_images or pp.caption or pp.info)
        if self.state.skipped:
            self.state.skipped = False
            return
        used: dict[str, int] = {}
        for out in [pp, *pp.extra_images]:
            self._check_size(out.image)
            suffix = out.get_suffix(used)
            infotext = ", ".join(
                k if k == v else f"{k}: {quote(v)}" for k, v in out.info.items() if v is not None
            )
            result.infotext = infotext
            if self.options.enable_pnginfo:
                out.image.info = {**existing_info, "postprocessing": infotext}
            if request.save:
                self._save(out, name, outdir, infotext, existing_info, suffix, result)
            if request.mode != DIRECTORY or request.show_results:
                result.images.append(out.image)

    @staticmethod
    def _check_size(image: Image.Image) -> None:
        if image.width * image.height > MAX_OUTPUT_PIXELS or max(image.size) > limits.IMAGE_SIDE_CEILING:
            raise InvalidRequestError(
                f"the result would be {image.width}x{image.height}; Extras results may hold at most "
                f"{MAX_OUTPUT_PIXELS // (1024 * 1024)} megapixels"
            )

    def _save(
        self,
        pp: PostprocessedImage,
        name: str | None,
        outdir: Path,
        infotext: str,
        existing_info: dict[str, object],
        suffix: str,
        result: ExtrasResult,
    ) -> None:
        o = self.options
        forced = Path(name).stem + suffix if o.use_original_name_batch and name else None
        try:
            path = save_extras_image(
                pp.image,
                outdir,
                infotext=infotext,
                existing_info=existing_info,
                extension=str(o.samples_format or "png"),
                pnginfo_enabled=bool(o.enable_pnginfo),
                forced_basename=forced,
                suffix=suffix,
                add_number=bool(o.save_images_add_number),
                settings=SaveSettings.from_options(o),
            )
        except (OSError, ValueError) as exc:  # the image is still shown
            result.warnings.append(
                f"Could not save the image to {outdir}: {exc}; the image is still returned"
            )
            return
        result.saved.append(path)
        if pp.caption:
            _write_caption(
                path.with_suffix(".txt"), pp.caption, str(o.postprocessing_existing_caption_action)
            )


def _batch_item(item: Any) -> tuple[Any, str | None]:
    if isinstance(item, BatchImage):
        return item.image, item.name or None
    if isinstance(item, Image.Image):
        return item, None
    return str(item), str(item)


def _write_caption(path: Path, caption: str, action: str) -> None:
    """A1111's opt postprocessing_existing_caption_action: Ignore, Keep, Prepend or Append."""
    existing = path.read_text(encoding="utf8").strip() if path.is_file() else ""
    if action == "Prepend" and existing:
        caption = f"{existing} {caption}"
    elif action == "Append" and existing:
        caption = f"{caption} {existing}"
    elif action == "Keep" and existing:
        caption = existing
    caption = caption.strip()
    if caption:
        path.write_text(caption, encoding="utf8")
