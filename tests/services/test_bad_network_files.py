"""Broken files in the LoRA, embeddings and hypernetwork folders: named in a clear message, nothing applied,
the model left clean and the server serving (corrupt bytes, NaN values, a pickle that would run code)."""

from __future__ import annotations

import os

import pytest
import torch

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.files import check_finite
from modules.sumi.engine.networks.embeddings import load_embedding_file
from modules.sumi.engine.networks.hypernetwork import load_hypernetwork
from modules.sumi.engine.networks.network_file import load_network
from tests.app_support import generate
from tests.fixtures.tiny_embeddings import write_a1111_pt, write_safetensors
from tests.fixtures.tiny_hypernetworks import write_hypernetwork
from tests.fixtures.tiny_networks import lora_state_dict, save

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}
DEMO_WIDTH = 64


class _RunsCode:
    """Unpickling this calls os.system: the kind of file a safe loader must refuse."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _write_malicious(path, marker) -> None:
    torch.save({"weights": _RunsCode(marker)}, path)


def _poison(tensors: dict, value: float) -> dict:
    key = sorted(k for k, v in tensors.items() if v.is_floating_point() and v.dim() > 0)[0]
    poisoned = dict(tensors)
    poisoned[key] = tensors[key].clone()
    poisoned[key].view(-1)[0] = value
    return poisoned


def test_check_finite_names_the_file_and_the_tensors(tmp_path):
    check_finite({"a": torch.ones(2), "step": torch.tensor(3)}, "ok.safetensors", "network")
    with pytest.raises(EngineError, match=r"bad\.safetensors: 2 network tensors hold NaN or infinite.*a, b"):
        check_finite(
            {"a": torch.tensor([float("nan")]), "b": torch.tensor([float("inf")])},
            "bad.safetensors",
            "network",
        )


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("badfiles"), "--nowebui")


@pytest.fixture(scope="module")
def components(app):
    demo = load_checkpoint(app.checkpoints.list()[0].filename)
    return {"family": "SD1", "unet": demo.unet, "text_encoders": [s.model for s in demo.text_encoders]}


def _weights(app) -> list[torch.Tensor]:
    return [p.detach().clone() for p in app.models.active.sd.unet.parameters()]


def _assert_unchanged(app, before: list[torch.Tensor]) -> None:
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(app), strict=True))


@pytest.mark.parametrize("kind", ["nan", "inf", "corrupt", "malicious"])
def test_a_bad_lora_is_named_applies_nothing_and_the_server_keeps_serving(
    app, client, components, kind, tmp_path
):
    folder = app.paths.lora_dir
    folder.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "ran"
    name = f"bad_{kind}"
    if kind in ("nan", "inf"):
        path = folder / f"{name}.safetensors"
        save(path, _poison(lora_state_dict(components, seed=7), float(kind)))
    elif kind == "corrupt":
        path = folder / f"{name}.safetensors"
        path.write_bytes(b"\x00\x01 not a safetensors file" * 10)
    else:
        path = folder / f"{name}.pt"
        _write_malicious(path, marker)
    app.loras.refresh()
    plain, _ = generate(client, BODY, "a fox")
    weights = _weights(app)
    image, info = generate(client, BODY, f"a fox <lora:{name}:1>")
    assert image == plain
    assert any(path.name in w for w in info["warnings"]), info["warnings"]
    assert "Lora hashes" not in info["infotexts"][0]
    _assert_unchanged(app, weights)
    assert not marker.exists()
    assert client.get("/sdapi/v1/loras").status_code == 200


@pytest.mark.parametrize("kind", ["nan", "corrupt", "malicious"])
def test_a_bad_hypernetwork_is_named_and_applies_nothing(app, client, kind, tmp_path):
    folder = app.paths.hypernetwork_dir
    folder.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "ran"
    path = folder / f"hn_{kind}.pt"
    if kind == "nan":
        data = write_hypernetwork(path, (DEMO_WIDTH,), seed=4)
        data[DEMO_WIDTH][0]["linear.0.weight"][0, 0] = float("nan")
        torch.save(data, path)
    elif kind == "corrupt":
        path.write_bytes(os.urandom(300))
    else:
        _write_malicious(path, marker)
    app.hypernetworks.refresh()
    plain, _ = generate(client, BODY, "a fox")
    processors = list(app.models.active.sd.unet.attn_processors.values())
    image, info = generate(client, BODY, f"a fox <hypernet:{path.stem}:1>")
    assert image == plain
    assert any(path.name in w for w in info["warnings"]), info["warnings"]
    assert all(
        a is b for a, b in zip(processors, app.models.active.sd.unet.attn_processors.values(), strict=True)
    )
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["nan", "corrupt", "malicious"])
def test_a_bad_embedding_is_listed_as_an_error_and_not_used(app, client, kind, tmp_path):
    folder = app.paths.embeddings_dir
    folder.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "ran"
    name = f"emb-{kind}"
    plain, _ = generate(client, BODY, f"a fox {name}")
    if kind == "nan":
        path = write_safetensors(folder / f"{name}.safetensors", torch.full((1, DEMO_WIDTH), float("nan")))
    elif kind == "corrupt":
        path = folder / f"{name}.pt"
        path.write_bytes(os.urandom(200))
    else:
        path = folder / f"{name}.pt"
        _write_malicious(path, marker)
    image, info = generate(client, BODY, f"a fox {name}")
    assert image == plain
    assert "TI hashes" not in info["infotexts"][0]
    assert str(path) in app.embeddings.errors
    assert not marker.exists()
    assert name not in client.get("/sdapi/v1/embeddings").json()["loaded"]


def test_engine_readers_refuse_nan_files_with_the_file_name(tmp_path, components):
    lora = tmp_path / "nan_lora.safetensors"
    save(lora, _poison(lora_state_dict(components, seed=1), float("nan")))
    with pytest.raises(EngineError, match="nan_lora.safetensors.*NaN"):
        load_network(lora)
    emb = write_a1111_pt(tmp_path / "nan_emb.pt", torch.full((2, 8), float("-inf")))
    with pytest.raises(EngineError, match="nan_emb.pt.*NaN or infinite"):
        load_embedding_file(emb)
    hn = tmp_path / "nan_hn.pt"
    data = write_hypernetwork(hn, (32,), seed=1)
    data[32][1]["linear.1.bias"][0] = float("nan")
    torch.save(data, hn)
    with pytest.raises(EngineError, match="nan_hn.pt.*context size 32"):
        load_hypernetwork(hn)
