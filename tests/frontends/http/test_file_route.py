"""A1111's `/file=PATH` on the server webui.py builds: extension files, outputs and allowed folders are
served (GET and HEAD) behind the login; everything else is 403, a missing allowed file 404."""

from __future__ import annotations

from pathlib import Path

import pytest

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
