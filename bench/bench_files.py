"""The files a server benchmark needs, written once into a cache folder and reused by later runs.

For one model kind ("sd15", "sdxl" at their released sizes with random weights, or "tiny", the demo
model): the A1111 single-file checkpoint (fp16), a diffusers config folder beside it (JSON and
tokenizer files only, so plain diffusers' `from_single_file` loads the same file offline), and for
SD1-style kinds a kohya LoRA and an lllyasviel ControlNet made for that model.
Throughput does not depend on the weights' values, so random weights time like the released ones.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import ControlNetModel, EulerAncestralDiscreteScheduler

from modules.sumi.engine import tiny_models
from modules.sumi.engine.families.base import scheduler_config
from modules.sumi.engine.text.tokenizer import get_tokenizer
from tests.fixtures.tiny_controlnets import write_lllyasviel
from tests.fixtures.tiny_networks import write_lora

KINDS = {"sd15": "SD1", "sdxl": "SDXL", "tiny": "SD1"}
LORA_RANK = 16  # most LoRA files on Civitai: attention + text encoder layers, rank 8-32


@dataclass(frozen=True)
class BenchFiles:
    kind: str
    checkpoint: Path
    config: Path  # diffusers config folder for `from_single_file(config=...)`
    lora: Path | None
    controlnet: Path | None

    @property
    def xl(self) -> bool:
        return KINDS[self.kind] == "SDXL"


def _components(kind: str) -> dict:
    return tiny_models.demo_sd1(0) if kind == "tiny" else tiny_models.full_size(KINDS[kind], seed=0)


def write_config_folder(folder: Path, components: dict) -> Path:
    """The diffusers pipeline folder without weights: model_index.json, component configs, tokenizers."""
    xl = components["family"] == "SDXL"
    components["unet"].save_config(folder / "unet")
    components["vae"].save_config(folder / "vae")
    scheduler: Any = EulerAncestralDiscreteScheduler.from_config(scheduler_config("epsilon"))
    scheduler.save_config(folder / "scheduler")
    index: dict = {
        "_class_name": "StableDiffusionXLPipeline" if xl else "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
    }
    for i, encoder in enumerate(components["text_encoders"]):
        suffix = "" if i == 0 else f"_{i + 1}"
        encoder.config.save_pretrained(folder / f"text_encoder{suffix}")
        get_tokenizer("!" if i else "<|endoftext|>").save_pretrained(folder / f"tokenizer{suffix}")
        index[f"text_encoder{suffix}"] = ["transformers", type(encoder).__name__]
        index[f"tokenizer{suffix}"] = ["transformers", "CLIPTokenizer"]
    if xl:
        index["force_zeros_for_empty_prompt"] = True
    else:
        index |= {
            "safety_checker": [None, None],
            "feature_extractor": [None, None],
            "requires_safety_checker": False,
        }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def bench_files(kind: str, cache: Path) -> BenchFiles:
    """The files for `kind` in `cache/<kind>/`, written now if a previous run did not leave them there."""
    folder = cache / kind
    files = BenchFiles(
        kind,
        folder / f"bench-{kind}.safetensors",
        folder / "diffusers-config",
        None if KINDS[kind] == "SDXL" else folder / f"bench_{kind}_lora.safetensors",
        None if KINDS[kind] == "SDXL" else folder / f"bench_{kind}_control.safetensors",
    )
    done = folder / "complete"
    if done.exists():
        return files
    folder.mkdir(parents=True, exist_ok=True)
    print(f"writing the {kind} bench files into {folder} (once)", flush=True)
    components = _components(kind)
    tiny_models.write_checkpoint(files.checkpoint, components, dtype=torch.float16)
    write_config_folder(files.config, components)
    if files.lora is not None:
        write_lora(files.lora, components, rank=LORA_RANK, seed=1)
    if files.controlnet is not None:
        write_lllyasviel(files.controlnet, ControlNetModel.from_unet(components["unet"]), dtype=torch.float16)
    done.write_text("ok\n")
    return files


def link(source: Path, target: Path) -> Path:
    """`target` names `source` without copying gigabytes: a hard link, else a symbolic link."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())
    return target
