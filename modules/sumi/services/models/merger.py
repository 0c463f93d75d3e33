"""The Checkpoint Merger (A1111's tab, plus block weights and train difference): resolves the models,
checks they are one family, merges them key by key from memory-mapped files (engine.merging), and writes
the result atomically into the checkpoint folder with A1111's metadata, where it is listed at once.

Nothing is written unless the merge succeeded: a bad name, a family mismatch, a bad block list or
pattern, an existing file or a full disk is a `MergeError` with the reason, and no partial file stays.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import Tensor

from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.families import detect_family
from modules.sumi.engine.files import read_state_dict
from modules.sumi.engine.ldm_export import save_checkpoint
from modules.sumi.engine.merging import METHODS, CheckpointTensors, MergeRecipe, merge_checkpoints
from modules.sumi.engine.merging.blocks import VAE_PREFIX, parse_merge_weights
from modules.sumi.engine.merging.merge import INPUT_CONV, NEEDS
from modules.sumi.services.models.checkpoints import (
    CheckpointInfo,
    CheckpointRegistry,
    VaeRegistry,
    is_in_memory,
)
from modules.sumi.services.models.manager import ModelManager
from modules.sumi.util.atomic import is_plain_file_name, save_atomic

log = logging.getLogger(__name__)
FORMATS = ("safetensors", "ckpt")
CONFIG_SOURCES = ("A, B or C", "B", "C", "Don't")


class MergeError(ValueError):
    """A merge that cannot be done, with the reason for the user."""


@dataclass(frozen=True)
class MergeRequest:
    """A1111's `run_modelmerger` arguments (names as its API-facing code), plus Sumi's block weights,
    train difference and the VAE choice."""

    primary_model_name: str
    secondary_model_name: str = ""
    tertiary_model_name: str = ""
    interp_method: str = "Weighted sum"
    multiplier: float = 0.3
    save_as_half: bool = False
    custom_name: str = ""
    checkpoint_format: str = "safetensors"
    config_source: int = 0
    bake_in_vae: str = "None"
    discard_weights: str = ""
    save_metadata: bool = True
    add_merge_recipe: bool = True
    copy_metadata_fields: bool = True
    metadata_json: str = ""
    block_weights: str = ""
    merge_vae: bool = False


@dataclass(frozen=True)
class MergeResult:
    path: Path
    checkpoint: CheckpointInfo | None
    message: str


class CheckpointMerger:
    def __init__(
        self,
        checkpoints: CheckpointRegistry,
        vaes: VaeRegistry,
        output_dir: Path,
        models: ModelManager | None = None,
    ) -> None:
        self.checkpoints = checkpoints
        self.vaes = vaes
        self.output_dir = Path(output_dir)
        self.models = models  # for merges tried in memory
        self._lock = threading.Lock()  # one merge at a time: each holds a model's worth of RAM

    def merge(
        self,
        request: MergeRequest,
        progress: Callable[[int, int], None] | None = None,
        *,
        in_memory: bool = False,
    ) -> MergeResult:
        """Merge and save (or, `in_memory`, load the result as the active model without writing a file:
        "merge in memory and try"; it needs a `models` manager)."""
        _check_request(request)
        infos = self._models(request)
        with self._lock:
            sources = [CheckpointTensors(info.filename) for info in infos]
            try:
                return self._merge(request, infos, sources, progress, in_memory)
            finally:
                for source in sources:
                    source.close()

    # -- steps -----------------------------------------------------------------------------------------

    def _models(self, request: MergeRequest) -> list[CheckpointInfo]:
        names = [request.primary_model_name, request.secondary_model_name, request.tertiary_model_name]
        roles = ("Primary model (A)", "Secondary model (B)", "Tertiary model (C)")
        infos = []
        for name, role in list(zip(names, roles, strict=True))[: NEEDS[request.interp_method]]:
            if not name:
                raise MergeError(f"{request.interp_method} needs a {role.lower()}")
            info = self.checkpoints.match(name)
            if info is None:
                raise MergeError(
                    f"{role}: no checkpoint called '{name}' (press refresh if you just added it)"
                )
            if is_in_memory(info):
                raise MergeError(
                    f"{role}: {info.name} is a merge tried in memory; save it (Merge) to merge it again"
                )
            infos.append(info)
        return infos

    def _merge(
        self,
        request: MergeRequest,
        infos: list[CheckpointInfo],
        sources: list[CheckpointTensors],
        progress: Callable[[int, int], None] | None,
        in_memory: bool = False,
    ) -> MergeResult:
        families = [_family(source, info) for source, info in zip(sources, infos, strict=True)]
        if len(set(families)) > 1:
            named = ", ".join(
                f"{info.name_for_extra} is {f}" for info, f in zip(infos, families, strict=True)
            )
            raise MergeError(f"the models are of different families ({named}); merge models of one family")
        sdxl = families[0].startswith("SDXL")
        _check_inpainting(sources)
        recipe = _recipe(request, sdxl)
        target = self._target(request, infos, sources, in_memory)
        others = [*sources[1:], None, None]
        merged = merge_checkpoints(sources[0], others[0], others[1], recipe, progress)
        if request.bake_in_vae and request.bake_in_vae != "None":
            self._bake_vae(merged, request)
        if in_memory:
            return self._try(target.stem, merged, infos[0])
        metadata = _metadata(request, infos, sources) if request.save_metadata else {}
        _write(target, merged, metadata)
        self._copy_config(request, infos, target)
        listed = (
            self.checkpoints.add_file(target) if not _inside(target, self.checkpoints.ckpt_dirs) else None
        )
        if listed is None:
            self.checkpoints.refresh()
            listed = next((i for i in self.checkpoints.list() if Path(i.filename) == target), None)
        log.info("Checkpoint merged and saved to %s", target)
        return MergeResult(target, listed, f"Checkpoint saved to {target}")

    def _try(self, name: str, merged: dict[str, Tensor], primary: CheckpointInfo) -> MergeResult:
        if self.models is None:
            raise MergeError("merging in memory needs the model manager; save the merge instead")
        config = CheckpointRegistry.config_yaml_for(primary)
        try:
            loaded = self.models.try_state_dict(name, merged, config)
        except EngineError as exc:
            raise MergeError(f"the merge cannot be loaded: {exc}") from exc
        message = f"Loaded '{loaded.checkpoint.title}' for trying; nothing was written (Merge saves it)"
        return MergeResult(Path(loaded.checkpoint.filename), loaded.checkpoint, message)

    def _target(
        self, request: MergeRequest, infos: list[CheckpointInfo], sources, in_memory: bool = False
    ) -> Path:
        name = request.custom_name.strip() or _default_name(request, infos)
        if not is_plain_file_name(name):
            raise MergeError(f"the name '{name}' cannot be a file name (no folders, no \\ / : * ? \" < > |)")
        if (
            INPUT_CONV in sources[0]
            and sources[0].shape(INPUT_CONV)[1] == 9
            and not name.endswith(".inpainting")
        ):
            name += ".inpainting"
        target = self.output_dir / f"{name}.{request.checkpoint_format}"
        if target.exists() and not in_memory:
            raise MergeError(f"{target.name} already exists in {self.output_dir}; choose another name")
        return target

    def _bake_vae(self, merged: dict[str, Tensor], request: MergeRequest) -> None:
        try:
            path = self.vaes.lookup(request.bake_in_vae)
            vae = read_state_dict(path)
        except (EngineError, ValueError, OSError) as exc:
            raise MergeError(f"Bake in VAE: {exc}") from exc
        for key in [k for k in merged if k.startswith(VAE_PREFIX)]:
            del merged[key]
        for key, value in vae.items():
            if key.startswith("loss.") or key.startswith("model_ema."):
                continue
            value = value.half() if request.save_as_half and value.is_floating_point() else value
            merged[key if key.startswith(VAE_PREFIX) else VAE_PREFIX + key] = value.contiguous()

    def _copy_config(self, request: MergeRequest, infos: list[CheckpointInfo], target: Path) -> None:
        chosen = {0: infos, 1: infos[1:2], 2: infos[2:3]}.get(request.config_source, [])
        for info in chosen:
            config = CheckpointRegistry.config_yaml_for(info)
            if config is not None:
                shutil.copyfile(config, target.with_suffix(".yaml"))
                return


def _check_request(request: MergeRequest) -> None:
    if request.interp_method not in METHODS:
        raise MergeError(f"unknown method '{request.interp_method}'; choose one of {', '.join(METHODS)}")
    if request.checkpoint_format not in FORMATS:
        raise MergeError(f"unknown format '{request.checkpoint_format}'; choose safetensors or ckpt")
    if not 0 <= request.config_source < len(CONFIG_SOURCES):
        raise MergeError(f"config_source is 0..3 ({', '.join(CONFIG_SOURCES)})")
    if request.discard_weights:
        try:
            re.compile(request.discard_weights)
        except re.error as exc:
            raise MergeError(
                f"Discard weights: '{request.discard_weights}' is not a regular expression ({exc})"
            ) from exc


def _family(source: CheckpointTensors, info: CheckpointInfo) -> str:
    try:
        return detect_family(source, source=info.name).name
    except EngineError as exc:
        raise MergeError(str(exc)) from exc


def _check_inpainting(sources: list[CheckpointTensors]) -> None:
    """A1111's rule: a normal primary cannot take an inpainting (or pix2pix) secondary's input layer."""
    if len(sources) < 2 or INPUT_CONV not in sources[0] or INPUT_CONV not in sources[1]:
        return
    if sources[1].shape(INPUT_CONV)[1] > sources[0].shape(INPUT_CONV)[1]:
        raise MergeError(
            "the secondary model is an inpainting (or instruct-pix2pix) model and the primary is not: "
            "choose the inpainting model as the primary"
        )


def _recipe(request: MergeRequest, sdxl: bool) -> MergeRecipe:
    ratios = None
    if request.block_weights.strip():
        try:
            ratios = parse_merge_weights(request.block_weights, sdxl, float(request.multiplier))
        except ValueError as exc:
            raise MergeError(str(exc)) from exc
    return MergeRecipe(
        request.interp_method,
        float(request.multiplier),
        ratios,
        merge_vae=request.merge_vae,
        half=request.save_as_half,
        discard=request.discard_weights,
        sdxl=sdxl,
    )


def _default_name(request: MergeRequest, infos: list[CheckpointInfo]) -> str:
    """A1111's names: `0.7(a) + 0.3(b)`, `a + 0.3(b - c)`, or A's name without interpolation."""
    names = [info.model_name for info in infos]
    m = float(request.multiplier)
    method = request.interp_method
    if method == "Weighted sum":
        name = f"{round(1 - m, 2)}({names[0]}) + {round(m, 2)}({names[1]})"
    elif method == "Add difference":
        name = f"{names[0]} + {round(m, 2)}({names[1]} - {names[2]})"
    elif method == "Train difference":
        name = f"{names[0]} + {round(m, 2)}train({names[1]} - {names[2]})"
    else:
        name = names[0]
    return name + (" blocks" if request.block_weights.strip() else "")


def _metadata(request: MergeRequest, infos: list[CheckpointInfo], sources: list[CheckpointTensors]) -> dict:
    metadata: dict[str, str] = {"format": "pt"}
    models: dict[str, dict] = {}
    if request.add_merge_recipe:
        hashes = [info.calculate_hash() for info in infos]
        recipe = {
            "type": "webui",
            "primary_model_hash": infos[0].sha256,
            "secondary_model_hash": infos[1].sha256 if len(infos) > 1 else None,
            "tertiary_model_hash": infos[2].sha256 if len(infos) > 2 else None,
            "interp_method": request.interp_method,
            "multiplier": request.multiplier,
            "save_as_half": request.save_as_half,
            "custom_name": request.custom_name,
            "config_source": request.config_source,
            "bake_in_vae": request.bake_in_vae,
            "discard_weights": request.discard_weights,
            "is_inpainting": INPUT_CONV in sources[0] and sources[0].shape(INPUT_CONV)[1] == 9,
            "is_instruct_pix2pix": INPUT_CONV in sources[0] and sources[0].shape(INPUT_CONV)[1] == 8,
            "block_weights": request.block_weights,
            "merge_vae": request.merge_vae,
        }
        metadata["sd_merge_recipe"] = json.dumps(recipe)
        for info, short in zip(infos, hashes, strict=True):
            if info.sha256 and short:
                models[info.sha256] = {
                    "name": info.name,
                    "legacy_hash": info.legacy_hash,
                    "sd_merge_recipe": None,
                }
    if request.copy_metadata_fields:
        for source in sources:
            for sha, entry in json.loads(source.metadata.get("sd_merge_models", "{}") or "{}").items():
                models.setdefault(sha, entry)
    if models:
        metadata["sd_merge_models"] = json.dumps(models)
    if request.metadata_json.strip():
        try:
            extra = json.loads(request.metadata_json)
        except json.JSONDecodeError as exc:
            raise MergeError(f"Metadata: not JSON ({exc})") from exc
        if not isinstance(extra, dict):
            raise MergeError('Metadata: a JSON object of names and values, e.g. {"author": "me"}')
        metadata.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return metadata


def _write(target: Path, merged: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Written beside the target and renamed into place: a full disk leaves no partial file."""
    try:
        save_atomic(
            target,
            lambda tmp: save_checkpoint(tmp, merged, metadata if target.suffix == ".safetensors" else None),
        )
    except OSError as exc:
        raise MergeError(f"could not write {target.name} ({exc.strerror or exc}); nothing was saved") from exc


def _inside(path: Path, folders: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder) for folder in folders)


def request_fields() -> list[str]:
    """The request's field names, for front ends that build it from a form or a JSON body."""
    return list(asdict(MergeRequest("")).keys())
