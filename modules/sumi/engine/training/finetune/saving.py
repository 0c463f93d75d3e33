"""A fine-tuned model as an A1111 single-file checkpoint (`.safetensors`), with the training recipe in
its metadata.

The tensors are the whole model in the LDM layout A1111 and every other UI load (`ldm_export`): the
trained UNet (and text encoders), the VAE as it is. The metadata follows kohya's `ss_*` keys where they
mean something for a checkpoint (steps, rates, base model, dataset), adds DreamBooth's instance and
class prompts and the EMA, and carries Stability's `modelspec.*` keys, whose `prediction_type` lets a
v-prediction model load back as one with no `.yaml` beside it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from modules.sumi.engine.ldm_export import save_checkpoint, to_single_file_state_dict
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.lora.saving import BASE_MODEL_VERSIONS, SAVE_DTYPES
from modules.sumi.util.atomic import temp_beside

from .trainer import FinetuneTrainSettings


@dataclass(frozen=True)
class FinetuneFileInfo:
    """What the metadata says beyond the settings: names, dataset facts, times."""

    output_name: str
    resolution: tuple[int, int] = (512, 512)  # (width, height)
    steps: int = 0  # steps trained
    num_train_images: int = 0
    num_reg_images: int = 0  # DreamBooth's class images
    tag_frequency: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    training_started_at: float | None = None  # time.time(); None: now
    sd_model_name: str = ""  # the base checkpoint ("" when trained from scratch)
    sd_model_hash: str = ""
    training_comment: str = ""
    instance_prompt: str = ""
    class_prompt: str = ""


def finetune_metadata(
    model: SDModel, training: FinetuneTrainSettings, info: FinetuneFileInfo
) -> dict[str, str]:
    """kohya-style `ss_*` and `modelspec.*` metadata for a fine-tuned checkpoint."""
    first_rate = training.loop.learn_rate.pieces[0][0]
    started = time.time() if info.training_started_at is None else info.training_started_at
    width, height = info.resolution
    te_rate = training.text_encoder_lr if training.text_encoder_lr is not None else first_rate
    meta = {
        "ss_session_id": str(
            int(hashlib.sha256(f"{info.output_name}{started}".encode()).hexdigest()[:8], 16)
        ),
        "ss_training_started_at": str(started),
        "ss_training_finished_at": str(time.time()),
        "ss_output_name": info.output_name,
        "ss_base_model_version": BASE_MODEL_VERSIONS.get(model.family, model.family.lower()),
        "ss_v2": str(model.family == "SD2"),
        "ss_v_parameterization": str(model.prediction_type == "v_prediction"),
        "ss_resolution": f"({width}, {height})",
        "ss_steps": str(info.steps),
        "ss_max_train_steps": str(training.loop.steps),
        "ss_learning_rate": str(first_rate),
        "ss_unet_lr": str(training.unet_lr if training.unet_lr is not None else first_rate),
        "ss_train_text_encoder": str(training.train_text_encoder),
        "ss_text_encoder_lr": str(te_rate) if training.train_text_encoder else "0",
        "ss_lr_scheduler": training.loop.learn_rate.text or "constant",
        "ss_optimizer": training.optimizer,
        "ss_gradient_accumulation_steps": str(training.loop.gradient_accumulation),
        "ss_gradient_checkpointing": str(training.gradient_checkpointing),
        "ss_mixed_precision": training.mixed_precision,
        "ss_seed": str(training.loop.seed),
        "ss_clip_skip": str(training.clip_skip),
        "ss_noise_offset": str(training.objective.offset_noise or "None"),
        "ss_min_snr_gamma": str(training.objective.min_snr_gamma),
        "ss_debiased_estimation": str(training.objective.debiased_estimation),
        "ss_ema": str(training.ema_decay is not None),
        "ss_ema_decay": str(training.ema_decay) if training.ema_decay is not None else "None",
        "ss_num_train_images": str(info.num_train_images),
        "ss_num_reg_images": str(info.num_reg_images),
        "ss_prior_loss_weight": str(training.prior_loss_weight) if info.num_reg_images else "None",
        "ss_instance_prompt": info.instance_prompt,
        "ss_class_prompt": info.class_prompt,
        "ss_sd_model_name": info.sd_model_name,
        "ss_new_sd_model_hash": info.sd_model_hash,
        "ss_training_comment": info.training_comment or "None",
    }
    if info.tag_frequency:
        meta["ss_tag_frequency"] = json.dumps({k: dict(v) for k, v in info.tag_frequency.items()})
    return meta | _modelspec(model, info, started)


def _modelspec(model: SDModel, info: FinetuneFileInfo, started: float) -> dict[str, str]:
    """Stability's model spec keys as sd-scripts writes them for a checkpoint."""
    width, height = info.resolution
    if model.is_sdxl:
        arch, impl = "stable-diffusion-xl-v1-base", "https://github.com/Stability-AI/generative-models"
    elif model.family == "SD2":
        v = model.prediction_type == "v_prediction"
        arch, impl = ("stable-diffusion-v2-768-v" if v else "stable-diffusion-v2-512"), "diffusers"
    else:
        arch, impl = "stable-diffusion-v1", "diffusers"
    date = datetime.datetime.fromtimestamp(started, tz=datetime.timezone.utc).isoformat(timespec="seconds")
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": arch,
        "modelspec.implementation": impl,
        "modelspec.title": info.output_name,
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.date": date,
        "modelspec.prediction_type": "v" if model.prediction_type == "v_prediction" else "epsilon",
    }


def checkpoint_state_dict(model: SDModel, dtype: str = "fp16") -> dict[str, Tensor]:
    """The whole model in A1111's single-file layout, on the CPU in `dtype` ("fp16", "bf16", "fp32")."""
    if dtype not in SAVE_DTYPES:
        raise TrainingError(f"save precision {dtype!r}: expected one of {', '.join(SAVE_DTYPES)}")
    state = to_single_file_state_dict(model.family, model.unet, model.vae, model.text_encoders)
    cast = SAVE_DTYPES[dtype]
    return {
        key: value.to("cpu", cast if value.is_floating_point() else value.dtype)
        for key, value in state.items()
    }


def save_finetuned(
    path: str | Path, model: SDModel, metadata: Mapping[str, str] | None = None, *, dtype: str = "fp16"
) -> Path:
    """Write the model as `path` (`.safetensors`), atomically: a failed write leaves any previous file."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise TrainingError(f"{path.name}: fine-tuned checkpoints are saved as .safetensors")
    state = checkpoint_state_dict(model, dtype)
    with temp_beside(path, suffix=".tmp.safetensors") as tmp:
        save_checkpoint(tmp, state, metadata)
        os.replace(tmp, path)
    return path
