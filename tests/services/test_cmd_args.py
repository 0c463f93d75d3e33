import argparse

import pytest

from modules.sumi.services.settings import flags as cmd_args


def test_defaults_match_a1111():
    ns = cmd_args.parse_args([])
    assert ns.port is None
    assert ns.precision == "autocast"
    assert ns.use_cpu == []
    assert ns.styles_file == []
    assert not (ns.api or ns.nowebui or ns.listen or ns.no_half or ns.xformers or ns.no_hashing)
    assert ns.data_dir is None and ns.ckpt is None and ns.vae_path is None


def test_a1111_command_line_parses():
    ns = cmd_args.parse_args(
        [
            "--listen",
            "--port",
            "9000",
            "--api",
            "--api-auth",
            "u:p",
            "--xformers",
            "--no-half-vae",
            "--precision",
            "full",
            "--ckpt-dir",
            "/m",
            "--use-cpu",
            "all",
            "--device-id",
            "1",
            "--disable-safe-unpickle",
            "--opt-sdp-attention",
        ]
    )
    assert ns.listen and ns.api and ns.xformers and ns.no_half_vae and ns.disable_safe_unpickle
    assert ns.port == 9000 and ns.api_auth == "u:p" and ns.precision == "full"
    assert ns.ckpt_dir == "/m" and ns.use_cpu == ["all"] and ns.device_id == "1"


def test_use_cpu_is_lowercased_and_takes_several():
    assert cmd_args.parse_args(["--use-cpu", "SD", "Interrogate"]).use_cpu == ["sd", "interrogate"]


def test_bad_precision_is_rejected():
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--precision", "double"])


def test_port_and_host_rules():
    assert cmd_args.server_port(cmd_args.parse_args([])) == 7860
    assert cmd_args.server_port(cmd_args.parse_args(["--nowebui"])) == 7861
    assert cmd_args.server_port(cmd_args.parse_args(["--nowebui", "--port", "1234"])) == 1234
    assert cmd_args.server_host(cmd_args.parse_args([])) == "127.0.0.1"
    assert cmd_args.server_host(cmd_args.parse_args(["--listen"])) == "0.0.0.0"
    assert cmd_args.server_host(cmd_args.parse_args(["--listen", "--server-name", "h"])) == "h"


def test_not_yet_implemented_flags_lists_only_passed_ones():
    assert cmd_args.not_yet_implemented_flags(cmd_args.parse_args(["--api"])) == []
    ns = cmd_args.parse_args(["--autolaunch", "--lora-dir", "/l", "--styles-file", "s.csv", "--xformers"])
    assert cmd_args.not_yet_implemented_flags(ns) == ["autolaunch"]
    assert cmd_args.flag_name("lora_dir") == "--lora-dir"


def test_unbuilt_flags_are_marked_not_yet_implemented():
    assert {"autolaunch", "share"} <= cmd_args.NOT_YET_IMPLEMENTED
    assert not {"medvram", "lowvram", "medvram_sdxl"} & cmd_args.NOT_YET_IMPLEMENTED  # acted on
    extension_flags = {"enable_insecure_extension_access", "skip_install", "disable_all_extensions"}
    assert not extension_flags & cmd_args.NOT_YET_IMPLEMENTED
    dests = {action.dest for action in cmd_args.build_parser()._actions}
    assert dests >= cmd_args.NOT_YET_IMPLEMENTED


def test_always_on_notes():
    ns = cmd_args.parse_args(["--opt-sdp-attention", "--no-download-sd-model"])
    notes = cmd_args.always_on_notes(ns)
    assert len(notes) == 2 and notes[0].startswith("--no-download-sd-model: ")


def test_extensions_can_add_and_redeclare_flags():
    parser = cmd_args.build_parser()
    parser.add_argument("--controlnet-dir", type=str, default="ext-default", help="from an extension")
    parser.add_argument("--my-ext-flag", action="store_true")
    ns = cmd_args.parse_args(["--my-ext-flag"], parser)
    assert ns.my_ext_flag and ns.controlnet_dir == "ext-default"


def test_every_flag_has_help():
    for action in cmd_args.build_parser()._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, action.dest


def test_parser_is_fresh_each_time():
    a = cmd_args.build_parser()
    a.add_argument("--only-here", action="store_true")
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--only-here"])


# --- paths (flags -> folders) ----------------------------------------------------------------------


def test_paths_default_layout(tmp_path):
    from modules.sumi.services.settings.paths import DataPaths

    p = DataPaths.from_args(cmd_args.parse_args([]), tmp_path)
    assert p.data_dir == tmp_path and p.models_dir == tmp_path / "models"
    assert p.ckpt_dirs == (tmp_path / "models" / "Stable-diffusion",)
    assert p.vae_dirs == (tmp_path / "models" / "VAE",)
    assert p.lora_dir == tmp_path / "models" / "Lora" and p.lycoris_dir == tmp_path / "models" / "LyCORIS"
    assert (
        p.embeddings_dir == tmp_path / "embeddings"
        and p.hypernetwork_dir == tmp_path / "models" / "hypernetworks"
    )
    assert p.config_file == tmp_path / "config.json" and p.ui_config_file == tmp_path / "ui-config.json"
    assert p.cache_file == tmp_path / "cache.json" and p.params_file == tmp_path / "params.txt"
    assert p.outputs_dir == tmp_path / "outputs" and p.extensions_dir == tmp_path / "extensions"
    assert p.ckpt_file is None


def test_paths_data_dir_moves_everything(tmp_path):
    from modules.sumi.services.settings.paths import DataPaths

    data = tmp_path / "data"
    p = DataPaths.from_args(cmd_args.parse_args(["--data-dir", str(data)]), tmp_path / "repo")
    assert p.repo_root == tmp_path / "repo"
    for folder in (*p.folders(), p.cache_file, p.styles_file, p.params_file):
        assert data in folder.parents or folder == data, folder


def test_paths_overrides(tmp_path):
    from modules.sumi.services.settings.paths import DataPaths

    ns = cmd_args.parse_args(
        ["--models-dir", str(tmp_path / "m"), "--ckpt-dir", str(tmp_path / "c"), "--vae-dir", str(tmp_path / "v"),
         "--lora-dir", str(tmp_path / "l"), "--ckpt", str(tmp_path / "x.safetensors"), "--ui-settings-file", str(tmp_path / "s.json")]
    )  # fmt: skip
    p = DataPaths.from_args(ns, tmp_path)
    assert p.ckpt_dirs == (tmp_path / "m" / "Stable-diffusion", tmp_path / "c")
    assert p.vae_dirs == (tmp_path / "m" / "VAE", tmp_path / "v")
    assert p.lora_dir == tmp_path / "l" and p.ckpt_file == tmp_path / "x.safetensors"
    assert p.config_file == tmp_path / "s.json" and p.embeddings_dir == tmp_path / "embeddings"


def test_paths_ensure_and_resolve(tmp_path):
    from modules.sumi.services.settings.paths import DataPaths

    p = DataPaths.from_args(cmd_args.parse_args(["--ckpt-dir", str(tmp_path / "extra")]), tmp_path)
    p.ensure()
    p.ensure()
    assert all(folder.is_dir() for folder in p.folders())
    assert not (tmp_path / "extra").exists()  # a user-given folder is not invented
    assert (tmp_path / "localizations").is_dir()  # A1111 always has it; extensions list it unchecked
    assert p.resolve("outputs/txt2img-images") == tmp_path / "outputs" / "txt2img-images"
    assert p.resolve(tmp_path / "abs") == tmp_path / "abs"


def test_paths_a1111_module_names(monkeypatch, tmp_path):
    from modules import paths
    from modules.sumi.services.settings.paths import REPO_ROOT

    monkeypatch.setattr("modules.shared._app", None)  # no App running: the command line decides
    monkeypatch.setattr("sys.argv", ["webui.py", "--data-dir", str(tmp_path)])
    assert paths.data_path == str(tmp_path) and paths.models_path == str(tmp_path / "models")
    assert paths.script_path == str(REPO_ROOT)
    monkeypatch.setattr("sys.argv", ["pytest", "--port", "not-a-number", "-k", "x"])
    assert paths.data_path == str(REPO_ROOT)
    with pytest.raises(AttributeError):
        paths.no_such_name  # noqa: B018
