"""Hook points of the denoising loop, the `@hook` decorator and the `Extension` base class."""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    import torch

    from modules.sumi.engine.extensions.patches import PatchScope
    from modules.sumi.engine.text.schedule import JobConditioning

# Encodes (prompts, negative prompts), one of each per image of the batch, exactly as the batch's own
# prompts were encoded: the same text encoders and their patches, options and prompt-editing steps.
PromptEncoder = Callable[[Sequence[str], Sequence[str]], "JobConditioning"]


class HookPoint(enum.Enum):
    """Where the loop calls extensions, in the order they happen for one step.

    Each point passes one mutable context object (see `HOOK_CONTEXTS`); a hook changes what the loop does
    next by assigning to that object's fields. Hooks return nothing.
    """

    PRE_LOOP = "pre_loop"  # LoopContext: once, the starting latents (may replace them)
    PRE_STEP = "pre_step"  # StepContext: before each scheduler step (may replace the latents)
    PRE_MODEL_CALL = "pre_model_call"  # DenoiserCall: before the UNet rows are built (may replace x, conds)
    UNET_FORWARD = "unet_forward"  # UNetBatch: each UNet forward (may add UNet keyword arguments)
    PRE_CFG = "pre_cfg"  # RowOutputs: the UNet's rows before guidance (may replace them, or the guidance)
    POST_CFG = "post_cfg"  # DenoiserOutput: the guided prediction after CFG (may replace it)
    POST_STEP = "post_step"  # StepContext: after each scheduler step (may replace the latents)
    POST_LOOP = "post_loop"  # LoopContext: once, the final latents (may replace them)


@dataclass
class StartingNoise:
    """The batch's starting noise as drawn from its seeds, before the loop mixes it in, and what an
    extension may derive other noise from (`Extension.starting_noise` may replace `noise`)."""

    noise: torch.Tensor  # [B, C, h, w]
    init: torch.Tensor | None = None  # img2img: the latents the batch starts from; None: txt2img
    time_ids: torch.Tensor | None = None  # SDXL's size conditioning per image
    # Work done here (noise inversion runs the UNet) reports progress (step, total, latents) and stops
    # when asked, as the sampling loop does.
    progress: Callable[[int, int, torch.Tensor], None] | None = None
    should_stop: Callable[[], bool] | None = None
    unet_hooks: Callable[[Any], None] | None = None  # runs the batch's UNET_FORWARD hooks on a UNetBatch


@dataclass(frozen=True)
class HookSpec:
    point: HookPoint
    order: int = 0


_HOOKS_ATTR = "__sumi_hooks__"
F = TypeVar("F", bound=Callable[..., None])


def hook(point: HookPoint, *, order: int = 0) -> Callable[[F], F]:
    """Mark an `Extension` method as a hook of `point`. Lower `order` runs first; equal orders run in the
    order the extensions were added, then in the order the methods are defined. Stack to hook several."""

    def mark(function: F) -> F:
        specs = getattr(function, _HOOKS_ATTR, ())
        setattr(function, _HOOKS_ATTR, (*specs, HookSpec(point, order)))
        return function

    return mark


class Extension:
    """Something that takes part in generating a batch: hooks (methods marked `@hook`) and a patch.

    `patch(scope)` returns a context manager entered before the text is encoded and left after the
    images are decoded; whatever it changes on `scope.model` it must put back exactly on exit, also
    when the block raises (see `patches.WeightBackups`). `resident_key` names model state a patch may
    leave applied after a completed scope (see `PatchScope.keep_resident`); two extensions of one scope
    cannot claim the same key. `warnings` collects non-fatal problems for the caller to show.
    """

    resident_key: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def hooks(self) -> list[tuple[HookSpec, Callable[[Any], None]]]:
        """This extension's hooks as (spec, bound method), base-class methods first, in definition order.
        A subclass that overrides a hooked method without `@hook` keeps the base's hook points."""
        found: dict[str, tuple[HookSpec, ...]] = {}
        for klass in reversed(type(self).__mro__):
            for name, attribute in vars(klass).items():
                specs = getattr(attribute, _HOOKS_ATTR, None)
                if specs:
                    found[name] = specs
        return [(spec, getattr(self, name)) for name, specs in found.items() for spec in specs]

    def patch(self, scope: PatchScope) -> AbstractContextManager[None]:
        """Change the model for the scope's duration; the default changes nothing."""
        return nullcontext()

    def encode_prompts(
        self, prompts: Sequence[str], negative_prompts: Sequence[str], encode: PromptEncoder
    ) -> None:
        """Called once the batch's `prompts` are encoded (inside the patch scope), with the encoder that did
        it; an extension that needs other texts encoded the same way (regional prompts) does it here."""

    def starting_noise(self, start: StartingNoise) -> None:
        """Change the batch's starting noise by assigning `start.noise` (regional seeds, noise inversion).
        The sampler's own noise later in the loop is not affected."""

    def conditioning_key(self) -> Hashable | None:
        """What this extension changes about the text conditioning (None: nothing). Batches whose keys
        differ never share encoded prompts (a LoRA's text-encoder deltas change them)."""
        return None
