"""The Settings tab in Chromium: a changed setting is applied, stored in config.json and shown after a
reload; the Actions section unloads, loads and hashes checkpoints; the Sysinfo section downloads the
system information and checks a report for edits; the Startup profile lists where the start went."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request

import pytest

from tests.app_support import running_server
from tests.browser_support import open_page


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_sd1_ckpt):
    """A server with a checkpoint loaded at start (so hashed) and a second one not hashed yet."""
    data_dir = tmp_path_factory.mktemp("settings")
    models = data_dir / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(tiny_sd1_ckpt[0], models / "model.safetensors")
    shutil.copy(tiny_sd1_ckpt[0], models / "unhashed.safetensors")
    (data_dir / "notification.mp3").write_bytes(b"ID3 not really a song")
    with running_server(data_dir, ["--api"]) as running:
        yield running


def test_settings_tab_applies_persists_and_shows_values_after_reload(server, chromium):
    from playwright.sync_api import expect

    with open_page(chromium, server.url) as page:
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


def test_actions_unload_load_and_hash_checkpoints_and_sysinfo_downloads_and_checks_valid(
    server, chromium, tmp_path
):
    from playwright.sync_api import expect

    app = server.app
    loaded = app.models.active.checkpoint.title
    with open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Settings").click()
        result = page.locator("#settings_result")
        assert app.checkpoints.get("unhashed.safetensors").hash is None
        page.click("#calculate_all_checkpoint_hash")
        sha256 = hashlib.sha256(
            (server.data_dir / "models/Stable-diffusion/unhashed.safetensors").read_bytes()
        )
        expect(result).to_have_text(f"Hashed 1 checkpoint: unhashed.safetensors [{sha256.hexdigest()[:10]}].")
        assert app.checkpoints.get("unhashed.safetensors").sha256 == sha256.hexdigest()
        page.click("#sett_unload_sd_model")
        expect(result).to_have_text(f"{loaded} computes on the CPU: it stays in RAM.")
        app.models.unload_all()  # nothing loaded: Load reads the selected checkpoint again
        page.click("#sett_reload_sd_model")
        expect(result).to_have_text(f"{loaded} is loaded on cpu.")
        assert app.models.active is not None and app.models.active.checkpoint.title == loaded

        with page.expect_download() as download:
            page.get_by_text("Download system info").click()
        report = tmp_path / "sysinfo.json"
        download.value.save_as(report)
        assert download.value.suggested_filename.startswith("sysinfo-")
        assert json.loads(report.read_text(encoding="utf-8"))["Loaded models"] == [loaded]
        page.locator("#sysinfo_check_file input[type=file]").set_input_files(str(report))
        expect(page.locator("#sysinfo_validity")).to_have_text("Valid")  # an edited one: tests/frontends

        page.click("#settings_tab_startup_profile > .label-wrap")  # Startup profile: filled when opened
        expect(page.locator("#startup_profile table")).to_contain_text("load scripts")
        rows = page.locator("#startup_profile tr.sumi-profile-depth-1").all_inner_texts()
        assert any(r.startswith("txt2img") for r in rows)  # create ui's parts (script imports may be < 5 ms)
        assert page.locator("#startup_profile tr.sumi-profile-total").inner_text().startswith("Total")


def test_search_shows_only_the_matching_settings_and_reload_ui_says_how_to_restart_here(server, chromium):
    from playwright.sync_api import expect

    with open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Settings").click()
        search = page.locator("#settings_search textarea")
        search.fill("clip skip")
        expect(page.locator("#setting_CLIP_stop_at_last_layers")).to_be_visible()
        expect(page.locator("#setting_samples_save")).to_be_hidden()
        expect(page.locator("#settings_tab_actions")).to_be_hidden()
        search.fill("unload")
        expect(page.locator("#sett_unload_sd_model")).to_be_visible()
        expect(page.locator("#setting_CLIP_stop_at_last_layers")).to_be_hidden()
        search.fill("")
        expect(page.locator("#setting_samples_save")).to_be_visible()
        expect(page.locator("#setting_CLIP_stop_at_last_layers")).to_be_visible()
        page.click("#settings_restart_gradio")  # an App inside the test process: nothing can restart it
        expect(page.locator("#settings_result")).to_have_text(
            "Sumi runs inside another program here: restart that program to reload the UI."
        )


def test_defaults_lists_the_changed_inputs_and_apply_writes_them_to_ui_config(server, chromium):
    from playwright.sync_api import expect

    with open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Settings").click()
        review = page.locator("#ui_defaults_review")
        page.click("#ui_defaults_view")
        expect(review).to_have_text("No changes")  # the sizes the page set to the model's are not changes
        page.get_by_role("tab", name="txt2img").click()
        steps = page.locator("#txt2img_steps input[type=number]")
        steps.fill("33")
        steps.press("Enter")
        page.get_by_role("tab", name="Settings").click()
        page.click("#ui_defaults_view")
        expect(review.locator("tbody tr")).to_have_count(1)
        expect(review.locator("tbody tr td")).to_have_text(["txt2img/Sampling steps/value", "20", "33"])
        page.click("#ui_defaults_apply")
        expect(review).to_have_text("Wrote 1 changes.")
    saved = json.loads((server.data_dir / "ui-config.json").read_text(encoding="utf-8"))
    assert saved["txt2img/Sampling steps/value"] == 33


SPIES = """() => {
    window.sumiSeen = {notes: [], played: []};
    window.Notification = class {
        constructor(title, options) { window.sumiSeen.notes.push([title, options.body]); }
        static get permission() { return "granted"; }
        static requestPermission() { window.sumiSeen.asked = true; return Promise.resolve("granted"); }
    };
    document.hasFocus = () => false;
    HTMLMediaElement.prototype.play = function () {
        window.sumiSeen.played.push([this.src, this.volume]);
        return Promise.resolve();
    };
}"""


def test_a_finished_job_plays_notification_mp3_and_notifies_while_the_page_is_in_the_background(
    server, chromium
):
    """The browser's Notification and audio playback are watched (headless Chromium has no desktop or
    speakers); the page's own code decides when to call them."""
    from playwright.sync_api import expect

    server.app.options.data["notification_volume"] = 50
    with open_page(chromium, server.url) as page:
        page.evaluate(SPIES)
        page.get_by_role("tab", name="Settings").click()
        page.click("#request_notifications")
        page.get_by_role("tab", name="txt2img").click()
        steps = page.locator("#txt2img_steps input[type=number]")
        steps.fill("2")
        steps.press("Enter")
        page.click("#txt2img_generate")
        expect(page.locator("#txt2img_gallery img").first).to_be_visible(timeout=60_000)
        page.wait_for_function("window.sumiSeen.notes.length > 0")
        page.wait_for_timeout(500)  # a second notification would come with the next page update
        seen = page.evaluate("window.sumiSeen")
    assert seen["asked"] is True
    assert seen["notes"] == [["Sumi", "Generated 1 image"]]
    assert len(seen["played"]) == 1
    source, volume = seen["played"][0]
    assert source.endswith("/sumi/notification.mp3") and volume == 0.5
    response = urllib.request.urlopen(server.url + "/sumi/notification.mp3")
    assert response.headers["content-type"] == "audio/mpeg" and response.read() == b"ID3 not really a song"
