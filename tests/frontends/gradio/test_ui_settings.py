"""The Settings tab: grouping, components, changed values and the result line (the run in Chromium is
in tests/browser/test_ui_settings_browser.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.frontends.gradio import settings as ui
from modules.sumi.services.settings.options import OptionHTML, OptionInfo, Options, _a1111_only


class FakeApp:
    """What the Settings tab uses of the App: options, VAE and checkpoint names, settings.set."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self.vaes = _Names(["Automatic", "None", "kl-f8.safetensors"])
        self.checkpoints = _Names(["a.safetensors [0123456789]"])
        self.applied: list[dict[str, Any]] = []
        self.settings = SimpleNamespace(set=self.set_options)

    def set_options(self, values: dict[str, Any]) -> None:
        self.applied.append(dict(values))
        for key, value in values.items():
            try:
                self.options.set(key, value)
            except ValueError as exc:
                raise InvalidRequestError(f"Setting {key!r}: {exc}") from exc


class _Names:
    def __init__(self, names: list[str]) -> None:
        self._names = names

    def names(self) -> list[str]:
        return list(self._names)

    titles = names


def submitted(app: FakeApp, keys: list[str], **changes: Any) -> list[Any]:
    """The values the browser sends for `keys`: the current ones with `changes` (sliders send floats)."""
    current = app.options.as_dict()
    return [changes.get(k, current[k]) for k in keys]


# -- grouping and components --------------------------------------------------------------------------
def test_groups_follow_section_order_with_other_last_and_skip_the_checkpoint():
    labels = Options().data_labels
    labels["my_ext_thing"] = OptionInfo(3, "Extension option without a section")
    groups = ui.group_by_section(labels)
    titles = [section[1] for section, _ in groups]
    assert titles[:4] == [
        "Saving images/grids",
        "Paths for saving",
        "Saving to a directory",
        "Stable Diffusion",
    ]
    assert "Sampler parameters" in titles and "Live previews" in titles
    assert groups[-1] == (("other", "Other"), ["my_ext_thing"])
    keys = [key for _, ks in groups for key in ks]
    assert "sd_model_checkpoint" not in keys and "samples_save" in keys
    hidden = [k for k, info in labels.items() if info.section and info.section[0] is None]
    # A1111's hidden options, then A1111 settings Sumi has no feature for (readable by extensions)
    assert hidden[:3] == ["disabled_extensions", "disable_all_extensions", "sd_checkpoint_hash"]
    assert hidden[3:] == list(_a1111_only())
    assert len(keys) == len(set(keys)) == len(labels) - 1 - len(hidden)


def test_component_kind_from_hint_class_or_default():
    assert ui.component_kind(OptionInfo(True, "x")) == "checkbox"
    assert ui.component_kind(OptionInfo(3, "x")) == "number"
    assert ui.component_kind(OptionInfo(0.5, "x")) == "number"
    assert ui.component_kind(OptionInfo("png", "x")) == "textbox"
    assert ui.component_kind(OptionInfo(1, "x", "slider", {"minimum": 0})) == "slider"
    assert ui.component_kind(OptionInfo("a", "x", "radio", {"choices": ["a"]})) == "radio"
    assert ui.component_kind(OptionInfo("a", "x", ui.COMPONENTS["dropdown"], {"choices": ["a"]})) == "custom"
    assert ui.component_kind(OptionHTML("<b>note</b>")) == "html"


def test_choices_come_from_the_registries_and_keep_the_current_value():
    app = FakeApp()
    labels = app.options.data_labels
    assert ui.choices_for(app, "sd_vae", labels["sd_vae"]) == ["Automatic", "None", "kl-f8.safetensors"]
    assert ui.choices_for(app, "sd_vae", labels["sd_vae"], "gone.pt")[-1] == "gone.pt"
    assert ui.choices_for(app, "sd_model_checkpoint", labels["sd_model_checkpoint"]) == [
        "a.safetensors [0123456789]"
    ]
    assert ui.choices_for(app, "randn_source", labels["randn_source"]) == ["GPU", "CPU", "NV"]
    dynamic = OptionInfo("b", "x", "dropdown", lambda: {"choices": ["a", "b"]})
    assert ui.choices_for(app, "dyn", dynamic) == ["a", "b"]


def test_page_has_a1111_settings_components_with_unique_elem_ids(tmp_path, make_app):
    from modules.sumi.frontends.gradio import build_ui

    (tmp_path / "models" / "VAE").mkdir(parents=True)
    (tmp_path / "models" / "VAE" / "kl-f8.safetensors").write_bytes(b"")
    app = make_app(tmp_path, start=False)
    bad = OptionInfo("a", "Broken extension option", ui.COMPONENTS["radio"], {"bogus": 1})
    app.options.add_option("ext_broken", bad)
    config = build_ui(app).get_config_file()
    ids = [c["props"]["elem_id"] for c in config["components"] if c["props"].get("elem_id")]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"elem_ids must be unique on the page: {dupes}"
    comps = {c["props"]["elem_id"]: c for c in config["components"] if c["props"].get("elem_id")}
    assert {"tab_settings", "settings_submit", "settings_result", "settings_sd"} <= set(comps)
    assert comps["setting_sd_model_checkpoint"]["type"] == "dropdown"  # the quicksettings one only
    assert comps["setting_samples_save"]["type"] == "checkbox"
    assert comps["setting_samples_save"]["props"]["value"] is True
    n_rows = comps["setting_n_rows"]["props"]
    assert comps["setting_n_rows"]["type"] == "slider"
    assert (n_rows["minimum"], n_rows["maximum"], n_rows["step"], n_rows["value"]) == (-1, 16, 1, -1)
    assert comps["setting_emphasis"]["type"] == "radio"
    vae = comps["setting_sd_vae"]
    assert vae["type"] == "dropdown"
    assert [c[0] for c in vae["props"]["choices"]] == ["Automatic", "None", "kl-f8.safetensors"]
    assert "Automatic = use one" in vae["props"]["info"] and "<span" not in vae["props"]["info"]
    assert comps["setting_eta_noise_seed_delta"]["type"] == "number"
    assert comps["setting_samples_format"]["type"] == "textbox"
    assert comps["setting_ext_broken"]["type"] == "textbox"  # bad component_args: a plain field
    # A1111 1.10's saving settings, with its components (FormColorPicker: a colour picker)
    quality = comps["setting_jpeg_quality"]
    assert quality["type"] == "slider" and (quality["props"]["minimum"], quality["props"]["maximum"]) == (
        1,
        100,
    )
    assert comps["setting_webp_lossless"]["type"] == comps["setting_export_for_4chan"]["type"] == "checkbox"
    assert comps["setting_img_max_size_mp"]["type"] == comps["setting_target_side_length"]["type"] == "number"
    assert comps["setting_save_images_replace_action"]["type"] == "radio"
    assert comps["setting_grid_background_color"]["type"] == "colorpicker"
    assert comps["setting_grid_background_color"]["props"]["value"] == "#ffffff"


def test_hide_ui_dir_config_leaves_the_folder_settings_off_the_page(tmp_path, make_app):
    from modules.sumi.frontends.gradio import build_ui

    app = make_app(tmp_path, "--hide-ui-dir-config", start=False)
    config = build_ui(app).get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert "setting_samples_save" in ids
    assert not ids & {
        "setting_outdir_txt2img_samples",
        "setting_outdir_samples",
        "setting_samples_filename_pattern",
    }


# -- changed values and Apply -------------------------------------------------------------------------
def test_only_changed_values_are_sent_in_the_options_types():
    app = FakeApp()
    keys = ["samples_save", "n_rows", "eta_ddim", "emphasis", "samples_format"]
    assert ui.changed_values(app, keys, submitted(app, keys)) == {}
    sent = submitted(app, keys, samples_save=False, n_rows=3.0, eta_ddim=0, emphasis="Original")
    changed = ui.changed_values(app, keys, sent)
    assert changed == {"samples_save": False, "n_rows": 3}
    assert type(changed["n_rows"]) is int


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("n_rows", 2.5, "whole number"), ("max_steps", None, "a value is required")],
)
def test_unusable_browser_values_name_the_setting(key, value, message):
    app = FakeApp()
    with pytest.raises(ValueError, match=message) as info:
        ui.changed_values(app, [key], [value])
    assert repr(key) in str(info.value)


def test_result_line_is_a1111s():
    assert ui.result_text([]) == "0 settings changed."
    assert ui.result_text(["a", "b"]) == "2 settings changed: a, b."


def test_apply_sends_the_changes_and_reports_them():
    app = FakeApp()
    keys = ["samples_save", "n_rows", "emphasis"]
    out = ui.apply_settings(app, keys, *submitted(app, keys, samples_save=False, n_rows=4.0))
    assert out == "2 settings changed: samples_save, n_rows."
    assert app.applied == [{"samples_save": False, "n_rows": 4}]
    assert app.options.samples_save is False
    assert ui.apply_settings(app, keys, *submitted(app, keys)) == "0 settings changed."
    assert len(app.applied) == 1  # nothing changed: settings.set is not called


def test_apply_shows_errors_instead_of_raising():
    app = FakeApp()
    keys = ["emphasis", "max_steps"]
    out = ui.apply_settings(app, keys, "Loud", 150)
    assert "sumi-error" in out and "emphasis" in out and "must be one of" in out
    out = ui.apply_settings(app, keys, "Original", None)
    assert "sumi-error" in out and "a value is required" in out
    assert app.options.emphasis == "Original" and app.options.max_steps == 150


def test_apply_survives_an_unexpected_failure():
    app = FakeApp()

    def broken(values):
        raise RuntimeError("disk full")

    app.settings.set = broken
    out = ui.apply_settings(app, ["samples_save"], False)
    assert "RuntimeError: disk full" in out


def test_page_load_reads_the_stored_values_and_fresh_choices():
    app = FakeApp()
    app.options.set("samples_save", False)
    app.options.set("sd_vae", "kl-f8.safetensors")
    app.vaes._names.append("new.pt")
    updates = ui.current_values(app, ["samples_save", "sd_vae", "emphasis"])
    assert updates[0]["value"] is False and "choices" not in updates[0]
    assert updates[1]["value"] == "kl-f8.safetensors" and updates[1]["choices"][-1] == "new.pt"
    assert updates[2]["choices"] == ["None", "Ignore", "Original", "No norm"]


@pytest.mark.parametrize(
    ("comment", "shown"),
    [
        ("<span class='info'>(must be < sampling steps)</span>", "(must be < sampling steps)"),
        ("<span class='info'>(a <b>bold</b> word &amp; 1 < 2 > 0)</span>", "(a bold word & 1 < 2 > 0)"),
    ],
)
def test_a_settings_hint_keeps_its_text_and_loses_only_its_tags(comment, shown):
    """A1111's "UniPC order" hint is "(must be < sampling steps)": a "<" that starts no tag is text."""
    assert ui.plain_text(comment) == shown
