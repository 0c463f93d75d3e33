"""A1111's built-in Lora extension's `network` module: the classes `networks` lists.

`NetworkOnDisk(name, filename)` is a network file (metadata, alias, hash, SD version); `Network` is one
that a job applied (`te_multiplier`, `unet_multiplier`, `dyn_dim`, `mentioned_name`). Sumi applies
networks itself (services/networks/lora.py): these objects describe them, they do not patch the model.
"""

from __future__ import annotations

import enum
import os
from typing import Any

from modules import hashes, sd_models, shared
from modules.sumi.services.networks.training_info import model_version

METADATA_TAGS_ORDER = {
    "ss_sd_model_name": 1,
    "ss_resolution": 2,
    "ss_clip_skip": 3,
    "ss_num_train_images": 10,
    "ss_tag_frequency": 20,
}


class SdVersion(enum.Enum):
    Unknown = 1
    SD1 = 2
    SD2 = 3
    SDXL = 4


class NetworkOnDisk:
    """A LoRA/LyCORIS file: `name` (file stem), `filename`, `metadata` (kohya's ss_* keys first),
    `alias` (ss_output_name), `hash`/`shorthash` (sha256 when known), `sd_version`."""

    def __init__(self, name: str, filename: str, metadata: dict[str, Any] | None = None) -> None:
        self.name = name
        self.filename = str(filename)
        self.is_safetensors = os.path.splitext(self.filename)[1].lower() == ".safetensors"
        if metadata is None:
            metadata = sd_models.read_metadata_from_safetensors(self.filename) if self.is_safetensors else {}
        order = sorted(metadata.items(), key=lambda kv: METADATA_TAGS_ORDER.get(kv[0], 999))
        self.metadata: dict[str, Any] = dict(order)
        self.alias: str = str(self.metadata.get("ss_output_name", self.name))
        self.hash = ""
        self.shorthash = ""
        self.set_hash(str(self.metadata.get("sshs_model_hash", "")))
        self.sd_version = self.detect_version()

    def detect_version(self) -> SdVersion:
        return SdVersion[model_version(self.metadata)]

    def set_hash(self, value: str | None) -> None:
        self.hash = value or ""
        self.shorthash = self.hash[:8]

    def read_hash(self) -> None:
        """Compute the file's sha256 when it is not known yet (A1111: the addnet hash for .safetensors)."""
        if not self.hash:
            self.set_hash(
                hashes.sha256(self.filename, "lora/" + self.name, use_addnet_hash=self.is_safetensors)
            )

    def get_alias(self) -> str:
        """The name to write into prompts: the alias, unless opt `lora_preferred_name` is "Filename" or
        several files share the alias."""
        import networks

        preferred = str(getattr(shared.opts, "lora_preferred_name", "Alias from file"))
        if preferred.lower() == "filename" or self.alias.lower() in networks.forbidden_network_aliases:
            return self.name
        return self.alias


class Network:
    """A network a job applied: `name` (as written in the prompt's tag), `network_on_disk`,
    `te_multiplier`, `unet_multiplier`, `dyn_dim` (always None: Sumi does not apply dyn), `mentioned_name`."""

    def __init__(self, name: str, network_on_disk: NetworkOnDisk) -> None:
        self.name = name
        self.network_on_disk = network_on_disk
        self.te_multiplier = 1.0
        self.unet_multiplier: float | list[float] = 1.0
        self.dyn_dim: int | None = None
        self.mtime: float | None = None
        self.mentioned_name: str | None = None
