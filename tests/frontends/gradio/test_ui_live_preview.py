"""Settings > Live previews shows A1111's preview options with A1111's labels, and the browser's live
preview is sent in opt `live_previews_image_format`."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from modules.sumi.frontends.gradio import settings as ui
from modules.sumi.frontends.gradio.txt2img import preview_file
from modules.sumi.services.settings.options import Options

A1111_LABELS = {
    "live_previews_enable": "Show live previews of the created image",
    "live_previews_image_format": "Live preview file format",
    "show_progress_every_n_steps": "Live preview display period",
    "show_progress_type": "Live preview method",
    "live_preview_allow_lowvram_full": "Allow Full live preview method with lowvram/medvram",
    "live_preview_content": "Live preview subject",
    "live_preview_fast_interrupt": "Return image with chosen live preview method on interrupt",
    "live_preview_refresh_period": "Progressbar and preview update period",
}


def test_live_previews_section_has_a1111s_preview_options():
    options = Options().data_labels
    keys = next(keys for (_, title), keys in ui.group_by_section(options) if title == "Live previews")
    infos = {key: options[key] for key in keys}
    for key, label in A1111_LABELS.items():
        assert key in infos and infos[key].label == label, key
    assert ui.component_kind(infos["show_progress_type"]) == "radio"
    assert infos["show_progress_type"].static_choices() == ["Full", "Approx NN", "Approx cheap", "TAESD"]
    assert infos["live_previews_image_format"].static_choices() == ["jpeg", "png", "webp"]
    assert ui.component_kind(infos["live_preview_allow_lowvram_full"]) == "checkbox"


@pytest.mark.parametrize("period,seconds", [(1000, 1.0), (300, 0.3), (0, 0.05), ("fast", 0.3)])
def test_the_page_refreshes_progress_at_the_update_period_setting(period, seconds):
    from modules.sumi.frontends.gradio.progress import refresh_seconds

    assert refresh_seconds(SimpleNamespace(live_preview_refresh_period=period)) == pytest.approx(seconds)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_the_browser_preview_is_written_in_the_chosen_format(fmt):
    image = Image.new("RGB", (16, 8), (200, 40, 10))
    path = Path(preview_file(image, SimpleNamespace(live_previews_image_format=fmt)))
    assert path.suffix == f".{fmt}"
    with Image.open(path) as written:
        assert written.format == fmt.upper() and written.size == (16, 8)


def test_the_generate_stream_sends_the_preview_file_in_the_chosen_format():
    from modules.sumi.frontends.gradio import txt2img as t2i
    from modules.sumi.services.jobs.queue import JobQueue
    from modules.sumi.services.jobs.state import JobState

    state = JobState()
    queue = JobQueue(state)
    seen = threading.Event()

    def job_body():
        state.begin("txt2img", 1)
        state.set_preview(Image.new("RGB", (8, 8), "red"))
        assert seen.wait(10)

    app = SimpleNamespace(
        queue=queue, state=state, options=SimpleNamespace(live_previews_image_format="webp")
    )
    job = queue.submit("txt2img", job_body)
    sent = []
    try:
        for values in t2i.stream_progress(app, job):  # pyright: ignore[reportArgumentType]
            update = values[t2i.OUTPUTS.index("preview")]
            if isinstance(update, dict) and update.get("value"):
                sent.append(update["value"])
                seen.set()
    finally:
        seen.set()
        queue.stop()
    assert len(sent) == 1 and sent[0].endswith(".webp")
