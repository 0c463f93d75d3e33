"""What A1111 extensions see as `shared.sd_model`: a `ModelFacade` over Sumi's loaded model.

It has A1111's metadata (`sd_checkpoint_info`, `sd_model_hash`, `is_sdxl`, ...) over Sumi's `SDModel`.
Its LDM-named parts are stand-ins holding Sumi's diffusers/transformers modules:
`model.diffusion_model` is the diffusers UNet, `first_stage_model` the diffusers VAE,
`cond_stage_model` (and `conditioner` on SDXL) the CLIP text encoders. Moving them (`.to()`,
`.cpu()`) or reading their parameters works, and the UNet has A1111's block lists (`input_blocks`,
`output_blocks`, ...: engine/extensions/ldm_blocks.py) for extensions that replace or hook blocks; code
that expects LDM's classes or their forward signatures does not work. The VAE methods of LDM's model
are there too (`decode_first_stage`, `encode_first_stage`, `get_first_stage_encoding`, `scale_factor`).
A model moved off the GPU is moved back before the next job.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from modules.sumi.engine import vae as vae_ops
from modules.sumi.engine.accel.offload import offloader_of
from modules.sumi.engine.extensions import ldm_attention, ldm_blocks
from modules.sumi.engine.sampling.training_noise import training_alphas
from modules.sumi.services.models import checkpoints

if TYPE_CHECKING:
    from modules.sumi.services.models.manager import LoadedModel


# (model, line) -> the line's ChunkedPrompt; the app gives its text service's (`use_line_tokenizer`)
_line_tokenizer: Callable[[Any, str], Any] | None = None


# (model, texts) -> their Conditioning; the app gives its text service's (`use_text_encoder`)
_text_encoder: Callable[[Any, list[str]], Any] | None = None


def use_text_encoder(encode: Callable[[Any, list[str]], Any] | None) -> None:
    """What `sd_model.get_learned_conditioning` asks: the running app's (its settings, its embeddings)."""
    global _text_encoder
    _text_encoder = encode


def use_line_tokenizer(tokenize: Callable[[Any, str], Any] | None) -> None:
    """What `cond_stage_model.tokenize_line` asks: the running app's (its settings, its embeddings)."""
    global _line_tokenizer
    _line_tokenizer = tokenize


class _DiffusionWrapper(torch.nn.Module):
    """Stand-in for LDM's `DiffusionWrapper`: holds the diffusers UNet as `diffusion_model`."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        # A1111's input_blocks, middle_block, output_blocks, out, and attn2 layers as `CrossAttention`:
        # extensions replace and hook them
        ldm_blocks.attach(unet)
        ldm_attention.name_cross_attention(unet)
        self.diffusion_model = unet


class _TextEncoders(torch.nn.ModuleList):
    """Stand-in for `cond_stage_model` / `conditioner`: the CLIP text encoders (SDXL: both).
    `transformer` and `tokenizer` are the first encoder's, as on A1111's SD1 `FrozenCLIPEmbedder`."""

    def __init__(self, specs: list[Any], model: Any = None) -> None:
        super().__init__([spec.model for spec in specs])
        object.__setattr__(self, "tokenizer", specs[0].tokenizer if specs else None)
        object.__setattr__(self, "_model", weakref.ref(model) if model is not None else lambda: None)

    @property
    def transformer(self) -> torch.nn.Module:
        return self[0]

    def tokenize_line(self, line: str) -> tuple[list[Any], int]:
        """A1111's `FrozenCLIPEmbedderWithCustomWords.tokenize_line`: (chunks of 77 tokens with
        `tokens`, `multipliers`, `fixes`; A1111's token count). Regional Prompter counts each region's
        tokens with it."""
        model_of: Callable[[], Any] = self.__dict__["_model"]
        model = model_of()
        if _line_tokenizer is None or model is None:
            raise RuntimeError("tokenize_line needs the running app and its loaded model")
        chunked = _line_tokenizer(model, line)
        return chunked.chunks, chunked.token_count

    @property
    def embedders(self) -> list[_Embedder]:
        """SDXL's `conditioner.embedders`: each text encoder with A1111's `transformer`, `tokenizer`
        and `tokenize_line` (anything else is the encoder's own)."""
        return [_Embedder(model, self) for model in self]


class _Embedder:
    """One text encoder as an item of A1111's `conditioner.embedders` (a view, not a registered module)."""

    def __init__(self, model: torch.nn.Module, owner: _TextEncoders) -> None:
        self.transformer = model
        self._owner = owner

    def tokenize_line(self, line: str) -> tuple[list[Any], int]:
        return self._owner.tokenize_line(line)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.transformer(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transformer, name)


class _LdmLayout(torch.nn.Module):
    """A1111's top-level layout of an LDM model, for parameters()/named_modules()."""

    def __init__(self, sd: Any) -> None:
        super().__init__()
        self.model = _DiffusionWrapper(sd.unet)
        self.first_stage_model = sd.vae
        self.cond_stage_model = _TextEncoders(sd.text_encoders, sd)


class ModelFacade:
    """What A1111 extensions see as `shared.sd_model` (see the module docstring for what is real)."""

    cond_stage_key = "txt"
    is_sd3 = False
    is_ssd = False

    def __init__(self, loaded: LoadedModel) -> None:
        self._ref = weakref.ref(loaded)  # the facade lives as long as the model manager keeps the model
        sd = loaded.sd
        self._sd_id = id(sd)  # the weights read again (fp8 turned off) make a new SDModel: a new view
        self._parts = _LdmLayout(sd)

    @property
    def _loaded(self) -> LoadedModel:
        loaded = self._ref()
        if loaded is None:
            raise RuntimeError("this sd_model was unloaded; read shared.sd_model again")
        return loaded

    @property
    def lowvram(self) -> bool:
        """A1111: True while the model is under --medvram/--lowvram (parts on the GPU only when used)."""
        return self._loaded.sd.offloaded

    @property
    def sumi_model(self) -> Any:
        """Sumi's own SDModel behind this view (what Sumi's services work with)."""
        return self._loaded.sd

    # metadata
    @property
    def sd_checkpoint_info(self) -> checkpoints.CheckpointInfo:
        return self._loaded.checkpoint

    @property
    def sd_model_checkpoint(self) -> str:
        return self._loaded.checkpoint.filename

    @property
    def sd_model_hash(self) -> str | None:
        return self._loaded.checkpoint.shorthash

    @property
    def is_sdxl(self) -> bool:
        return self._loaded.sd.is_sdxl

    @property
    def is_sd1(self) -> bool:
        return self._loaded.sd.family == "SD1"

    @property
    def is_sd2(self) -> bool:
        return self._loaded.sd.family == "SD2"

    @property
    def is_sdxl_inpaint(self) -> bool:
        return self.is_sdxl and self._loaded.sd.is_inpainting

    @property
    def parameterization(self) -> str:
        return "v" if self._loaded.sd.prediction_type == "v_prediction" else "eps"

    # stand-in parts
    @property
    def model(self) -> torch.nn.Module:
        return self._parts.model

    @property
    def first_stage_model(self) -> torch.nn.Module:
        return self._parts.first_stage_model

    @property
    def cond_stage_model(self) -> torch.nn.Module:
        return self._parts.cond_stage_model

    @property
    def conditioner(self) -> torch.nn.Module:
        if not self.is_sdxl:
            raise AttributeError("conditioner: only SDXL models have one (A1111)")
        return self._parts.cond_stage_model

    @torch.no_grad()
    def get_learned_conditioning(self, texts: Any) -> Any:
        """LDM's text conditioning of `texts` (a list of prompts, an `SdConditioning`): the token
        vectors (B, 77*k, D); SDXL {"crossattn", "vector"}, where "vector" is the pooled text embedding
        (A1111's also holds the size embeddings; Sumi's cfg callbacks show the same)."""
        if _text_encoder is None:
            raise RuntimeError("get_learned_conditioning needs the running app")
        if isinstance(texts, str):
            texts = [texts]
        conditioning = _text_encoder(self._loaded.sd, [str(t) for t in texts])
        if not self.is_sdxl:
            return conditioning.context
        return {"crossattn": conditioning.context, "vector": conditioning.pooled}

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """LDM's training schedule: the 1000 cumulative alphas, on the model's device."""
        sd = self._loaded.sd
        return training_alphas(sd.scheduler_config).to(sd.device)

    # the VAE, as LDM's model calls it
    @property
    def scale_factor(self) -> float:
        """The latents' scale (SD1/SD2 0.18215, SDXL 0.13025)."""
        return float(self._loaded.sd.vae_scaling_factor)

    @torch.no_grad()
    def decode_first_stage(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (scaled as the sampler's) to pixels in about [-1, 1], not clamped (A1111)."""
        return vae_ops.decode_raw(self._loaded.sd, z)

    @torch.no_grad()
    def encode_first_stage(self, x: torch.Tensor) -> Any:
        """Pixels in [-1, 1] to the VAE's posterior (`sample()`, `mode()`, `mean`, `std`), as LDM's."""
        vae = self._loaded.sd.vae
        return vae.encode(x.to(device=vae.device, dtype=vae.dtype)).latent_dist  # pyright: ignore[reportAttributeAccessIssue]

    def get_first_stage_encoding(self, encoder_posterior: Any) -> torch.Tensor:
        """A posterior's mean (or a tensor as it is) scaled for the sampler. LDM samples the posterior;
        Sumi takes its mean, as its own img2img encoding does, so encoding is deterministic (a real VAE's
        spread is ~1e-3 of the latents; the demo model's VAE is much wider)."""
        z = encoder_posterior
        if not isinstance(z, torch.Tensor) and callable(getattr(z, "mode", None)):
            z = z.mode()
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"get_first_stage_encoding: a posterior or a tensor, not {type(z).__name__}")
        return self.scale_factor * z

    def parameters(self, recurse: bool = True):
        return self._parts.parameters(recurse)

    def named_modules(self, *args: Any, **kwargs: Any):
        return self._parts.named_modules(*args, **kwargs)

    def modules(self):
        return self._parts.modules()

    def state_dict(self, *args: Any, **kwargs: Any) -> dict:
        return self._parts.state_dict(*args, **kwargs)

    def to(self, *args: Any, **kwargs: Any) -> ModelFacade:
        """Move every part (`to(device)`, `to(dtype)`, `to(device, dtype)`), as `nn.Module.to`."""
        device = kwargs.get("device")
        dtype = kwargs.get("dtype")
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = arg
        sd = self._loaded.sd
        offloader = offloader_of(sd)
        if (
            offloader is not None
            and device is not None
            and torch.device(device).type == sd.device.type
            and dtype is None
        ):
            offloader.send_everything_to_storage()  # offloaded: the parts come to the GPU when used
            return self
        sd.to(device if device is not None else sd.device, dtype)
        return self

    def cpu(self) -> ModelFacade:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> ModelFacade:
        return self.to(device if device is not None else "cuda")

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined above: Sumi's SDModel (unet, vae, text_encoders, family, ...).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._loaded.sd, name)

    def __repr__(self) -> str:
        return f"<sd_model {self._loaded.checkpoint.title} ({self._loaded.sd.family})>"


_views: dict[int, ModelFacade] = {}


def model_view(loaded: LoadedModel) -> ModelFacade:
    """The facade of a loaded model: the same object for as long as the model stays loaded."""
    view = _views.get(id(loaded))
    if view is None or view._ref() is not loaded or view._sd_id != id(loaded.sd):
        view = _views[id(loaded)] = ModelFacade(loaded)
        weakref.finalize(loaded, _views.pop, id(loaded), None)
    return view
