"""The "Restore faces" checkbox in txt2img and img2img: A1111's element ids, starts at the setting,
goes into the job, and pasting an infotext with `Face restoration` ticks it."""

from __future__ import annotations

from modules.sumi.frontends.gradio import img2img, paste, txt2img


def test_both_tabs_have_the_checkbox_starting_at_the_setting(tmp_path, make_app):
    from modules.sumi.frontends.gradio import build_ui

    app = make_app(tmp_path, start=False)
    app.options.face_restoration = True
    config = build_ui(app).get_config_file()
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c["props"].get("elem_id")}
    for tab in ("txt2img", "img2img"):
        assert props[f"{tab}_restore_faces"]["value"] is True
        assert props[f"{tab}_restore_faces"]["label"] == "Restore faces"
        assert "none installed" in props[f"{tab}_restore_faces"]["info"]


def test_the_checkbox_goes_into_the_job():
    assert "restore_faces" in txt2img.INPUT_NAMES and "restore_faces" in img2img.INPUT_NAMES
    assert (
        txt2img.build_processing(txt2img.Txt2ImgValues(prompt="x", restore_faces=True)).restore_faces is True
    )
    assert txt2img.build_processing(txt2img.Txt2ImgValues(prompt="x")).restore_faces is False


def test_pasting_an_infotext_sets_the_checkbox():
    with_faces = paste.infotext_values(
        "a face\nSteps: 20, Seed: 1, Face restoration: CodeFormer, Size: 512x512"
    )
    without = paste.infotext_values("a face\nSteps: 20, Seed: 1, Size: 512x512")
    assert with_faces is not None and with_faces.values["restore_faces"] is True
    assert without is not None and "restore_faces" not in without.values  # absent: left alone (A1111)
    assert "restore_faces" in paste.FIELDS and "restore_faces" in paste.IMG2IMG_FIELDS
