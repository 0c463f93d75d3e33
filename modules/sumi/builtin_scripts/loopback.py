"""Loopback (A1111's built-in img2img script): feed each result back in as the next init image.

Each of the `Loops` img2img jobs starts from the previous one's picture, with the next seed, and a
denoising strength that moves from the job's own to `Final denoising strength` along the chosen curve
(Linear, Aggressive: fast at first, Lazy: slow at first). With batch count N the loops run N times from
the original picture. The pictures come back with a one-row grid of them in front.

"Append interrogated prompt at each iteration" (CLIP: the BLIP caption, DeepBooru: the tags) makes
each loop's prompt the job's prompt followed by a caption of the picture that loop starts from, as
A1111; the captioning model must be in place (a missing one is refused before the first loop).
"""

from __future__ import annotations

import math
from typing import Any

import modules.scripts as scripts
from modules import shared
from modules.processing import setup_color_correction
from modules.sumi.builtin_scripts.support.img2img import init_image, number, save_grid, slider, whole
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.saving import image_grid
from modules.sumi.services.jobs.processing import Processed
from modules.sumi.services.jobs.script_jobs import Collected, fix_seed, generated, job_copy, validate_jobs

TITLE = "Loopback"
CURVES = ("Aggressive", "Linear", "Lazy")
MAX_LOOPS = 1000
ORIGINAL = 1  # A1111's "Masked content: original", used from the second loop on
INTERROGATIONS = {"none": None, "clip": "clip", "deepbooru": "deepdanbooru"}  # choice -> interrogator
APPEND_CHOICES = ("None", "CLIP", "DeepBooru")


def curve_name(value: Any) -> str:
    found = {c.lower(): c for c in CURVES}.get(str(value).strip().lower())
    if found is None:
        raise InvalidRequestError(f"{TITLE}: the denoising strength curve must be one of {', '.join(CURVES)}")
    return found


def strengths(initial: float, final: float, loops: int, curve: str = "Linear") -> list[float]:
    """The denoising strength of each loop: the first is the job's own, the last is `final`."""
    if loops <= 1:
        return [initial] * loops

    def shape(progress: float) -> float:
        if curve == "Aggressive":
            return math.sin(progress * math.pi / 2)
        if curve == "Lazy":
            return 1 - math.cos(progress * math.pi / 2)
        return progress

    return [initial + (final - initial) * shape(i / (loops - 1)) for i in range(loops)]


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr

        loops = slider(self, "loops", "Loops", (1, 32, 1), 4)
        final = slider(self, "final_denoising_strength", "Final denoising strength", (0, 1, 0.01), 0.5)
        curve = gr.Dropdown(label="Denoising strength curve", choices=list(CURVES), value="Linear")
        append = gr.Dropdown(
            label="Append interrogated prompt at each iteration", choices=list(APPEND_CHOICES), value="None"
        )
        return [loops, final, curve, append]

    def run(
        self,
        p: Any,
        loops: Any = 4,
        final_denoising_strength: Any = 0.5,
        denoising_curve: Any = "Linear",
        append_interrogation: Any = "None",
    ) -> Processed:
        count = whole(loops, "Loops", TITLE, 1, MAX_LOOPS)
        final = number(final_denoising_strength, "Final denoising strength", TITLE, 0.0, 1.0)
        curve = curve_name(denoising_curve)
        original = init_image(p, TITLE)
        app = shared.app()
        describe = _describer(app, append_interrogation)
        fix_seed(p)
        p.extra_generation_params.update({"Final denoising strength": final, "Denoising curve": curve})
        plan = strengths(
            float(p.denoising_strength if p.denoising_strength is not None else 0.75), final, count, curve
        )
        base = job_copy(p, n_iter=1, batch_size=1, do_not_save_grid=True)
        if getattr(app.options, "img2img_color_correction", False):
            base.color_corrections = [setup_color_correction(original)]
        validate_jobs(app, [job_copy(base, init_images=[original], denoising_strength=plan[0])])
        return self._loops(app, p, base, original, plan, describe)

    def _loops(
        self, app: Any, p: Any, base: Any, original: Any, plan: list[float], describe: Any
    ) -> Processed:
        batch_count = max(1, int(p.n_iter))
        seed = int(p.seed)
        history = Collected()
        for _ in range(batch_count):
            image, last = original, None
            for i, strength in enumerate(plan):
                fill = base.inpainting_fill if i == 0 else ORIGINAL
                job = job_copy(
                    base, init_images=[image], denoising_strength=strength, seed=seed, inpainting_fill=fill
                )
                if describe is not None:
                    job.prompt = ", ".join(t for t in (p.prompt, describe(image.convert("RGB"))) if t)
                processed = app.runner.process(job)
                if app.state.interrupted:
                    break
                seed = int(processed.seed) + 1
                if app.state.skipped:
                    break
                images, infotexts = generated(processed)
                if not images:
                    break
                image, last = images[0], (processed, images[0], infotexts[0])
                if batch_count == 1:
                    history.add(processed, images[:1], infotexts[:1])
            if batch_count > 1 and last is not None and not app.state.skipped and not app.state.interrupted:
                history.add(last[0], [last[1]], [last[2]])
            if app.state.interrupted:
                break
        return self._result(app, p, history)

    def _result(self, app: Any, p: Any, history: Collected) -> Processed:
        if len(history.images) < 2:
            return history.processed(p)
        grid = image_grid(history.images, rows=1)
        info = history.infotexts[0]
        save_grid(app.options, p, grid, history.seeds[0], info, history.warnings)
        grids = [(grid, info)] if app.options.return_grid else []
        return history.processed(p, grids)


def _describer(app: Any, choice: Any) -> Any:
    """The captioner "CLIP" or "DeepBooru" asks for (its model looked for now), or None."""
    key = str(choice or "None").strip().lower()
    if key not in INTERROGATIONS:
        raise InvalidRequestError(
            f"{TITLE}: append interrogated prompt must be one of {', '.join(APPEND_CHOICES)}, not {choice!r}"
        )
    interrogator = INTERROGATIONS[key]
    return None if interrogator is None else app.captioning.describer(interrogator)
