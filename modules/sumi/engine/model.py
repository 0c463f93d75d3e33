"""The loaded model as the rest of the engine sees it: plain diffusers/transformers modules plus facts."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer


@dataclass
class TextEncoderSpec:
    """One CLIP text encoder and how the family reads it.

    `layer` is the hidden state the UNet sees at clip skip 1: -1 = last layer, -2 = penultimate.
    `final_norm` says whether the final layer norm is applied to that hidden state.
    `pooled` marks the encoder whose projected pooled output feeds SDXL's size conditioning.
    """

    model: CLIPTextModel | CLIPTextModelWithProjection
    tokenizer: CLIPTokenizer
    layer: int = -1
    final_norm: bool = True
    pooled: bool = False


@dataclass
class SDModel:
    """Everything needed to sample from one checkpoint.

    `family` is the family name ("SD1", "SD2", "SDXL"); `variant` refines it ("inpaint", "v" ...).
    `scheduler_config` is a diffusers scheduler config dict (betas, prediction type) for this model.
    """

    family: str
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoders: list[TextEncoderSpec]
    scheduler_config: dict
    prediction_type: str = "epsilon"
    vae_scaling_factor: float = 0.18215
    variant: str = ""
    is_inpainting: bool = False
    source: str = ""
    extra: dict = field(default_factory=dict)
    # Where the model computes. Set by whoever places the model; with offloading (--medvram/--lowvram)
    # the weights may sit on the CPU while the UNet runs on the GPU, so parameters cannot tell.
    execution_device: torch.device | None = None
    sampling_dtype: torch.dtype | None = None  # latents between steps and into the VAE; None: `dtype`

    @property
    def is_sdxl(self) -> bool:
        """SDXL base or refiner (A1111: any model with an SGM conditioner)."""
        return self.family in ("SDXL", "SDXL-refiner")

    @property
    def device(self) -> torch.device:
        """Where inputs go: `execution_device` when set, else where the UNet's weights are."""
        if self.execution_device is not None:
            return self.execution_device
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's compute dtype (fp8-stored weights are upcast to it)."""
        return compute_dtype(self.unet)

    @property
    def offloaded(self) -> bool:
        """Parts of the model move between devices during a job (--medvram/--lowvram: `extra["offload"]`)."""
        return self.extra.get("offload", "none") != "none"

    @property
    def latent_dtype(self) -> torch.dtype:
        """The dtype latents are kept in between UNet calls (fp32 on the CPU bf16 path and with
        --upcast-sampling; the denoiser casts at the UNet's input and output)."""
        return self.sampling_dtype or self.dtype

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config["latent_channels"])

    @property
    def vae_scale(self) -> int:
        """Pixels per latent pixel (8 for every released family)."""
        return 2 ** (len(self.vae.config["block_out_channels"]) - 1)

    def modules(self) -> list[torch.nn.Module]:
        return [self.unet, self.vae, *(spec.model for spec in self.text_encoders)]

    def to(
        self,
        device: torch.device | str,
        dtype: torch.dtype | None = None,
        vae_dtype: torch.dtype | None = None,
    ):
        """Move every part; the VAE may keep its own dtype (fp32 VAE for --no-half-vae).

        Without offloading the model then computes where it is; under an offload policy (`extra`
        "offload" med/low) this only moves the stored weights and the compute device stays."""
        for module in (self.unet, *(spec.model for spec in self.text_encoders)):
            _move(module, device, dtype)
        _move(self.vae, device, vae_dtype or dtype)
        if not self.offloaded:
            self.execution_device = torch.device(device)
        return self


FP8_DTYPES = frozenset({torch.float8_e4m3fn, torch.float8_e5m2})


def compute_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype a module computes in: its first parameter's, skipping fp8-stored weights."""
    first = None
    for parameter in module.parameters():
        if parameter.dtype not in FP8_DTYPES:
            return parameter.dtype
        first = first or parameter.dtype
    if first is None:
        raise ValueError("the module has no parameters")
    return first


def _move(module: torch.nn.Module, device: torch.device | str, dtype: torch.dtype | None) -> None:
    """`module.to`, passing the dtype only when it changes (diffusers warns about no-op casts).

    A module holding fp8-stored weights only moves: a dtype cast would upcast those weights too."""
    current = compute_dtype(module)
    has_fp8 = any(p.dtype in FP8_DTYPES for p in module.parameters())
    # Host to GPU may run asynchronously (from pinned RAM the copy overlaps); GPU to host may not.
    non_blocking = torch.device(device).type == "cuda"
    if dtype is None or dtype == current or has_fp8:
        module.to(device=device, non_blocking=non_blocking)
    else:
        module.to(device=device, dtype=dtype, non_blocking=non_blocking)
