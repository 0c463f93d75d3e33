"""Prompt styles (A1111's styles.csv): applying, extracting, files, the API and the UI handlers (the
browser test is tests/browser/test_styles_browser.py)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from modules.sumi.app import App
from modules.sumi.frontends.gradio import styles as ui_styles
from modules.sumi.frontends.gradio import txt2img as ui_txt2img
from modules.sumi.services.settings import styles as s
from tests.app_support import post_txt2img

HEADER = b"\xef\xbb\xbfname,prompt,negative_prompt\r\n"


def write(path: Path, text: str, bom: bool = True) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def database(tmp_path: Path, text: str) -> s.StyleDatabase:
    return s.StyleDatabase([write(tmp_path / "styles.csv", text)])


# -- applying (A1111 merge_prompts) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("style", "prompt", "expected"),
    [
        ("masterpiece", "a cat", "a cat, masterpiece"),
        ("masterpiece", "", "masterpiece"),
        ("", "a cat", "a cat"),
        (None, " a cat ", "a cat"),  # an empty (or unknown) style still strips, as in A1111
        ("  oil painting  ", "  a cat  ", "a cat, oil painting"),
        ("photo of {prompt}, 8k", "a cat", "photo of a cat, 8k"),
        ("{prompt} {prompt}", "x", "x x"),
        ("photo of {prompt}", "", "photo of "),
        ("({prompt}:1.2)", " spaced ", "( spaced :1.2)"),  # the placeholder takes the prompt as is
    ],
)
def test_merge_prompts(style, prompt, expected):
    assert s.merge_prompts(style, prompt) == expected


def test_styles_apply_in_order_and_unknown_names_are_ignored(tmp_path):
    db = database(
        tmp_path,
        "name,prompt,negative_prompt\r\nwrap,best {prompt},bad {prompt}\r\ntail,detailed,lowres\r\n",
    )
    assert db.apply_styles_to_prompt("a cat", ["tail", "wrap"]) == "best a cat, detailed"
    assert db.apply_styles_to_prompt("a cat", ["wrap", "tail"]) == "best a cat, detailed"
    assert db.apply_negative_styles_to_prompt("", ["wrap", "tail"]) == "bad, lowres"
    assert db.apply_styles_to_prompt("a cat", ["nope"]) == "a cat"
    assert db.apply_styles_to_prompt(" a cat ", []) == " a cat "
    assert db.unknown(["tail", "nope"]) == ["nope"]


# -- extracting (for infotext paste) ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("style", "prompt", "expected"),
    [
        ("masterpiece", "1girl, art by greg, masterpiece", (True, "1girl, art by greg")),
        ("masterpiece, {prompt}", "masterpiece, 1girl, art by greg", (True, "1girl, art by greg")),
        ("masterpiece, {prompt}", "exquisite, 1girl, art by greg", (False, "exquisite, 1girl, art by greg")),
        ("", "anything", (True, "anything")),
        ("a{prompt}a", "a", (False, "a")),
    ],
)
def test_extract_style_text_from_prompt(style, prompt, expected):
    assert s.extract_style_text_from_prompt(style, prompt) == expected


def test_extract_styles_undoes_apply(tmp_path):
    db = database(
        tmp_path,
        "name,prompt,negative_prompt\r\nwrap,best {prompt},\r\ntail,detailed,lowres\r\nother,zzz,\r\n",
    )
    chosen = ["tail", "wrap"]
    prompt = db.apply_styles_to_prompt("a cat", chosen)
    negative = db.apply_negative_styles_to_prompt("blurry", chosen)
    assert db.extract_styles_from_prompt(prompt, negative) == (chosen, "a cat", "blurry")
    assert db.extract_styles_from_prompt("a dog", "") == ([], "a dog", "")


# -- files --------------------------------------------------------------------------------------------
TRICKY = [
    s.PromptStyle('commas, and "quotes"', 'a "quoted" word, then more', "bad, worse"),
    s.PromptStyle("multi\nline", "line one\nline two\r\nline three", ""),
    s.PromptStyle("ユニコード 🎨", "café, naïve, 東京 {prompt}", "ñ"),
    s.PromptStyle("spaces", "  leading and trailing  ", " x"),
    s.PromptStyle("empty", "", ""),
]


def test_csv_round_trip_keeps_tricky_text_and_a1111_layout(tmp_path):
    path = tmp_path / "styles.csv"
    db = s.StyleDatabase([path])
    assert db.styles == {} and db.warnings == [] and not path.exists()  # missing file = no styles
    for style in TRICKY:
        db.save_style(style.name, style.prompt, style.negative_prompt)
    raw = path.read_bytes()
    assert raw.startswith(HEADER)  # BOM, header, CRLF: what A1111 writes
    assert b'"commas, and ""quotes""","a ""quoted"" word, then more","bad, worse"\r\n' in raw
    again = s.StyleDatabase([path])
    assert [(x.name, x.prompt, x.negative_prompt) for x in again.styles.values()] == [
        (x.name, x.prompt, x.negative_prompt) for x in TRICKY
    ]
    assert again.apply_styles_to_prompt("a cat", ["ユニコード 🎨"]) == "café, naïve, 東京 a cat"
    assert (tmp_path / "styles.csv.bak").is_file()  # A1111 keeps the previous file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styles.csv", "styles.csv.bak"]  # no temp files


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@given(
    st.dictionaries(_text.filter(lambda n: n and not n.startswith("#")), st.tuples(_text, _text), max_size=5)
)
def test_any_text_survives_a_write_and_read(tmp_path_factory, entries):
    path = tmp_path_factory.mktemp("prop") / "styles.csv"
    styles = [s.PromptStyle(name, p, n, str(path)) for name, (p, n) in entries.items()]
    s.write_styles_csv(path, styles)
    assert s.read_styles_csv(path) == styles


def test_reading_is_tolerant_like_a1111(tmp_path):
    text = (
        "name, prompt, negative_prompt\n"  # spaces after commas, LF line ends, no BOM
        "# a comment row,ignored,\n"
        "plain, a, b\n"
        "short\n"  # missing columns are empty
        ",no name,\n"
    )
    db = s.StyleDatabase([write(tmp_path / "styles.csv", text, bom=False)])
    assert {k: (v.prompt, v.negative_prompt) for k, v in db.styles.items()} == {
        "plain": ("a", "b"),
        "short": ("", ""),
    }
    old = s.StyleDatabase([write(tmp_path / "old.csv", "name,text\nlegacy,from text column\n")])
    assert old.styles["legacy"].prompt == "from text column" and old.styles["legacy"].negative_prompt == ""
    assert s.StyleDatabase([write(tmp_path / "empty.csv", "", bom=False)]).styles == {}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"prompt,negative_prompt\r\na,b\r\n", "'name' column"),
        (b"name,prompt\r\nbad,\xff\xfe caf\xe9\r\n", "not UTF-8"),
    ],
)
def test_a_malformed_file_is_a_warning_and_is_never_overwritten(tmp_path, content, words):
    bad = tmp_path / "styles.csv"
    bad.write_bytes(content)
    good = write(tmp_path / "more.csv", "name,prompt\r\nok,fine\r\n")
    db = s.StyleDatabase([bad, good])
    assert len(db.warnings) == 1 and str(bad) in db.warnings[0] and words in db.warnings[0]
    assert db.names() == ["ok"]
    with pytest.raises(s.StyleFileError, match="will not overwrite"):
        db.save_style("new", "x", "")  # the default target is the unreadable file
    assert "new" not in db.styles
    db.save_style("ok", "changed", "")  # a style in a readable file still saves to its own file
    db.save_styles()
    assert bad.read_bytes() == content
    assert s.read_styles_csv(good)[0].prompt == "changed"


def test_several_files_and_globs_follow_a1111(tmp_path):
    (tmp_path / "more").mkdir()
    first = write(tmp_path / "mine.csv", "name,prompt,negative_prompt\r\nshared,from mine,\r\nmine,m,\r\n")
    write(tmp_path / "more" / "a.csv", "name,prompt\r\nshared,from a\r\nfrom_a,x\r\n")
    write(tmp_path / "more" / "b.csv", "name,prompt\r\nfrom_b,y\r\n")
    db = s.StyleDatabase([first, str(tmp_path / "more" / "*.csv")])
    assert db.default_path == first
    assert db.all_styles_files == [first, tmp_path / "more" / "a.csv", tmp_path / "more" / "b.csv"]
    assert db.names() == ["shared", "mine", "from_a", "from_b"]
    assert db.styles["shared"].prompt == "from a"  # a later file overrides an earlier one
    db.save_style("brand new", "n", "")
    db.save_style("from_b", "y2", "")
    # "shared" is hidden by more/a.csv but stays in mine.csv (A1111 would drop it on save)
    assert [(x.name, x.prompt) for x in s.read_styles_csv(first)] == [
        ("shared", "from mine"),
        ("mine", "m"),
        ("brand new", "n"),
    ]
    assert [(x.name, x.prompt) for x in s.read_styles_csv(tmp_path / "more" / "b.csv")] == [("from_b", "y2")]
    assert not (tmp_path / "more" / "a.csv.bak").exists()  # only the changed file is rewritten
    glob_first = s.StyleDatabase([str(tmp_path / "nothing-*.csv")])
    assert glob_first.default_path == tmp_path / "styles.csv"  # A1111: no match -> styles.csv beside it


def test_app_reads_styles_file_flags_and_defaults_to_data_styles_csv(tmp_path, make_app):
    def app(*flags: str) -> App:
        return make_app(tmp_path, *flags, start=False)

    write(tmp_path / "styles.csv", "name,prompt\r\ndefault,d\r\n")
    one = write(tmp_path / "one.csv", "name,prompt\r\nfirst,1\r\n")
    two = write(tmp_path / "two.csv", "name,prompt\r\nsecond,2\r\n")
    assert app().styles.names() == ["default"]
    both = app("--styles-file", str(one), "--styles-file", str(two))
    assert both.styles.names() == ["first", "second"] and both.styles.default_path == one
    assert not any("styles-file" in n for n in both.notices)
    (tmp_path / "broken.csv").write_bytes(b"\x00\xff")
    assert any("broken.csv" in n for n in app("--styles-file", str(tmp_path / "broken.csv")).notices)


# -- generation through the API -----------------------------------------------------------------------
SMALL = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("styles-data")
    write(
        data / "styles.csv",
        "name,prompt,negative_prompt\r\n"
        'Photo,"photo of {prompt}, 35mm",blurry\r\n'
        "Detail,highly detailed,lowres\r\n",
    )
    return make_module_app(data, "--api", "--nowebui")


def test_api_styles_field_expands_prompts_and_infotext(client):
    body = {**SMALL, "negative_prompt": "ugly", "styles": ["Photo", "Detail"], "batch_size": 2}
    response = post_txt2img(client, body)
    info = json.loads(response["info"])
    expanded = "photo of a red fox, 35mm, highly detailed"
    assert info["prompt"] == expanded and info["all_prompts"] == [expanded, expanded]
    assert info["all_negative_prompts"] == ["ugly, blurry, lowres"] * 2
    assert info["styles"] == ["Photo", "Detail"]
    image = Image.open(io.BytesIO(base64.b64decode(response["images"][1])))
    text = image.info["parameters"]
    assert text.startswith(f"{expanded}\nNegative prompt: ugly, blurry, lowres\nSteps: 2")
    assert "Styles" not in text  # A1111 writes the expanded prompt, not the style names
    assert response["parameters"]["prompt"] == "a red fox"


def test_api_unknown_style_is_ignored_with_a_warning(client):
    info = json.loads(post_txt2img(client, {**SMALL, "styles": ["Nope", "Detail"]})["info"])
    assert info["all_prompts"] == ["a red fox, highly detailed"]
    assert any("Nope" in w for w in info["warnings"])


def test_api_prompt_styles_lists_every_style(client):
    r = client.get("/sdapi/v1/prompt-styles")
    assert r.status_code == 200
    assert r.json() == [
        {"name": "Photo", "prompt": "photo of {prompt}, 35mm", "negative_prompt": "blurry"},
        {"name": "Detail", "prompt": "highly detailed", "negative_prompt": "lowres"},
    ]


# -- UI handlers --------------------------------------------------------------------------------------
def test_ui_sends_selected_styles_with_generate():
    v = ui_txt2img.Txt2ImgValues(prompt="a fox", styles=["Photo"])
    assert ui_txt2img.build_processing(v).styles == ["Photo"]
    assert ui_txt2img.build_processing(ui_txt2img.Txt2ImgValues()).styles == []


def test_ui_apply_save_and_refresh(tmp_path):
    db = database(tmp_path, "name,prompt,negative_prompt\r\nwrap,best {prompt},bad\r\n")
    assert ui_styles.apply_styles(db, "a cat", "", ["wrap"]) == ("best a cat", "bad", [])
    dropdown, name, status = ui_styles.save_style(db, "  ", "x", "", [])
    assert "name" in status and "sumi-error" in status
    dropdown, name, status = ui_styles.save_style(db, " mine ", "a, b", "c", ["wrap"])
    assert dropdown["choices"] == ["wrap", "mine"] and dropdown["value"] == ["wrap"] and name == ""
    assert "Saved style" in status and "mine" in status and "sumi-error" not in status
    assert "Replaced" in ui_styles.save_style(db, "mine", "a2", "", [])[2]
    assert s.read_styles_csv(tmp_path / "styles.csv")[1] == s.PromptStyle(
        "mine", "a2", "", str(tmp_path / "styles.csv")
    )
    write(tmp_path / "styles.csv", "name,prompt\r\nonly,o\r\n")
    dropdown, status = ui_styles.refresh_styles(db, ["wrap", "only"])
    assert dropdown["choices"] == ["only"] and dropdown["value"] == ["only"] and status == ""


def test_build_ui_has_the_styles_row(tmp_path, make_app):
    from modules.sumi.frontends.gradio import build_ui

    app = make_app(tmp_path, start=False)
    config = build_ui(app).get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert {"txt2img_styles", "refresh_txt2img_styles", "txt2img_style_apply", "txt2img_style_create"} <= ids
