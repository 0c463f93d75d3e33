"""Cover pictures stored in a .safetensors file's metadata (`ssmd_cover_images`, A1111's; the model spec's
`modelspec.thumbnail`): the card shows the first when no preview picture lies beside the file, served by
A1111's `/sd_extra_networks/cover-images` behind the login; a broken or hostile one is a 404, never a
broken panel."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from modules.sumi.frontends.gradio.extra_networks import CARD_SOURCES
from modules.sumi.services.files.cover_images import covers_in
from tests.app_support import local_client
from webui import build_server

LOGIN = ("coverer", "secret-pass")
ROUTE = "/sd_extra_networks/cover-images"
COVERS = "ssmd_cover_images"


def picture(colour: str, size: tuple[int, int] = (600, 400), fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def write_network(folder: Path, name: str, metadata: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata)
    return path


@pytest.fixture(scope="module")
def site(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("covers") / "data"
    app = make_module_app(data, "--gradio-auth", ":".join(LOGIN), start=False)
    lora = app.paths.lora_dir
    write_network(lora, "covered", {COVERS: json.dumps([picture("red"), picture("blue", fmt="JPEG")])})
    write_network(
        lora, "spec", {"modelspec.thumbnail": "data:image/jpeg;base64," + picture("lime", fmt="JPEG")}
    )
    write_network(lora, "bare", {"ss_network_dim": "4"})
    write_network(lora, "empty_list", {COVERS: json.dumps(["", None])})
    write_network(lora, "not_base64", {COVERS: json.dumps(["this is not base64 !!"])})
    write_network(
        lora, "not_a_picture", {COVERS: json.dumps([base64.b64encode(b"<script>x</script>").decode()])}
    )
    both = write_network(lora, "with_preview", {COVERS: json.dumps([picture("red")])})
    Image.new("RGB", (32, 32), "green").save(both.with_suffix(".preview.png"))
    app.loras.refresh()
    return {"app": app, "client": local_client(build_server(app), auth=LOGIN)}


def lora_card(app, name: str):
    (card,) = [c for c in CARD_SOURCES["lora"](app) if c.name == name]
    return card


def colour_of(content: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(content)) as image:
        rgb = image.convert("RGB")
        return rgb.getpixel((rgb.width // 2, rgb.height // 2))


def test_a_card_without_a_preview_file_shows_its_first_embedded_cover_as_a_small_jpeg(site):
    card = lora_card(site["app"], "covered")
    assert card.preview.startswith("./sd_extra_networks/cover-images?page=lora&item=covered&thumbnail=1")
    r = site["client"].get(card.preview[1:])
    assert (r.status_code, r.headers["content-type"]) == (200, "image/jpeg")
    assert r.headers["x-content-type-options"] == "nosniff"
    with Image.open(io.BytesIO(r.content)) as thumb:
        assert thumb.size == (256, 171)
    red, green, blue = colour_of(r.content)
    assert red > 240 and green < 20 and blue < 20


def test_the_route_gives_each_cover_in_its_own_format_as_a1111(site):
    client = site["client"]
    first = client.get(ROUTE, params={"page": "lora", "item": "covered"})
    assert (first.status_code, first.headers["content-type"]) == (200, "image/png")
    assert Image.open(io.BytesIO(first.content)).size == (600, 400)
    second = client.get(ROUTE, params={"extra_networks_tabname": "lora", "item": "covered", "index": 1})
    assert (second.status_code, second.headers["content-type"]) == (200, "image/jpeg")
    assert colour_of(second.content)[2] > 240


def test_a_model_spec_thumbnail_is_a_cover_too(site):
    card = lora_card(site["app"], "spec")
    r = site["client"].get(card.preview[1:])
    assert r.status_code == 200
    red, green, blue = colour_of(r.content)
    assert green > 240 and red < 20 and blue < 20


def test_a_preview_file_beside_it_wins_and_a_file_without_covers_has_no_picture(site):
    app = site["app"]
    assert lora_card(app, "with_preview").preview.startswith("./sd_extra_networks/thumb?filename=")
    assert lora_card(app, "bare").preview == ""
    assert lora_card(app, "empty_list").preview == ""


@pytest.mark.parametrize(
    "params",
    [
        {"page": "lora", "item": "covered", "index": 2},  # only two covers
        {"page": "lora", "item": "covered", "index": -1},
        {"page": "lora", "item": "bare"},
        {"page": "lora", "item": "no_such_lora"},
        {"page": "nonsense", "item": "covered"},
        {"page": "lora", "item": "not_base64"},
        {"page": "lora", "item": "not_a_picture"},
        {},
    ],
)
def test_a_missing_or_broken_cover_is_a_404_naming_why(site, params):
    r = site["client"].get(ROUTE, params=params)
    assert r.status_code == 404, r.text
    assert r.json()["detail"]


def test_the_covers_are_behind_the_login(site):
    refused = local_client(site["client"].app).get(ROUTE, params={"page": "lora", "item": "covered"})
    assert refused.status_code == 401 and "www-authenticate" not in refused.headers


def test_a_checkpoint_card_shows_its_embedded_cover_too(site):
    from tests.fixtures.tiny_models import write_tiny_checkpoint

    app = site["app"]
    path = app.paths.ckpt_dirs[0] / "covered_model.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tiny_checkpoint(path, "SD1", metadata={COVERS: json.dumps([picture("blue")])})
    app.checkpoints.refresh()
    (card,) = [c for c in CARD_SOURCES["checkpoints"](app) if c.name.startswith("covered_model")]
    r = site["client"].get(card.preview[1:])
    assert r.status_code == 200 and colour_of(r.content)[2] > 240


def test_only_non_empty_base64_covers_are_read_from_the_metadata():
    assert covers_in({COVERS: json.dumps(["", "abc", 3, None, " def "])}) == ("abc", "def")
    assert covers_in({COVERS: "not json"}) == ()
    assert covers_in({COVERS: json.dumps({"0": "abc"})}) == ()
    assert covers_in({"modelspec.thumbnail": "https://example.com/x.png"}) == ()
    assert covers_in({"modelspec.thumbnail": "data:image/png;base64,QUJD"}) == ("QUJD",)
