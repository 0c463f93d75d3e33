"""LoRA / LyCORIS files in kohya's layout, with the metadata sd-scripts writes.

The tensors are the network's `state_dict()` (kohya layer names), cast to the chosen dtype. The
metadata carries kohya's `ss_*` training facts (what A1111's Lora tab, civitai and the additional
networks extension show), `sshs_model_hash` / `sshs_legacy_hash` computed as sd-scripts does (over a
file holding only the `ss_*` entries, so user edits of other metadata keep the hash), and, optionally,
the `modelspec.*` keys of Stability's model spec.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import safetensors.torch
import torch
from torch import Tensor

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.util.atomic import write_atomic

from .network import LoraSettings
from .trainer import LoraTrainSettings

SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
BASE_MODEL_VERSIONS = {"SD1": "sd_v1", "SD2": "sd_v2", "SDXL": "sdxl_base_v1-0"}


@dataclass(frozen=True)
class LoraFileInfo:
    """What the metadata says beyond the settings: names, dataset facts, times."""

    output_name: str
    resolution: tuple[int, int] = (512, 512)  # (width, height)
    steps: int = 0  # steps trained
    num_train_images: int = 0
    tag_frequency: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # dataset -> tag -> count
    training_started_at: float | None = None  # time.time(); None: now
    sd_model_name: str = ""
    sd_model_hash: str = ""
    training_comment: str = ""
    modelspec: bool = True


def tag_frequency(captions: Iterable[str]) -> dict[str, int]:
    """kohya's count of comma-separated tags over a dataset's captions (empty tags skipped)."""
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(tag.strip() for tag in caption.split(",") if tag.strip())
    return dict(counts)


def network_module(settings: LoraSettings) -> tuple[str, dict[str, str]]:
    """(`ss_network_module`, `ss_network_args`) as sd-scripts records them for these settings."""
    args: dict[str, str] = {}
    conv = settings.effective_conv_rank
    if settings.algo in ("lora", "locon"):
        if conv:
            args = {"conv_dim": str(conv), "conv_alpha": _number(settings.effective_conv_alpha)}
        return "networks.lora", args
    args = {"algo": settings.algo, "preset": "full"}
    if conv:
        args |= {"conv_dim": str(conv), "conv_alpha": _number(settings.effective_conv_alpha)}
    if settings.algo == "lokr":
        args["factor"] = str(settings.lokr_factor)
    if settings.dropout:
        args["dropout"] = _number(settings.dropout)
    return "lycoris.kohya", args


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def lora_metadata(
    model: SDModel, network: LoraSettings, training: LoraTrainSettings, info: LoraFileInfo
) -> dict[str, str]:
    """kohya's `ss_*` metadata (and `modelspec.*` when `info.modelspec`) for a trained network."""
    module, args = network_module(network)
    first_rate = training.loop.learn_rate.pieces[0][0]
    started = time.time() if info.training_started_at is None else info.training_started_at
    width, height = info.resolution
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
        "ss_network_module": module,
        "ss_network_dim": str(network.rank),
        "ss_network_alpha": _number(network.alpha or network.rank),
        "ss_network_dropout": _number(network.dropout) if network.dropout else "None",
        "ss_network_args": json.dumps(args) if args else "null",
        "ss_network_train_unet_only": str(not network.train_text_encoder),
        "ss_network_train_text_encoder_only": str(not network.train_unet),
        "ss_resolution": f"({width}, {height})",
        "ss_steps": str(info.steps),
        "ss_max_train_steps": str(training.loop.steps),
        "ss_learning_rate": str(first_rate),
        "ss_unet_lr": str(training.unet_lr if training.unet_lr is not None else first_rate),
        "ss_text_encoder_lr": str(
            training.text_encoder_lr if training.text_encoder_lr is not None else first_rate
        ),
        "ss_lr_scheduler": training.loop.learn_rate.text or "constant",
        "ss_optimizer": training.optimizer,
        "ss_gradient_accumulation_steps": str(training.loop.gradient_accumulation),
        "ss_gradient_checkpointing": str(training.gradient_checkpointing),
        "ss_mixed_precision": training.mixed_precision,
        "ss_max_grad_norm": _clip_norm(training),
        "ss_seed": str(training.loop.seed),
        "ss_clip_skip": str(training.clip_skip),
        "ss_noise_offset": str(training.objective.offset_noise or "None"),
        "ss_min_snr_gamma": str(training.objective.min_snr_gamma),
        "ss_debiased_estimation": str(training.objective.debiased_estimation),
        "ss_num_train_images": str(info.num_train_images),
        "ss_sd_model_name": info.sd_model_name,
        "ss_new_sd_model_hash": info.sd_model_hash,
        "ss_training_comment": info.training_comment or "None",
    }
    if info.tag_frequency:
        meta["ss_tag_frequency"] = json.dumps({k: dict(v) for k, v in info.tag_frequency.items()})
    if info.modelspec:
        meta |= _modelspec(model, network, info, started)
    return meta


def _clip_norm(training: LoraTrainSettings) -> str:
    loop = training.loop
    return loop.clip_grad.text if loop.clip_grad_mode == "norm" and loop.clip_grad else "0.0"


def _modelspec(model: SDModel, network: LoraSettings, info: LoraFileInfo, started: float) -> dict[str, str]:
    """Stability's model spec keys as sd-scripts writes them for a LoRA."""
    width, height = info.resolution
    if model.is_sdxl:
        arch, impl = "stable-diffusion-xl-v1-base", "https://github.com/Stability-AI/generative-models"
    elif model.family == "SD2":
        v = model.prediction_type == "v_prediction"
        arch, impl = ("stable-diffusion-v2-768-v" if v else "stable-diffusion-v2-512"), "diffusers"
    else:
        arch, impl = "stable-diffusion-v1", "diffusers"
    adapter = "lora" if network.algo in ("lora", "locon") else "lycoris"
    date = datetime.datetime.fromtimestamp(started, tz=datetime.timezone.utc).isoformat(timespec="seconds")
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": f"{arch}/{adapter}",
        "modelspec.implementation": impl,
        "modelspec.title": info.output_name,
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.date": date,
        "modelspec.prediction_type": "v" if model.prediction_type == "v_prediction" else "epsilon",
    }


def addnet_hashes(tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) as sd-scripts precomputes them: over a safetensors file of
    the tensors with only the `ss_*` metadata; the new hash covers the bytes after the header, the
    legacy one 64 KiB at 1 MiB."""
    data = safetensors.torch.save(dict(tensors), {k: v for k, v in metadata.items() if k.startswith("ss_")})
    header = int.from_bytes(data[:8], "little")
    model_hash = hashlib.sha256(data[8 + header :]).hexdigest()
    legacy_hash = hashlib.sha256(data[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8]
    return model_hash, legacy_hash


def save_lora(
    path: str | Path,
    tensors: Mapping[str, Tensor],
    metadata: Mapping[str, str] | None = None,
    *,
    dtype: str = "fp16",
) -> Path:
    """Write the network as `.safetensors` in `dtype` ("fp16", "bf16", "fp32") with the metadata and its
    hashes, atomically (a failed write leaves any previous file as it was)."""
    if dtype not in SAVE_DTYPES:
        raise TrainingError(f"save precision {dtype!r}: expected one of {', '.join(SAVE_DTYPES)}")
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise TrainingError(f"{path.name}: LoRA files are saved as .safetensors")
    cast = {k: v.detach().to("cpu", SAVE_DTYPES[dtype]).contiguous() for k, v in tensors.items()}
    meta = dict(metadata or {})
    meta["sshs_model_hash"], meta["sshs_legacy_hash"] = addnet_hashes(cast, meta)
    return write_atomic(path, safetensors.torch.save(cast, meta))
