import json

import pytest

from modules.sumi.services.settings.options import (
    OptionHTML,
    OptionInfo,
    Options,
    builtin_options,
    options_section,
)

A1111_DEFAULTS = {
    "sd_model_checkpoint": None,
    "sd_vae": "Automatic",
    "sd_vae_overrides_per_model_preferences": True,
    "sd_checkpoints_limit": 1,
    "sd_checkpoints_keep_in_cpu": True,
    "CLIP_stop_at_last_layers": 1,
    "eta_ancestral": 1.0,
    "eta_ddim": 0.0,
    "eta_noise_seed_delta": 0,
    "samples_save": True,
    "samples_format": "png",
    "grid_save": True,
    "grid_format": "png",
    "enable_pnginfo": True,
    "save_txt": False,
    "outdir_samples": "",
    "outdir_txt2img_samples": "outputs/txt2img-images",
    "outdir_grids": "",
    "outdir_txt2img_grids": "outputs/txt2img-grids",
    "samples_filename_pattern": "",
    "save_to_dirs": True,
    "directories_filename_pattern": "[date]",
    "add_model_hash_to_info": True,
    "add_model_name_to_info": True,
    "add_version_to_infotext": True,
    "return_grid": True,
    "show_progress_every_n_steps": 10,
    "live_previews_enable": True,
    "live_preview_content": "Prompt",
    "show_progressbar": True,
    "emphasis": "Original",
    "comma_padding_backtrack": 20,
    "auto_vae_precision": True,
    # Extra Networks (A1111 1.10)
    "extra_networks_show_hidden_directories": True,
    "extra_networks_dir_button_function": False,
    "extra_networks_hidden_models": "When searched",
    "extra_networks_default_multiplier": 1.0,
    "extra_networks_card_width": 0,
    "extra_networks_card_height": 0,
    "extra_networks_card_text_scale": 1.0,
    "extra_networks_card_show_desc": True,
    "extra_networks_card_order_field": "Path",
    "extra_networks_card_order": "Ascending",
    "extra_networks_add_text_separator": " ",
    "ui_extra_networks_tab_reorder": "",
    "sd_lora": "None",
    "lora_preferred_name": "Alias from file",
    "lora_show_all": False,
    "lora_hide_unknown_for_versions": [],
    # prompt editing keys (User interface)
    "keyedit_precision_attention": 0.1,
    "keyedit_precision_extra": 0.05,
    "keyedit_delimiters": ".,\\/!?%^*;:{}=`~() ",
    "keyedit_delimiters_whitespace": ["Tab", "Carriage Return", "Line Feed"],
    "keyedit_move": True,
}
SUMI_DEFAULTS = {
    "randn_source": "CPU",
    "max_steps": 150,
    "max_batch_size": 32,
    "max_batch_count": 100,
    "max_image_size": 2048,
}


def test_builtin_defaults():
    opts = Options()
    for key, value in {**A1111_DEFAULTS, **SUMI_DEFAULTS}.items():
        assert getattr(opts, key) == value, key
        assert opts.get_default(key) == value


def test_infotext_labels():
    labels = builtin_options()
    assert labels["CLIP_stop_at_last_layers"].infotext == "Clip skip"
    assert labels["eta_noise_seed_delta"].infotext == "ENSD"
    assert labels["randn_source"].infotext == "RNG"
    assert labels["sd_model_checkpoint"].infotext == "Model hash"


def test_sumi_options_say_so():
    labels = builtin_options()
    for key in ("max_steps", "max_batch_size", "max_batch_count", "max_image_size"):
        assert "Sumi" in labels[key].label


def test_builtin_options_are_fresh_objects():
    a, b = Options(), Options()
    a.data_labels["samples_save"].onchange = print
    assert b.data_labels["samples_save"].onchange is None


def test_option_info_chaining():
    info = OptionInfo(1, "x").info("hint").needs_reload_ui().needs_restart().link("wiki", "https://e")
    assert (
        "(hint)" in info.comment_after
        and "Reload UI" in info.comment_after
        and "restart" in info.comment_after
    )
    assert "https://e" in info.comment_before


def test_set_runs_onchange_and_reports_change():
    opts = Options()
    calls = []
    opts.onchange("samples_save", lambda: calls.append(opts.samples_save), call=False)
    assert opts.set("samples_save", False) is True
    assert opts.set("samples_save", False) is False
    assert calls == [False]


def test_set_checks_type_and_choices():
    opts = Options()
    with pytest.raises(ValueError, match="expects a bool"):
        opts.set("samples_save", "yes")
    with pytest.raises(ValueError, match="one of"):
        opts.set("randn_source", "AMD")
    with pytest.raises(KeyError):
        opts.set("no_such_option", 1)
    assert opts.set("eta_ancestral", 1)  # int is fine for a float
    assert opts.set("sd_model_checkpoint", "x.safetensors")  # None default takes anything


def test_failed_onchange_restores_old_value():
    opts = Options()

    def boom():
        raise RuntimeError("cannot load")

    opts.onchange("sd_vae", boom, call=False)
    with pytest.raises(RuntimeError):
        opts.set("sd_vae", "None")
    assert opts.sd_vae == "Automatic"


def test_restrict_api():
    opts = Options()
    opts.add_option("secret", OptionInfo("a", "Secret", restrict_api=True))
    assert opts.set("secret", "b", is_api=True) is False
    assert opts.set("secret", "b") is True


def test_attribute_access_like_a1111():
    opts = Options()
    opts.samples_format = "jpg"
    assert opts.samples_format == "jpg" and opts.data["samples_format"] == "jpg"
    assert not hasattr(opts, "nope")
    opts.add_option("ext_opt", OptionInfo(3, "Extension option", section=("ext", "Ext")))
    assert opts.ext_opt == 3 and opts.data_labels["ext_opt"].section == ("ext", "Ext")


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "config.json"
    opts = Options()
    opts.set("samples_format", "webp")
    opts.set("CLIP_stop_at_last_layers", 2)
    opts.save(path)
    again = Options()
    assert again.load(path) == []
    assert again.samples_format == "webp" and again.CLIP_stop_at_last_layers == 2
    assert json.loads(path.read_text())["samples_format"] == "webp"


def test_load_keeps_unknown_keys_until_an_extension_claims_them(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"ext_thing": 5, "samples_save": False}))
    opts = Options()
    opts.load(path)
    assert opts.data["ext_thing"] == 5
    opts.add_option("ext_thing", OptionInfo(1, "Thing"))
    assert opts.ext_thing == 5
    opts.save(path)
    assert json.loads(path.read_text())["ext_thing"] == 5


def test_load_corrupt_file_backs_it_up(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    opts = Options()
    warnings = opts.load(path)
    assert len(warnings) == 1 and "could not be read" in warnings[0]
    assert not path.exists()
    backups = list(tmp_path.glob("config.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text() == "{not json"
    assert opts.samples_save is True


def test_load_bad_typed_value_falls_back_to_default(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"samples_save": "yes", "eta_ddim": 1}))
    opts = Options()
    warnings = opts.load(path)
    assert len(warnings) == 1 and "samples_save" in warnings[0]
    assert opts.samples_save is True and opts.eta_ddim == 1


def test_load_drops_damage_an_unchecked_write_left_in_config_json(tmp_path):
    path = tmp_path / "config.json"
    damage = {"samples_format": "sh", "max_image_size": -5, "eta_noise_seed_delta": 2**70, "n_rows": 3}
    path.write_text(json.dumps(damage))
    opts = Options()
    warnings = opts.load(path)
    assert len(warnings) == 3 and all("using the default" in w for w in warnings)
    assert (opts.samples_format, opts.max_image_size, opts.eta_noise_seed_delta, opts.n_rows) == (
        "png",
        2048,
        0,
        3,
    )


def test_load_missing_file_gives_defaults(tmp_path):
    opts = Options()
    opts.samples_save = False
    assert opts.load(tmp_path / "none.json") == []
    assert opts.samples_save is True


def test_load_migrates_old_vae_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"sd_vae_as_default": True}))
    opts = Options()
    opts.load(path)
    assert opts.sd_vae_overrides_per_model_preferences is False


def test_dumpjson_and_as_dict():
    opts = Options()
    opts.data["unclaimed"] = 1
    dumped = json.loads(opts.dumpjson())
    assert dumped["samples_format"] == "png" and "_comments_after" in dumped
    assert opts.as_dict()["unclaimed"] == 1 and opts.as_dict()["sd_vae"] == "Automatic"


def test_cast_value():
    opts = Options()
    assert opts.cast_value("eta_noise_seed_delta", "12") == 12
    assert opts.cast_value("samples_save", "False") is False
    assert opts.cast_value("eta_ddim", "0.5") == 0.5


def test_option_html_is_not_saved(tmp_path):
    opts = Options()
    opts.add_option("note", OptionHTML("<b>hi</b>"))
    assert "note" not in opts.data and opts.set("note", "x") is False


def test_options_section_with_category():
    section = options_section(("a", "A", "cat"), {"k": OptionInfo(1, "K")})
    assert section["k"].section == ("a", "A") and section["k"].category_id == "cat"
