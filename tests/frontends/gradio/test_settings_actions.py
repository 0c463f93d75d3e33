"""The Settings tab's Actions and Sysinfo handlers on a real App: what each says when there is nothing
to do or it cannot be done (the clicks in Chromium are in tests/browser/test_ui_settings_browser.py)."""

from __future__ import annotations

from modules.sumi.frontends.gradio import settings_actions as actions


def test_unload_with_nothing_loaded_says_so(make_app, tmp_path):
    app = make_app(tmp_path, start=False)
    assert actions.unload_checkpoint(app) == "No checkpoint is loaded."


def test_load_without_any_checkpoint_shows_the_error_and_names_the_folder(make_app, tmp_path):
    app = make_app(tmp_path, start=False)
    text = actions.reload_checkpoint(app)
    assert 'class="sumi-error"' in text and "No checkpoint found" in text and "Stable-diffusion" in text


def test_hashing_with_no_hashing_says_it_is_off(make_app, tmp_path):
    app = make_app(tmp_path, "--no-hashing", start=False)
    assert "turned off (--no-hashing)" in actions.calculate_all_hashes(app, 2)


def test_an_edited_or_foreign_report_is_invalid_and_no_file_says_nothing(make_app, tmp_path):
    app = make_app(tmp_path, start=False)
    report = app.sysinfo()
    assert actions.check_sysinfo_file(report.encode()) == "Valid"
    assert actions.check_sysinfo_file(report.replace('"Python": "', '"Python": "2').encode()) == "Invalid"
    assert actions.check_sysinfo_file(b"\xff\xfe not json") == "Invalid"
    assert actions.check_sysinfo_file(None) == ""


def test_reload_ui_restarts_sumi_and_leaves_the_marker_the_page_waits_on(make_app, tmp_path):
    import threading

    app = make_app(tmp_path, start=False)
    restarted = threading.Event()
    app.restart_handler = restarted.set  # what webui.main sets: stop the server, run the command again
    text = actions.reload_ui(app)
    assert f'data-sumi-restart="{app.boot_id}"' in text and "Restarting" in text
    assert restarted.wait(10)
