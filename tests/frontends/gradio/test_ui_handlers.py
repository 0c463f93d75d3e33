"""The web UI's handler functions without a browser: building jobs, progress, errors, seeds, layout."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError
from modules.sumi.frontends.gradio import extras as extras_ui
from modules.sumi.frontends.gradio import hires_ui, progress, quicksettings, results
from modules.sumi.frontends.gradio import txt2img as ui
from modules.sumi.services.jobs.generation import GenerationService
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessingTxt2Img
from modules.sumi.services.jobs.queue import JobQueue
from modules.sumi.services.jobs.runner import JobRunner
from modules.sumi.services.jobs.state import JobState, ProgressSnapshot
from modules.sumi.services.settings.options import Options
from modules.sumi.util.logs import report_exception
from tests.frontends.gradio.fakes import FakeGeneration, as_dict, processed, values


# -- helpers -----------------------------------------------------------------------------------------
def snapshot(**changes) -> ProgressSnapshot:
    base = dict(
        active=True,
        progress=0.0,
        eta_relative=0.0,
        job="txt2img",
        job_count=1,
        job_no=0,
        sampling_step=0,
        sampling_steps=0,
        interrupted=False,
        skipped=False,
        textinfo="",
        preview=None,
        preview_id=0,
        job_timestamp="",
    )
    return ProgressSnapshot(**{**base, **changes})


@pytest.fixture
def fake_app():
    state = JobState()
    queue = JobQueue(state)
    generation = FakeGeneration(state)
    app = SimpleNamespace(
        state=state, queue=queue, generation=generation, runner=JobRunner(queue, generation)
    )
    yield app
    queue.stop()


def run_generate(app, **changes) -> list[dict]:
    return [as_dict(out) for out in ui.generate(app, *values(**changes))]


# -- building the job ----------------------------------------------------------------------------------
def test_build_processing_takes_ui_values_and_saves_images():
    p = ui.build_processing(ui.Txt2ImgValues(*values(cfg_scale=6.5, seed=42.0, negative_prompt="blurry")))
    assert isinstance(p, StableDiffusionProcessingTxt2Img)
    assert (p.prompt, p.negative_prompt, p.steps, p.width, p.height) == ("a fox", "blurry", 2, 64, 64)
    assert all(isinstance(x, int) for x in (p.steps, p.width, p.height, p.n_iter, p.batch_size, p.seed))
    assert (p.sampler_name, p.scheduler, p.cfg_scale, p.seed) == ("DPM++ 2M", "Automatic", 6.5, 42)
    assert p.do_not_save_samples is False and p.do_not_save_grid is False
    assert p.seed_enable_extras is False


def test_build_processing_variation_seed_only_with_extra():
    v = ui.Txt2ImgValues(
        *values(
            seed_enable_extras=True,
            subseed=5.0,
            subseed_strength=0.3,
            seed_resize_from_w=256.0,
            seed_resize_from_h=0.0,
        )
    )
    p = ui.build_processing(v)
    assert (p.seed_enable_extras, p.subseed, p.subseed_strength) == (True, 5, 0.3)
    assert (p.seed_resize_from_w, p.seed_resize_from_h) == (256, 0)


def test_ui_defaults_follow_a1111():
    v = ui.Txt2ImgValues()
    assert (v.sampler_name, v.scheduler, v.steps, v.width, v.height, v.cfg_scale, v.seed) == (
        "DPM++ 2M",
        "Automatic",
        20,
        512,
        512,
        7.0,
        -1,
    )


@pytest.mark.parametrize("seed", [None, ""])
def test_empty_seed_means_random(seed):
    assert ui.build_processing(ui.Txt2ImgValues(*values(seed=seed))).seed == -1


def test_a_typed_seed_keeps_every_digit_and_a_word_is_refused():
    big = "18446744073709551557"  # above 2**53: a float would round it
    assert ui.build_processing(ui.Txt2ImgValues(*values(seed=f" {big} "))).seed == int(big)
    assert ui.build_processing(ui.Txt2ImgValues(*values(seed="12.0"))).seed == 12
    with pytest.raises(ValueError, match="whole number"):
        ui.build_processing(ui.Txt2ImgValues(*values(seed="seven")))


def test_fractional_values_are_left_for_validation_to_reject():
    p = ui.build_processing(ui.Txt2ImgValues(*values(width=100.5)))
    with pytest.raises(InvalidRequestError, match="width"):
        GenerationService(None, Options(), None, JobState()).validate(p)  # type: ignore[arg-type]


def test_outputs_rejects_unknown_names():
    with pytest.raises(KeyError):
        ui.outputs(nonsense=1)


# -- Generate ----------------------------------------------------------------------------------------
def test_generate_bad_input_is_a_message_and_nothing_is_queued(fake_app):
    updates = run_generate(fake_app, width=40.0)
    assert len(updates) == 1
    assert "width must be an integer from 64" in updates[0]["error"]
    assert fake_app.generation.jobs == []


def test_generate_streams_then_shows_images_and_infotext(fake_app):
    updates = run_generate(fake_app)
    last = updates[-1]
    assert last["gallery"]["visible"] is True and len(last["gallery"]["value"]) == 1
    assert "Steps: 2" in last["info_html"] and last["error"] == "" and last["progress"] == ""
    assert last["info_state"]["all_seeds"] == [100]
    assert fake_app.generation.jobs[0].do_not_save_samples is False


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (ModelLoadError("Checkpoint 'x' was not found"), "Checkpoint &#x27;x&#x27; was not found"),
        (ValueError("bad prompt"), "bad prompt"),
        (torch.OutOfMemoryError("CUDA out of memory"), "Out of GPU memory"),
        (RuntimeError("boom <b>"), "RuntimeError: boom &lt;b&gt;"),
    ],
)
def test_generate_job_errors_become_messages(fake_app, error, shown):
    fake_app.generation.outcome = error
    last = run_generate(fake_app)[-1]
    assert shown in last["error"] and "sumi-error" in last["error"]
    assert last["gallery"]["visible"] is True and "value" not in last["gallery"]
    fake_app.generation.outcome = None
    assert "Steps: 2" in run_generate(fake_app)[-1]["info_html"]  # the worker keeps serving


def test_generate_interrupted_with_no_images_says_so(fake_app):
    p = StableDiffusionProcessingTxt2Img()
    fake_app.generation.outcome = Processed(p, [], 1, infotexts=[])
    last = run_generate(fake_app)[-1]
    assert "No image was finished" in last["error"] and last["gallery"]["value"] == []


def test_a_saving_failure_is_shown_and_the_gallery_keeps_the_images():
    result = processed(StableDiffusionProcessingTxt2Img(), n=2)
    result.warnings = [
        "Could not save the image to /out: OSError: No space left on device; the image is still returned"
    ]
    shown = as_dict(ui.finished(result))
    assert "No space left on device" in shown["error"] and len(shown["gallery"]["value"]) == 2


def test_a_job_still_waiting_when_its_page_closes_runs_and_a_reopened_page_restores_it(fake_app):
    release = threading.Event()
    fake_app.queue.submit("blocker", release.wait)
    gen = ui.generate(fake_app, *values())
    task_id = as_dict(next(gen))["task_id"]  # submitted; waiting behind the blocker
    waiting = as_dict(next(gen))
    assert "Waiting in queue (1 ahead)" in waiting["progress"]
    gen.close()  # the page went away (closed, reloaded): A1111 runs the job anyway
    restored = ui.restore_progress(fake_app, task_id)
    assert as_dict(next(restored))["task_id"] == task_id
    assert "Waiting in queue (1 ahead)" in as_dict(next(restored))["progress"]
    release.set()
    shown = [as_dict(out) for out in restored]
    assert len(fake_app.generation.jobs) == 1
    assert "Steps: 2" in shown[-1]["info_html"] and shown[-1]["task_id"] == ""


# -- progress ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (7.4, "7s"), (65, "1m 05s"), (3723, "1h 02m 03s")])
def test_format_eta(seconds, text):
    assert progress.format_eta(seconds) == text


def test_progress_html_shows_percent_step_eta_and_batch():
    html = progress.progress_html(
        snapshot(progress=0.25, eta_relative=12.2, sampling_step=5, sampling_steps=20, job_count=2, job_no=0)
    )
    assert "25% ETA: 12s" in html and "width:25.0%" in html
    assert "Step 5/20" in html and "Batch 1/2" in html


def test_progress_html_at_start_and_while_interrupting():
    html = progress.progress_html(snapshot(interrupted=True, textinfo="<x>"))
    assert "0%" in html and "ETA" not in html and "Interrupting" in html and "&lt;x&gt;" in html


def test_watch_job_yields_each_preview_once_and_ends_with_the_job():
    state = JobState()
    queue = JobQueue(state)
    seen_preview = threading.Event()
    preview = Image.new("RGB", (8, 8), "red")

    def job_body():
        state.begin("txt2img", 1)
        state.set_step(3, 10)
        state.set_preview(preview)
        assert seen_preview.wait(10)
        return "done"

    job = queue.submit("txt2img", job_body)
    previews = []
    try:
        for update in progress.watch_job(queue, state, job, poll_seconds=0.01):
            if update.preview is not None:
                previews.append(update.preview)
                assert "Step 3/10" in update.html
                seen_preview.set()
    finally:
        queue.stop()
    assert previews == [preview] and job.future.result() == "done"


# -- results and seeds ------------------------------------------------------------------------------
def test_infotext_html_escapes_and_follows_selection():
    info = results.generation_info(processed(StableDiffusionProcessingTxt2Img(), n=2, grid=True))
    assert "Seed: 100" in results.infotext_html(info)  # the grid shows the first image's text
    chosen = results.select_image(info, 2)
    assert "Seed: 101" in results.infotext_html(chosen)
    assert "<br>" in results.infotext_html(chosen)
    assert "&lt;lora" in results.infotext_html({"infotexts": ["<lora:x:1>"]})
    assert results.infotext_html(None) == ""


def test_reuse_seed_of_selected_image_with_grid():
    info = results.generation_info(processed(StableDiffusionProcessingTxt2Img(), n=2, grid=True))
    assert ui.reuse_seed(info) == 100  # grid selected: first image's seed
    assert ui.reuse_seed(results.select_image(info, 2)) == 101
    assert ui.reuse_seed(results.select_image(info, 2), key="all_subseeds") == 8
    assert ui.reuse_seed(None) == {"__type__": "update"}  # nothing generated yet: leave the seed alone


def test_select_image_handler_updates_infotext_and_state():
    info = results.generation_info(processed(StableDiffusionProcessingTxt2Img(), n=2))
    html, state = ui.select_image(info, SimpleNamespace(index=1))
    assert "Seed: 101" in html and state["selected"] == 1 and info["selected"] == 0


def test_error_message_logs_unexpected_errors(caplog):
    assert results.error_message(KeyError("x")) == "KeyError: 'x'"
    assert "Generation failed" in caplog.text


def test_an_error_the_job_queue_logged_gets_one_line_not_a_second_traceback(caplog):
    exc = RuntimeError("boom")
    report_exception(logging.getLogger("test"), "Job failed", exc)
    caplog.clear()
    assert results.error_message(exc) == "RuntimeError: boom"
    assert "Generation failed" in caplog.text and not [r for r in caplog.records if r.exc_info]


# -- quick settings -------------------------------------------------------------------------------
def info(name):
    return SimpleNamespace(name=name, title=f"{name} [0123456789]")


class FakeCheckpoints:
    def __init__(self, names):
        self.infos = [info(name) for name in names]

    def list(self):
        return list(self.infos)

    def match(self, name):
        return next((i for i in self.infos if name and name in i.title), None)

    def first(self):
        return self.infos[0] if self.infos else None


def quick_app(names=("a.safetensors", "b.safetensors"), selected=None, fail=None):
    app = SimpleNamespace(
        checkpoints=FakeCheckpoints(names),
        options=SimpleNamespace(sd_model_checkpoint=selected),
        notices=["Demo model: images are noise <sic>"],
        refreshed=0,
        settings=SimpleNamespace(),
        models=SimpleNamespace(),
    )

    def set_options(values):
        if fail:
            raise fail
        app.options.sd_model_checkpoint = values["sd_model_checkpoint"]

    def refresh():
        app.refreshed += 1
        app.checkpoints.infos.append(info("c.safetensors"))

    app.settings.set, app.models.refresh = set_options, refresh
    return app


def test_current_checkpoint_defaults_to_the_first():
    assert quicksettings.current_checkpoint_title(quick_app()) == "a.safetensors [0123456789]"
    assert quicksettings.current_checkpoint_title(quick_app(selected="b")) == "b.safetensors [0123456789]"
    assert quicksettings.current_checkpoint_title(quick_app(names=())) is None
    assert quicksettings.checkpoint_update(quick_app(names=()))["value"] is None


def test_select_checkpoint_sets_the_option():
    app = quick_app()
    update, notices = quicksettings.select_checkpoint(app, "b.safetensors")
    assert app.options.sd_model_checkpoint == "b.safetensors" and update["value"] == "b.safetensors"
    assert "images are noise &lt;sic&gt;" in notices and "sumi-error" not in notices


def test_select_checkpoint_failure_is_shown_and_the_list_stays_truthful():
    app = quick_app(fail=ModelLoadError("b.safetensors: missing keys"))
    update, notices = quicksettings.select_checkpoint(app, "b.safetensors")
    assert "b.safetensors: missing keys" in notices and update["value"] == "a.safetensors"


def test_refresh_rescans_and_lists_new_files():
    app = quick_app()
    update, _ = quicksettings.refresh_checkpoints(app)
    assert app.refreshed == 1
    assert update["choices"] == [(f"{n}.safetensors [0123456789]", f"{n}.safetensors") for n in "abc"]


# -- layout ------------------------------------------------------------------------------------------
A1111_IDS = {
    "setting_sd_model_checkpoint",
    "refresh_sd_model_checkpoint",
    "sumi_notices",
    "tab_txt2img",
    "txt2img_prompt",
    "txt2img_neg_prompt",
    "txt2img_generate",
    "txt2img_interrupt",
    "txt2img_skip",
    "txt2img_sampling",
    "txt2img_scheduler",
    "txt2img_steps",
    "txt2img_width",
    "txt2img_height",
    "txt2img_batch_count",
    "txt2img_batch_size",
    "txt2img_cfg_scale",
    "txt2img_seed",
    "txt2img_random_seed",
    "txt2img_reuse_seed",
    "txt2img_subseed_show",
    "txt2img_subseed",
    "txt2img_subseed_strength",
    "txt2img_gallery",
    "html_info_txt2img",
    "txt2img_error",
    "txt2img_progress",
    "txt2img_preview",
}


def test_build_ui_has_a1111_element_ids_and_defaults(tmp_path, make_app):
    from modules.sumi.frontends.gradio import build_ui

    app = make_app(tmp_path, start=False)
    config = build_ui(app).get_config_file()
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c["props"].get("elem_id")}
    assert not A1111_IDS - set(props), "missing element ids"
    assert props["txt2img_sampling"]["value"] == "DPM++ 2M"
    assert props["txt2img_scheduler"]["value"] == "Automatic"
    assert (
        props["txt2img_steps"]["minimum"],
        props["txt2img_steps"]["maximum"],
        props["txt2img_steps"]["value"],
    ) == (1, 150, 20)
    assert (props["txt2img_width"]["step"], props["txt2img_width"]["value"]) == (8, 512)
    assert (props["txt2img_cfg_scale"]["step"], props["txt2img_cfg_scale"]["value"]) == (0.5, 7.0)
    assert props["txt2img_seed"]["value"] == -1


def test_a_checkpoint_that_fails_to_load_does_not_stay_selected():
    app = quick_app()
    loads = []

    def set_options(values):  # like SettingsService.set: the option is saved, then loading fails
        app.options.sd_model_checkpoint = values["sd_model_checkpoint"]
        loads.append(values["sd_model_checkpoint"])
        if values["sd_model_checkpoint"] == "b.safetensors":
            raise ModelLoadError("b.safetensors: file is gone")

    app.settings.set = set_options
    update, notices = quicksettings.select_checkpoint(app, "b.safetensors")
    assert loads == ["b.safetensors", "a.safetensors [0123456789]"]
    assert app.options.sd_model_checkpoint == "a.safetensors [0123456789]"
    assert update["value"] == "a.safetensors" and "file is gone" in notices


# -- ↪️ restore progress -------------------------------------------------------------------------------
def test_generate_gives_the_page_its_job_s_task_id_first_and_clears_it_at_the_end(fake_app):
    shown = run_generate(fake_app)
    task_id = shown[0]["task_id"]
    assert task_id.startswith("task(") and len(task_id) > 12  # random: nobody guesses another's
    assert shown[-1]["task_id"] == ""


def interrupted_while_waiting(app, start) -> dict:
    """Start a page's job (`start()`: its handler's generator) behind another tab's running job and press
    that page's Interrupt while it waits; the page's last update. The other job runs on to its end."""
    release = threading.Event()
    blocker = app.queue.submit("another tab's batch", lambda: release.wait(10))
    gen = start()
    task_id = as_dict(next(gen))["task_id"]
    assert task_id and "Waiting in queue" in as_dict(next(gen))["progress"]
    ui.interrupt(app, task_id)
    last = [as_dict(out) for out in gen][-1]
    assert not app.state.interrupted and not blocker.future.done()
    release.set()
    assert blocker.future.result(10) is True
    return last


def start_upscale(app, tmp_path):
    """✨ Upscale of one 64x64 gallery image with the tab's values (Hires. fix defaults)."""
    app.paths = SimpleNamespace(outputs_dir=tmp_path)
    hires = [getattr(hires_ui.HiresValues(), name) for name in hires_ui.HIRES_FIELDS]
    info = {"selected": 0, "infotexts": ["a fox\nSteps: 2, Seed: 5"]}
    return ui.upscale(app, *values(), *hires, [Image.new("RGB", (64, 64))], info)


def test_interrupt_on_a_page_whose_job_waits_takes_out_that_job_and_leaves_the_running_one(fake_app):
    last = interrupted_while_waiting(fake_app, lambda: ui.generate(fake_app, *values()))
    assert "Interrupted before it started" in last["error"] and last["task_id"] == ""
    assert fake_app.generation.jobs == []


def test_interrupt_while_an_upscale_waits_takes_out_that_upscale_only(fake_app, tmp_path):
    """✨ Upscale's job has the page's task id too: its Interrupt takes it out while it waits."""
    last = interrupted_while_waiting(fake_app, lambda: start_upscale(fake_app, tmp_path))
    assert "Interrupted before it started" in last["error"] and last["task_id"] == ""
    assert fake_app.generation.jobs == []


def test_an_upscale_whose_page_went_away_is_restored_from_its_task_id(fake_app, tmp_path):
    gen = start_upscale(fake_app, tmp_path)
    task_id = as_dict(next(gen))["task_id"]
    fake_app.queue.run("after", lambda: None)  # the upscale has ended...
    gen.close()  # ...and its page went away before showing it
    restored = [as_dict(out) for out in ui.restore_progress(fake_app, task_id)]
    assert "Steps: 2" in restored[-1]["info_html"] and restored[-1]["task_id"] == ""


def test_interrupt_while_an_extras_job_waits_takes_out_that_job_only(fake_app):
    """The Extras tab's Generate keeps its job's task id in the page, as txt2img's does."""
    done = []
    fake_app.extras = SimpleNamespace(
        submit=lambda request: fake_app.queue.submit("extras", lambda: done.append(request))
    )
    image = Image.new("RGB", (8, 8))
    last = interrupted_while_waiting(
        fake_app, lambda: extras_ui.generate(fake_app, 0, image, None, "", "", True)
    )
    assert "Interrupted before it started" in last["error"] and last["task_id"] == ""
    assert done == []


def test_every_interrupt_button_sends_its_tab_s_task_id(tmp_path, make_app):
    """The page's Interrupt passes the task id of the job that page shows (txt2img, img2img, Extras)."""
    from modules.sumi.frontends.gradio import build_ui

    demo = build_ui(make_app(tmp_path, start=False))
    by_id = {block_id: block.elem_id for block_id, block in demo.blocks.items() if block.elem_id}
    sent = {
        by_id.get(target): [getattr(c, "elem_id", None) for c in fn.inputs]
        for fn in demo.fns.values()
        for target, _ in fn.targets
        if str(by_id.get(target, "")).endswith("_interrupt")
    }
    for tab in ("txt2img", "img2img", "extras"):
        assert sent[f"{tab}_interrupt"] == [f"{tab}_task_id"], tab


def test_restore_shows_a_job_that_ended_while_no_page_watched_it(fake_app):
    gen = ui.generate(fake_app, *values())
    task_id = as_dict(next(gen))["task_id"]
    fake_app.queue.run("after", lambda: None)  # the job has ended...
    gen.close()  # ...and its page went away (a reload) before showing it
    restored = [as_dict(out) for out in ui.restore_progress(fake_app, task_id)]
    assert "Steps: 2" in restored[-1]["info_html"] and restored[-1]["task_id"] == ""


def test_restore_of_an_unknown_or_another_login_s_job_says_it_cannot(fake_app):
    for task_id in ("task(unknown)", "", None):
        (note,) = [as_dict(out) for out in ui.restore_progress(fake_app, task_id)]
        assert "Couldn't restore" in note["error"] and note["task_id"] == ""
    release = threading.Event()
    fake_app.queue.owner_of = lambda: "alice"
    alices = fake_app.queue.submit("alice's", lambda: release.wait(10))
    fake_app.queue.owner_of = lambda: None
    try:
        (note,) = [as_dict(out) for out in ui.restore_progress(fake_app, alices.id)]
        assert "Couldn't restore" in note["error"]  # no login here: not alice
    finally:
        release.set()
