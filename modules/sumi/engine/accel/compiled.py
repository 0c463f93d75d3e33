"""The compiled fast path: torch.compile of the UNet call (and the VAE decode), one static-shape graph per
resolution and batch, cached on the model and reused across jobs.

- One entry per (module, input shapes, dtypes, device, SDXL's added inputs present): a new resolution or
  batch compiles once; the same one again replays the compiled code. Every entry counts its compilations
  (the backend is called once per compilation of a full graph), so a recompile is visible.
- Weights are graph inputs, not constants (inductor's freezing stays off): LoRA deltas that Sumi patches
  in place into the same weight storage are seen by the compiled code, with no recompile.
- CUDA: inductor with CUDA graphs (torch.compile's `mode="reduce-overhead"`): one UNet call is one graph
  replay. CPU: inductor's C++ backend, or OpenVINO's CPU plugin ("OpenVINO: ..." choices,
  `openvino_graph`: weights are constants there, compiled again when they change).
- The eager path is taken, per job, when the UNet is not the plain diffusers one: hypernetworks (they
  replace attention processors), extensions that add UNet inputs (ControlNet residuals, UNET_FORWARD
  hooks), `--lowvram` streaming (`extra["offload"] == "low"`); and per call when extra UNet keyword
  arguments are passed.
- Each entry compiles a function with its own code object, so dynamo's per-code cache holds one graph
  per entry (its cache-size limit of 8 never turns a ninth resolution into a silent eager run) and
  dropping the entry frees its code.

The cache lives in `SDModel.extra["compile"]` (`configure`): it goes away with the model, and the model
manager drops it when a model leaves the device.
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from modules.sumi.engine.accel import token_merging
from modules.sumi.engine.accel.openvino_graph import OpenVINOGraph
from modules.sumi.engine.extensions import ExtensionManager, HookPoint
from modules.sumi.engine.model import SDModel, compute_dtype

log = logging.getLogger(__name__)

CACHE_KEY = "compile"
CHOICES = (  # the `sumi_compile_unet` setting
    "Off",
    "UNet",
    "UNet + VAE decode",
    "OpenVINO: UNet",
    "OpenVINO: UNet + VAE decode",
)
OPENVINO_PREFIX = "OpenVINO: "
COMPILING = "compiling (once)"  # in the progress text while a new shape compiles


@dataclass(frozen=True)
class CompileConfig:
    """What to compile and how. `cuda_graphs` None: on when the module runs on CUDA. `backend`: a
    torch.compile backend name; "inductor" is the fast path (others, e.g. "aot_eager", trace the same
    graphs without code generation); "openvino" is OpenVINO's CPU plugin (`openvino_graph`), not
    through torch.compile."""

    unet: bool = True
    vae_decode: bool = False
    backend: str = "inductor"
    cuda_graphs: bool | None = None

    @classmethod
    def from_choice(cls, choice: str, **kwargs: Any) -> CompileConfig | None:
        """The config for a `sumi_compile_unet` choice; None for "Off"."""
        if choice not in CHOICES:
            raise ValueError(f"unknown compile choice {choice!r}; one of {', '.join(CHOICES)}")
        if choice == "Off":
            return None
        if choice.startswith(OPENVINO_PREFIX):
            kwargs.setdefault("backend", "openvino")
            choice = choice.removeprefix(OPENVINO_PREFIX)
        return cls(unet=True, vae_decode=choice == "UNet + VAE decode", **kwargs)


@dataclass
class Entry:
    """One compiled callable for one static shape."""

    key: tuple
    fn: Callable[..., torch.Tensor]
    label: str
    compiles: int = 0
    calls: int = 0
    failed: str | None = None  # why it fell back to eager for good
    openvino: OpenVINOGraph | None = None  # the OpenVINO backend's graph (its recompiles counted there)


def _unet_forward(unet, x, t, context, text_embeds, time_ids):  # compiled; one code object per entry
    added = None if text_embeds is None else {"text_embeds": text_embeds, "time_ids": time_ids}
    return unet(x, t, encoder_hidden_states=context, added_cond_kwargs=added, return_dict=False)[0]


def _vae_decode(vae, z):  # compiled; one code object per entry
    return vae.decode(z, return_dict=False)[0]


def _fresh(function: Callable, n: int) -> Callable:
    """A copy of `function` with its own code object (dynamo caches compiled graphs per code object)."""
    code = function.__code__.replace(co_name=f"{function.__name__}_{n}")
    return types.FunctionType(code, function.__globals__, code.co_name)


def _spec(tensor: torch.Tensor | None) -> tuple | None:
    return None if tensor is None else (tuple(tensor.shape), tensor.dtype, tensor.device)


class CompileCache:
    """Compiled callables of one model, keyed by static shapes. `notify(text)` is told
    "compiling (once): ..." before a new entry compiles and "" once it is done."""

    def __init__(self, config: CompileConfig, notify: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.notify = notify
        self.entries: dict[tuple, Entry] = {}

    @property
    def compiles(self) -> int:
        """Compilations over all entries (a recompile of an entry counts too)."""
        return sum(entry.compiles for entry in self.entries.values())

    def clear(self) -> None:
        self.entries.clear()

    # -- calls ---------------------------------------------------------------------------------------
    def unet(
        self,
        unet: torch.nn.Module,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        added: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        """The UNet's noise prediction, compiled for these shapes (eager if that failed)."""
        text_embeds = None if added is None else added["text_embeds"]
        time_ids = None if added is None else added["time_ids"]
        key = ("unet", id(unet), _spec(x), _spec(t), _spec(context), _spec(text_embeds), _spec(time_ids))
        entry = self.entries.get(key)
        if entry is None:
            b, _, h, w = x.shape
            label = f"UNet for {w}x{h} latents, batch {b}, {str(x.dtype).removeprefix('torch.')}"
            entry = self._new_entry(key, _unet_forward, label, x.device)
        args = (unet, x, t, context, text_embeds, time_ids)
        return self._call(entry, args, lambda: _unet_forward(*args))

    def vae_decode(self, vae: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
        """The VAE's decoded pixels, compiled for this latent shape (eager if that failed)."""
        key = ("vae", id(vae), _spec(z))
        entry = self.entries.get(key)
        if entry is None:
            b, _, h, w = z.shape
            label = f"VAE decode of {w}x{h} latents, batch {b}, {str(z.dtype).removeprefix('torch.')}"
            entry = self._new_entry(key, _vae_decode, label, z.device)
        return self._call(entry, (vae, z), lambda: _vae_decode(vae, z))

    # -- internals -----------------------------------------------------------------------------------
    def _new_entry(self, key: tuple, function: Callable, label: str, device: torch.device) -> Entry:
        entry = Entry(key, function, label)
        self.entries[key] = entry
        if self.config.backend == "openvino":
            entry.fn = self._openvino(entry, function)
            return entry
        graphs = self.config.cuda_graphs if self.config.cuda_graphs is not None else device.type == "cuda"
        entry.fn = torch.compile(
            _fresh(function, len(self.entries)),
            backend=self._backend(entry, graphs),
            dynamic=False,
            fullgraph=True,
        )
        return entry

    @staticmethod
    def _openvino(entry: Entry, function: Callable) -> Callable[..., torch.Tensor]:
        graph = entry.openvino = OpenVINOGraph(function)

        def run(*args: Any) -> torch.Tensor:
            try:
                return graph(*args)
            finally:
                entry.compiles = graph.conversions

        return run

    def _backend(self, entry: Entry, cuda_graphs: bool) -> Callable:
        name = self.config.backend

        def compile_graph(gm: torch.fx.GraphModule, example_inputs: list) -> Callable:
            entry.compiles += 1
            if name == "inductor":
                from torch._inductor.compile_fx import compile_fx

                # No freezing: weights stay inputs, so in-place LoRA patches are seen.
                patches = {"freezing": False, "triton.cudagraphs": cuda_graphs}
                return compile_fx(gm, example_inputs, config_patches=patches)  # pyright: ignore[reportReturnType]
            return torch._dynamo.lookup_backend(name)(gm, example_inputs)  # pyright: ignore[reportPrivateImportUsage]

        return compile_graph

    def _call(self, entry: Entry, args: tuple, eager: Callable[[], torch.Tensor]) -> torch.Tensor:
        if entry.failed is not None:
            return eager()
        first = entry.calls == 0
        if first:
            self._tell(f"{COMPILING}: {entry.label}")
            start = time.perf_counter()
        try:
            if self._graphs(args):
                torch.compiler.cudagraph_mark_step_begin()
            out = entry.fn(*args)
        except Exception as exc:  # a graph the backend cannot build: this shape runs eager from now on
            if not first:
                raise
            entry.failed = f"{type(exc).__name__}: {exc}"
            log.warning("Compiling the %s failed; it runs eager: %s", entry.label, entry.failed)
            out = eager()
        finally:
            if first:
                log.info("%s: %.1f s (compile and first call)", entry.label, time.perf_counter() - start)
                self._tell("")
        entry.calls += 1
        if self._graphs(args):  # a CUDA graph's output is overwritten by its next replay
            out = out.clone()
        return out

    def _graphs(self, args: tuple) -> bool:
        device = args[1].device
        return bool(self.config.cuda_graphs if self.config.cuda_graphs is not None else device.type == "cuda")

    def _tell(self, text: str) -> None:
        if text:
            log.info("%s", text)
        if self.notify is not None:
            self.notify(text)


class CompiledUNet:
    """Stands for the UNet in the denoiser (`CFGDenoiser.unet`): calls go to the model's compile cache;
    calls with extra keyword arguments go to the module itself. Attributes are the module's."""

    def __init__(self, module: torch.nn.Module, cache: CompileCache) -> None:
        self.module = module
        self.cache = cache

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's compute dtype: the denoiser casts the (fp32) latents to it."""
        return compute_dtype(self.module)

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        return_dict: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor]:
        if kwargs or return_dict:
            return self.module(
                sample,
                timestep,
                encoder_hidden_states=encoder_hidden_states,
                added_cond_kwargs=added_cond_kwargs,
                return_dict=return_dict,
                **kwargs,
            )
        # A tensor timestep, so a new step is new data, not a new constant (a recompile); the UNet turns
        # it into float32 for its sinusoidal embedding either way.
        t = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32)
        return (self.cache.unet(self.module, sample, t, encoder_hidden_states, added_cond_kwargs),)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


# -- per model and per job ---------------------------------------------------------------------------------
def configure(
    model: SDModel, config: CompileConfig | None, notify: Callable[[str], None] | None = None
) -> CompileCache | None:
    """Turn the fast path on (`config`) or off (None) for `model`. The cache is kept while the config is
    the same (only `notify` is replaced), else dropped."""
    cache = model.extra.get(CACHE_KEY)
    if config is None:
        model.extra.pop(CACHE_KEY, None)
        return None
    if not isinstance(cache, CompileCache) or cache.config != config:
        cache = CompileCache(config)
        model.extra[CACHE_KEY] = cache
    cache.notify = notify
    return cache


def forget(model: SDModel) -> None:
    """Drop the model's compiled entries (it leaves the device, or is unloaded); the setting stays."""
    cache = model.extra.get(CACHE_KEY)
    if isinstance(cache, CompileCache):
        cache.clear()


def cache_of(model: SDModel) -> CompileCache | None:
    cache = model.extra.get(CACHE_KEY)
    return cache if isinstance(cache, CompileCache) else None


def eager_reason(model: SDModel, extensions: ExtensionManager | None = None) -> str | None:
    """Why this job's UNet must run eager, or None when the compiled path may run it."""
    if _offloaded(model):
        return "--medvram/--lowvram move the model's parts between devices during the job"
    if extensions is not None and extensions.has(HookPoint.UNET_FORWARD):
        return "an extension adds UNet inputs (ControlNet or a UNET_FORWARD hook)"
    if token_merging.is_merging(model.unet):
        return "token merging is on"
    processors = getattr(model.unet, "attn_processors", {})
    if any(not type(p).__module__.startswith("diffusers.") for p in processors.values()):
        return "attention processors are replaced (hypernetworks or an extension)"
    layer = _customised_layer(model.unet)
    if layer is not None:
        return (
            f"{layer} has a forward of its own or forward hooks (an extension's, or a ControlNet adapter's)"
        )
    return None


def _customised_layer(unet: torch.nn.Module) -> str | None:
    """The first layer whose `forward` was replaced on the object (A1111 extensions do so: Regional
    Prompter's cross-attention, block replacements) or that has forward hooks: a captured graph would
    run without them. A scan of the UNet's modules, once per job."""
    for name, module in unet.named_modules():
        if "forward" in vars(module) or module._forward_hooks or module._forward_pre_hooks:
            return name or "the UNet"
    return None


def _offloaded(model: SDModel) -> bool:
    """Offload hooks move modules at forward time, which a captured graph cannot do."""
    return model.offloaded


def unet_for_job(model: SDModel, extensions: ExtensionManager | None = None) -> Any:
    """What the denoiser calls for this job: the compiled UNet when the fast path is on and may run,
    else the module itself. Call it after the job's patches are applied."""
    cache = cache_of(model)
    if cache is None or not cache.config.unet:
        return model.unet
    reason = eager_reason(model, extensions)
    if reason is not None:
        log.info("The UNet runs eager for this job: %s", reason)
        return model.unet
    return CompiledUNet(model.unet, cache)


def vae_decoder(model: SDModel) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The compiled VAE decode (latents scaled for the VAE -> pixels) when it is on, else None."""
    cache = cache_of(model)
    if cache is None or not cache.config.vae_decode or _offloaded(model):
        return None
    vae = model.vae
    return lambda z: cache.vae_decode(vae, z)
