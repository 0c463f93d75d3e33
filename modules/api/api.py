"""A1111's `modules.api.api`: the helpers and the `Api` class extensions import.

Sumi's HTTP API is `modules.sumi.frontends.http.sdapi`; its routes are served by Sumi itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from PIL import Image

from modules import shared
from modules.api import models
from modules.sumi.frontends.http.sdapi import run_img2img, run_txt2img
from modules.sumi.services.images.saving import SaveSettings, encode_image_base64
from modules.sumi.util.b64images import decode_base64_image

__all__ = ["Api", "decode_base64_to_image", "encode_pil_to_base64"]


def decode_base64_to_image(encoding: str) -> Image.Image:
    """A1111: a PIL image from base64 or a `data:` URL; HTTP 500 "Invalid encoded image" if it is not one."""
    try:
        return decode_base64_image(encoding)
    except ValueError as exc:
        raise HTTPException(status_code=500, detail="Invalid encoded image") from exc


def encode_pil_to_base64(image: Image.Image) -> bytes:
    """A1111: the image as base64 *bytes*, in the `samples_format` setting's format (with the settings
    `jpeg_quality` and `webp_lossless`), with its infotext."""
    app = shared.running_app()
    extension = str(app.options.samples_format) if app is not None else "png"
    settings = SaveSettings.from_options(app.options) if app is not None else SaveSettings()
    infotext = image.info.get("parameters") if isinstance(image.info.get("parameters"), str) else None
    return encode_image_base64(image, infotext, extension, settings.quality, settings.webp_lossless).encode(
        "ascii"
    )


class Api:
    """A1111's `Api(app, queue_lock)`, for extensions that call its handlers directly (agent-scheduler).

    Its routes are already served by Sumi, so nothing is added to the FastAPI app given; the handlers
    run on the running App's job queue."""

    def __init__(self, app: FastAPI | None = None, queue_lock: Any = None) -> None:
        self.app = app
        self.queue_lock = queue_lock

    def text2imgapi(self, txt2imgreq: models.Txt2ImgRequest) -> models.ImagesResponse:
        return run_txt2img(shared.app(), txt2imgreq)

    def img2imgapi(self, img2imgreq: models.Img2ImgRequest) -> models.ImagesResponse:
        return run_img2img(shared.app(), img2imgreq)
