"""A1111's `/file=PATH` on the server webui.py builds: extension files, outputs and allowed folders are
served (GET and HEAD) behind the login; everything else is 403, a missing allowed file 404. And A1111's
`/sd_extra_networks/thumb`: the cards' preview pictures in the model folders, as small JPEGs."""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from modules.sumi.frontends.gradio.extra_networks import preview_url
from tests.app_support import local_client
from webui import build_server

LOGIN = ("filer", "secret-pass")


@pytest.fixture(scope="module")
def site(make_module_app, tmp_path_factory):
    base = tmp_path_factory.mktemp("file_route")
    data, elsewhere = base / "data", base / "elsewhere"
    ext = data / "extensions" / "tag-lists"
    (ext / "tags").mkdir(parents=True)
    (ext / "tags" / "danbooru.csv").write_text("1girl,0,4114588\n")
    (ext / "javascript").mkdir()
    (ext / "javascript" / "load.js").write_text("fetch('file=extensions/tag-lists/tags/danbooru.csv');\n")
    (ext / ".git").mkdir()
    (ext / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    off = data / "extensions" / "switched-off"
    off.mkdir(parents=True)
    (off / "data.json").write_text("{}")
    elsewhere.mkdir()
    (elsewhere / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (ext / "linked.txt").symlink_to(base / "outside.txt")
    (base / "outside.txt").write_text("not yours")
    data.joinpath("config.json").write_text('{"disabled_extensions": ["switched-off"]}')
    app = make_module_app(
        data,
        "--gradio-auth",
        ":".join(LOGIN),
        "--gradio-allowed-path",
        str(elsewhere),
        start=False,
    )
    return {"client": local_client(build_server(app), auth=LOGIN), "app": app, "data": data, "base": base}


def test_an_extension_file_is_served_with_its_type_the_mtime_query_ignored(site):
    r = site["client"].get("/file=extensions/tag-lists/tags/danbooru.csv?1712345678.9")
    assert (r.status_code, r.text) == (200, "1girl,0,4114588\n")
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-content-type-options"] == "nosniff"
    js = site["client"].get(f"/file={site['data']}/extensions/tag-lists/javascript/load.js")
    assert (js.status_code, js.headers["content-type"].split(";")[0]) == (200, "text/javascript")


def test_head_answers_the_headers_without_the_body(site):
    r = site["client"].head("/file=extensions/tag-lists/tags/danbooru.csv")
    assert (r.status_code, r.headers["content-length"], r.content) == (200, "16", b"")


def test_without_the_login_it_is_401_without_the_browsers_basic_prompt(site):
    anonymous = local_client(site["client"].app)
    r = anonymous.get("/file=extensions/tag-lists/tags/danbooru.csv")
    assert r.status_code == 401 and "www-authenticate" not in r.headers  # the UI's login page asks


def test_an_output_image_and_a_gradio_allowed_path_file_are_served(site):
    outputs = site["data"] / "outputs" / "txt2img-images"
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "00000-1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    client = site["client"]
    assert client.get("/file=outputs/txt2img-images/00000-1.png").headers["content-type"] == "image/png"
    assert client.get(f"/file={site['base']}/elsewhere/picture.png").status_code == 200


def test_a_changed_output_setting_is_served_at_once(site):
    folder = site["data"] / "renders"
    folder.mkdir(exist_ok=True)
    (folder / "r.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    client = site["client"]
    assert client.get("/file=renders/r.png").status_code == 403
    site["app"].options.set("outdir_txt2img_samples", "renders")
    try:
        assert client.get("/file=renders/r.png").status_code == 200
    finally:
        site["app"].options.set("outdir_txt2img_samples", "outputs/txt2img-images")


@pytest.mark.parametrize(
    "path",
    [
        "/file=config.json",
        "/file=extensions/tag-lists/.git/HEAD",
        "/file=extensions/tag-lists/linked.txt",  # a link out of the folder
        "/file=extensions/tag-lists/tags",  # a folder
        "/file=extensions/switched-off/data.json",  # a disabled extension's folder is not served
        "/file=/etc/passwd",
        "/file=%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/file=extensions%2f..%2f..%2fconfig.json",
        "/file=..%5c..%5cconfig.json",
        "/file=outputs/missing/../../config.json".replace("..", "%2e%2e"),
    ],
)
def test_anything_outside_the_allow_list_is_403(site, path):
    r = site["client"].get(path)
    assert r.status_code == 403, r.text
    assert r.json()["detail"].startswith("File not allowed")


def test_a_missing_file_in_an_allowed_folder_is_404(site):
    r = site["client"].get("/file=extensions/tag-lists/tags/e621.csv")
    assert (r.status_code, r.json()["detail"]) == (404, "File not found: extensions/tag-lists/tags/e621.csv.")


def test_the_route_is_not_in_the_api_schema(site):
    assert not any("/file=" in p for p in site["client"].get("/openapi.json").json()["paths"])


def test_the_secret_settings_file_is_never_served_even_by_absolute_path(site):
    assert site["client"].get(f"/file={Path(site['data']) / 'config.json'}").status_code == 403


# -- the cards' preview thumbnails (A1111's /sd_extra_networks/thumb) ------------------------------------
def _lora_with_preview(site, name: str, size=(900, 600), colour="red") -> Path:
    lora_dir = Path(site["app"].paths.lora_dir)
    lora_dir.mkdir(parents=True, exist_ok=True)
    (lora_dir / f"{name}.safetensors").write_bytes(b"")
    preview = lora_dir / f"{name}.preview.png"
    Image.new("RGB", size, colour).save(preview)
    return preview


def test_a_card_s_url_gets_a_small_jpeg_of_its_preview_behind_the_login(site):
    preview = _lora_with_preview(site, "thumbed")
    url = preview_url(preview.with_name("thumbed.safetensors"))
    assert url.startswith("./sd_extra_networks/thumb?filename=") and "&mtime=" in url
    r = site["client"].get(url[1:])
    assert (r.status_code, r.headers["content-type"]) == (200, "image/jpeg")
    assert "max-age" in r.headers["cache-control"] and r.headers["x-content-type-options"] == "nosniff"
    with Image.open(io.BytesIO(r.content)) as thumb:
        assert thumb.size == (256, 171) and thumb.convert("RGB").getpixel((128, 85))[0] > 240
    anonymous = local_client(site["client"].app)
    refused = anonymous.get(url[1:])
    assert refused.status_code == 401 and "www-authenticate" not in refused.headers


def test_a_changed_preview_gets_a_new_url_and_a_new_thumbnail(site):
    preview = _lora_with_preview(site, "changing", (64, 64), "red")
    card = preview.with_name("changing.safetensors")
    first = preview_url(card)
    Image.new("RGB", (64, 64), "blue").save(preview)
    os.utime(preview, (preview.stat().st_atime, preview.stat().st_mtime + 5))
    second = preview_url(card)
    assert second != first
    with Image.open(io.BytesIO(site["client"].get(second[1:]).content)) as thumb:
        assert thumb.convert("RGB").getpixel((32, 32))[2] > 200  # blue now


@pytest.mark.parametrize(
    "filename",
    [
        "config.json",
        "extensions/tag-lists/tags/danbooru.csv",  # served by /file=, but not a model folder's preview
        "outputs/txt2img-images/00000-1.png",  # an output picture: not a card's preview
        "/etc/passwd",
        "models/Lora/../../config.json",
        "models/Lora/thumbed.safetensors",  # the model itself: not a picture type
    ],
)
def test_only_pictures_in_the_model_folders_are_thumbnailed(site, filename):
    _lora_with_preview(site, "thumbed")
    r = site["client"].get("/sd_extra_networks/thumb", params={"filename": filename})
    assert r.status_code == 403, (filename, r.text)


def test_a_missing_or_broken_preview_is_404(site):
    preview = _lora_with_preview(site, "broken")
    preview.write_bytes(b"not a png")
    client = site["client"]
    assert client.get("/sd_extra_networks/thumb", params={"filename": str(preview)}).status_code == 404
    missing = preview.with_name("gone.png")
    assert client.get("/sd_extra_networks/thumb", params={"filename": str(missing)}).status_code == 404
    assert client.get("/sd_extra_networks/thumb").status_code == 400


def test_an_extension_page_s_preview_folders_are_thumbnailed_while_it_is_registered(site, tmp_path):
    """A1111's `allowed_directories_for_previews()` of the pages extensions register."""
    folder = tmp_path / "cards"
    folder.mkdir()
    Image.new("RGB", (32, 32), "green").save(folder / "card.png")
    page = SimpleNamespace(allowed_directories_for_previews=lambda: [str(folder)])
    broken = SimpleNamespace(allowed_directories_for_previews=lambda: 1 / 0)
    client, pages = site["client"], site["app"].card_pages
    ask = lambda: client.get("/sd_extra_networks/thumb", params={"filename": str(folder / "card.png")})  # noqa: E731
    assert ask().status_code == 403
    pages[:] = [broken, page]
    try:
        assert ask().status_code == 200  # a page that fails names no folder; the others still count
    finally:
        pages[:] = []
    assert ask().status_code == 403


# -- a card's file metadata (A1111's /sd_extra_networks/metadata) --------------------------------------
def test_a_lora_card_s_metadata_is_a1111_s_json_text_and_unknown_cards_give_nothing(site):
    import json

    import torch
    from safetensors.torch import save_file

    app, client = site["app"], site["client"]
    tags = json.dumps({"10_zxc": {"zxc person": 3}})
    save_file(
        {"w": torch.zeros(1)}, str(app.paths.lora_dir / "meta_lora.safetensors"), {"ss_tag_frequency": tags}
    )
    app.loras.refresh()
    r = client.get("/sd_extra_networks/metadata", params={"page": "lora", "item": "meta_lora"})
    assert r.status_code == 200
    assert json.loads(r.json()["metadata"]) == {"ss_tag_frequency": {"10_zxc": {"zxc person": 3}}}
    for page, item in (("lora", "no_such_lora"), ("textual inversion", "x"), ("nonsense", "meta_lora")):
        assert client.get("/sd_extra_networks/metadata", params={"page": page, "item": item}).json() == {}
    assert local_client(build_server(app)).get("/sd_extra_networks/metadata").status_code == 401
