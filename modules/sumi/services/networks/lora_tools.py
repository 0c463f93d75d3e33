"""LoRA tools for the Checkpoint Merger tab and the API: bake LoRAs into a checkpoint, extract a LoRA from
two checkpoints, resize a LoRA's rank (engine.networks.lora_tools does the arithmetic).

Results go where their kind lives (checkpoints in the checkpoint folder, LoRAs in models/Lora), written
atomically and listed at once. A request that cannot be done is a `ToolError` with the reason, and no
file is written.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.ldm_export import save_checkpoint, to_single_file_state_dict
from modules.sumi.engine.networks import NetworkError, load_network
from modules.sumi.engine.networks.lora_tools import bake_loras, extract_lora, resize_lora
from modules.sumi.engine.networks.network_file import BUNDLE_PREFIX
from modules.sumi.services.models.checkpoints import CheckpointInfo, CheckpointRegistry
from modules.sumi.services.networks.files import NetworkFileRegistry
from modules.sumi.services.networks.lora import LoraNetwork
from modules.sumi.util.atomic import is_plain_file_name, save_atomic

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None] | None
_BASE_VERSION = {
    "SD1": "sd_v1",
    "SD2": "sd_v2",
    "SDXL": "sdxl_base_v1-0",
    "SDXL-refiner": "sdxl_refiner_v1-0",
}


class ToolError(ValueError):
    """A LoRA tool request that cannot be done, with the reason for the user."""


@dataclass(frozen=True)
class ToolResult:
    path: Path
    message: str
    warnings: tuple[str, ...] = ()


class LoraTools:
    def __init__(
        self,
        checkpoints: CheckpointRegistry,
        loras: NetworkFileRegistry,
        lora_handler: LoraNetwork,
        checkpoint_dir: Path,
        lora_dir: Path,
        *,
        allow_unsafe_pickle: bool = False,
    ) -> None:
        self.checkpoints, self.loras, self.handler = checkpoints, loras, lora_handler
        self.checkpoint_dir, self.lora_dir = Path(checkpoint_dir), Path(lora_dir)
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._lock = threading.Lock()  # one at a time: each holds one or two models in RAM

    # -- the three tools ---------------------------------------------------------------------------------

    def merge_into_checkpoint(
        self, checkpoint: str, loras: str, custom_name: str = "", half: bool = False
    ) -> ToolResult:
        """`loras`: prompt tags, `<lora:a:0.8> <lora:b:1:lbw=OUTD>`, applied as a job would apply them."""
        info = self._checkpoint(checkpoint, "Checkpoint")
        specs, warnings = self.handler.resolve(loras)
        if not specs:
            raise ToolError(
                "no usable LoRA tag (write them as in a prompt: <lora:name:0.8>)" + _listed(warnings)
            )
        name = custom_name.strip() or f"{info.name_for_extra} + " + " + ".join(spec[0].name for spec in specs)
        target = self._target(self.checkpoint_dir, name, ".safetensors")
        with self._lock:
            model = self._load(info, torch.float32)
            try:
                warnings += bake_loras(model, specs)
            except NetworkError as exc:
                raise ToolError(str(exc)) from exc
            state = to_single_file_state_dict(
                model.family,
                model.unet,
                model.vae,
                model.text_encoders,
                dtype=torch.float16 if half else None,
            )
            recipe = {"checkpoint": info.name, "loras": loras, "save_as_half": half}
            _write(
                target,
                lambda path: save_checkpoint(
                    path, state, {"format": "pt", "sumi_lora_merge": json.dumps(recipe)}
                ),
            )
        config = CheckpointRegistry.config_yaml_for(info)
        if config is not None:
            shutil.copyfile(config, target.with_suffix(".yaml"))
        self.checkpoints.refresh()
        return ToolResult(target, f"Checkpoint saved to {target}", tuple(warnings))

    def extract(
        self,
        tuned: str,
        base: str,
        rank: int,
        conv_rank: int = 0,
        custom_name: str = "",
        half: bool = False,
        progress: Progress = None,
    ) -> ToolResult:
        """A LoRA from the difference `tuned` − `base` at `rank` (3x3 convolutions at `conv_rank`)."""
        if not 1 <= rank <= 1024 or not 0 <= conv_rank <= 1024:
            raise ToolError("rank is 1..1024 and conv rank 0..1024 (0: no convolution layers)")
        tuned_info, base_info = self._checkpoint(tuned, "Tuned model"), self._checkpoint(base, "Base model")
        name = custom_name.strip() or f"{tuned_info.name_for_extra}-{base_info.name_for_extra}-r{rank}"
        target = self._target(self.lora_dir, name, ".safetensors")
        with self._lock:
            # Each model in its file's own precision: exact, and an fp16 pair takes half the RAM.
            base_model = self._load(base_info, _stored_dtype(base_info))
            tuned_model = self._load(tuned_info, _stored_dtype(tuned_info))
            try:
                tensors = extract_lora(base_model, tuned_model, rank, conv_rank, progress=progress)
            except NetworkError as exc:
                raise ToolError(str(exc)) from exc
            if not tensors:
                raise ToolError("the two models have the same weights: there is nothing to extract")
            metadata = {
                "ss_network_module": "networks.lora",
                "ss_network_dim": str(rank),
                "ss_network_alpha": str(rank),
                "ss_output_name": name,
                "ss_base_model_version": _BASE_VERSION.get(base_model.family, base_model.family),
                "ss_network_args": json.dumps(
                    {"conv_dim": conv_rank, "conv_alpha": conv_rank} if conv_rank else {}
                ),
                "sumi_extracted_from": json.dumps({"tuned": tuned_info.name, "base": base_info.name}),
            }
            _write(target, lambda path: save_file(_cast(tensors, half), str(path), metadata=metadata))
        self.loras.refresh()
        return ToolResult(target, f"LoRA saved to {target}")

    def resize(
        self, lora: str, rank: int, custom_name: str = "", half: bool = False, progress: Progress = None
    ) -> ToolResult:
        """The LoRA at `rank`; its metadata and bundled embeddings kept."""
        if not 1 <= rank <= 1024:
            raise ToolError("rank is 1..1024")
        info = self.loras.find_or_refresh(lora)
        if info is None:
            raise ToolError(f"no LoRA called '{lora}' in models/Lora (press refresh if you just added it)")
        name = custom_name.strip() or f"{info.path.stem}-r{rank}"
        target = self._target(self.lora_dir, name, ".safetensors")
        try:
            network = load_network(info.path, allow_unsafe_pickle=self.allow_unsafe_pickle)
            tensors = resize_lora(network, rank, progress)
        except NetworkError as exc:
            raise ToolError(str(exc)) from exc
        for embedding, data in _bundled(info.path, self.allow_unsafe_pickle).items():
            tensors[embedding] = data
        metadata = {k: str(v) for k, v in network.metadata.items()}
        metadata.update({"ss_network_dim": str(rank), "ss_network_alpha": str(rank), "ss_output_name": name})
        _write(target, lambda path: save_file(_cast(tensors, half), str(path), metadata=metadata))
        self.loras.refresh()
        return ToolResult(target, f"LoRA saved to {target}")

    # -- steps ---------------------------------------------------------------------------------------------

    def _checkpoint(self, name: str, role: str) -> CheckpointInfo:
        info = self.checkpoints.match(name) if name else None
        if info is None:
            raise ToolError(f"{role}: no checkpoint called '{name}' (press refresh if you just added it)")
        return info

    def _load(self, info: CheckpointInfo, dtype: torch.dtype):
        try:
            return load_checkpoint(
                Path(info.filename),
                allow_unsafe_pickle=self.allow_unsafe_pickle,
                config_yaml=CheckpointRegistry.config_yaml_for(info),
                dtype=dtype,
            )
        except EngineError as exc:
            raise ToolError(str(exc)) from exc

    @staticmethod
    def _target(folder: Path, name: str, suffix: str) -> Path:
        if not is_plain_file_name(name):
            raise ToolError(f"the name '{name}' cannot be a file name (no folders, no \\ / : * ? \" < > |)")
        target = folder / f"{name}{suffix}"
        if target.exists():
            raise ToolError(f"{target.name} already exists in {folder}; choose another name")
        return target


def _stored_dtype(info: CheckpointInfo) -> torch.dtype:
    """The floating type the file stores its UNet in (fp32 when it cannot be told)."""
    from modules.sumi.engine.merging import CheckpointTensors

    try:
        with CheckpointTensors(info.filename) as tensors:
            key = next((k for k in tensors if k.startswith("model.diffusion_model.")), None)
            dtype = tensors[key].dtype if key is not None else torch.float32
    except (EngineError, OSError):
        return torch.float32
    return dtype if dtype in (torch.float16, torch.bfloat16) else torch.float32


def _listed(warnings: list[str]) -> str:
    return f": {'; '.join(warnings)}" if warnings else ""


def _cast(tensors: dict[str, Tensor], half: bool) -> dict[str, Tensor]:
    return {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in tensors.items()}


def _bundled(path: Path, allow_unsafe_pickle: bool) -> dict[str, Tensor]:
    from modules.sumi.engine.files import read_state_dict

    return {
        k: v
        for k, v in read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle).items()
        if k.startswith(BUNDLE_PREFIX)
    }


def _write(target: Path, save: Callable[[Path], object]) -> None:
    """Written beside the target and renamed into place: a full disk leaves no partial file."""
    try:
        save_atomic(target, save)
    except OSError as exc:
        raise ToolError(f"could not write {target.name} ({exc.strerror or exc}); nothing was saved") from exc
    log.info("Saved %s", target)
