"""Output folder defaults as A1111 writes them: relative under the working folder, else absolute under
the data dir, so an extension opening `opts.outdir_*` as is meets the folders Sumi writes to."""

from __future__ import annotations

import json
from pathlib import Path

from modules.sumi.services.settings.flags import build_parser
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.output_defaults import anchor_output_defaults
from modules.sumi.services.settings.paths import DataPaths


def test_a_data_dir_elsewhere_makes_the_output_defaults_absolute_and_sumi_resolves_them_the_same(tmp_path):
    data = tmp_path / "data"
    options = Options()
    changed = anchor_output_defaults(options, data, cwd=tmp_path / "install")
    assert "outdir_txt2img_samples" in changed and "outdir_save" in changed
    assert options.outdir_txt2img_samples == str(data / "outputs" / "txt2img-images")
    assert options.get_default("outdir_extras_samples") == str(data / "outputs" / "extras-images")
    assert options.outdir_samples == ""  # empty means "the folders below", as before
    paths = DataPaths.from_args(build_parser().parse_args(["--data-dir", str(data)]), tmp_path / "install")
    assert paths.resolve(options.outdir_txt2img_samples) == paths.resolve("outputs/txt2img-images")


def test_the_data_dir_as_working_folder_keeps_a1111s_relative_defaults(tmp_path):
    options = Options()
    assert anchor_output_defaults(options, tmp_path, cwd=tmp_path) == []
    assert options.outdir_txt2img_samples == "outputs/txt2img-images"


def test_a_folder_the_user_set_in_config_json_is_kept(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"outdir_txt2img_samples": "mine/txt2img"}))
    options = Options()
    anchor_output_defaults(options, tmp_path / "data", cwd=tmp_path)
    options.load(config)
    assert options.outdir_txt2img_samples == "mine/txt2img"
    assert Path(options.outdir_img2img_samples).is_absolute()
