"""Test doubles and inputs for the Gradio handler tests (no browser, no model)."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from modules.sumi.frontends.gradio import txt2img as ui
from modules.sumi.services.jobs.generation import GenerationService
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessingTxt2Img
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.settings.options import Options


def values(**changes) -> list:
    """The Generate inputs before ControlNet's and the scripts', in order, as the browser sends them
    (sliders send floats)."""
    v = ui.Txt2ImgValues(prompt="a fox", steps=2.0, width=64.0, height=64.0, n_iter=1.0, batch_size=1.0)
    for key, value in changes.items():
        setattr(v, key, value)
    return [getattr(v, name) for name in ui.INPUT_NAMES]


def as_dict(out: tuple) -> dict:
    """One update of the Generate handler, by output name."""
    assert len(out) == len(ui.OUTPUTS)
    return dict(zip(ui.OUTPUTS, out, strict=True))


def processed(p: StableDiffusionProcessingTxt2Img, n: int = 1, grid: bool = False) -> Processed:
    """A result of `n` 8x8 images (and a grid first) with seeds 100, 101, ..."""
    images = [Image.new("RGB", (8, 8)) for _ in range(n + grid)]
    texts = [f"a fox\nSteps: 2, Seed: {100 + i}" for i in range(n)]
    if grid:
        texts.insert(0, texts[0])
    seeds = [100 + i for i in range(n)]
    return Processed(
        p,
        images,
        seeds[0],
        texts[0] if texts else "",
        all_seeds=seeds,
        all_subseeds=[7 + i for i in range(n)],
        index_of_first_image=int(grid),
        infotexts=texts,
    )


class FakeGeneration:
    """Validates like the real service; `process` records the job, runs in the worker like a real one
    and ends with `outcome`: an exception to raise, a Processed, a function of the job that makes one,
    or (None) `processed(p)`."""

    def __init__(self, state: JobState, outcome: BaseException | Processed | Callable | None = None) -> None:
        self.state = state
        self.outcome = outcome
        self.jobs: list[StableDiffusionProcessingTxt2Img] = []
        self._real = GenerationService(None, Options(), None, state)  # type: ignore[arg-type]
        self.options = self._real.options  # the runner opens each job's settings view on it

    def validate(self, p) -> None:
        self._real.validate(p)

    def process(self, p):
        self.jobs.append(p)
        self.state.begin("txt2img", p.n_iter)
        self.state.set_step(1, p.steps)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        if callable(self.outcome):
            return self.outcome(p)
        return self.outcome or processed(p)
