"""What a LoRA file says about its training (kohya's `ss_*` safetensors metadata), for the card editor and
A1111's `/sd_extra_networks/metadata`: the base model, resolution, steps, network size and the tags of its
training captions with their counts (people look there for a LoRA's trigger words)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_safetensors_metadata

# (label, metadata key) in the order A1111's LoRA metadata editor shows them
SUMMARY_KEYS = (
    ("Model", "ss_sd_model_name"),
    ("Resolution", "ss_resolution"),
    ("Clip skip", "ss_clip_skip"),
    ("Training images", "ss_num_train_images"),
    ("Epochs", "ss_num_epochs"),
    ("Steps", "ss_max_train_steps"),
    ("Network", "ss_network_module"),
    ("Rank (dim)", "ss_network_dim"),
    ("Alpha", "ss_network_alpha"),
    ("Learning rate", "ss_learning_rate"),
    ("Output name", "ss_output_name"),
)


def model_version(metadata: Mapping[str, Any]) -> str:
    """The model version a network file was trained for, from its kohya metadata (A1111's rule):
    `ss_base_model_version` sdxl_... -> "SDXL", `ss_v2` -> "SD2", any other metadata -> "SD1", none ->
    "Unknown"."""
    if str(metadata.get("ss_base_model_version", "")).startswith("sdxl_"):
        return "SDXL"
    if str(metadata.get("ss_v2", "")) == "True":
        return "SD2"
    return "SD1" if metadata else "Unknown"


def file_metadata(path: str | Path) -> dict[str, str]:
    """A .safetensors file's metadata ({} for other formats, or a file that cannot be read)."""
    if not str(path).lower().endswith(".safetensors"):
        return {}
    try:
        return read_safetensors_metadata(path)
    except (ModelLoadError, OSError):
        return {}


def parsed_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The metadata with values that hold JSON objects or lists read as JSON (as A1111 shows them)."""
    parsed: dict[str, Any] = {}
    for key, value in metadata.items():
        parsed[key] = value
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(ValueError):
                parsed[key] = json.loads(value)
    return parsed


def training_summary(metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, value) of the training facts the file records; the ones it does not record are left out."""
    out = []
    for label, key in SUMMARY_KEYS:
        value = metadata.get(key)
        if value not in (None, "", "None"):
            out.append((label, str(value)))
    return out


def dataset_tags(metadata: Mapping[str, str], limit: int = 50) -> list[tuple[str, int]]:
    """The training captions' tags with their counts over every dataset folder, most frequent first
    (kohya's `ss_tag_frequency`: {folder: {tag: count}}); [] when the file has none or it is malformed."""
    try:
        frequency = json.loads(metadata.get("ss_tag_frequency") or "{}")
    except ValueError:
        return []
    counts: Counter[str] = Counter()
    if isinstance(frequency, dict):
        for tags in frequency.values():
            if isinstance(tags, dict):
                for tag, count in tags.items():
                    if isinstance(count, int) and not isinstance(count, bool):
                        counts[str(tag).strip()] += count
    counts.pop("", None)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max(0, limit)]
