"""The `/file=` allow-list: which names reach which files, and every way out of the roots refused."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.sumi.services.files.allowlist import FileAllowList, Root, allow_list, media_type
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    ext = data / "extensions" / "tags-ext"
    (ext / "tags").mkdir(parents=True)
    (ext / "tags" / "danbooru.csv").write_text("1girl,0\n")
    (ext / "javascript").mkdir()
    (ext / "javascript" / "x.js").write_text("window.x = 1;\n")
    (ext / ".git").mkdir()
    (ext / ".git" / "config").write_text("[remote]\n")
    (ext / ".env").write_text("KEY=1\n")
    (ext / "config.json").write_text('{"api_key": "k"}')
    outputs = data / "outputs" / "txt2img-images"
    outputs.mkdir(parents=True)
    (outputs / "00001-1.png").write_bytes(b"\x89PNG\r\n")
    (outputs / "page.html").write_text("<script>alert(1)</script>")
    (data / "config.json").write_text('{"secret": 1}')
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    return {"data": data, "ext": ext, "outputs": outputs, "secret": secret, "app": tmp_path / "app"}


def rules_for(tree: dict[str, Path], *extra: Root) -> FileAllowList:
    roots = [Root(tree["ext"], "extension"), Root(tree["data"] / "outputs", "outputs"), *extra]
    return FileAllowList(lambda: roots, lambda: [tree["data"] / "config.json"], [tree["data"], tree["app"]])


def test_extension_files_are_served_by_relative_and_absolute_name(tree):
    rules = rules_for(tree)
    relative = rules.check("extensions/tags-ext/tags/danbooru.csv")
    assert (relative.status, relative.path, relative.media_type) == (
        200,
        tree["ext"] / "tags" / "danbooru.csv",
        "text/csv",
    )
    script = rules.check(str(tree["ext"] / "javascript" / "x.js"))
    assert (script.status, script.media_type, script.download) == (200, "text/javascript", False)


def test_windows_separators_name_the_same_file(tree):
    assert rules_for(tree).check("extensions\\tags-ext\\tags\\danbooru.csv").status == 200


@pytest.mark.parametrize(
    "name",
    [
        "extensions/tags-ext/.git/config",
        "extensions/tags-ext/.env",
        "extensions/tags-ext/config.json",  # an extension's settings may hold keys
        "config.json",  # the data dir itself is no root
        "extensions/tags-ext/tags",  # a folder
        "extensions",
    ],
)
def test_dotfiles_settings_and_folders_are_403(tree, name):
    assert rules_for(tree).check(name).status == 403


@pytest.mark.parametrize(
    "name",
    [
        "../secret.txt",
        "extensions/tags-ext/../../../secret.txt",
        "extensions/tags-ext/../../config.json",
        "..\\secret.txt",
        "/etc/passwd",
        "//etc/passwd",
    ],
)
def test_traversal_and_absolute_paths_outside_the_roots_are_403(tree, name):
    assert rules_for(tree).check(name).status == 403


def test_a_path_through_dot_dot_that_stays_inside_a_root_is_served(tree):
    assert rules_for(tree).check("extensions/tags-ext/javascript/../tags/danbooru.csv").status == 200


def test_nul_and_empty_names_are_400(tree):
    assert rules_for(tree).check("extensions/tags-ext/x.js\0.png").status == 400
    assert rules_for(tree).check("").status == 400


def test_missing_file_is_404_inside_a_root_and_403_outside(tree):
    rules = rules_for(tree)
    assert rules.check("extensions/tags-ext/tags/none.csv").status == 404
    assert rules.check(str(tree["data"] / "models" / "none.csv")).status == 403  # no existence oracle


def test_a_name_too_long_for_the_file_system_is_404_inside_a_root_and_403_outside(tree):
    rules = rules_for(tree)
    assert rules.check("extensions/tags-ext/" + "a" * 5000).status == 404
    assert rules.check("/nowhere/" + "a" * 5000).status == 403


def test_a_symlink_out_of_a_root_is_403_and_one_between_roots_is_served(tree):
    (tree["ext"] / "escape.txt").symlink_to(tree["secret"])
    (tree["ext"] / "escape-dir").symlink_to(tree["secret"].parent)
    (tree["ext"] / "result.png").symlink_to(tree["outputs"] / "00001-1.png")
    rules = rules_for(tree)
    assert rules.check("extensions/tags-ext/escape.txt").status == 403
    assert rules.check("extensions/tags-ext/escape-dir/secret.txt").status == 403
    assert rules.check("extensions/tags-ext/result.png").status == 200


def test_a_blocked_file_stays_refused_inside_an_allowed_root(tree):
    rules = rules_for(tree, Root(tree["data"], "allowed"))  # --gradio-allowed-path <data dir>
    assert rules.check("config.json").status == 403
    assert rules.check("outputs/txt2img-images/00001-1.png").status == 200


def test_outputs_serve_images_inline_and_other_types_as_downloads(tree):
    rules = rules_for(tree)
    image = rules.check("outputs/txt2img-images/00001-1.png")
    page = rules.check("outputs/txt2img-images/page.html")
    assert (image.status, image.media_type, image.download) == (200, "image/png", False)
    assert (page.status, page.download) == (200, True)


def test_preview_roots_serve_preview_images_only(tree):
    lora = tree["data"] / "models" / "Lora"
    lora.mkdir(parents=True)
    (lora / "style.safetensors").write_bytes(b"weights")
    (lora / "style.preview.png").write_bytes(b"\x89PNG\r\n")
    rules = rules_for(tree, Root(lora, "previews"))
    assert rules.check("models/Lora/style.preview.png").status == 200
    assert rules.check("models/Lora/style.safetensors").status == 403


def test_relative_names_are_looked_up_under_the_data_dir_then_the_app_folder(tree):
    app_js = tree["app"] / "javascript"
    app_js.mkdir(parents=True)
    (app_js / "hints.js").write_text("var titles = {};")
    rules = rules_for(tree, Root(app_js, "assets"))
    assert rules.check("javascript/hints.js").path == app_js / "hints.js"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.js", "text/javascript"), ("a.mjs", "text/javascript"), ("a.css", "text/css"),
     ("a.json", "application/json"), ("a.csv", "text/csv"), ("a.webp", "image/webp"),
     ("a.png", "image/png"), ("a.bin", "application/octet-stream")],
)  # fmt: skip
def test_content_types(name, kind):
    assert media_type(Path(name)) == kind


def app_rules(tmp_path: Path, *flags: str) -> tuple[FileAllowList, Options, DataPaths, argparse.Namespace]:
    from modules.sumi.services.settings.flags import build_parser

    args = build_parser().parse_args(["--data-dir", str(tmp_path / "data"), *flags])
    paths = DataPaths.from_args(args, tmp_path / "app")
    options = Options()
    ext = paths.extensions_dir / "on"
    ext.mkdir(parents=True)
    rules = allow_list(paths, options, args, lambda: [ext], cwd=tmp_path / "launched-from")
    return rules, options, paths, args


def test_the_users_own_page_files_are_served_and_nothing_else_beside_them(tmp_path):
    rules, _, paths, _ = app_rules(tmp_path)
    (paths.data_dir / "user.css").write_text("body { color: red; }")
    (paths.data_dir / "user.json").write_text("{}")
    assert rules.check("user.css").media_type == "text/css"
    assert rules.check("user.js").status == 404  # allowed, not there
    assert rules.check("user.json").status == 403


def test_tagcompletes_path_file_in_the_working_folders_tmp_is_served_then_its_tag_list(tmp_path):
    rules, _, paths, _ = app_rules(tmp_path)
    tags = paths.extensions_dir / "on" / "tags"
    tags.mkdir()
    (tags / "danbooru.csv").write_text("1girl,0\n")
    written = tmp_path / "launched-from" / "tmp" / "tagAutocompletePath.txt"  # Path().absolute() / "tmp"
    written.parent.mkdir(parents=True)
    written.write_text(tags.as_posix())
    found = rules.check("tmp/tagAutocompletePath.txt")
    assert (found.status, found.path, found.download) == (200, written, False)
    assert rules.check(written.read_text() + "/danbooru.csv").status == 200
    (tmp_path / "launched-from" / "notes.txt").write_text("mine")
    assert rules.check("notes.txt").status == 403  # the working folder itself is no root


def test_an_app_serves_its_output_settings_live_relative_ones_under_the_data_dir(tmp_path):
    rules, options, paths, _ = app_rules(tmp_path)
    folder = paths.data_dir / "renders"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"\x89PNG")
    assert rules.check("renders/a.png").status == 403
    options.set("outdir_txt2img_samples", "renders")
    assert rules.check("renders/a.png").status == 200
    assert rules.check(str(folder / "a.png")).status == 200


def test_gradio_allowed_path_is_read_live_as_extensions_append_to_it(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "cast.png").write_bytes(b"\x89PNG")
    later = tmp_path / "later"
    later.mkdir()
    (later / "b.png").write_bytes(b"\x89PNG")
    rules, _, _, args = app_rules(tmp_path, "--gradio-allowed-path", str(elsewhere))
    assert rules.check(str(elsewhere / "cast.png")).status == 200
    assert rules.check(str(later / "b.png")).status == 403
    args.gradio_allowed_path.append(str(later))  # what an extension does at import (A1111 reads it at launch)
    assert rules.check(str(later / "b.png")).status == 200


def test_an_app_never_serves_its_login_file_even_from_an_allowed_folder(tmp_path):
    logins = tmp_path / "data" / "logins.txt"
    logins.parent.mkdir(parents=True)
    logins.write_text("u:p\n")
    rules, *_ = app_rules(
        tmp_path, "--gradio-allowed-path", str(tmp_path / "data"), "--gradio-auth-path", str(logins)
    )
    assert rules.check(str(logins)).status == 403
    assert rules.check("config.json").status == 403


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["..", ".", "extensions", "tags-ext", "%2e%2e", "\\..", "", "x"]), max_size=8)
)
def test_no_name_reaches_a_file_outside_the_roots(tmp_path_factory, parts):
    base = tmp_path_factory.mktemp("fuzz")
    ext = base / "data" / "extensions" / "tags-ext"
    ext.mkdir(parents=True)
    (base / "outside.txt").write_text("s")
    (base / "data" / "outside.txt").write_text("s")
    rules = FileAllowList(lambda: [Root(ext, "extension")], lambda: [], [base / "data", base / "app"])
    for name in ("/".join([*parts, "outside.txt"]), "/".join(parts)):
        verdict = rules.check(name)
        if verdict.status == 200:
            assert verdict.path is not None and ext in Path(os.path.realpath(verdict.path)).parents


def test_web_path_is_a1111s_file_url_and_the_allow_list_serves_it(tree):
    from modules.sumi.services.files.allowlist import web_path

    script = tree["ext"] / "javascript" / "x.js"
    url = web_path(script, tree["data"])
    name, _, mtime = url.removeprefix("file=").partition("?")
    assert (name, float(mtime)) == ("extensions/tags-ext/javascript/x.js", script.stat().st_mtime)
    assert web_path(script, tree["app"]).startswith(f"file={script.as_posix()}?")  # outside: absolute
    assert rules_for(tree).check(name).path == script
