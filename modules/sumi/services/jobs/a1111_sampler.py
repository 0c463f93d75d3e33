"""A1111's sampler objects as extensions see them: `sd_samplers.create_sampler(name, model)` returns one
per batch, its `model_wrap_cfg` is the batch's `CFGDenoiser`, whose `combine_denoised` (and
`combine_denoised_for_edit_model`) turn the UNet's rows into the guided prediction.

Sumi's sampling loop is its own (engine.sampling); these objects are where A1111 extensions reach into it:
wrapping `create_sampler` (sd-webui-neutral-prompt), replacing `combine_denoised` on the class or on the
object, subclassing. The job calls the factory the facade `modules.sd_samplers` registers here, so it
always goes through whatever `sd_samplers.create_sampler` is at that moment. The denoiser's rows are
A1111's k-diffusion values: `x` is the noisy latent `x0 + sigma * noise` and the UNet's rows are denoised
(x0) predictions, whatever Sumi's sampler (services.jobs.cfg_bridge converts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from modules.sumi.engine.sampling.samplers import SAMPLERS, SamplerSpec

Cond = torch.Tensor | dict[str, torch.Tensor]  # SD1/SD2: token vectors; SDXL: {"crossattn", "vector"}


def catenate_conds(conds: Sequence[Cond]) -> Any:
    """Text conditionings (tensors, or SDXL dicts of tensors) into one batch."""
    dicts = [c for c in conds if isinstance(c, dict)]
    if not dicts:
        return torch.cat([c for c in conds if isinstance(c, torch.Tensor)])
    return {key: torch.cat([c[key] for c in dicts]) for key in dicts[0]}


def subscript_cond(cond: Cond, a: int, b: int) -> Any:
    """Rows a..b of a conditioning (tensor or SDXL dict)."""
    if not isinstance(cond, dict):
        return cond[a:b]
    return {key: value[a:b] for key, value in cond.items()}


def pad_cond(tensor: Cond, repeats: int, empty: torch.Tensor) -> Any:
    """Append `repeats` copies of the empty prompt's chunk (`empty`, [1, 77, D]) to every row's tokens."""
    if isinstance(tensor, dict):
        crossattn = tensor["crossattn"]
        tensor["crossattn"] = torch.cat([crossattn, empty.repeat((crossattn.shape[0], repeats, 1))], dim=1)
        return tensor
    return torch.cat([tensor, empty.repeat((tensor.shape[0], repeats, 1))], dim=1)


class CFGDenoiser(torch.nn.Module):
    """A1111's classifier-free-guidance denoiser of one batch. Sumi's loop drives the model; this object
    holds A1111's state (`step`, `total_steps`, `steps`, `p`, `sampler`, `image_cfg_scale`) and the two
    override points. Calling it (`forward`) is not supported: the sampling loop is Sumi's."""

    def __init__(self, sampler: A1111Sampler) -> None:
        super().__init__()
        self.sampler = sampler
        self.step = 0  # model calls so far (A1111 counts them the same way)
        self.steps: int | None = None  # the user's steps
        self.total_steps: int | None = None  # model calls the sampler makes
        self.image_cfg_scale: float | None = None
        self.p: Any = None

    @property
    def inner_model(self) -> Any:
        return self.sampler.model_wrap

    def combine_denoised(
        self, x_out: torch.Tensor, conds_list: list[list[tuple[int, float]]], uncond: Cond, cond_scale: float
    ) -> torch.Tensor:
        """Composable CFG on A1111's rows: `x_out` holds the cond rows (indexes in `conds_list`, per image
        its (row, weight) pairs) then one uncond row per image (as many as `uncond` has rows)."""
        count = _rows(uncond)
        denoised_uncond = x_out[-count:]
        denoised = denoised_uncond.clone()
        for i, conds in enumerate(conds_list):
            for row, weight in conds:
                denoised[i] += (x_out[row] - denoised_uncond[i]) * (weight * cond_scale)
        return denoised

    def combine_denoised_for_edit_model(self, x_out: torch.Tensor, cond_scale: float) -> torch.Tensor:
        """instruct-pix2pix: rows are [cond, uncond text with the image, uncond text with a zero image]."""
        out_cond, out_img_cond, out_uncond = x_out.chunk(3)
        image_scale = 1.0 if self.image_cfg_scale is None else self.image_cfg_scale
        return out_uncond + cond_scale * (out_cond - out_img_cond) + image_scale * (out_img_cond - out_uncond)

    def get_pred_x0(self, x_in: torch.Tensor, x_out: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The rows are already x0 predictions (A1111's k-diffusion samplers)."""
        return x_out

    def combination_overridden(self) -> bool:
        """Whether an extension replaced `combine_denoised` or `combine_denoised_for_edit_model` (on this
        object, on the class, or in a subclass)."""
        names = ("combine_denoised", "combine_denoised_for_edit_model")
        if any(name in vars(self) for name in names):
            return True
        return any(getattr(type(self), name) is not _BUILTIN[name] for name in names)


_BUILTIN: dict[str, Callable[..., Any]] = {
    "combine_denoised": CFGDenoiser.combine_denoised,
    "combine_denoised_for_edit_model": CFGDenoiser.combine_denoised_for_edit_model,
}


def _rows(cond: Cond) -> int:
    if isinstance(cond, dict):
        return int(cond["crossattn"].shape[0])
    return int(cond.shape[0])


class A1111Sampler:
    """What `sd_samplers.create_sampler(name, model)` returns for one batch: `config` (the sampler's
    `SamplerData`-like entry), `name`, `model_wrap` (the model the denoiser calls: Sumi's UNet),
    `model_wrap_cfg` (the batch's `CFGDenoiser`), `p` (the job, set when the batch starts)."""

    def __init__(self, spec: SamplerSpec, config: Any, model: Any) -> None:
        self.spec = spec
        self.name = spec.name
        self.config = config
        self.model = model
        self.model_wrap = getattr(model, "unet", model)
        self.model_wrap_cfg = CFGDenoiser(self)
        self.p: Any = None

    def callback_state(self, d: dict[str, Any]) -> None:
        """A1111's per-step callback of k-diffusion samplers (`d`: "x", "i", "sigma", "sigma_hat",
        "denoised"). Sumi reports progress elsewhere; extensions replace it on the class (vectorscope-cc,
        resharpen) to edit `d["x"]` / `d["denoised"]` in place, which the step then goes on with."""


_BUILTIN_STATE = A1111Sampler.callback_state


def step_state_for(p: Any) -> Callable[[dict[str, Any]], None] | None:
    """The engine's per-step callback for a job when an extension replaced `callback_state` on A1111's
    sampler class (`sd_samplers_kdiffusion.KDiffusionSampler`): it calls the batch's sampler object
    (`p.sampler`, made when the batch starts) as A1111's k-diffusion samplers call theirs. None (Sumi's
    samplers as they are) otherwise."""
    if A1111Sampler.callback_state is _BUILTIN_STATE:
        return None

    def call(d: dict[str, Any]) -> None:
        sampler = getattr(p, "sampler", None)
        if sampler is not None:
            sampler.callback_state(d)

    return call


def find_spec(name: str) -> SamplerSpec | None:
    """The sampler named `name` (display name or alias, any case)."""
    wanted = str(name).lower()
    for spec in SAMPLERS:
        if wanted in (spec.name.lower(), *(a.lower() for a in spec.aliases)):
            return spec
    return None


def create_sampler(name: str, model: Any, config: Any = None) -> A1111Sampler:
    """A1111's `create_sampler`: a fresh sampler object for the sampler `name`; an unknown name is an
    error, as in A1111."""
    spec = find_spec(name)
    if spec is None:
        raise ValueError(f"bad sampler name: {name}")
    return A1111Sampler(spec, config, model)


SamplerFactory = Callable[[str, Any], Any]
_factory: list[SamplerFactory] = []  # at most one: the facade's (reads sd_samplers.create_sampler live)


def use_factory(factory: SamplerFactory) -> None:
    """The facade `modules.sd_samplers` registers how to call its current `create_sampler`."""
    _factory[:] = [factory]


def sampler_for_batch(name: str, model: Any) -> Any:
    """The batch's sampler object, through the registered factory (so extensions' wraps apply)."""
    factory = _factory[0] if _factory else create_sampler
    return factory(name, model)


def engine_sampler_name(name: str, model: Any) -> str:
    """The Sumi sampler that runs a batch whose `p.sampler_name` is `name`: itself when Sumi knows it, else
    the one behind a sampler entry an extension registered (sd-dynamic-thresholding runs each batch under
    "Euler a_dynthres1", whose constructor wraps Euler a's), read from the sampler object it makes. An
    unknown name is returned as it is, for the engine to name in its error."""
    if find_spec(name) is not None:
        return name
    try:
        sampler = sampler_for_batch(name, model)
    except Exception:
        return name
    spec = getattr(sampler, "spec", None)
    return spec.name if isinstance(spec, SamplerSpec) else name


# --- prompt_parser.get_multicond_prompt_list as a wrap point ---------------------------------------

PromptLister = Callable[[list[str]], Any]
_prompt_listers: list[tuple[Callable[[], PromptLister], PromptLister]] = []  # (current, original)


def use_prompt_lister(current: Callable[[], PromptLister], original: PromptLister) -> None:
    """The facade `modules.prompt_parser` registers how to read its current `get_multicond_prompt_list`
    and which function is its own."""
    _prompt_listers[:] = [(current, original)]


def prompts_for_batch(prompts: list[str]) -> list[str]:
    """The batch's prompts as an extension that replaced `prompt_parser.get_multicond_prompt_list`
    (neutral-prompt's AND_PERP / AND_SALT) has them: each image's AND parts with their weights, from
    what the replacement returns. Unchanged (and no call) when nothing replaced it."""
    if not _prompt_listers:
        return prompts
    current, original = _prompt_listers[0]
    lister = current()
    if lister is original:
        return prompts
    res_indexes, flat, _ = lister(list(prompts))
    return [" AND ".join(f"{flat[index]} :{weight}" for index, weight in parts) for parts in res_indexes]
