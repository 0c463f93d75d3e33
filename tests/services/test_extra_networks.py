"""`<name:args>` tags: A1111's parsing, handler activation, and warnings for unknown tag types."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from modules.sumi.services.networks.registry import (
    ExtraNetwork,
    ExtraNetworkParams,
    ExtraNetworkRegistry,
    parse_prompt,
    parse_prompts,
)
from tests.app_support import local_client
from webui import build_server


@pytest.mark.parametrize(
    ("prompt", "text", "found"),
    [
        ("a cat <lora:catstyle:0.8>", "a cat ", {"lora": [["catstyle", "0.8"]]}),
        ("<lora:a:1><lyco:b:0.5:0.2> x", " x", {"lora": [["a", "1"]], "lyco": [["b", "0.5", "0.2"]]}),
        ("<lora-x:1> stays", "<lora-x:1> stays", {}),
        ("<hypernet:anime:1>", "", {"hypernet": [["anime", "1"]]}),
        ("no tags", "no tags", {}),
    ],
)
def test_parse_prompt_is_a1111s(prompt, text, found):
    stripped, data = parse_prompt(prompt)
    assert stripped == text
    assert {k: [p.items for p in v] for k, v in data.items()} == found


def test_named_arguments():
    params = ExtraNetworkParams.from_text("name:0.5:te=0.3:unet=0.9")
    assert params.positional == ["name", "0.5"] and params.named == {"te": "0.3", "unet": "0.9"}


def test_networks_of_a_batch_come_from_its_first_prompt():
    prompts, data = parse_prompts(["a <lora:x:1>", "b <lora:y:1>"])
    assert prompts == ["a ", "b "]
    assert [p.items for p in data["lora"]] == [["x", "1"]]


class Recorder(ExtraNetwork):
    def __init__(self, name="rec"):
        super().__init__(name)
        self.calls = []

    def activate(self, p, params_list):
        self.calls.append(("activate", [x.items for x in params_list]))

    def deactivate(self, p):
        self.calls.append(("deactivate", None))


def test_every_handler_is_activated_even_when_not_mentioned_and_aliases_work():
    registry = ExtraNetworkRegistry()
    lora, other = Recorder("lora"), Recorder("other")
    registry.register(lora, "lyco")
    registry.register(other)
    _, data = parse_prompt("<lora:a:1> <lyco:b:0.5> <mystery:c>")
    warnings = registry.activate(None, data)
    assert lora.calls == [("activate", [["a", "1"], ["b", "0.5"]])]
    assert other.calls == [("activate", [])]
    assert warnings == ["Unknown extra network type <mystery:...>: ignored"]


def test_a_failing_handler_is_reported_and_the_others_still_run():
    class Broken(Recorder):
        def activate(self, p, params_list):
            raise RuntimeError("boom")

    registry = ExtraNetworkRegistry()
    ok = Recorder("ok")
    registry.register(Broken("broken"))
    registry.register(ok)
    warnings = registry.activate(None, {})
    assert ok.calls and "broken failed to activate: boom" in warnings[0]


def test_tags_are_removed_before_encoding_kept_in_the_infotext_and_unknown_types_warn(tmp_path, make_app):
    app = make_app(tmp_path, "--nowebui")
    rec = Recorder("rec")
    app.extra_networks.register(rec)
    client = local_client(build_server(app))
    body = {"prompt": "a fox <rec:thing:0.5> <nope:x>", "steps": 2, "width": 64, "height": 64, "seed": 3}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert info["infotexts"][0].startswith("a fox <rec:thing:0.5> <nope:x>")
    assert "Unknown extra network type <nope:...>: ignored" in info["warnings"]
    assert rec.calls == [("activate", [["thing", "0.5"]]), ("deactivate", None)]
    plain = client.post("/sdapi/v1/txt2img", json={**body, "prompt": "a fox  "}).json()["images"][0]
    assert _pixels(r.json()["images"][0]) == _pixels(plain)  # the model saw the text without tags


def _pixels(b64: str) -> bytes:
    return Image.open(io.BytesIO(base64.b64decode(b64))).tobytes()


def test_lora_and_hypernetwork_files_are_listed_and_refreshed(tmp_path, make_app):
    import torch
    from safetensors.torch import save_file

    app = make_app(tmp_path, "--nowebui")
    client = local_client(build_server(app))
    assert client.get("/sdapi/v1/loras").json() == []
    sub = app.paths.lora_dir / "styles"
    sub.mkdir(parents=True)
    save_file({"x": torch.zeros(1)}, str(sub / "catstyle.safetensors"), metadata={"ss_output_name": "cats"})
    save_file({"x": torch.zeros(1)}, str(app.paths.lycoris_dir / "loha_one.safetensors"))
    assert client.get("/sdapi/v1/loras").json() == []  # not yet refreshed
    assert client.post("/sdapi/v1/refresh-loras").status_code == 200
    listed = {item["name"]: item for item in client.get("/sdapi/v1/loras").json()}
    assert set(listed) == {"catstyle", "loha_one"}
    assert (
        listed["catstyle"]["alias"] == "cats" and listed["catstyle"]["metadata"]["ss_output_name"] == "cats"
    )
    assert app.loras.find("cats").name == "catstyle" and app.loras.find("catstyle").name == "catstyle"
    (tmp_path / "hypernetworks").mkdir(exist_ok=True)
    torch.save({"layer_structure": [1, 2, 1]}, tmp_path / "hypernetworks" / "anime.pt")
    app.hypernetworks.refresh()
    assert client.get("/sdapi/v1/hypernetworks").json()[0]["name"] == "anime"


def test_an_alias_shared_by_two_files_only_works_by_stem(tmp_path):
    import torch
    from safetensors.torch import save_file

    from modules.sumi.services.networks.files import LORA_EXTENSIONS, NetworkFileRegistry

    for stem in ("a", "b"):
        save_file(
            {"x": torch.zeros(1)}, str(tmp_path / f"{stem}.safetensors"), metadata={"ss_output_name": "same"}
        )
    registry = NetworkFileRegistry([tmp_path], LORA_EXTENSIONS)
    assert registry.find("same") is None and registry.find("a").name == "a"
