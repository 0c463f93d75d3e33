"""A1111's hypernetworks: `create_hypernetwork` and the "hypernetwork" training kind.

Only the hypernetwork's modules train: they wrap the UNet's attention processors for the run (dropout
active), the base model is frozen; samples run with them in eval mode and without other extra networks
(A1111's `disable_extra_networks`). On exit the original processors are back and the modules are in
eval mode without gradients. The file is saved in A1111's `.pt` layout (also when interrupted), and the
optimizer state in `<file>.optim` when the `save_optimizer_state` option is on; a saved state is used
when its hash matches the file's (sha256, 10 hex), as A1111 does.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.networks.hypernetwork import (
    Hypernetwork,
    HypernetworkOptions,
    apply_hypernetworks,
    load_hypernetwork,
    remove_hypernetworks,
)
from modules.sumi.engine.training import hypernetwork as hnt
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.textual_inversion import sanitize_name
from modules.sumi.services.networks.files import NetworkFileRegistry
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.a1111_run import A1111Trainer, Trainee
from modules.sumi.services.training.a1111_settings import HypernetworkTrainingSettings
from modules.sumi.services.training.service import TrainingContext


def create_hypernetwork_file(
    folder: Path,
    name: str,
    enable_sizes: Sequence[int | str],
    overwrite_old: bool = False,
    layer_structure: str | Sequence[float] | None = None,
    activation_func: str | None = None,
    weight_init: str | None = None,
    add_layer_norm: bool = False,
    use_dropout: bool = False,
    dropout_structure: str | Sequence[float] | None = None,
) -> Path:
    """A1111's `create_hypernetwork`: `<folder>/<name>.pt` at step 0 (activate_output False)."""
    clean = sanitize_name(name)
    path = folder / f"{clean}.pt"
    if path.exists() and not overwrite_old:
        raise TrainingError(f"file {path} already exists (set overwrite_old to replace it)")
    structure = hnt.parse_structure(layer_structure, "layer_structure") or [1.0, 2.0, 1.0]
    dropout = hnt.parse_structure(dropout_structure, "dropout_structure") if use_dropout else []
    options = HypernetworkOptions(
        layer_structure=structure,
        activation_func=None if activation_func in (None, "", "linear") else activation_func,
        add_layer_norm=bool(add_layer_norm),
        activate_output=False,
        dropout_structure=dropout or [0.0] * len(structure),
    )
    hn = hnt.new_hypernetwork(clean, _sizes(enable_sizes), options, weight_init or "Normal")
    try:
        hnt.save_hypernetwork_file(path, hn)
    except OSError as exc:
        raise TrainingError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def _sizes(enable_sizes: Sequence[int | str]) -> list[int]:
    if isinstance(enable_sizes, str | int):
        enable_sizes = [enable_sizes]
    try:
        return [int(size) for size in enable_sizes]
    except (TypeError, ValueError):
        raise TrainingError(f"enable_sizes {enable_sizes!r}: expected context sizes like 768, 320") from None


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


class HypernetworkTrainer(A1111Trainer):
    kind = "hypernetwork"
    files_folder = "hypernetworks"
    csv_name = "hypernetwork_loss.csv"

    def __init__(self, paths: DataPaths, options: Options, files: NetworkFileRegistry) -> None:
        super().__init__(paths, options)
        self.files = files

    def find(self, name: str) -> Path:
        """The file of `name`, or of A1111's dropdown title `name(hash)`."""
        info = self.files.find_or_refresh(name)
        if info is None and name.endswith(")") and "(" in name:
            info = self.files.find_or_refresh(name.rsplit("(", 1)[0])
        if info is None:
            raise TrainingError(f"hypernetwork_name: no hypernetwork called {name!r} (create it first)")
        return Path(info.path)

    def check(self, settings: Any) -> None:
        super().check(settings)
        self.find(settings.hypernetwork_name)

    def prepare(self, context: TrainingContext, settings: HypernetworkTrainingSettings) -> Trainee:
        path = self.find(settings.hypernetwork_name)
        try:
            hn = load_hypernetwork(path)
        except EngineError as exc:
            raise TrainingError(f"hypernetwork_name: {exc}") from exc
        _check_sizes(context.model, hn)
        hnt.eval_mode(hn)
        hn.to("cpu", torch.float32)
        state = _optimizer_state(path)
        step = int(hn.info.get("step", 0) or 0)
        return Trainee(path.stem, hnt.weights(hn), step, path, state, {"hypernetwork": hn})

    @contextlib.contextmanager
    def patched(self, context: TrainingContext, trainee: Trainee) -> Iterator[None]:
        hn: Hypernetwork = trainee.extra["hypernetwork"]
        unet = context.model.unet
        try:
            self._attach(context, hn)
            yield
        finally:
            hnt.eval_mode(hn)
            remove_hypernetworks(unet)

    def _attach(self, context: TrainingContext, hn: Hypernetwork) -> None:
        apply_hypernetworks(context.model.unet, [(hn, 1.0)], context.model.device)
        hnt.train_mode(hn)

    def sample_fields(self) -> dict[str, Any]:
        return {"disable_extra_networks": True}

    @contextlib.contextmanager
    def around_sample(self, trainee: Trainee) -> Iterator[None]:
        hn: Hypernetwork = trainee.extra["hypernetwork"]
        for module in hnt.modules_of(hn):
            module.eval()
        try:
            yield
        finally:
            for module in hnt.modules_of(hn):
                module.train()

    def save(self, context: TrainingContext, trainee: Trainee, path: Path, step: int, optimizer: Any) -> None:
        hn: Hypernetwork = trainee.extra["hypernetwork"]
        meta = {
            "step": step,
            "sd_checkpoint": context.checkpoint_hash,
            "sd_checkpoint_name": context.checkpoint_name,
        }
        hnt.save_hypernetwork_file(path, hn, **meta)
        if self.options.save_optimizer_state:
            torch.save(
                {
                    "optimizer_name": "AdamW",
                    "hash": file_hash(path),
                    "optimizer_state_dict": optimizer.state_dict(),
                },
                path.with_name(path.name + ".optim"),
            )
        context.wrote(path)


def _check_sizes(model: SDModel, hn: Hypernetwork) -> None:
    widths = {
        int(layer.in_features)
        for m in model.unet.modules()
        if hasattr(m, "processor") and isinstance(layer := getattr(m, "to_k", None), torch.nn.Linear)
    }
    if not widths & set(hn.layers):
        raise TrainingError(
            f"hypernetwork_name: made for context sizes {', '.join(map(str, hn.dims))}; this model's "
            f"attention layers read {', '.join(map(str, sorted(widths)))}"
        )


def _optimizer_state(path: Path) -> dict | None:
    optim = path.with_name(path.name + ".optim")
    if not optim.is_file():
        return None
    try:
        data = torch.load(optim, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(
            f"{optim.name} cannot be read ({exc}); delete it to start a fresh optimizer"
        ) from exc
    if not isinstance(data, dict) or data.get("hash") != file_hash(path):
        return None
    if data.get("optimizer_name", "AdamW") != "AdamW":
        return None
    state = data.get("optimizer_state_dict")
    return state if isinstance(state, dict) else None
