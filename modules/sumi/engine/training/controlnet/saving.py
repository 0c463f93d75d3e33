"""Trained ControlNets in the layout sd-webui-controlnet users download: one `.safetensors` file with
lllyasviel's `control_model.*` keys (`control_v11p_sd15_canny` style), fp16 or fp32, with the training
facts in its metadata.

Keys come from `ldm_export.controlnet_to_ldm`, the same mapping Sumi's ControlNet loader reads back, so
a saved file loads through `engine.controlnet.models.load_controlnet` (and sd-webui-controlnet) into the
trained weights. The metadata uses kohya's `ss_*` names where sd-scripts has one (what civitai and
metadata viewers show), `sumi_controlnet_conditioning` for how the control images were made, and
Stability's `modelspec.*` keys with the architecture `<base>/controlnet`.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from diffusers import ControlNetModel
from torch import Tensor

from modules.sumi.engine.ldm_export import controlnet_to_ldm
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.lora.saving import BASE_MODEL_VERSIONS
from modules.sumi.util.atomic import write_atomic

from .trainer import ControlNetTrainSettings

SAVE_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class ControlNetFileInfo:
    """What the metadata says beyond the settings: names, dataset facts, times."""

    output_name: str
    resolution: tuple[int, int] = (512, 512)  # (width, height)
    steps: int = 0  # steps trained
    num_train_images: int = 0
    conditioning: str = ""  # how the control images were made ("canny (100, 200)", "folder ...")
    training_started_at: float | None = None  # time.time(); None: now
    sd_model_name: str = ""
    sd_model_hash: str = ""
    training_comment: str = ""


def controlnet_state_dict(controlnet: ControlNetModel) -> dict[str, Tensor]:
    """The ControlNet's weights under lllyasviel's names (`control_model.input_hint_block.0.weight`...)."""
    return controlnet_to_ldm(controlnet.state_dict(), controlnet.config)


def controlnet_metadata(
    model: SDModel, training: ControlNetTrainSettings, info: ControlNetFileInfo
) -> dict[str, str]:
    """The file's metadata for a ControlNet trained on `model` with `training`."""
    loop = training.loop
    started = time.time() if info.training_started_at is None else info.training_started_at
    width, height = info.resolution
    return {
        "ss_output_name": info.output_name,
        "ss_training_started_at": str(started),
        "ss_training_finished_at": str(time.time()),
        "ss_base_model_version": BASE_MODEL_VERSIONS.get(model.family, model.family.lower()),
        "ss_v2": str(model.family == "SD2"),
        "ss_v_parameterization": str(model.prediction_type == "v_prediction"),
        "ss_resolution": f"({width}, {height})",
        "ss_steps": str(info.steps),
        "ss_max_train_steps": str(loop.steps),
        "ss_learning_rate": str(loop.learn_rate.pieces[0][0]),
        "ss_lr_scheduler": loop.learn_rate.text or "constant",
        "ss_optimizer": training.optimizer,
        "ss_gradient_accumulation_steps": str(loop.gradient_accumulation),
        "ss_gradient_checkpointing": str(training.gradient_checkpointing),
        "ss_mixed_precision": training.mixed_precision,
        "ss_seed": str(loop.seed),
        "ss_clip_skip": str(training.clip_skip),
        "ss_noise_offset": str(training.objective.offset_noise or "None"),
        "ss_min_snr_gamma": str(training.objective.min_snr_gamma),
        "ss_debiased_estimation": str(training.objective.debiased_estimation),
        "ss_caption_dropout_rate": str(training.proportion_empty_prompts),
        "ss_num_train_images": str(info.num_train_images),
        "ss_sd_model_name": info.sd_model_name,
        "ss_new_sd_model_hash": info.sd_model_hash,
        "ss_training_comment": info.training_comment or "None",
        "sumi_controlnet_conditioning": info.conditioning,
        **_modelspec(model, info, started),
    }


def _modelspec(model: SDModel, info: ControlNetFileInfo, started: float) -> dict[str, str]:
    width, height = info.resolution
    if model.is_sdxl:
        arch = "stable-diffusion-xl-v1-base"
    elif model.family == "SD2":
        arch = (
            "stable-diffusion-v2-768-v"
            if model.prediction_type == "v_prediction"
            else "stable-diffusion-v2-512"
        )
    else:
        arch = "stable-diffusion-v1"
    date = datetime.datetime.fromtimestamp(started, tz=datetime.timezone.utc).isoformat(timespec="seconds")
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": f"{arch}/controlnet",
        "modelspec.implementation": "https://github.com/lllyasviel/ControlNet",
        "modelspec.title": info.output_name,
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.date": date,
        "modelspec.prediction_type": "v" if model.prediction_type == "v_prediction" else "epsilon",
    }


def save_controlnet(
    path: str | Path,
    controlnet: ControlNetModel,
    metadata: Mapping[str, str] | None = None,
    *,
    dtype: str = "fp16",
) -> Path:
    """Write the ControlNet as `.safetensors` in `dtype` ("fp16" or "fp32") with the metadata,
    atomically (a failed write leaves any previous file as it was)."""
    if dtype not in SAVE_DTYPES:
        raise TrainingError(f"save precision {dtype!r}: expected one of {', '.join(SAVE_DTYPES)}")
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise TrainingError(f"{path.name}: ControlNet files are saved as .safetensors")
    cast = {
        k: v.detach().to("cpu", SAVE_DTYPES[dtype]).contiguous()
        for k, v in controlnet_state_dict(controlnet).items()
    }
    return write_atomic(path, safetensors.torch.save(cast, dict(metadata or {})))
