"""The engine's one extension mechanism: typed, ordered hook points in the denoising loop, and patch
scopes whose exit restores the model exactly.

    class Sharpen(Extension):
        @hook(HookPoint.POST_CFG, order=10)
        def boost(self, out: DenoiserOutput) -> None:
            out.output = out.output * 1.05

    result = generate(model, request, extensions=[Sharpen(), NetworkPatch(patcher, [(lora, 1.0, 1.0)])])

Hook points, in the order they run for one step (each passes one mutable context, `HOOK_CONTEXTS`):

    PRE_LOOP        LoopContext      once: the starting latents
    PRE_STEP        StepContext      before each scheduler step: the latents the model sees
    PRE_MODEL_CALL  DenoiserCall     x, timestep, conds/unconds of the call (A1111 on_cfg_denoiser)
    UNET_FORWARD    UNetBatch        each UNet forward, per row image index and cond flag: add UNet
                                     keyword arguments (ControlNet residuals; several add up)
    PRE_CFG         RowOutputs       the UNet's cond and uncond rows before guidance combines them
                                     (A1111 on_cfg_denoised, CFGDenoiser.combine_denoised)
    POST_CFG        DenoiserOutput   the guided prediction (A1111 on_cfg_after_cfg)
    POST_STEP       StepContext      after each scheduler step: the latents the next step starts from
    POST_LOOP       LoopContext      once: the final latents, decoded next

Hooks of a point run by `order` (lower first), then in the order extensions were added, then in the
order their methods are defined. `Extension.patch(scope)` changes the model for the whole batch (text
encoding to decoding); `ExtensionManager.patched(model)` enters every patch on one ExitStack, and each
restores exactly on exit, also after an exception or interrupt (`patches` explains resident patches,
which let unchanged LoRA deltas stay between jobs). Users: ControlNet (engine.controlnet.control),
LoRA/LyCORIS and hypernetworks (engine.networks.extensions), A1111's cfg callbacks
(services.jobs.hooks). See docs/engine-extensions.md.
"""

from modules.sumi.engine.extensions.contexts import (
    HOOK_CONTEXTS,
    DenoiserCall,
    DenoiserOutput,
    LoopContext,
    RowOutputs,
    RowsOnHost,
    StepContext,
    UNetBatch,
    merge_unet_kwargs,
)
from modules.sumi.engine.extensions.hooks import (
    Extension,
    HookPoint,
    HookSpec,
    PromptEncoder,
    StartingNoise,
    hook,
)
from modules.sumi.engine.extensions.manager import ExtensionManager
from modules.sumi.engine.extensions.patches import (
    PatchScope,
    WeightBackups,
    claim_resident,
    release_residents,
    resident_patches,
)

__all__ = [
    "HOOK_CONTEXTS",
    "DenoiserCall",
    "DenoiserOutput",
    "Extension",
    "ExtensionManager",
    "HookPoint",
    "HookSpec",
    "LoopContext",
    "PatchScope",
    "PromptEncoder",
    "RowOutputs",
    "StartingNoise",
    "StepContext",
    "RowsOnHost",
    "UNetBatch",
    "WeightBackups",
    "claim_resident",
    "hook",
    "merge_unet_kwargs",
    "release_residents",
    "resident_patches",
]
