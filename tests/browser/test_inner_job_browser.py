"""An A1111-style extension whose `postprocess_image` runs an inner img2img job (ADetailer's pattern),
used from the browser: its checkbox in the txt2img page turns it on, Generate waits for the outer and
the inner job (no deadlock on the single queue), and the shown image and infotext are the inner job's.
The same extension through the API: tests/frontends/http/test_img2img_api.py."""

from __future__ import annotations

import pytest

from tests.app_support import running_server
from tests.browser_support import INFO, generate, open_page, small_job, wait_text
from tests.fixtures.files import write_files
from tests.frontends.http.test_img2img_api import INNER_JOB_EXTENSION


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("sumi-inner-job")
    write_files(data / "extensions" / "inner-job-ext", INNER_JOB_EXTENSION)
    with running_server(data) as srv:
        yield srv


def test_an_extensions_inner_img2img_job_runs_from_the_browser(server, chromium):
    with open_page(chromium, server.url) as page:
        small_job(page, "a red fox")
        plain = generate(page)
        assert "Inner job" not in plain
        page.locator("#tab_txt2img").get_by_text("Redraw a square").first.click()
        info = generate(page, until="Inner job seed: 5")
        assert "Inner job tab: txt2img" in info
        wait_text(page, INFO, "Steps: 2")
