"""What the UI shows after a job: infotext HTML, error messages, and the per-session generation info.

The generation info is a small dict kept in a `gr.State` (A1111 keeps the same data as JSON in a
hidden textbox): the infotext of every gallery image and the seeds, so ♻️ can reuse the seed of the
selected image and selecting an image shows its infotext.
"""

from __future__ import annotations

import html
import logging
from concurrent.futures import CancelledError
from typing import Any

import torch

from modules.sumi.engine.errors import EngineError
from modules.sumi.services.jobs.processing import JobPerformance, Processed
from modules.sumi.services.scripts.runner import ExtensionScriptError
from modules.sumi.services.settings.secrets import redact_text
from modules.sumi.util.logs import report_exception, was_reported

log = logging.getLogger(__name__)

OOM_MESSAGE = (
    "Out of GPU memory: try a smaller size or batch size, or start Sumi with --medvram or --lowvram."
)
LEFT_QUEUE_MESSAGE = "Interrupted before it started: the job left the queue."


def error_message(exc: BaseException) -> str:
    """A message a user can act on; unexpected errors keep their type name and are logged in full."""
    if isinstance(exc, torch.OutOfMemoryError):
        return OOM_MESSAGE
    if isinstance(exc, CancelledError):  # Interrupt took it out of the queue before it started
        return LEFT_QUEUE_MESSAGE
    if isinstance(exc, (EngineError, ValueError, ExtensionScriptError)):  # the message says it all
        return redact_text(str(exc) or type(exc).__name__)
    if was_reported(exc):  # the job queue logged its traceback already: one line here
        log.error("Generation failed: %s: %s (traceback above)", type(exc).__name__, exc)
    else:
        report_exception(log, "Generation failed", exc)
    return redact_text(f"{type(exc).__name__}: {exc}")


def error_html(message: str) -> str:
    return f'<div class="sumi-error"><b>Error:</b> {html.escape(message)}</div>'


def generation_info(processed: Processed) -> dict[str, Any]:
    """The parts of a finished job the gallery needs later."""
    return {
        "infotexts": list(processed.infotexts),
        "info": processed.info,  # shown when no image has an infotext (A1111 shows `processed.info`)
        "all_seeds": list(processed.all_seeds),
        "all_subseeds": list(processed.all_subseeds),
        "index_of_first_image": processed.index_of_first_image,
        "warnings": list(processed.warnings),
        "selected": 0,
        "params": job_params(processed),
        "performance": performance_html(processed.performance),
    }


def job_params(processed: Processed) -> dict[str, Any]:
    """What 💾 writes to log.csv and file names (A1111 keeps these in its generation info JSON)."""
    p = processed.p
    names = ("width", "height", "sampler_name", "scheduler", "cfg_scale", "steps", "sd_model_name",
             "sd_model_hash", "all_prompts", "styles", "job_timestamp", "clip_skip", "batch_size")  # fmt: skip
    params = {name: getattr(p, name, None) for name in names}
    params["denoising_strength"] = getattr(p, "denoising_strength", None)
    return params


def selected_index(info: dict[str, Any] | None) -> int:
    return int((info or {}).get("selected") or 0)


def infotext_html(info: dict[str, Any] | None, index: int | None = None) -> str:
    """The infotext of gallery image `index` (default: the selected one), as A1111's html_info."""
    if not info or not (info.get("infotexts") or info.get("info")):
        return ""
    texts = info.get("infotexts") or [info["info"]]
    index = selected_index(info) if index is None else index
    text = texts[index] if 0 <= index < len(texts) else texts[0]
    body = "<br>".join(html.escape(line) for line in text.split("\n"))
    warnings = "".join(f'<p class="sumi-warning">{html.escape(w)}</p>' for w in info.get("warnings", []))
    return f'<div class="infotext">{body}</div>{warnings}{info.get("performance") or ""}'


def performance_html(performance: JobPerformance | None) -> str:
    """A1111's line under the infotext: "Time taken", CUDA's peak active/reserved and the card's use
    (when the job ran on CUDA), and Sumi's peak RAM of the process."""
    if performance is None:
        return ""
    minutes, seconds = divmod(performance.seconds, 60)
    taken = f"{int(minutes)}m {seconds:.2f}s" if minutes >= 1 else f"{seconds:.2f}s"
    peaks = performance.peaks
    parts = [f"<p class='time'>Time taken: <wbr>{taken}</p>"]
    if peaks.cuda_total:
        active, reserved = _mib(peaks.cuda_active), _mib(peaks.cuda_reserved)
        used, total = _mib(peaks.cuda_system_used), _mib(peaks.cuda_total)
        share = round(used / max(total, 1) * 100, 2)
        parts.append(
            f"<p class='vram'>Torch active/reserved: {active}/{reserved} MiB, <wbr>"
            f"Sys VRAM: {used}/{total} MiB ({share}%)</p>"
        )
    parts.append(f"<p class='ram'>RAM peak: {_mib(peaks.rss)} MiB</p>")
    return f"<div class='performance'>{''.join(parts)}</div>"


def _mib(value: int | None) -> int:
    return -(int(value or 0) // -(1024 * 1024))  # rounded up, as A1111


def select_image(info: dict[str, Any] | None, index: int) -> dict[str, Any] | None:
    """A copy of `info` that remembers which gallery image is selected."""
    return None if info is None else {**info, "selected": index}


def seed_of_selected(info: dict[str, Any] | None, key: str = "all_seeds") -> int | None:
    """The seed (or, with key="all_subseeds", the variation seed) of the selected gallery image.

    The grid, when shown first, has no seed of its own and answers with the first image's seed.
    """
    if info is None:
        return None
    seeds = info.get(key) or []
    if not seeds:
        return None
    index = selected_index(info) - int(info.get("index_of_first_image") or 0)
    return int(seeds[index] if 0 <= index < len(seeds) else seeds[0])
