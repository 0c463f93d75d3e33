"""Live previews that never stall the sampler (A1111's `show_progress_type` and friends).

Every Nth step the sampler's callback hands a detached copy of the first image's latents to
`PreviewWorker`, one thread that always renders the newest request: a request that arrives while another
waits replaces it, so a slow preview method skips steps instead of slowing sampling down. The sampler
never waits for a preview, with one exception needed for safety:

- "Full" decodes with the job's own VAE. It runs on the worker too, but at the end of sampling (the
  POST_LOOP hook, before the job decodes) the batch's preview is closed: pending requests are dropped
  and an in-flight Full decode is waited for, so the preview never runs while the job decodes, switches
  the VAE to fp32 after NaN, or moves it. With offloading (`--medvram`/`--lowvram`: the offload hooks move
  modules between devices as they run), Full is replaced by Approx NN, as A1111 does, unless
  `live_preview_allow_lowvram_full` is on; then Full runs in the sampler's thread between steps (A1111's
  cost), because a VAE call from another thread would move modules under the running UNet.
- Approx cheap, Approx NN and TAESD use no module of the job, so closing only drops what is pending; a
  preview finishing after the close is discarded.

Interrupt and skip are untouched: the loop checks them between steps, and nothing here holds a step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import torch
from PIL import Image

from modules.sumi.engine import previews
from modules.sumi.engine.extensions import (
    DenoiserCall,
    DenoiserOutput,
    Extension,
    HookPoint,
    LoopContext,
    hook,
)
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.previews import content as preview_content
from modules.sumi.engine.sampling.loop_types import StepInfo
from modules.sumi.services.jobs.state import JobState

log = logging.getLogger(__name__)
WORKER_NAME = "sumi-preview"


class PreviewWorker:
    """One daemon thread that runs the newest submitted task; submitting never blocks."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: Callable[[], None] | None = None
        self._running: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, task: Callable[[], None]) -> None:
        """Run `task` soon on the worker; a task still waiting is dropped for it."""
        with self._cond:
            if self._closed:
                return
            self._pending = task
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=WORKER_NAME, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def discard(self, task_owner: object, wait: bool) -> None:
        """Drop a waiting task of `task_owner`; with `wait`, also wait for its running one to end."""
        with self._cond:
            if getattr(self._pending, "owner", None) is task_owner:
                self._pending = None
            if wait:
                self._cond.wait_for(lambda: getattr(self._running, "owner", None) is not task_owner)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no task runs or waits; False if `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._running is None and self._pending is None, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                task, self._pending = self._pending, None
                self._running = task
            try:
                if task is not None:
                    task()
            except Exception:  # a preview that fails is not shown; the job goes on
                log.debug("live preview failed", exc_info=True)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()


class _Task:
    """A render request; `owner` is the batch preview it belongs to."""

    def __init__(self, owner: BatchPreview, run: Callable[[], None]) -> None:
        self.owner = owner
        self._run = run

    def __call__(self) -> None:
        self._run()


class BatchPreview(Extension):
    """The live previews of one engine batch: the step callback's half (`on_step`), the model-call hooks
    that estimate what opt `live_preview_content` asks for, and a POST_LOOP hook that closes it before
    the job decodes."""

    def __init__(
        self,
        worker: PreviewWorker,
        state: JobState,
        model: SDModel,
        method: str,
        networks: previews.PreviewNetworks | None,
        *,
        content: str = preview_content.COMBINED,
        synchronous: bool = False,
    ) -> None:
        super().__init__()
        self.content = content
        self._estimate: torch.Tensor | None = None  # the last call's x0 estimate for `content`
        self.worker = worker
        self.state = state
        self.model = model
        self.method = method
        self.networks = networks
        self.synchronous = synchronous
        self._lock = threading.Lock()
        self._open = True

    @hook(HookPoint.PRE_MODEL_CALL, order=1000)
    def keep_uncond(self, call: DenoiserCall) -> None:
        if preview_content.wants_uncond(self.content, call):
            call.keep_uncond = True

    @hook(HookPoint.POST_CFG, order=-1000)  # A1111 takes it before the after-cfg callbacks
    def estimate(self, out: DenoiserOutput) -> None:
        if self.content != preview_content.COMBINED:
            self._estimate = preview_content.x0_estimate(
                self.content, out.call, out.output, self.model.prediction_type
            )

    def on_step(self, info: StepInfo) -> None:
        latents = info.denoised if info.denoised is not None else info.latents
        if self._estimate is not None:
            latents, self._estimate = self._estimate, None
        first = latents[:1].detach().clone()  # the sampler may reuse its tensors in place
        if self.synchronous:
            try:
                self._render(first)
            except Exception:  # a preview that fails is not shown; the job goes on
                log.debug("live preview failed", exc_info=True)
        else:
            self.worker.submit(_Task(self, lambda: self._render(first)))

    @hook(HookPoint.POST_LOOP, order=-1000)  # before any hook that may change the final latents
    def close(self, context: LoopContext | None = None) -> None:
        with self._lock:
            self._open = False
        self.worker.discard(self, wait=self.method == previews.FULL)

    def _render(self, latents: torch.Tensor) -> None:
        if not self._open:
            return
        pixels = previews.preview_pixels(self.method, self.model, latents, self.networks)
        if pixels is None:
            return
        image = previews.to_image(pixels)
        with self._lock:
            if self._open:
                self.state.set_preview(image)


def interrupt_decoder(
    method: str, networks: previews.PreviewNetworks, size: tuple[int, int]
) -> Callable[[SDModel, torch.Tensor], list[Image.Image]]:
    """A1111's `live_preview_fast_interrupt`: an interrupted batch's images by the preview method
    instead of the VAE, resized to the job's `size` (width, height) so saving and grids see the size
    they asked for."""

    def decode(model: SDModel, latents: torch.Tensor) -> list[Image.Image]:
        images = []
        for index in range(latents.shape[0]):
            pixels = previews.preview_pixels(method, model, latents[index : index + 1], networks)
            image = previews.to_image(pixels) if pixels is not None else Image.new("RGB", size)
            images.append(image if image.size == size else image.resize(size, Image.Resampling.LANCZOS))
        return images

    return decode
