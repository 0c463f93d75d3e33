"""The Settings tab in Chromium: a changed setting is applied, stored in config.json and shown after a
reload."""

from __future__ import annotations

import json

from tests.app_support import running_server
from tests.browser_support import open_page


def test_settings_tab_applies_persists_and_shows_values_after_reload(tmp_path, chromium):
    from playwright.sync_api import expect

    with running_server(tmp_path) as server, open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Settings").click()
        box = page.locator("#setting_samples_save input[type=checkbox]")
        expect(box).to_be_checked()
        box.uncheck()
        page.click("#settings_submit")
        expect(page.locator("#settings_result")).to_have_text("1 settings changed: samples_save.")
        config = json.loads((server.data_dir / "config.json").read_text(encoding="utf-8"))
        assert config["samples_save"] is False
        page.reload()
        page.get_by_role("tab", name="Settings").click()
        expect(page.locator("#setting_samples_save input[type=checkbox]")).not_to_be_checked()
