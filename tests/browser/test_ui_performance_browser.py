"""After a job the browser shows A1111's "Time taken" line with the job's peak memory under the infotext."""

from __future__ import annotations

import re

from tests.browser_support import INFO, generate, open_page, small_job, wait_text


def test_time_taken_and_peak_memory_are_shown_after_a_job(demo_server, chromium):
    with open_page(chromium, demo_server.url) as page:
        small_job(page, "a blue square")
        generate(page)
        wait_text(page, INFO, "Time taken")
        line = page.inner_text(f"{INFO} .performance")
        assert re.search(r"Time taken: \d+(\.\d+)?s", line), line
        ram = re.search(r"RAM peak: (\d+) MiB", line)
        assert ram is not None and int(ram.group(1)) > 50, line  # a Python process with torch loaded
