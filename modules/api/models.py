"""A1111's `modules.api.models`: the request and response bodies of the HTTP API (pydantic models).

They are defined in `modules.sumi.frontends.http.models`.
"""

from __future__ import annotations

from modules.sumi.frontends.http.extras import (
    ExtraBaseResponse,
    ExtrasBaseRequest,
    ExtrasBatchImagesRequest,
    ExtrasBatchImagesResponse,
    ExtrasSingleImageRequest,
    ExtrasSingleImageResponse,
    FileData,
)
from modules.sumi.frontends.http.interrogate import InterrogateRequest, InterrogateResponse
from modules.sumi.frontends.http.models import (
    ImagesResponse,
    ImageToImageResponse,
    Img2ImgRequest,
    PngInfoRequest,
    PngInfoResponse,
    ProgressResponse,
    ProgressState,
    SamplerItem,
    SchedulerItem,
    SDModelItem,
    StableDiffusionImg2ImgProcessingAPI,
    StableDiffusionTxt2ImgProcessingAPI,
    TextToImageResponse,
    Txt2ImgRequest,
    VaeItem,
)

__all__ = [
    "ExtraBaseResponse",
    "ExtrasBaseRequest",
    "ExtrasBatchImagesRequest",
    "ExtrasBatchImagesResponse",
    "ExtrasSingleImageRequest",
    "ExtrasSingleImageResponse",
    "FileData",
    "ImageToImageResponse",
    "ImagesResponse",
    "Img2ImgRequest",
    "InterrogateRequest",
    "InterrogateResponse",
    "PngInfoRequest",
    "PngInfoResponse",
    "ProgressResponse",
    "ProgressState",
    "SDModelItem",
    "SamplerItem",
    "SchedulerItem",
    "StableDiffusionImg2ImgProcessingAPI",
    "StableDiffusionTxt2ImgProcessingAPI",
    "TextToImageResponse",
    "Txt2ImgRequest",
    "VaeItem",
]
