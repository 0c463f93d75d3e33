"""What a full fine-tune trains and keeps beside it: the model's trained modules and the EMA of their weights.

`TrainedParts(model, train_text_encoder)` names the modules ("unet", and "te0", "te1" for the text
encoders), makes them trainable in fp32 (master weights: fp16/bf16 weights lose the small updates an
optimizer makes; mixed precision still computes in half precision), and carries their weights to and
from a resume file. `WeightAverage` wraps diffusers' `EMAModel` over the same parameters, with a way to
swap the averaged weights into the model for a while (a sample, an intermediate file) and back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from diffusers.training_utils import EMAModel
from torch import Tensor

from modules.sumi.engine.model import FP8_DTYPES, SDModel
from modules.sumi.engine.training.errors import TrainingError

UNET = "unet"


class TrainedParts:
    """The modules a fine-tune trains, by name: always the UNet, the text encoders when asked."""

    def __init__(self, model: SDModel, train_text_encoder: bool) -> None:
        self.modules: dict[str, torch.nn.Module] = {UNET: model.unet}
        if train_text_encoder:
            for index, spec in enumerate(model.text_encoders):
                self.modules[f"te{index}"] = spec.model
        for name, module in self.modules.items():
            if any(p.dtype in FP8_DTYPES for p in module.parameters()):
                raise TrainingError(
                    f"the {name} is stored in fp8: turn off the fp8 weight setting to fine-tune it"
                )

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        return [module for name, module in self.modules.items() if name != UNET]

    def parameters(self, text_encoder: bool | None = None) -> list[torch.nn.Parameter]:
        """Every trained parameter, or only the UNet's (False) or the text encoders' (True)."""
        return [
            p
            for name, module in self.modules.items()
            if text_encoder is None or (name != UNET) == text_encoder
            for p in module.parameters()
        ]

    def make_trainable(self) -> None:
        """fp32 weights that take gradients (a no-op for an fp32 model, e.g. one trained from scratch)."""
        for module in self.modules.values():
            if any(p.is_floating_point() and p.dtype != torch.float32 for p in module.parameters()):
                module.float()
            module.requires_grad_(True)

    def state_tensors(self) -> dict[str, Tensor]:
        """`<part>.<key>` -> a CPU copy of every weight of the trained parts (what a resume file holds)."""
        return {
            f"{name}.{key}": value.detach().to("cpu", copy=True)
            for name, module in self.modules.items()
            for key, value in module.state_dict().items()
        }

    def load_state_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        """Put the weights of `state_tensors()` back; a TrainingError when they are for other parts."""
        parts = {key.partition(".")[0] for key in tensors}
        if parts != set(self.modules):
            raise TrainingError(
                f"the resume state holds {', '.join(sorted(parts))} and this run trains "
                f"{', '.join(self.modules)}: resume with the text encoder setting it was started with"
            )
        for name, module in self.modules.items():
            prefix = f"{name}."
            part = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
            _load_exactly(name, module, part)


def _load_exactly(name: str, module: torch.nn.Module, tensors: dict[str, Tensor]) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        examples = (missing + unexpected + wrong)[:3]
        raise TrainingError(
            f"the resume state does not fit this model's {name} ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped weights, e.g. {', '.join(examples)}): "
            "was it saved for another checkpoint?"
        )
    module.load_state_dict(tensors, strict=True)


class WeightAverage:
    """An exponential moving average of the trained weights (diffusers' `EMAModel`, its warm-up included:
    the decay grows as (1 + n) / (10 + n) up to `decay`)."""

    def __init__(self, parameters: list[torch.nn.Parameter], decay: float) -> None:
        self.parameters = parameters
        self.decay = decay
        self.ema = EMAModel(parameters, decay=decay)

    def update(self) -> None:
        self.ema.step(self.parameters)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averaged weights in the model for the block; the trained ones back afterwards, exactly."""
        self.ema.store(self.parameters)
        self.ema.copy_to(self.parameters)
        try:
            yield
        finally:
            self.ema.restore(self.parameters)

    def copy_to_model(self) -> None:
        self.ema.copy_to(self.parameters)

    def state_dict(self) -> dict[str, Any]:
        state = dict(self.ema.state_dict())
        state["shadow_params"] = [p.detach().to("cpu", copy=True) for p in self.ema.shadow_params]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        shadow = state.get("shadow_params")
        if not isinstance(shadow, list) or [tuple(s.shape) for s in shadow] != [
            tuple(p.shape) for p in self.parameters
        ]:
            raise TrainingError("the resume state's EMA weights do not fit the trained parts")
        try:
            self.ema.load_state_dict(dict(state))
        except ValueError as exc:
            raise TrainingError(f"the resume state's EMA cannot be read: {exc}") from exc
        self.ema.decay = self.decay  # the run's setting, not the file's
        self.ema.shadow_params = [
            s.to(device=p.device, dtype=p.dtype)
            for s, p in zip(self.ema.shadow_params, self.parameters, strict=True)
        ]
