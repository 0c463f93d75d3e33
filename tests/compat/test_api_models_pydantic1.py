"""Extensions written for A1111 1.10 (pydantic 1) subclass the API request models with a class-based
`Config` derived from `Model.__config__` (agent-scheduler's task models do). That must import and
validate on Sumi's pydantic 2 models."""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import Field

from modules.api.models import StableDiffusionImg2ImgProcessingAPI, StableDiffusionTxt2ImgProcessingAPI


def _task_args(base: Any) -> Any:
    class TaskArgs(base):  # agent-scheduler's Txt2ImgApiTaskArgs / Img2ImgApiTaskArgs, unchanged in form
        checkpoint: str | None = Field(None, title="Custom checkpoint.")
        callback_url: str | None = Field(None, title="Callback URL")

        class Config(base.__config__):
            @staticmethod
            def schema_extra(schema: dict[str, Any], model: Any) -> None:
                schema.get("properties", {}).pop("send_images", None)

    return TaskArgs


def test_a_pydantic1_style_subclass_of_the_request_models_imports_and_validates():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic 2 warns that class-based Config is deprecated
        txt2img_args, img2img_args = (
            _task_args(StableDiffusionTxt2ImgProcessingAPI),
            _task_args(StableDiffusionImg2ImgProcessingAPI),
        )
    task = txt2img_args(prompt="a red circle", steps=3, checkpoint="demo", unknown_key=1)
    assert (task.prompt, task.steps, task.checkpoint) == ("a red circle", 3, "demo")
    assert task.model_extra == {"unknown_key": 1}  # unknown keys kept aside, as the base model does
    assert img2img_args(init_images=["x"], denoising_strength=0.5).denoising_strength == 0.5
    assert {"checkpoint", "callback_url", "prompt"} <= set(txt2img_args.model_json_schema()["properties"])


def test_the_pydantic1_config_holds_the_same_settings_as_the_model():
    config = StableDiffusionTxt2ImgProcessingAPI.__config__
    model_config = StableDiffusionTxt2ImgProcessingAPI.model_config
    assert (config.extra, config.allow_inf_nan) == (
        model_config.get("extra"),
        model_config.get("allow_inf_nan"),
    )
    assert "__config__" not in StableDiffusionTxt2ImgProcessingAPI.model_fields
