"""Issue 11, points 6 and 7: input bounds stated in the schema and enforced (4xx, A1111's error body),
404 only for what is missing, no bare 500, one traceback per error."""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import struct
import zlib

import pytest
from PIL import Image

from tests.app_support import local_client, post_txt2img, serve
from webui import build_server

SMALL = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 1234, "sampler_name": "Euler"}
A1111_ERROR_KEYS = {"error", "detail", "body", "errors"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(
        tmp_path_factory.mktemp("data"), "--api", "--nowebui", "--max-request-body-mb", "1"
    )


def refused(client, body: dict, status: int) -> dict:
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == status, r.text
    assert set(r.json()) == A1111_ERROR_KEYS
    return r.json()


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def bomb_png_b64(width: int, height: int) -> str:
    """A tiny PNG whose header claims width x height (a decompression bomb as far as the size goes)."""
    raw = base64.b64decode(png_b64(Image.new("RGB", (8, 8))))
    ihdr = struct.pack(">II", width, height) + raw[24:29]
    chunk = b"IHDR" + ihdr
    patched = raw[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]
    return base64.b64encode(patched).decode()


# -- seeds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, -2, 10**30])
def test_a_seed_outside_the_accepted_range_is_a_422_not_a_500(client, seed):
    body = refused(client, {**SMALL, "seed": seed}, 422)
    assert "seed" in body["errors"]
    refused(client, {**SMALL, "subseed": seed, "subseed_strength": 0.5}, 422)


def test_the_largest_seed_works_even_where_a_batch_counts_past_it(client):
    body = post_txt2img(client, {**SMALL, "seed": 2**64 - 1, "batch_size": 2})
    assert json.loads(body["info"])["all_seeds"] == [2**64 - 1, 2**64]


# -- sizes, prompts, bodies, images ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [10**6, 150000])
def test_seed_resize_from_a_huge_size_is_refused_before_any_noise_is_drawn(client, value):
    body = refused(client, {**SMALL, "seed_resize_from_w": value, "seed_resize_from_h": value}, 422)
    assert "seed_resize_from_w" in body["errors"]


def test_seed_resize_from_over_max_image_size_is_a_400_naming_the_setting(client):
    body = refused(client, {**SMALL, "seed_resize_from_w": 4096, "seed_resize_from_h": 64}, 400)
    assert "max_image_size" in body["detail"]
    assert post_txt2img(client, {**SMALL, "seed_resize_from_w": 128, "seed_resize_from_h": 128})["images"]


def test_a_prompt_over_max_prompt_length_is_a_400_naming_the_setting(app, client):
    limit = app.options.max_prompt_length
    body = refused(client, {**SMALL, "negative_prompt": "x" * (limit + 1)}, 400)
    assert "negative_prompt" in body["detail"] and "max_prompt_length" in body["detail"]
    refused(client, {**SMALL, "prompt": ["ok", "y" * (limit + 1)]}, 400)


def test_a_20_mb_negative_prompt_is_refused_with_a_4xx_and_not_echoed(make_app, tmp_path):
    client = local_client(build_server(make_app(tmp_path, "--api", "--nowebui")))  # the default body limit
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "negative_prompt": "x" * (20 * 1024 * 1024)})
    assert 400 <= r.status_code < 500 and set(r.json()) == A1111_ERROR_KEYS
    assert len(r.content) < 10_000  # the prompt is not sent back
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200


def test_a_body_over_the_limit_is_a_413(client):
    big = json.dumps({**SMALL, "prompt": "x" * (2 * 1024 * 1024)}).encode()
    r = client.post("/sdapi/v1/txt2img", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and set(r.json()) == A1111_ERROR_KEYS
    assert "--max-request-body-mb" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it streams
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    r = client.post("/sdapi/v1/txt2img", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and set(r.json()) == A1111_ERROR_KEYS
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200


def test_a_real_client_still_sending_a_too_large_body_reads_the_413(app):
    """Over a socket: the refused body is read and dropped, so the client gets the 413, not a reset."""
    with serve(app) as url:
        for chunked in (False, True):
            connection = http.client.HTTPConnection(url.split("//")[1], timeout=60)
            body = (b"x" * (256 * 1024) for _ in range(8)) if chunked else b"x" * (2 * 1024 * 1024)
            headers = {"content-type": "application/json"}
            connection.request(
                "POST", "/sdapi/v1/txt2img", body=body, headers=headers, encode_chunked=chunked
            )
            response = connection.getresponse()
            assert response.status == 413 and "max-request-body-mb" in json.loads(response.read())["detail"]
            connection.close()


def test_a_base64_image_that_decodes_to_too_many_pixels_is_a_400(client):
    r = client.post("/sdapi/v1/png-info", json={"image": bomb_png_b64(9000, 9000)})
    assert r.status_code == 400 and "too large" in r.json()["detail"]
    r = client.post(
        "/controlnet/detect",
        json={"controlnet_module": "canny", "controlnet_input_images": [bomb_png_b64(9000, 9000)]},
    )
    assert r.status_code == 400 and "too large" in r.json()["detail"]
    unit = {"enabled": True, "module": "canny", "model": "None", "image": bomb_png_b64(9000, 9000)}
    body = refused(client, {**SMALL, "alwayson_scripts": {"controlnet": {"args": [unit]}}}, 400)
    assert "too large" in body["detail"]


def test_non_finite_numbers_are_a_422(client):
    r = client.post(
        "/sdapi/v1/txt2img",
        content=json.dumps({**SMALL, "cfg_scale": float("nan")}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and "cfg_scale" in r.json()["errors"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("seed_resize_from_w", True),
        ("steps", "2"),
        ("cfg_scale", False),
        ("tiling", 1),
        ("send_images", "yes"),
    ],
)
def test_a_value_of_another_json_type_is_a_422_not_read_as_a_number_or_flag(client, field, value):
    """The schema says integer, number or boolean: `true` is not 1 and "2" is not 2 (found by fuzzing)."""
    body = refused(client, {**SMALL, field: value}, 422)
    assert field in body["errors"]


def test_a_whole_number_written_as_a_float_is_still_an_integer(client):
    assert client.post("/sdapi/v1/txt2img", json={**SMALL, "steps": 2.0}).status_code == 200


def test_the_openapi_schema_states_the_bounds(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"][
        "StableDiffusionTxt2ImgProcessingAPI"
    ]
    props = schema["properties"]

    def bounds(name: str) -> dict:
        return next(choice for choice in props[name]["anyOf"] if choice.get("type") != "null")

    assert bounds("seed")["minimum"] == -1 and bounds("seed")["maximum"] == float(2**64 - 1)  # JSON numbers
    assert bounds("width")["minimum"] == 64 and bounds("width")["maximum"] >= 2048
    assert "multipleOf" not in bounds("width")  # not a multiple of 8: rounded down, as A1111
    assert bounds("seed_resize_from_h")["maximum"] == bounds("height")["maximum"]
    for name in ("steps", "batch_size", "n_iter", "cfg_scale"):
        assert "minimum" in bounds(name) and "maximum" in bounds(name), name
    assert all(
        "maxLength" in choice for choice in props["negative_prompt"]["anyOf"] if choice["type"] == "string"
    )


# -- statuses and errors ----------------------------------------------------------------------------------


def test_not_found_words_in_a_bad_value_give_a_400_not_a_404(client):
    body = refused(client, {**SMALL, "sampler_name": "not found"}, 400)
    assert "not found" in body["detail"].lower()
    refused(client, {**SMALL, "styles": ["not found"], "seed": "not found"}, 422)


def test_a_missing_route_is_a_404_with_a1111s_error_body(client):
    r = client.get("/sdapi/v1/no-such-route")
    assert r.status_code == 404 and set(r.json()) == A1111_ERROR_KEYS


def test_an_unexpected_error_is_a_json_500_naming_what_failed_with_one_traceback(
    app, client, monkeypatch, caplog
):
    def broken(p):
        raise RuntimeError("the disk controller caught fire")

    monkeypatch.setattr(app.runner.generation, "process", broken)
    with caplog.at_level(logging.INFO):
        r = client.post("/sdapi/v1/txt2img", json=SMALL)
    assert r.status_code == 500 and set(r.json()) == A1111_ERROR_KEYS
    assert r.json()["error"] == "RuntimeError"
    assert "POST /sdapi/v1/txt2img" in r.json()["detail"] and "caught fire" in r.json()["detail"]
    assert len([rec for rec in caplog.records if rec.exc_info]) == 1
    monkeypatch.undo()
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200


def test_an_error_outside_any_job_is_a_json_500_with_one_traceback(app, client, monkeypatch, caplog):
    def broken():
        raise KeyError("no such sampler table")

    monkeypatch.setattr(app.state, "snapshot", broken)
    with caplog.at_level(logging.INFO):
        r = client.get("/sdapi/v1/progress")
    assert r.status_code == 500 and r.json()["error"] == "KeyError"
    assert "GET /sdapi/v1/progress" in r.json()["detail"]
    assert len([rec for rec in caplog.records if rec.exc_info]) == 1


def test_a_users_mistake_in_a_job_logs_one_line_and_no_traceback(client, caplog):
    unit = {
        "enabled": True,
        "module": "canny",
        "model": "missing_model",
        "image": png_b64(Image.new("RGB", (64, 64))),
    }
    with caplog.at_level(logging.INFO):
        refused(client, {**SMALL, "alwayson_scripts": {"controlnet": {"args": [unit]}}}, 400)
    assert any("missing_model" in rec.getMessage() for rec in caplog.records)
    assert not [rec for rec in caplog.records if rec.exc_info]


# -- nothing lost -----------------------------------------------------------------------------------------


def test_images_come_back_with_a_warning_when_saving_fails(app, client):
    blocker = app.paths.data_dir / "api-blocker"
    blocker.write_text("a file, not a folder")
    before = app.options.outdir_txt2img_samples
    app.options.set("outdir_txt2img_samples", str(blocker / "out"))
    try:
        body = post_txt2img(client, {**SMALL, "save_images": True})
    finally:
        app.options.set("outdir_txt2img_samples", before)
    info = json.loads(body["info"])
    assert len(body["images"]) == 1 and info["infotexts"][0].startswith("a red fox")
    assert any(w.startswith("Could not save the image") for w in info["warnings"])
