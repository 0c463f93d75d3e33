"""tools/scan_a1111_surface.py on a small synthetic A1111 checkout and two synthetic extensions: every
import form and attribute use it records (and what it leaves out), and its JSON output read back by
the loader the import coverage test uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.compat.a1111_surface import Surface, load
from tests.fixtures.files import write_files
from tools import scan_a1111_surface as scanner

A1111_FILES = {
    "launch.py": """
        args = None
        def is_installed(package): ...
        def run(command): ...
    """,
    "modules/shared.py": """
        import sys
        from modules import options
        opts: options.Options = None
        cmd_opts = None
        state = None
        sd_model = None
        def listfiles(dirname): ...
    """,
    "modules/options.py": """
        class Options:
            typemap = {int: float}
            def __init__(self, data_labels):
                self.data = {}
            def add_option(self, key, info): ...
    """,
    "modules/shared_options.py": """
        options_templates.update(options_section(("saving-images", "Saving images"), {
            "samples_format": OptionInfo("png", "File format"),
            "outdir_samples": OptionInfo("", "Output directory"),
        }))
    """,
    "modules/cmd_args.py": """
        parser.add_argument("--medvram", action="store_true")
        parser.add_argument("--ckpt-dir", type=str)
        parser.add_argument("--lowvram", dest="low_vram_mode", action="store_true")
    """,
    "modules/processing.py": """
        class StableDiffusionProcessing:
            prompt: str = ""
            def __post_init__(self):
                self.all_prompts = None
            def close(self): ...
        class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
            enable_hr: bool = False
        class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
            def __post_init__(self):
                self.init_images = []
        def process_images(p): ...
    """,
    "modules/scripts.py": """
        class Script: ...
        class ScriptRunner:
            def __init__(self):
                self.alwayson_scripts = []
        scripts_txt2img: ScriptRunner = None
        scripts_img2img: ScriptRunner = None
    """,
    "modules/sd_hijack.py": "model_hijack = None\n",
    "modules/sd_models.py": "model_data = None\ndef list_models(): ...\n",
    "modules/images.py": "def save_image(image, path): ...\n",
    "modules/infotext_utils.py": """
        import sys
        sys.modules["modules.generation_parameters_copypaste"] = sys.modules[__name__]
        def register_paste_params_button(binding): ...
    """,
    "modules/ui.py": "def create_output_panel(tabname, outdir): ...\n",
    "modules/api/api.py": "class Api: ...\n",
    "modules/api/models.py": "class TextToImageResponse: ...\n",
    "extensions-builtin/Lora/preload.py": """
        def preload(parser):
            parser.add_argument("--lora-dir", type=str)
    """,
}

EXTENSIONS = {
    "ext-one": {
        "scripts/one.py": """
            import modules.scripts as scripts
            from modules import shared
            from modules.shared import opts
            from modules.processing import process_images, gone_in_1_10
            from modules.api import models
            from modules.api.models import *
            import modules
            import launch
            from launch import run
            try:
                from modules.postprocess import codeformer_model  # another fork's module
            except ImportError:
                pass

            class Suffix(scripts.Script):
                def process(self, p):
                    p.prompt = p.prompt + "!"
                    if p.enable_hr and p.init_images and p._ext_private:
                        shared.state.job = "x"
                    runners = scripts.scripts_txt2img.alwayson_scripts
                    fmt = shared.opts.samples_format, opts.outdir_samples, shared.opts.one_ext_option
                    flags = shared.cmd_opts.medvram, shared.cmd_opts.low_vram_mode, shared.cmd_opts.one_flag
                    shared.opts.data["x"] = 1
                    shared.opts.__getattr__("y")
                    getattr(shared.opts, "read_by_getattr", None)
                    shared.log.info("SD.Next only")
                    launch.is_installed("numpy")
                    modules.ui.create_output_panel("one", "")
                    return fmt, flags, runners
        """,
        "tests/test_one.py": "from modules import sd_vae\nsd_vae.reload_vae_weights()\n",
    },
    "ext-two": {
        "two.py": """
            import modules.generation_parameters_copypaste as copypaste
            from modules import images, sd_hijack, sd_models
            from modules.sd_models import model_data

            copypaste.register_paste_params_button(None)
            sd_hijack.model_hijack.embedding_db.load()
            model_data.sd_model.cond_stage_model
            sd_models.model_data.loaded_sd_models
            images = []
            images.append(1)
            shared_cmd = sd_models.list_models()
        """,
    },
}

EXPECTED = {
    "modules": {
        "launch": ["ext-one"],
        "modules.api.models": ["ext-one"],
        "modules.generation_parameters_copypaste": ["ext-two"],
        "modules.images": ["ext-two"],
        "modules.processing": ["ext-one"],
        "modules.scripts": ["ext-one"],
        "modules.sd_hijack": ["ext-two"],
        "modules.sd_models": ["ext-two"],
        "modules.shared": ["ext-one"],
    },
    "names": {
        "launch": {"is_installed": ["ext-one"], "run": ["ext-one"]},
        "modules.processing": {"gone_in_1_10": ["ext-one"], "process_images": ["ext-one"]},
        "modules.scripts": {"Script": ["ext-one"], "scripts_txt2img": ["ext-one"]},
        "modules.sd_hijack": {"model_hijack": ["ext-two"]},
        "modules.sd_models": {"list_models": ["ext-two"], "model_data": ["ext-two"]},
        "modules.shared": {"cmd_opts": ["ext-one"], "opts": ["ext-one"], "state": ["ext-one"]},
        "modules.ui": {"create_output_panel": ["ext-one"]},
    },
    "opts": {"data": ["ext-one"], "outdir_samples": ["ext-one"], "samples_format": ["ext-one"]},
    "state": {},
    "cmd_opts": {"low_vram_mode": ["ext-one"], "medvram": ["ext-one"]},
    "sd_model": {},
    "model_hijack": {"embedding_db": ["ext-two"]},
    "model_data": {"loaded_sd_models": ["ext-two"], "sd_model": ["ext-two"]},
    "script_runner_txt2img": {"alwayson_scripts": ["ext-one"]},
    "script_runner_img2img": {},
    "p_attrs": {"prompt": ["ext-one"]},
    "p_txt2img_attrs": {"enable_hr": ["ext-one"]},
    "p_img2img_attrs": {"init_images": ["ext-one"]},
    "extension_options": {"one_ext_option": ["ext-one"]},
    "extension_flags": {"one_flag": ["ext-one"]},
}

INDEX = {
    "about": "two synthetic extensions",
    "extensions": {
        "ext-one": {"category": "A", "source": "someone/ext-one@0000001"},
        "ext-two": {"category": "C", "source": "someone/ext-two@0000002"},
    },
}


@pytest.fixture
def trees(tmp_path) -> tuple[Path, Path, Path]:
    """(A1111 checkout, folder of extensions, index JSON)."""
    a1111 = write_files(tmp_path / "a1111", A1111_FILES)
    extensions = tmp_path / "extensions"
    for name, files in EXTENSIONS.items():
        write_files(extensions / name, files)
    bom = extensions / "ext-two" / "two.py"  # saved by an editor that writes a byte order mark
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())
    index = tmp_path / "index.json"
    index.write_text(json.dumps(INDEX), encoding="utf-8")
    return a1111, extensions, index


def test_what_a1111_has_is_read_from_its_sources(trees):
    ref = scanner.A1111.read(trees[0])
    assert {
        "launch",
        "modules.api",
        "modules.api.models",
        "modules.generation_parameters_copypaste",
    } <= ref.modules
    assert ref.names["modules.shared"] >= {"opts", "cmd_opts", "state", "sd_model", "listfiles", "sys"}
    assert ref.names["modules.api"] == {"api", "models"}
    assert ref.processing == {
        "base": {"prompt", "all_prompts", "close", "__post_init__"},
        "txt2img": {"enable_hr"},
        "img2img": {"init_images"},
    }
    assert {"typemap", "data", "add_option", "samples_format", "outdir_samples"} <= ref.options
    assert ref.flags == {"medvram", "ckpt_dir", "low_vram_mode", "lora_dir"}


def test_each_import_form_and_attribute_use_is_found(trees):
    a1111, extensions, _ = trees
    document = scanner.surface(INDEX["extensions"], extensions, scanner.A1111.read(a1111))
    assert document["extensions"] == INDEX["extensions"]
    assert {table: document[table] for table in EXPECTED} == EXPECTED


def test_the_json_output_round_trips_through_the_coverage_tests_loader(trees, tmp_path):
    a1111, extensions, index = trees
    out = tmp_path / "surface.json"
    argv = ["--a1111", str(a1111), "--extensions", str(extensions), "--index", str(index), "-o", str(out)]
    assert scanner.main(argv) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["about"] == "two synthetic extensions"  # kept from the index
    surface = load(out)
    assert isinstance(surface, Surface)
    assert surface.extensions == {
        "ext-one": ("A", "someone/ext-one@0000001"),
        "ext-two": ("C", "someone/ext-two@0000002"),
    }
    assert surface.modules == {module: set(users) for module, users in EXPECTED["modules"].items()}
    assert surface.names["modules.shared"] == {
        "cmd_opts": {"ext-one"},
        "opts": {"ext-one"},
        "state": {"ext-one"},
    }
    assert surface.p_img2img_attrs == {"init_images": {"ext-one"}}
    assert surface.extension_flags == {"one_flag": {"ext-one"}}


def test_an_extension_without_a_folder_is_refused(trees, tmp_path):
    a1111, extensions, index = trees
    (extensions / "ext-two" / "two.py").unlink()
    (extensions / "ext-two").rmdir()
    with pytest.raises(SystemExit):
        scanner.main(
            [
                "--a1111",
                str(a1111),
                "--extensions",
                str(extensions),
                "--index",
                str(index),
                "-o",
                str(tmp_path / "x.json"),
            ]
        )


def test_the_shipped_json_loads_and_the_loader_refuses_unknown_tables(tmp_path):
    surface = load()
    assert len(surface.extensions) == 39 and "modules.shared" in surface.modules
    document = json.loads((Path(__file__).with_name("a1111_surface.json")).read_text(encoding="utf-8"))
    document["made_up_table"] = {}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match="made_up_table"):
        load(bad)
