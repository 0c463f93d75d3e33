"""Live previews during real tiny-model jobs: each `show_progress_type` shows a picture of its size in
/sdapi/v1/progress while the job runs, a missing file falls back to Approx cheap with one warning, a slow
preview never holds the sampler back, and Full gives way to Approx NN when the model is offloaded."""

from __future__ import annotations

import base64
import io
import shutil
import threading

import pytest
import torch
from PIL import Image

from modules.sumi.engine.extensions import Extension, HookPoint, LoopContext, StepContext, hook
from modules.sumi.engine.previews import APPROX_NN, FULL, preview_pixels, taesd, to_image
from modules.sumi.engine.previews.approx_nn import VAEApprox
from modules.sumi.services.jobs.live_preview import PreviewWorker
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img

WAIT = 60  # seconds: a bound against hanging, never a timing assertion
SIZES = {"Approx cheap": (8, 8), "Approx NN": (16, 16), "TAESD": (64, 64), "Full": (64, 64)}  # 64x64 image


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    folder = data / "models" / "VAE-approx"
    folder.mkdir(parents=True)
    torch.save(VAEApprox().state_dict(), folder / "model.pt")
    torch.save(taesd.decoder().state_dict(), folder / "taesd_decoder.pth")
    return make_module_app(data, "--api", "--nowebui", loaded=True)


class HoldUntilPreview(Extension):
    """Holds the sampler before step `at` until a new live preview is published, then reads
    /sdapi/v1/progress from there: the job is still running, so what it shows is the live preview."""

    def __init__(self, app, client, at: int = 1) -> None:
        super().__init__()
        self.app, self.client, self.at = app, client, at
        self.start_id = app.state.id_live_preview
        self.progress: dict | None = None

    @hook(HookPoint.PRE_STEP)
    def hold(self, step: StepContext) -> None:
        if step.step != self.at:
            return
        for _ in range(WAIT * 20):
            if self.app.state.id_live_preview > self.start_id:
                break
            threading.Event().wait(0.05)
        self.progress = self.client.get("/sdapi/v1/progress").json()


def job(method: str, *extensions: Extension, steps: int = 3, **settings) -> StableDiffusionProcessingTxt2Img:
    p = StableDiffusionProcessingTxt2Img(
        prompt="a red circle",
        steps=steps,
        width=64,
        height=64,
        seed=5,
        sampler_name="Euler",
        do_not_save_samples=True,
        do_not_save_grid=True,
        override_settings={"show_progress_type": method, "show_progress_every_n_steps": 1, **settings},
    )
    for index, extension in enumerate(extensions):
        p.engine_extensions[f"test{index}"] = extension
    return p


def _image(progress: dict | None) -> Image.Image:
    assert progress is not None and progress["state"]["sampling_steps"] == 3
    assert progress["current_image"], "no live preview during the job"
    return Image.open(io.BytesIO(base64.b64decode(progress["current_image"])))


@pytest.mark.parametrize("method", list(SIZES))
def test_each_method_shows_a_preview_of_its_size_in_progress_while_the_job_runs(app, client, method):
    hold = HoldUntilPreview(app, client)
    processed = app.runner.txt2img(job(method, hold))
    assert _image(hold.progress).size == SIZES[method]
    assert not any("VAE-approx" in w for w in processed.warnings)  # the files were there


def test_a_missing_file_shows_approx_cheap_and_warns_once_naming_the_file(app, client):
    folder = app.paths.models_dir / "VAE-approx"
    shutil.move(folder / "taesd_decoder.pth", folder.parent / "moved.pth")
    try:
        warned = []
        for _ in range(2):
            hold = HoldUntilPreview(app, client)
            processed = app.runner.txt2img(job("TAESD", hold))
            assert _image(hold.progress).size == SIZES["Approx cheap"]
            warned += [w for w in processed.warnings if "taesd_decoder.pth" in w]
        assert len(warned) == 1 and str(folder) in warned[0]
    finally:
        shutil.move(folder.parent / "moved.pth", folder / "taesd_decoder.pth")


def test_a_slow_preview_never_holds_the_sampler(app):
    """The Approx NN network blocks in its forward until the test lets it go; the job must finish
    first (if the sampler waited for the preview, the hook would only end by its timeout)."""
    network = app.generation.preview_networks.get(APPROX_NN, False, torch.device("cpu"), torch.float32)
    entered, release = threading.Event(), threading.Event()
    timed_out: list[bool] = []

    def block(module, args):
        entered.set()
        timed_out.append(not release.wait(WAIT))

    handle = network.register_forward_pre_hook(block)
    try:
        before = app.state.id_live_preview
        processed = app.runner.txt2img(job(APPROX_NN, steps=4))
        assert len(processed.images) == 1
        assert entered.wait(WAIT)  # a preview did start...
        release.set()  # ...and the job ended while it was still blocked
        assert app.generation.preview_worker.wait_idle(WAIT)
    finally:
        release.set()
        handle.remove()
    assert timed_out == [False]
    assert app.state.id_live_preview == before  # the stale preview of the finished batch is not shown


@pytest.mark.parametrize(("allow", "size"), [(False, SIZES[APPROX_NN]), (True, SIZES[FULL])])
def test_full_gives_way_to_approx_nn_on_an_offloaded_model_unless_allowed(app, client, allow, size):
    sd = app.models.active.sd
    sd.extra["offload_requested"] = "med"  # as an extension's lowvram.setup_for_low_vram asks: placed so
    try:
        hold = HoldUntilPreview(app, client)
        app.runner.txt2img(job(FULL, hold, live_preview_allow_lowvram_full=allow))
        assert app.models.active.sd.extra["offload"] == "med"
    finally:
        del app.models.active.sd.extra["offload_requested"]
    assert _image(hold.progress).size == size


def test_previews_off_by_setting_show_nothing(app):
    before = app.state.id_live_preview
    app.runner.txt2img(job("Approx cheap", live_previews_enable=False))
    assert app.generation.preview_worker.wait_idle(WAIT)
    assert app.state.id_live_preview == before


def test_the_worker_runs_only_the_newest_request():
    worker = PreviewWorker()
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def first() -> None:
        started.set()
        release.wait(WAIT)
        ran.append(0)

    try:
        worker.submit(first)
        assert started.wait(WAIT)
        for n in range(1, 5):  # arrive while the first is running: only the newest survives
            worker.submit(lambda n=n: ran.append(n))
        release.set()
        done = threading.Event()

        def last() -> None:
            ran.append(9)
            done.set()

        worker.submit(last)
        assert done.wait(WAIT)
    finally:
        release.set()
        worker.close()
    assert ran[0] == 0 and ran[-1] == 9 and len(ran) <= 3


def test_options_api_reads_and_checks_the_preview_settings(client):
    assert client.get("/sdapi/v1/options").json()["show_progress_type"] == "Approx NN"
    for key, bad in (("show_progress_type", "Fast"), ("live_previews_image_format", "gif")):
        r = client.post("/sdapi/v1/options", json={key: bad})
        assert 400 <= r.status_code < 500 and key in r.text
    r = client.post(
        "/sdapi/v1/options", json={"show_progress_type": "TAESD", "live_previews_image_format": "webp"}
    )
    assert r.status_code == 200, r.text
    got = client.get("/sdapi/v1/options").json()
    assert (got["show_progress_type"], got["live_previews_image_format"]) == ("TAESD", "webp")
    client.post(
        "/sdapi/v1/options", json={"show_progress_type": "Approx NN", "live_previews_image_format": "png"}
    )


class InterruptAt(Extension):
    """Interrupts the job before step `at` (as the Interrupt button does) and keeps the final latents."""

    def __init__(self, app, at: int = 1) -> None:
        super().__init__()
        self.app, self.at = app, at
        self.final: torch.Tensor | None = None

    @hook(HookPoint.PRE_STEP)
    def interrupt(self, step: StepContext) -> None:
        if step.step == self.at:
            self.app.state.interrupt()

    @hook(HookPoint.POST_LOOP)
    def keep(self, context: LoopContext) -> None:
        self.final = context.latents.clone()


@pytest.mark.parametrize("fast", [True, False])
def test_fast_interrupt_returns_the_preview_methods_picture_at_the_jobs_size(app, fast):
    stop = InterruptAt(app)
    processed = app.runner.txt2img(job("Approx cheap", stop, live_preview_fast_interrupt=fast))
    assert stop.final is not None and len(processed.images) == 1
    image = processed.images[0]
    assert image.size == (64, 64)
    pixels = preview_pixels("Approx cheap", app.models.active.sd, stop.final, None)
    assert pixels is not None
    cheap = to_image(pixels).resize((64, 64), Image.Resampling.LANCZOS)
    assert (image.tobytes() == cheap.tobytes()) is fast


def test_the_default_method_without_its_file_shows_approx_cheap_without_a_job_warning(make_app, tmp_path):
    """A fresh install has no models/VAE-approx/model.pt: the default "Approx NN" quietly shows Approx
    cheap (the console says once which file to add); a method the user chose warns in the job."""
    app = make_app(tmp_path / "data", loaded=True)
    p = job(APPROX_NN)
    p.override_settings.pop("show_progress_type")
    processed = app.runner.txt2img(p)
    assert app.generation.preview_worker.wait_idle(WAIT)
    assert not any("model.pt" in w for w in processed.warnings)
    chosen = app.runner.txt2img(job("TAESD"))
    assert app.generation.preview_worker.wait_idle(WAIT)
    later = app.runner.txt2img(job("TAESD"))
    assert any("taesd_decoder.pth" in w for w in [*chosen.warnings, *later.warnings])
