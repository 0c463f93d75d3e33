"""The App's callback registry behind A1111's `modules.script_callbacks`.

Callbacks are grouped by category (`app_started`, `cfg_denoiser`, ...) and remember which script file
registered them, so one extension's callbacks can be removed together. A callback that raises is
logged with its traceback, recorded in `errors` (shown in the UI), and skipped; the others still run
and the job goes on. That is A1111's behaviour, minus the silent part.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

CATEGORIES = (
    "app_started",
    "before_reload",
    "model_loaded",
    "ui_tabs",
    "ui_train_tabs",
    "ui_settings",
    "before_image_saved",
    "image_saved",
    "extra_noise",
    "cfg_denoiser",
    "cfg_denoised",
    "cfg_after_cfg",
    "before_component",
    "after_component",
    "image_grid",
    "infotext_pasted",
    "script_unloaded",
    "before_ui",
    "list_optimizers",
    "list_unets",
    "before_token_counter",
)
MAX_ERRORS = 50


@dataclass
class UiTrainTabParams:
    """A1111's `on_ui_train_tabs` argument: txt2img's preview controls (prompt, negative prompt, steps,
    sampler, CFG, seed, width, height) for an extension's own training tab."""

    txt2img_preview_params: Any


@dataclass
class ExtraNoiseParams:
    """A1111's `script_callbacks.ExtraNoiseParams`: `on_extra_noise` callbacks get img2img's noise, the
    init latents and the noised init, and may replace `noise` (the extra noise added)."""

    noise: Any
    x: Any
    xi: Any


@dataclass
class ImageGridLoopParams:
    """A1111's `script_callbacks.ImageGridLoopParams`: `on_image_grid` callbacks may change a grid's
    pictures, columns and rows before it is drawn."""

    imgs: list
    cols: int
    rows: int


GridLayout = Callable[[list, int, int], tuple[list, int, int]]


def grid_layout(registry: CallbackRegistry | None) -> GridLayout | None:
    """The `image_grid` callbacks of `registry` as a layout step for `images.saving.image_grid`."""
    if registry is None or not registry.has("image_grid"):
        return None

    def layout(imgs: list, cols: int, rows: int) -> tuple[list, int, int]:
        params = ImageGridLoopParams(imgs, cols, rows)
        registry.call("image_grid", params)
        return list(params.imgs), params.cols, params.rows

    return layout


@dataclass
class ImageSaveParams:
    """A1111's `script_callbacks.ImageSaveParams` (before/after an image is written)."""

    image: Any
    p: Any
    filename: str
    pnginfo: dict


@dataclass
class CFGDenoiserParams:
    """A1111's parameters of `on_cfg_denoiser`, in A1111's row layout (cond rows per AND part of each image,
    then the uncond rows) and k-diffusion values (`x` = x0 + sigma * noise); callbacks may change `x`,
    `text_cond` and `text_uncond` (services/jobs/cfg_bridge.py)."""

    x: Any
    image_cond: Any
    sigma: Any
    sampling_step: int
    total_sampling_steps: int
    text_cond: Any
    text_uncond: Any
    denoiser: Any = None


@dataclass
class CFGDenoisedParams:
    x: Any
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any


@dataclass
class AfterCFGCallbackParams:
    x: Any
    sampling_step: int
    total_sampling_steps: int


@dataclass
class CallbackEntry:
    callback: Callable[..., Any]
    script: str  # the script file being imported when it was registered ("" for Sumi's own, or at run time)
    name: str
    filename: str = ""  # the file whose code registered it (A1111's `ScriptCallback.script`)


@dataclass
class CallbackError:
    category: str
    script: str
    name: str
    message: str
    traceback: str


@dataclass
class CallbackRegistry:
    entries: dict[str, list[CallbackEntry]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    errors: list[CallbackError] = field(default_factory=list)
    current_script: str = ""  # set while a script file is being imported
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, category: str, callback: Callable[..., Any], name: str | None = None, filename: str = ""
    ) -> None:
        if category not in self.entries:
            raise ValueError(f"unknown callback category {category!r}")
        if not callable(callback):
            raise TypeError(f"{category} callback must be callable, got {type(callback).__name__}")
        label = (
            name or f"{self.current_script or 'sumi'}/{category}/{getattr(callback, '__name__', 'callback')}"
        )
        with self._lock:
            self.entries[category].append(
                CallbackEntry(callback, self.current_script, label, filename or self.current_script)
            )

    def has(self, category: str) -> bool:
        return bool(self.entries.get(category))

    def call(self, category: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Call every callback of `category`; returns their results (None for one that failed)."""
        return self.call_timed(category, None, *args, **kwargs)

    def call_timed(
        self, category: str, done: Callable[[str], None] | None, *args: Any, **kwargs: Any
    ) -> list[Any]:
        """`call`, with `done(script)` after each callback (the start-up profile times them)."""
        results = []
        for entry in list(self.entries[category]):
            try:
                results.append(entry.callback(*args, **kwargs))
            except Exception as exc:  # an extension's bug must not stop the app or the job
                self.report(category, entry, exc)
                results.append(None)
            if done is not None:
                done(entry.script)
        return results

    def report(self, category: str, entry: CallbackEntry, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(exc))
        log.error("Error in %s callback %s:\n%s", category, entry.name, text)
        with self._lock:
            self.errors.append(CallbackError(category, entry.script, entry.name, str(exc), text))
            del self.errors[:-MAX_ERRORS]

    def remove_script(self, script: str) -> None:
        with self._lock:
            for category, entries in self.entries.items():
                self.entries[category] = [e for e in entries if e.script != script]

    def remove_registered_by(self, filename: str) -> None:
        """Remove the callbacks whose registering code is in `filename` (A1111's
        `remove_current_script_callbacks`, which a script calls from `process` as often as at import)."""
        with self._lock:
            for category, entries in self.entries.items():
                self.entries[category] = [e for e in entries if e.filename != filename]

    def remove_function(self, callback: Callable[..., Any]) -> None:
        with self._lock:
            for category, entries in self.entries.items():
                self.entries[category] = [e for e in entries if e.callback is not callback]

    def clear(self) -> None:
        with self._lock:
            for entries in self.entries.values():
                entries.clear()
