"""A1111's localization files: the data folder's localizations/*.json and extensions' localizations/,
merged per name in A1111's order, the "Localization" setting's choices, and bad files left out."""

from __future__ import annotations

import json
from pathlib import Path

from modules.sumi.services.settings.localizations import Localizations


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_folder_then_extensions_merge_per_name_later_files_win(tmp_path):
    folder = tmp_path / "localizations"
    _write(folder / "de_DE.json", {"Generate": "Generieren", "Seed": "Saat"})
    ext_file = _write(
        tmp_path / "ext" / "localizations" / "de_DE.json", {"Seed": "Startwert", "Extra": "Zusatz"}
    )
    only_ext = _write(tmp_path / "ext" / "localizations" / "fr_FR.json", {"Generate": "Générer"})
    loc = Localizations(folder, lambda: [ext_file, only_ext])
    assert loc.setting_choices() == {"choices": ["None", "de_DE", "fr_FR"]}
    assert loc.data("de_DE") == {"Generate": "Generieren", "Seed": "Startwert", "Extra": "Zusatz"}
    assert loc.data("fr_FR") == {"Generate": "Générer"}
    assert loc.data("None") == {} and loc.data("xx") == {} and loc.data(None) == {}


def test_a_broken_file_is_logged_and_the_others_still_apply(tmp_path, caplog):
    folder = tmp_path / "localizations"
    _write(folder / "ja.json", {"Generate": "生成"})
    broken = _write(tmp_path / "ext" / "localizations" / "ja.json", "{not json")
    a_list = _write(tmp_path / "ext2" / "localizations" / "ja.json", ["not", "an", "object"])
    _write(folder / "notes.txt", "not a localization")
    loc = Localizations(folder, lambda: [broken, a_list])
    assert loc.data("ja") == {"Generate": "生成"}
    assert str(broken) in caplog.text and str(a_list) in caplog.text
    assert loc.names() == ["ja"]


def test_app_reads_the_data_folder_and_extensions_and_publishes_the_flag(tmp_path, make_app):
    data = tmp_path / "data"
    _write(data / "localizations" / "xx.json", {"Generate": "XX-Generate"})
    _write(data / "extensions" / "loc-ext" / "localizations" / "xx.json", {"Seed": "XX-Seed"})
    _write(data / "config.json", {"localization": "xx"})
    app = make_app(data, start=False)
    assert app.args.localizations_dir == str(data / "localizations")
    assert app.args.ui_config_file == str(data / "ui-config.json")
    assert app.options.localization == "xx"
    assert app.localizations.data(app.options.localization) == {"Generate": "XX-Generate", "Seed": "XX-Seed"}
    choices = app.options.data_labels["localization"].resolved_component_args()["choices"]
    assert choices == ["None", "xx"]


def test_localizations_dir_flag_moves_the_folder(tmp_path, make_app):
    other = tmp_path / "elsewhere"
    _write(other / "yy.json", {"Seed": "YY"})
    app = make_app(tmp_path / "data", "--localizations-dir", str(other), start=False)
    assert app.paths.localizations_dir == other and app.localizations.names() == ["yy"]
