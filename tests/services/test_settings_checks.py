"""Every settings write is checked before anything changes: type, range, choices, paths inside the data
dir, the settings locks; a config.json that cannot be written leaves memory as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.settings.flags import build_parser
from modules.sumi.services.settings.options import OptionInfo, Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.settings.service import SettingsNotSaved, SettingsService, is_path_setting
from tests.services.test_settings_service import FakeModels

# The path settings Sumi has (A1111's keys), plus one an extension adds, named as A1111 extensions do.
EXTENSION_PATH_KEY = "myext_output_dir"


def service(data_dir: Path, *flags: str) -> SettingsService:
    args = build_parser().parse_args(["--data-dir", str(data_dir), *flags])
    paths = DataPaths.from_args(args, data_dir)
    options = Options()
    options.add_option(EXTENSION_PATH_KEY, OptionInfo("", "Where my extension writes"))
    models = FakeModels()
    models.options = options
    return SettingsService(options, paths, models, CallbackRegistry(), lambda _: None, flags=args)


def path_keys(options: Options) -> list[str]:
    return [key for key, info in options.data_labels.items() if is_path_setting(key, info)]


class Slider:  # what an extension passes as its component: a gradio class (only its args matter here)
    pass


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("samples_format", "sh", "must be one of"),
        ("grid_format", "exe", "must be one of"),
        ("max_image_size", -5, "must be from 64 to 16384"),
        ("max_steps", 0, "must be from 1"),
        ("eta_noise_seed_delta", 2**70, "must be from 0 to 4294967295"),
        ("eta_noise_seed_delta", -1, "must be from 0"),
        ("CLIP_stop_at_last_layers", 13, "must be from 1 to 12"),
        ("CLIP_stop_at_last_layers", 1.5, "must be a whole number"),
        ("eta_ddim", float("nan"), "must be a finite number"),
        ("eta_ancestral", float("inf"), "must be a finite number"),
        ("eta_ancestral", 1.5, "must be from 0 to 1"),
        ("n_rows", 17, "must be from -1 to 16"),
        ("emphasis", "Loud", "must be one of"),
        ("randn_source", "AMD", "must be one of"),
        ("samples_save", "yes", "expects a bool"),
        ("max_batch_size", True, "expects a int"),
        ("ext_slider", 11, "must be from 0 to 10"),
    ],
)
def test_a_value_of_the_wrong_type_range_or_choice_is_refused_and_nothing_changes(
    tmp_path, key, value, message
):
    s = service(tmp_path)
    s.options.add_option(
        "ext_slider", OptionInfo(5, "An extension's slider", Slider, {"minimum": 0, "maximum": 10})
    )
    before = s.options.as_dict()
    with pytest.raises(InvalidRequestError, match=f"Setting '{key}'.*{message}"):
        s.set({"samples_save": False, key: value})
    assert s.options.as_dict() == before and not s.paths.config_file.exists()


def test_good_values_are_stored_and_a_whole_float_becomes_an_int(tmp_path):
    s = service(tmp_path)
    s.set({"samples_format": "webp", "CLIP_stop_at_last_layers": 3.0, "eta_noise_seed_delta": 31337})
    assert s.options.CLIP_stop_at_last_layers == 3 and type(s.options.CLIP_stop_at_last_layers) is int
    saved = json.loads(s.paths.config_file.read_text())
    assert saved["samples_format"] == "webp" and saved["eta_noise_seed_delta"] == 31337


def test_a_config_json_that_cannot_be_written_leaves_memory_unchanged(tmp_path):
    s = service(tmp_path)
    s.set({"samples_format": "jpg"})
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    object.__setattr__(s.paths, "config_file", blocker / "config.json")
    with pytest.raises(SettingsNotSaved, match="could not be saved.*nothing was changed"):
        s.set({"samples_format": "webp", "CLIP_stop_at_last_layers": 2})
    assert s.options.samples_format == "jpg" and s.options.CLIP_stop_at_last_layers == 1


def test_a_failed_write_keeps_the_old_config_json_whole(tmp_path, monkeypatch):
    s = service(tmp_path)
    s.set({"samples_format": "jpg"})
    good = s.paths.config_file.read_bytes()

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(SettingsNotSaved, match="No space left on device"):
        s.set({"samples_format": "webp"})
    assert s.paths.config_file.read_bytes() == good and s.options.samples_format == "jpg"


# -- paths ---------------------------------------------------------------------------------------------

OUTSIDE = [
    "/anywhere",
    "/tmp",
    "/",
    "..",
    "../outside",
    "outputs/../../outside",
    "outputs/../..",
    "~",
    "~/pictures",
    "./../x",
    "outputs/link-out",  # a symlink inside the data dir that points outside
    "outputs/link-out/deeper",
    "out\0puts",
]
INSIDE = ["outputs/mine", "outputs/a/../b", "./outputs", "outputs/link-in", "{data}/outputs/abs"]


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    (data / "outputs" / "real").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (data / "outputs" / "link-out").symlink_to(tmp_path / "elsewhere")
    (data / "outputs" / "link-in").symlink_to(data / "outputs" / "real")
    return data


def test_every_path_setting_is_found(data_dir):
    keys = path_keys(service(data_dir).options)
    assert {
        "outdir_samples",
        "outdir_txt2img_samples",
        "outdir_grids",
        "temp_dir",
        "control_net_detectedmap_dir",
        EXTENSION_PATH_KEY,
    } <= set(keys)
    assert "outdir_init_images" in keys and len(keys) == 12


@pytest.mark.parametrize("value", OUTSIDE)
def test_a_path_setting_outside_the_data_dir_is_refused_naming_the_setting(data_dir, value):
    s = service(data_dir)
    for key in path_keys(s.options):
        before = s.options.as_dict()
        with pytest.raises(InvalidRequestError, match=f"Setting '{key}'"):
            s.set({key: value})
        with pytest.raises(InvalidRequestError, match=f"Setting '{key}'"):
            s.checked_overrides({key: value})
        assert s.options.as_dict() == before and not s.paths.config_file.exists()


@pytest.mark.parametrize("value", INSIDE)
def test_a_path_setting_inside_the_data_dir_is_stored(data_dir, value):
    s = service(data_dir)
    value = value.format(data=data_dir)
    for key in path_keys(s.options):
        s.set({key: value})
        assert s.options.data[key] == value


def test_a_folder_allowed_by_flag_may_be_named_and_is_repeatable(data_dir, tmp_path):
    other = tmp_path / "other"
    s = service(
        data_dir, "--gradio-allowed-path", str(tmp_path / "elsewhere"), "--gradio-allowed-path", str(other)
    )
    s.set({"outdir_txt2img_samples": str(other / "txt2img"), "outdir_grids": "outputs/link-out/grids"})
    with pytest.raises(InvalidRequestError, match="outdir_samples"):
        s.set({"outdir_samples": str(tmp_path)})


# -- locks -----------------------------------------------------------------------------------------------


def test_freeze_settings_refuses_every_change_but_not_the_current_value(tmp_path):
    s = service(tmp_path, "--freeze-settings")
    with pytest.raises(InvalidRequestError, match="'samples_save' cannot be changed.*--freeze-settings"):
        s.set({"samples_save": False})
    with pytest.raises(InvalidRequestError, match="--freeze-settings"):
        s.checked_overrides({"CLIP_stop_at_last_layers": 2})
    s.set({"samples_save": True})  # unchanged: nothing to refuse
    assert s.options.samples_save is True


def test_hide_ui_dir_config_locks_folders_and_file_names_only(tmp_path):
    s = service(tmp_path, "--hide-ui-dir-config")
    for key in (
        "outdir_txt2img_samples",
        "samples_filename_pattern",
        "directories_filename_pattern",
        EXTENSION_PATH_KEY,
    ):
        with pytest.raises(InvalidRequestError, match=f"'{key}' cannot be changed.*--hide-ui-dir-config"):
            s.set({key: "outputs/x"})
        with pytest.raises(InvalidRequestError, match="--hide-ui-dir-config"):
            s.checked_overrides({key: "outputs/x"})
    s.set({"samples_save": False})
    assert s.options.samples_save is False


def test_frozen_sections_and_specific_settings(tmp_path):
    s = service(
        tmp_path, "--freeze-settings-in-sections", "sd, vae", "--freeze-specific-settings", "samples_format"
    )
    with pytest.raises(InvalidRequestError, match="section 'sd' is frozen"):
        s.set({"CLIP_stop_at_last_layers": 2})
    with pytest.raises(InvalidRequestError, match="--freeze-specific-settings"):
        s.set({"samples_format": "jpg"})
    s.set({"samples_save": False})


def test_an_api_write_of_a_restricted_setting_is_refused(tmp_path):
    s = service(tmp_path)
    s.options.add_option("ext_secret_url", OptionInfo("", "URL", restrict_api=True))
    with pytest.raises(InvalidRequestError, match="through the API"):
        s.set({"ext_secret_url": "http://x"}, is_api=True)
    s.set({"ext_secret_url": "http://x"})


# -- override_settings -----------------------------------------------------------------------------------


def test_overrides_are_checked_like_settings_and_unknown_keys_are_warned_about(tmp_path):
    s = service(tmp_path)
    overrides, warnings = s.checked_overrides({"sd_model_checkpoint": "b", "no_such_setting": 1})
    assert overrides == {"sd_model_checkpoint": "b.safetensors [abcdef0123]"}
    assert warnings == ["override_settings: unknown setting 'no_such_setting' (ignored)"]
    with pytest.raises(InvalidRequestError, match="no checkpoint is called 'bogus'"):
        s.checked_overrides({"sd_model_checkpoint": "bogus"})
    with pytest.raises(InvalidRequestError, match="Setting 'samples_format'"):
        s.checked_overrides({"samples_format": "sh"})
