"""Resume files: the trained tensors, the optimizer state and the step, beside the output file.

Read back with `torch.load(weights_only=True)` only (tensors, numbers, strings, lists and dicts).
The loop's randomness depends on the step only (see `loop.micro_seed`), so this is all a resumed run
needs to continue exactly where the interrupted one stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modules.sumi.engine.training.errors import TrainingError

FORMAT = "sumi-training-state-1"


@dataclass
class ResumeState:
    step: int
    tensors: dict[str, torch.Tensor]
    optimizer: dict
    kind: str
    settings_digest: str = ""
    extra: dict = field(default_factory=dict)  # a kind's own state (EMA, grad scaler): plain values only


def save_resume_state(path: str | Path, state: ResumeState) -> None:
    """Write atomically (a crash mid-write leaves the previous state file intact)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    payload = {
        "format": FORMAT,
        "kind": state.kind,
        "step": state.step,
        "tensors": {k: v.detach().cpu() for k, v in state.tensors.items()},
        "optimizer": state.optimizer,
        "settings_digest": state.settings_digest,
        "extra": state.extra,
    }
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_resume_state(path: str | Path, kind: str) -> ResumeState:
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which
        raise TrainingError(f"{path.name} is not a training state Sumi can resume from: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TrainingError(f"{path.name} is not a Sumi training state file")
    if data.get("kind") != kind:
        raise TrainingError(f"{path.name} holds a {data.get('kind')} training state, not {kind}")
    return ResumeState(
        int(data["step"]),
        dict(data["tensors"]),
        dict(data["optimizer"]),
        kind,
        str(data.get("settings_digest", "")),
        dict(data.get("extra") or {}),
    )
