"""A1111's built-in Lora extension modules (`networks`, `lora`, `network`), importable by their top-level
names as extensions do (tagcomplete, lora-block-weight): the files in models/Lora, and the networks the
last job applied."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from modules import paths, processing
from modules.sumi.engine.checkpoint import load_checkpoint
from tests.fixtures.tiny_networks import write_lora


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("builtin-lora"), "--nowebui")
    demo = load_checkpoint(app.checkpoints.list()[0].filename)
    components = {"family": "SD1", "unet": demo.unet, "text_encoders": [s.model for s in demo.text_encoders]}
    write_lora(app.paths.lora_dir / "style_a.safetensors", components, seed=1, output_name="stylish")
    write_lora(app.paths.lora_dir / "style_b.safetensors", components, seed=2)
    app.loras.refresh()
    return app


def _modules(*names: str) -> list[Any]:
    """`import networks` etc., as extensions write it (by name: they are not on the type checker's path)."""
    return [importlib.import_module(name) for name in names]


def _run(prompt: str) -> processing.Processed:
    p = processing.StableDiffusionProcessingTxt2Img(
        prompt=prompt, steps=1, width=64, height=64, seed=3, sampler_name="Euler", do_not_save_samples=True
    )
    return processing.process_images(p)


def test_the_builtin_lora_folder_is_a1111s_extensions_builtin_dir_and_imports_by_top_level_name(app):
    lora, network, networks = _modules("lora", "network", "networks")
    folder = Path(str(paths.extensions_builtin_dir)) / "Lora"
    assert Path(str(networks.__file__)).parent == folder and Path(str(lora.__file__)).parent == folder
    assert network.NetworkOnDisk and network.Network


def test_available_networks_list_the_lora_folder_with_aliases(app):
    lora, networks = _modules("lora", "networks")
    available = networks.available_networks
    assert set(available) == {"style_a", "style_b"}
    a = available["style_a"]
    assert a.name == "style_a" and Path(a.filename) == app.paths.lora_dir / "style_a.safetensors"
    assert a.alias == "stylish" and a.is_safetensors and a.get_alias() == "stylish"
    assert networks.available_network_aliases["stylish"] is a is networks.available_network_aliases["style_a"]
    assert (
        set(lora.available_loras) == set(available)
        and lora.available_loras["style_b"] is available["style_b"]
    )
    assert "stylish" not in networks.forbidden_network_aliases


def test_list_available_networks_finds_a_file_added_since(app, tmp_path):
    lora, networks = _modules("lora", "networks")
    source = app.paths.lora_dir / "style_b.safetensors"
    copy = app.paths.lora_dir / "sub" / "style_c.safetensors"
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(source.read_bytes())
    try:
        assert "style_c" not in networks.available_networks
        lora.list_available_loras()
        assert "style_c" in networks.available_networks
    finally:
        copy.unlink()
        networks.list_available_networks()
    assert "style_c" not in lora.available_loras


def test_loaded_networks_are_the_last_jobs_lora_tags_with_their_multipliers(app):
    lora, networks = _modules("lora", "networks")
    _run("a fox <lora:stylish:0.5:0.25> <lora:style_b:1>")
    loaded = networks.loaded_networks
    assert [n.name for n in loaded] == ["stylish", "style_b"]
    first = loaded[0]
    assert (
        first.mentioned_name == "stylish" and first.network_on_disk is networks.available_networks["style_a"]
    )
    assert (first.te_multiplier, first.unet_multiplier, first.dyn_dim) == (0.5, 0.25, None)
    assert (loaded[1].te_multiplier, loaded[1].unet_multiplier) == (1.0, 1.0)
    assert [n.name for n in lora.loaded_loras] == ["stylish", "style_b"]
    _run("a fox <lora:nope:1>")
    assert networks.loaded_networks == []
