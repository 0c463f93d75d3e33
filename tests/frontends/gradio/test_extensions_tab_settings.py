"""The Extensions tab stores the enabled extensions through the settings service, so its locks and its
all-or-nothing save hold there too (A1111 refuses to save settings under --freeze-settings)."""

from __future__ import annotations

import json

from modules.sumi.frontends.gradio import extensions_tab


def _extension(data_dir, name: str) -> None:
    (data_dir / "extensions" / name / "scripts").mkdir(parents=True)


def test_under_freeze_settings_the_extensions_tab_changes_nothing_and_says_why(tmp_path, make_app):
    data = tmp_path / "data"
    _extension(data, "some-ext")
    app = make_app(data, "--freeze-settings", start=False)
    app.extensions.refresh()
    before = (data / "config.json").read_text() if (data / "config.json").exists() else None

    message, _ = extensions_tab.apply_changes(app, '["some-ext"]', "[]", "extra")

    assert "--freeze-settings" in message
    assert app.options.disabled_extensions == [] and app.options.disable_all_extensions == "none"
    assert [e.enabled for e in app.extensions.list() if e.name == "some-ext"] == [True]
    after = (data / "config.json").read_text() if (data / "config.json").exists() else None
    assert after == before


def test_a_config_json_that_cannot_be_written_leaves_the_extensions_as_they_were(
    tmp_path, make_app, monkeypatch
):
    data = tmp_path / "data"
    _extension(data, "some-ext")
    app = make_app(data, start=False)
    app.extensions.refresh()

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("modules.sumi.services.settings.options.write_json_atomic", disk_full)
    message, _ = extensions_tab.apply_changes(app, '["some-ext"]', "[]", "none")

    assert "No space left on device" in message
    assert app.options.disabled_extensions == []
    assert [e.enabled for e in app.extensions.list() if e.name == "some-ext"] == [True]


def test_the_extensions_tab_saves_the_disabled_list_and_the_mode(tmp_path, make_app, monkeypatch):
    data = tmp_path / "data"
    _extension(data, "some-ext")
    app = make_app(data, start=False)
    app.extensions.refresh()
    monkeypatch.setattr(app, "request_restart", lambda: False)

    extensions_tab.apply_changes(app, '["some-ext"]', "[]", "extra")

    saved = json.loads((data / "config.json").read_text())
    assert saved["disabled_extensions"] == ["some-ext"] and saved["disable_all_extensions"] == "extra"
    assert [e.enabled for e in app.extensions.list() if e.name == "some-ext"] == [False]
