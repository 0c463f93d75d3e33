"""The page never shows a secret the server was started with or a setting holds: error boxes, the Settings tab."""

from __future__ import annotations

from modules.sumi.frontends.gradio.results import error_message
from modules.sumi.services.settings.secrets import MASK


def test_error_boxes_mask_the_passwords(make_app, tmp_path):
    make_app(tmp_path, "--gradio-auth", "u:Page-Error-Pass-1729", start=False)
    assert error_message(ValueError("bad Page-Error-Pass-1729")) == f"bad {MASK}"
    assert error_message(RuntimeError("Page-Error-Pass-1729")) == f"RuntimeError: {MASK}"


def test_settings_tab_masks_a_secret_setting_and_keeps_it_when_applied_unchanged(make_app, tmp_path):
    from modules.sumi.frontends.gradio.settings import apply_settings, current_values, make_component
    from modules.sumi.services.settings.options import OptionInfo

    app = make_app(tmp_path, start=False)
    app.options.add_option("civitai_api_key", OptionInfo("", "Civitai API key"))
    app.options.set("civitai_api_key", "Tab-Secret-Key-3571")
    field = make_component(app, "civitai_api_key", app.options.data_labels["civitai_api_key"])
    assert field.value == MASK and field.type == "password"
    assert current_values(app, ["civitai_api_key"])[0]["value"] == MASK
    assert apply_settings(app, ["civitai_api_key"], MASK) == "0 settings changed."
    assert app.options.civitai_api_key == "Tab-Secret-Key-3571"


def test_the_extensions_tab_shows_a_remote_without_its_token():
    from modules.sumi.frontends.gradio.extensions_tab import _remote_link

    link = _remote_link("https://someone:Remote-Token-4242@example.invalid/me/ext.git")
    assert "Remote-Token-4242" not in link and "someone" not in link
    assert 'href="https://example.invalid/me/ext.git"' in link
