import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from modules.sumi.services.jobs.infotext import (
    PARAM_ORDER,
    build_infotext,
    ordered_params,
    params_line,
    parse_infotext,
    parse_version,
    quote,
    split_infotext,
    unquote,
    uses_emphasis,
)

A1111_EXAMPLE = (
    "a cat, (masterpiece:1.2)\n"
    "second line\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, Size: 512x768, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "catstyle: 0123456789ab", Version: v1.10.1'
)


def test_build_layout_matches_a1111():
    params = {
        "Steps": 20,
        "Sampler": "DPM++ 2M",
        "Schedule type": "Karras",
        "CFG scale": 7,
        "Seed": 1234567890,
        "Size": "512x768",
        "Model hash": "6ce0161689",
        "Model": "v1-5-pruned-emaonly",
        "Lora hashes": "catstyle: 0123456789ab",
        "Version": "v1.10.1",
    }
    assert build_infotext("a cat, (masterpiece:1.2)\nsecond line", "blurry, lowres", params) == A1111_EXAMPLE


def test_build_omits_empty_negative_and_none_values():
    text = build_infotext("\n  cat", "", {"Steps": 20, "Seed": None, "Tiling": "Tiling"})
    assert text == "cat\nSteps: 20, Tiling"


def test_quote_rules():
    assert quote("plain") == "plain"
    assert quote("a, b") == '"a, b"'
    assert quote("k: v") == '"k: v"'
    assert quote("line\nbreak") == '"line\\nbreak"'
    assert quote("日本, 語") == '"日本, 語"'  # non-ASCII kept
    assert quote(7.5) == "7.5"
    assert unquote('"a, b"') == "a, b" and unquote('"broken') == '"broken' and unquote('"1"') == "1"


def test_parse_a1111_example():
    res = parse_infotext(A1111_EXAMPLE)
    assert res["Prompt"] == "a cat, (masterpiece:1.2)\nsecond line"
    assert res["Negative prompt"] == "blurry, lowres"
    assert res["Steps"] == "20" and res["Sampler"] == "DPM++ 2M" and res["Schedule type"] == "Karras"
    assert res["Size-1"] == "512" and res["Size-2"] == "768" and "Size" not in res
    assert res["Lora hashes"] == "catstyle: 0123456789ab"
    assert res["Emphasis"] == "Original"  # the prompt uses (x:1.2)
    assert "Downcast alphas_cumprod" not in res


def test_parse_adds_defaults():
    res = parse_infotext("cat\nSteps: 20, Sampler: Euler, Seed: 1")
    assert res["Clip skip"] == "1" and res["RNG"] == "GPU" and res["Schedule type"] == "Automatic"
    assert res["Hires sampler"] == "Use same sampler" and res["Hires resize-1"] == "0"
    assert res["FP8 weight"] == "Disable" and "Cache FP16 weight for LoRA" not in res
    assert "Emphasis" not in res


def test_parse_last_line_needs_three_params():
    res = parse_infotext("a cat\nStyle: fancy, Mood: calm")
    assert res["Prompt"] == "a cat\nStyle: fancy, Mood: calm" and "Style" not in res


def test_parse_multiline_negative():
    res = parse_infotext("p\nNegative prompt: n1\nn2\n\nn3\nSteps: 1, Seed: 2, CFG scale: 3")
    assert res["Prompt"] == "p" and res["Negative prompt"] == "n1\nn2\n\nn3"


def test_parse_negative_only_and_prompt_only():
    assert parse_infotext("Negative prompt: bad\nSteps: 1, Seed: 2, CFG scale: 3")["Prompt"] == ""
    assert parse_infotext("just a prompt") == parse_infotext("just a prompt") | {"Prompt": "just a prompt"}


def test_parse_hypernet_and_skip_fields():
    res = parse_infotext(
        "cat\nSteps: 1, Seed: 2, Hypernet: anime, Hypernet strength: 0.5", skip_fields=["Seed"]
    )
    assert res["Prompt"] == "cat<hypernet:anime:0.5>" and "Seed" not in res


def test_parse_backcompat_by_version():
    old = parse_infotext("[a:b:3]\nSteps: 1, Sampler: DDIM, Seed: 2, Refiner: x, Version: v1.5.1")
    assert old["Old prompt editing timelines"] == "True" and old["Pad conds v0"] == "True"
    assert old["Downcast alphas_cumprod"] == "True" and old["Refiner switch by sampling steps"] == "True"
    new = parse_infotext("[a:b:3]\nSteps: 1, Sampler: DDIM, Seed: 2, Version: v1.10.1")
    assert "Old prompt editing timelines" not in new and "Downcast alphas_cumprod" not in new
    assert new["Refiner switch by sampling steps"] == "False"
    off = parse_infotext("x\nSteps: 1, Seed: 2, Version: v1.5.1", auto_backcompat=False)
    assert "Downcast alphas_cumprod" not in off


def test_parse_version():
    assert parse_version("v1.7.0-225-g1234") == (1, 7, 0, 225)
    assert parse_version("1.10.1") == (1, 10, 1, 0)
    assert parse_version("f2.0.1v1.10.1") is None and parse_version(None) is None


def test_uses_emphasis():
    assert uses_emphasis("a (cat)") and uses_emphasis("[dog]") and uses_emphasis("(cat:1.3)")
    assert not uses_emphasis("a cat") and not uses_emphasis(r"\(escaped\)") and not uses_emphasis("(cat:1.0)")


def test_ordered_params():
    base = {"Version": "v", "Seed": 1, "Steps": 20, "Custom": "c", "Size": "1x1"}
    extra = {"Lora hashes": "x", "Steps": 30, "Emphasis": "No norm"}
    assert list(ordered_params(base, extra)) == [
        "Steps",
        "Seed",
        "Size",
        "Custom",
        "Lora hashes",
        "Emphasis",
        "Version",
    ]
    assert ordered_params(base, extra)["Steps"] == 30
    assert PARAM_ORDER[0] == "Steps" and PARAM_ORDER[-1] == "Tiling"


def test_params_line_key_equal_to_value():
    assert params_line({"Tiling": "Tiling", "Seed": 1}) == "Tiling, Seed: 1"


# --- property: whatever we write, we read back -----------------------------------------------------

KEY = re.compile(r"\A\w[\w \-/]*\w\Z")
RESERVED = {"Prompt", "Negative prompt", "Hypernet", "Hypernet strength", "Version", "Refiner", "Sampler"}


def normalise(text: str) -> str:
    """What survives the layout: lines are stripped, as is the whole text (A1111 does the same)."""
    return "\n".join(line.strip() for line in text.split("\n")).strip()


keys = st.from_regex(KEY, fullmatch=True).filter(lambda k: k not in RESERVED and "_" not in k[:1])
values = st.one_of(
    st.text(max_size=30), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)


@settings(max_examples=300, deadline=None)
@given(
    prompt=st.text(max_size=80),
    negative=st.text(max_size=80),
    params=st.dictionaries(keys, values, min_size=3, max_size=8),
)
def test_round_trip(prompt, negative, params):
    prompt, negative = normalise(prompt), normalise(negative)
    lines = (prompt + "\n" + negative).split("\n")
    assume(not any(line.startswith("Negative prompt:") for line in lines))
    assume(all(str(v) != k and not re.fullmatch(r"\d+x\d+", str(v)) for k, v in params.items()))
    res = parse_infotext(build_infotext(prompt, negative, params))
    assert res["Prompt"] == prompt
    assert res["Negative prompt"] == negative
    for key, value in params.items():
        assert res[key] == str(value)


@given(text=st.text(max_size=200))
def test_parse_never_fails(text):
    res = parse_infotext(text)
    assert isinstance(res["Prompt"], str) and all(isinstance(v, str) for v in res.values())
    split_infotext(text)


json_values = st.recursive(
    st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none()),
    lambda inner: st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=3))
def test_a_dict_nested_up_to_four_levels_comes_back_whole(value):
    """Tiled Diffusion writes its regions as {"Region control": {"Region 1": {...}}}: written as JSON, the
    value reads back whole, commas and braces inside it included."""
    import json

    def depth(item) -> int:
        return 1 + max((depth(v) for v in item.values()), default=0) if isinstance(item, dict) else 0

    assume(depth(value) <= 4)
    res = parse_infotext(build_infotext("a cat", "", {"Steps": 2, "Tiled Diffusion": value, "Seed": 3}))
    assert json.loads(res["Tiled Diffusion"]) == value and res["Seed"] == "3"
