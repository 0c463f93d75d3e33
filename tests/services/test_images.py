import base64
import datetime as dt
import io
import json
import os
import threading

import pytest
from PIL import Image, PngImagePlugin

from modules.sumi.services.images import saving as images
from modules.sumi.services.images.saving import (
    apply_filename_pattern,
    dated_dir,
    encode_image,
    encode_png_base64,
    image_grid,
    next_sequence_number,
    read_info_from_image,
    read_infotext_from_image,
    sanitize_filename_part,
    save_image_file,
)
from modules.sumi.util.b64images import decode_base64_image

INFOTEXT = "a cat, 猫\nNegative prompt: dog\nSteps: 20, Sampler: Euler, Seed: 42"


def img(color="red", size=(16, 16), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def test_save_names_png_chunk_and_counter(tmp_path):
    first = save_image_file(img(), tmp_path, seed=42, prompt="a cat, on: the/mat?", infotext=INFOTEXT)
    assert first.name == "00000-42-a cat, on_ the_mat_.png"
    with Image.open(first) as saved:
        assert saved.info["parameters"] == INFOTEXT
        assert read_infotext_from_image(saved) == INFOTEXT
    second = save_image_file(img(), tmp_path, seed=43, prompt="x", infotext=None)
    assert second.name == "00001-43-x.png"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_counter_continues_after_highest(tmp_path):
    (tmp_path / "00041-1.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    assert next_sequence_number(tmp_path) == 42
    assert next_sequence_number(tmp_path / "missing") == 0
    assert (
        save_image_file(img(), tmp_path, seed=1, prompt="", infotext=None, pattern="[seed]").name
        == "00042-1.png"
    )


def test_grid_prefix_uses_four_digits(tmp_path):
    path = save_image_file(img(), tmp_path, seed=None, prompt="x", infotext=None, basename_prefix="grid")
    assert path.name == "grid-0000.png"


def test_pnginfo_disabled_and_save_txt(tmp_path):
    path = save_image_file(
        img(), tmp_path, seed=1, prompt="p", infotext=INFOTEXT, pnginfo_enabled=False, save_txt=True
    )
    with Image.open(path) as saved:
        assert "parameters" not in saved.info
    assert path.with_suffix(".txt").read_text(encoding="utf-8") == INFOTEXT


@pytest.mark.parametrize("ext", ["jpg", "webp"])
def test_jpeg_and_webp_carry_infotext_in_exif(tmp_path, ext):
    path = save_image_file(img(mode="RGBA"), tmp_path, seed=1, prompt="p", infotext=INFOTEXT, extension=ext)
    assert path.suffix == "." + ext
    with Image.open(path) as saved:
        assert read_infotext_from_image(saved) == INFOTEXT


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown image format"):
        save_image_file(img(), tmp_path, seed=1, prompt="p", infotext=None, extension="nope")


def test_long_and_hostile_prompts_make_safe_names(tmp_path):
    prompt = "\x00\x1f<>:|?*\\/" + "語" * 500
    path = save_image_file(img(), tmp_path, seed=7, prompt=prompt, infotext=None)
    assert path.parent == tmp_path and len(path.name.encode()) <= 255
    assert not set('<>:"/\\|?*\x00\x1f') & set(path.name)


def test_sanitize_filename_part():
    assert sanitize_filename_part(" a b. ") == "_a_b._"  # A1111 replaces spaces first
    assert sanitize_filename_part(" a b. ", replace_spaces=False) == "a b"
    assert len(sanitize_filename_part("x" * 300)) == 128


def test_filename_pattern_tokens():
    when = dt.datetime(2024, 7, 27, 13, 14, 15)
    name = apply_filename_pattern(
        "[date]-[datetime]-[seed]-[prompt]-[prompt_words]-[steps]-[nope]",
        seed=5,
        prompt="a big, cat",
        when=when,
        fields={"Steps": 20},
    )
    assert name == "2024-07-27-20240727131415-5-a_big,_cat-a big cat-20-[nope]"
    assert images.default_filename_pattern("", save_to_dirs=True) == "[seed]"
    assert images.default_filename_pattern("", save_to_dirs=False) == "[seed]-[prompt_spaces]"
    assert images.default_filename_pattern("[seed]x", save_to_dirs=False) == "[seed]x"


def test_dated_dir(tmp_path):
    assert dated_dir(tmp_path, dt.date(2024, 1, 2)) == tmp_path / "2024-01-02"


def test_concurrent_saves_never_share_a_name(tmp_path):
    paths = []
    threads = [
        threading.Thread(
            target=lambda i=i: paths.append(
                save_image_file(img(), tmp_path, seed=i, prompt="p", infotext=None, pattern="x")
            )
        )
        for i in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 12 and len(list(tmp_path.glob("*.png"))) == 12


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(images.os, "link", fail)
    monkeypatch.setattr(images.os, "replace", fail)
    with pytest.raises(OSError):
        save_image_file(img(), tmp_path, seed=1, prompt="p", infotext=None)
    assert [p.name for p in tmp_path.iterdir() if p.stat().st_size] == []


def test_existing_png_text_is_kept():
    data = encode_image(img(), "png", INFOTEXT, existing_info={"Software": "X", "dpi": (72, 72)})
    with Image.open(io.BytesIO(data)) as reread:
        info, items = read_info_from_image(reread)
    assert info == INFOTEXT and items["Software"] == "X"


def test_novelai_conversion():
    pnginfo = PngImagePlugin.PngInfo()
    pnginfo.add_text("Software", "NovelAI")
    pnginfo.add_text("Description", "1girl")
    pnginfo.add_text(
        "Comment", json.dumps({"uc": "bad", "steps": 28, "sampler": "k_euler", "scale": 11, "seed": 9})
    )
    buf = io.BytesIO()
    img(size=(8, 16)).save(buf, "PNG", pnginfo=pnginfo)
    with Image.open(buf) as reread:
        info = read_infotext_from_image(reread)
    assert (
        info
        == "1girl\nNegative prompt: bad\nSteps: 28, Sampler: Euler, CFG scale: 11, Seed: 9, Size: 8x16, Clip skip: 2, ENSD: 31337"
    )


def test_read_infotext_none_when_absent():
    assert read_infotext_from_image(img()) is None


# --- grids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "rows", "cols"), [(1, 1, 1), (2, 1, 2), (3, 2, 2), (4, 2, 2), (5, 2, 3), (9, 3, 3), (10, 3, 4)]
)
def test_grid_layout_like_a1111(count, rows, cols):
    grid = image_grid([img(size=(10, 20))] * count)
    assert grid.size == (cols * 10, rows * 20)


def test_grid_options_and_blank_cells():
    assert image_grid([img()] * 6, batch_size=3, n_rows=0).size == (32, 48)
    assert image_grid([img()] * 6, n_rows=1).size == (96, 16)
    assert image_grid([img()] * 5, prevent_empty_spots=True).size == (80, 16)
    grid = image_grid([img("white")] * 3, rows=2)
    assert grid.getpixel((20, 20)) == (0, 0, 0)  # the empty fourth cell is black
    assert image_grid([img("white")] * 3, rows=2, background="white").getpixel((20, 20)) == (255, 255, 255)


def test_grid_centres_smaller_images():
    grid = image_grid([img("white", (10, 10)), img("white", (4, 4))])
    assert grid.size == (20, 10)
    assert grid.getpixel((12, 5)) == (0, 0, 0) and grid.getpixel((15, 5)) == (255, 255, 255)


def test_grid_needs_images():
    with pytest.raises(ValueError):
        image_grid([])


# --- base64 ----------------------------------------------------------------------------------------


def test_base64_round_trip_with_infotext_and_data_url():
    encoded = encode_png_base64(img("blue"), INFOTEXT)
    decoded = decode_base64_image(encoded)
    assert decoded.getpixel((0, 0)) == (0, 0, 255) and read_infotext_from_image(decoded) == INFOTEXT
    assert decode_base64_image("data:image/png;base64," + encoded).size == (16, 16)
    assert decode_base64_image(encoded[:40] + "\n" + encoded[40:]).size == (16, 16)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "data:image/png;base64",
        "not base64!!",
        base64.b64encode(b"not an image").decode(),
        "https://e.com/x.png",
        None,
    ],
)
def test_decode_errors_are_value_errors(bad):
    with pytest.raises(ValueError):
        decode_base64_image(bad)


def test_atomic_write_replaces(tmp_path):
    target = tmp_path / "a.txt"
    images.write_atomic(target, b"one")
    images.write_atomic(target, b"two")
    assert target.read_bytes() == b"two" and os.listdir(tmp_path) == ["a.txt"]
