"""Loading a whole A1111 single-file checkpoint (SD1, SD2, SDXL, inpainting) into an `SDModel`.

The file is read by `files`, its keys normalised by `checkpoint_layout`, and the per-family work is
done by `families`; this module only ties them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from modules.sumi.engine.checkpoint_layout import (
    ConfigHints,
    metadata_prediction_type,
    normalize_checkpoint_keys,
    read_config_yaml,
)
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.families import detect_family, get_family
from modules.sumi.engine.files import read_state_dict

if TYPE_CHECKING:
    from modules.sumi.engine.model import SDModel


def load_checkpoint(
    path: str | Path,
    *,
    allow_unsafe_pickle: bool = False,
    config_yaml: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    prediction_type: str | None = None,
) -> SDModel:
    """Load an A1111 single-file checkpoint (SD1, SD2, SDXL, inpainting) into an SDModel.

    `config_yaml` (default: `<stem>.yaml` beside the file, if any) overrides detection: family,
    v-prediction, in_channels and head counts. `prediction_type` ("epsilon"/"v_prediction"/"v")
    overrides everything. Raises ModelLoadError (or UnsafeFileError) for any problem.
    """
    path = Path(path)
    state_dict = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    return model_from_state_dict(
        state_dict, path, hints=_hints_for(path, config_yaml), dtype=dtype, prediction_type=prediction_type
    )


def model_from_state_dict(
    state_dict: dict,
    path: Path,
    *,
    hints: ConfigHints | None = None,
    dtype: torch.dtype = torch.float32,
    prediction_type: str | None = None,
) -> SDModel:
    """An SDModel from a single-file state dict already in memory (a merge being tried); `path` names it
    in messages; `hints` as a `<stem>.yaml` gives them (`read_config_yaml`)."""
    state_dict = normalize_checkpoint_keys(state_dict)
    hints = hints or ConfigHints()
    if hints.family:
        family = get_family(hints.family)
        if not family.matches(state_dict):
            detected = detect_family(state_dict, source=str(path)).name
            raise ModelLoadError(
                f"{hints.source} describes an {hints.family} model but {path} holds {detected} weights"
            )
    else:
        family = detect_family(state_dict, source=str(path))
    return family.build(
        state_dict,
        source=str(path),
        prediction_type=_normalize_prediction(prediction_type),
        dtype=dtype,
        hints=hints,
    )


def _hints_for(path: Path, config_yaml: str | Path | None) -> ConfigHints:
    """The yaml beside the checkpoint (or the one given) wins; else safetensors model-spec metadata."""
    yaml_path = Path(config_yaml) if config_yaml else path.with_suffix(".yaml")
    if config_yaml or yaml_path.is_file():
        return read_config_yaml(yaml_path)
    prediction = metadata_prediction_type(path)
    return ConfigHints(prediction_type=prediction, source=f"{path} metadata" if prediction else "")


def _normalize_prediction(value: str | None) -> str | None:
    if value is None:
        return None
    aliases = {"v": "v_prediction", "v_prediction": "v_prediction", "eps": "epsilon", "epsilon": "epsilon"}
    if value not in aliases:
        raise ModelLoadError(f"unknown prediction type {value!r}; use 'epsilon' or 'v_prediction'")
    return aliases[value]
