"""A1111's `POST /sdapi/v1/interrogate`: `{image, model}` -> `{caption}`, "clip" giving the BLIP caption
and "deepdanbooru" the tags, run on the job worker with A1111's Interrogate settings. As in A1111, an
unknown model is a 404 ("Model not found"); a missing model file is a 400 naming the file or folder to
put in place (A1111 would download it); an image that cannot be read is a 400."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from modules.sumi.app import App
from modules.sumi.engine.errors import InvalidRequestError, NotFoundError
from modules.sumi.services.captioning.service import INTERROGATORS
from modules.sumi.services.settings import limits
from modules.sumi.util.b64images import decode_base64_image

_ImageText = Annotated[str, StringConstraints(max_length=limits.BASE64_IMAGE_CEILING)]


class InterrogateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image: _ImageText = Field(default="", title="Image", description="the picture, base64 (or a data: URL)")
    model: Annotated[str, StringConstraints(max_length=64)] = Field(
        default="clip", title="Model", description="clip (a BLIP caption) or deepdanbooru (tags)"
    )


class InterrogateResponse(BaseModel):
    caption: str | None = Field(default=None, title="Caption", description="the caption or the tags")


def create_interrogate_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1")

    @router.post("/interrogate", response_model=InterrogateResponse)
    def interrogate(req: InterrogateRequest) -> InterrogateResponse:
        if req.model not in INTERROGATORS:
            raise NotFoundError(f"Model not found: {req.model!r}; use {' or '.join(INTERROGATORS)}")
        if not req.image:
            raise InvalidRequestError("image: no image sent (a base64 picture)")
        try:
            image = decode_base64_image(req.image)
        except ValueError as exc:
            raise InvalidRequestError(f"image: {exc}") from exc
        return InterrogateResponse(caption=app.captioning.interrogate(image.convert("RGB"), req.model))

    return router
