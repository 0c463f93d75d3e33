"""A1111's page contract on the served index page: localization and opts, then A1111's page scripts
(script.js first), then the enabled extensions' scripts in `<head>`; their style.css and user.css before
`</body>`; other responses untouched. The same page in Chromium: tests/browser/test_page_contract_browser.py.
"""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import webui
from modules.sumi.frontends.gradio import page_head
from modules.sumi.frontends.gradio.txt2img import update_generation_info
from modules.sumi.services.settings.options import OptionInfo
from modules.sumi.services.settings.secrets import MASK
from tests.app_support import local_client


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("page-head") / "data"
    ext = data / "extensions" / "my-ext"
    (ext / "javascript").mkdir(parents=True)
    (ext / "javascript" / "b.js").write_text("window.myExtB = '</script>';")
    (ext / "javascript" / "a.js").write_text("window.myExtA = 1;")
    (ext / "style.css").write_text(".x { color: red }")
    (ext / "javascript" / "mod.mjs").write_text(
        "import { part } from './part.mjs';\nwindow.myExtModule = part;"
    )
    (ext / "javascript" / "part.mjs").write_text("export const part = 'from a module';")
    (data / "extensions" / "css-ext" / "img").mkdir(parents=True)
    (data / "extensions" / "css-ext" / "img" / "bg.png").write_bytes(b"\x89PNG-bytes")
    (data / "extensions" / "css-ext" / "style.css").write_text(
        ".a { background: url(img/bg.png) } .b { background: url('data:image/png;base64,AAAA') }"
        ' .c { background: url("https://example.com/x.png") } .d { filter: url(#blur) }'
    )
    (data / "extensions" / "off-ext" / "javascript").mkdir(parents=True)
    (data / "extensions" / "off-ext" / "javascript" / "c.js").write_text("window.offExt = 1;")
    (data / "user.css").write_text(".user { color: blue }")
    (data / "localizations").mkdir()
    (data / "localizations" / "xx.json").write_text(json.dumps({"Generate": "XX</script>"}))
    (data / "config.json").write_text(json.dumps({"disabled_extensions": ["off-ext"], "localization": "xx"}))
    return data


@pytest.fixture(scope="module")
def app(data_dir, make_module_app):
    app = make_module_app(data_dir, start=False)
    app.options.add_option("page_ext_opt", OptionInfo("hello", "An extension's option"))
    app.options.add_option("civitai_api_key", OptionInfo("", "Civitai API key"))
    app.options.set("civitai_api_key", "Head-Secret-Key-8642")
    return app


@pytest.fixture(scope="module")
def client(app):
    return local_client(webui.build_server(app))


@pytest.fixture(scope="module")
def page(client) -> str:
    response = client.get("/", headers={"Accept-Encoding": "identity"})  # the rewrite's own length
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert client.get("/").text == response.text  # and gzip-compressed (the client's default), the same
    return response.text


def _head(page: str) -> str:
    return page.split("</head>", 1)[0]


def test_scripts_come_in_a1111_order_in_the_head(page):
    head = _head(page)
    order = [
        "window.localization = ",
        "window.sumiPageOpts = ",
        "sourceURL=sumi/script.js",
        "sourceURL=sumi/aspectRatioOverlay.js",
        "sourceURL=sumi/hints.js",
        "sourceURL=sumi/localization.js",
        "sourceURL=sumi/ui.js",
        "sourceURL=extensions/my-ext/javascript/a.js",
        "sourceURL=extensions/my-ext/javascript/b.js",
    ]
    positions = [head.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert head.index("window.gradio_config") < positions[0]  # after Gradio's config, before </head>
    assert "window.myExtB = '<\\/script>';" in head  # cannot end its <script> early
    assert "window.offExt" not in page  # a disabled extension adds nothing


def test_styles_go_before_the_end_of_body(page):
    body = page.split("</head>", 1)[1]
    css = body.index('<style data-extension="my-ext">.x { color: red }</style>')
    user = body.index('<style data-extension="user.css">.user { color: blue }</style>')
    assert css < user < body.index("</body>")


def test_localization_and_opts_are_the_current_settings_without_secrets(page, app):
    head = _head(page)
    localization = json.loads(head.split("window.localization = ", 1)[1].split(";\n", 1)[0])
    assert localization == {"Generate": "XX</script>"}
    assert "XX<\\/script>" in head
    opts = json.loads(head.split("window.sumiPageOpts = ", 1)[1].split(";\n", 1)[0])
    assert opts["page_ext_opt"] == "hello" and opts["localization"] == "xx"
    assert opts["disabled_extensions"] == ["off-ext"]
    assert "Head-Secret-Key-8642" not in page and opts["civitai_api_key"] == MASK


def test_settings_are_read_again_for_each_page_load(app, client):
    app.options.localization = "None"
    try:
        head = _head(client.get("/").text)
        assert "window.localization = {};" in head
    finally:
        app.options.localization = "xx"


def test_other_responses_are_untouched(client):
    config = client.get("/config")
    assert config.status_code == 200 and "sumi/script.js" not in config.text
    assert "sumi/script.js" not in client.get("/internal/ping").text
    assert client.head("/").status_code == 200


def test_a_failing_rewrite_still_serves_the_page(caplog):
    page = "<html><head><script>window.gradio_config = {};</script></head><body></body></html>"
    app = Starlette(routes=[Route("/", lambda request: HTMLResponse(page))])

    def broken(_page: bytes) -> bytes:
        raise RuntimeError("boom")

    app.add_middleware(page_head.PageHeadMiddleware, rewrite=broken)
    response = TestClient(app).get("/")
    assert response.status_code == 200 and response.text == page
    assert "Could not add the extensions' scripts" in caplog.text


def test_the_rewrite_adds_to_the_index_page_only():
    page = "<html><head><script>window.gradio_config = {};</script></head><body></body></html>"
    app = Starlette(
        routes=[
            Route("/", lambda request: HTMLResponse(page)),
            Route("/other", lambda request: HTMLResponse(page)),
            Route("/error", lambda request: HTMLResponse(page, status_code=500)),
        ]
    )
    app.add_middleware(
        page_head.PageHeadMiddleware, rewrite=lambda body: body.replace(b"</head>", b"<x></head>")
    )
    client = TestClient(app)
    assert "<x></head>" in client.get("/").text
    assert client.get("/other").text == page and client.get("/error").text == page


def test_generation_info_button_shows_the_selected_images_infotext():
    info = json.dumps(
        {"infotexts": ["grid text\nSteps: 2, Seed: 1", "second\nSteps: 2, Seed: 2"], "warnings": []}
    )
    html_info, _ = update_generation_info(info, "<old>", 1)
    assert "second" in html_info and "Seed: 2" in html_info
    assert update_generation_info(info, "<old>", 5)[0] == "<old>"  # no such image: unchanged
    assert update_generation_info("not json", "<old>", 0)[0] == "<old>"
    assert update_generation_info(info, "<old>", None)[0] == "<old>"


def test_extension_modules_load_from_file_so_their_imports_resolve(page, client, data_dir):
    """A1111 loads `javascript/*.mjs` as `<script type="module" src="file=...">`: relative imports work."""
    head = _head(page)
    folder = (data_dir / "extensions" / "my-ext" / "javascript").resolve().as_posix()
    srcs = [part.split('"', 1)[0] for part in head.split('<script type="module" src="')[1:]]
    assert [src.split("?", 1)[0] for src in srcs] == [f"./file={folder}/mod.mjs", f"./file={folder}/part.mjs"]
    module = client.get(srcs[0][1:])  # the page is at /: ./file=... is /file=...
    assert module.status_code == 200 and "from './part.mjs'" in module.text
    assert client.get(f"/file={folder}/part.mjs").status_code == 200  # where the import resolves


def test_relative_urls_in_an_extensions_css_point_at_its_files(page, client, data_dir):
    body = page.split("</head>", 1)[1]
    css = body.split('<style data-extension="css-ext">', 1)[1].split("</style>", 1)[0]
    image = (data_dir / "extensions" / "css-ext" / "img" / "bg.png").resolve().as_posix()
    url = css.split('.a { background: url("', 1)[1].split('")', 1)[0]
    assert url.startswith(f"./file={image}?")
    assert client.get(url[1:]).content == b"\x89PNG-bytes"
    for kept in ("url('data:image/png;base64,AAAA')", 'url("https://example.com/x.png")', "url(#blur)"):
        assert kept in css


def test_gradio_s_own_scripts_after_the_app_element_keep_their_names_to_themselves():
    page = (
        b"<head><script>var ce = 1;</script></head><body><gradio-app></gradio-app>"
        b'<script>\nconst ce = document.getElementsByTagName("gradio-app");\n</script>'
        b'<script type="module" src="x.js"></script></body>'
    )
    scoped = page_head.scoped_tail_scripts(page)
    assert scoped.startswith(b"<head><script>var ce = 1;</script>")  # the head's scripts are untouched
    assert b'<script>{\nconst ce = document.getElementsByTagName("gradio-app");\n}</script>' in scoped
    assert b'<script type="module" src="x.js"></script>' in scoped  # not an inline classic script
    assert page_head.scoped_tail_scripts(scoped) == scoped
    assert page_head.scoped_tail_scripts(b"<html>no app</html>") == b"<html>no app</html>"
