"""Which checkpoint is loaded: loading on demand, a RAM cache of recent models, VAE overrides.

Settings (A1111 names): `sd_model_checkpoint` picks the model; `sd_checkpoints_limit` is how many
stay loaded; with `sd_checkpoints_keep_in_cpu` the inactive ones wait in RAM so switching back is a
device copy, not a file read (on CUDA that RAM is pinned, so the copy is fast and asynchronous).
`sd_vae` picks the VAE (Automatic / None / a file name).

Placement: the active model goes to the compute device whole, or under an offload policy from the
flags (--medvram, --medvram-sdxl, --lowvram: engine.accel.offload), with its UNet weights in fp8 when
`fp8_storage` asks (engine.accel.fp8; `cache_fp16_weight` keeps fp16 copies for LoRA). A change of
those settings re-places the active model at the next `get()`; leaving fp8 re-reads the file.

Loads, unloads and VAE swaps run on the job worker (the `executor`, which the App makes the job
queue): called from a request thread they wait for the running job, called from inside a job they run
at once. So a load never changes the weights under a running generation, and callers just call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import torch

from modules.sumi.engine.accel import compiled, fp8, offload, openvino_graph
from modules.sumi.engine.accel.compiled import CompileConfig
from modules.sumi.engine.accel.offload import OffloadFlags
from modules.sumi.engine.checkpoint import load_checkpoint, model_from_state_dict
from modules.sumi.engine.checkpoint_layout import read_config_yaml
from modules.sumi.engine.devices import DeviceConfig
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.placement import load_dtype, place
from modules.sumi.engine.vae_loading import apply_vae, baked_vae_state, load_vae_file
from modules.sumi.services.models.checkpoints import (
    RE_STRIP_CHECKSUM,
    CheckpointInfo,
    CheckpointRegistry,
    VaeRegistry,
    is_in_memory,
)
from modules.sumi.services.settings.options import Options

log = logging.getLogger(__name__)
T = TypeVar("T")


class Executor(Protocol):
    """Where model changes run: the job queue's `call` (on its worker, inline when already there).

    A protocol because the job queue's area sits above this one (it imports the models)."""

    def call(self, name: str, run: Callable[[], T]) -> T: ...


class Inline:
    """The executor without a worker (tests, scripts): everything runs on the calling thread."""

    def call(self, name: str, run: Callable[[], T]) -> T:
        return run()


@dataclass
class LoadedModel:
    sd: SDModel
    checkpoint: CheckpointInfo
    baked_vae: dict[str, torch.Tensor] = field(default_factory=dict)
    vae_path: Path | None = None
    load_seconds: float = 0.0

    vae_hash: str | None = None

    @property
    def vae_name(self) -> str | None:
        return self.vae_path.name if self.vae_path else None


class ModelManager:
    def __init__(
        self,
        checkpoints: CheckpointRegistry,
        vaes: VaeRegistry,
        options: Options,
        devices: DeviceConfig,
        *,
        allow_unsafe_pickle: bool = False,
        on_model_loaded: list[Callable[[LoadedModel], None]] | None = None,
        executor: Executor | None = None,
        offload_flags: OffloadFlags | None = None,
        compile_flag: bool = False,
        openvino_flag: bool = False,
        compile_notify: Callable[[str], None] | None = None,
    ) -> None:
        self.checkpoints = checkpoints
        self.offload_flags = offload_flags or OffloadFlags()
        self.vaes = vaes
        self.options = options
        self.devices = devices
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.on_model_loaded = on_model_loaded if on_model_loaded is not None else []
        self.executor: Executor = executor or Inline()
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()  # most recent last
        self._lock = threading.RLock()
        self.active: LoadedModel | None = None
        self.compile_flag = compile_flag  # --compile: the UNet at least, whatever the setting says
        self.openvino_flag = openvino_flag  # --use-openvino: OpenVINO for the UNet and VAE decode
        self.compile_notify = compile_notify  # "compiling (once)" into the progress text
        if openvino_flag and not openvino_graph.available():
            log.warning(
                "--use-openvino: %s; until then every job runs without it", openvino_graph.INSTALL_HINT
            )

    # -- choosing ------------------------------------------------------------------------------------
    def selected_checkpoint(self) -> CheckpointInfo:
        """The checkpoint the settings ask for, or the first one found; a clear error if none."""
        wanted = self.options.sd_model_checkpoint
        info = None
        if wanted:  # the title saved in config.json, or the same file after its hash changed
            info = self.checkpoints.lookup(wanted) or self.checkpoints.lookup(
                RE_STRIP_CHECKSUM.sub("", wanted)
            )
        if info is not None:
            return info
        found = self.checkpoints.list()
        if wanted and found:
            log.warning("Checkpoint %r not found; loading fallback %s", wanted, found[0].title)
        if not found:
            raise ModelLoadError(f"No checkpoint found: put a .safetensors or .ckpt file in {self._dirs()}")
        return found[0]

    def _dirs(self) -> str:
        return ", ".join(str(d) for d in self.checkpoints.ckpt_dirs)

    def checkpoint_title(self, name: str) -> str | None:
        """The title of the checkpoint `name` is an exact alias of (A1111's `checkpoint_aliases`), None if none."""
        info = self.checkpoints.lookup(name)
        return info.title if info is not None else None

    def vae_names(self) -> list[str]:
        """What `sd_vae` may be set to: Automatic, None and the VAE files' names."""
        return self.vaes.names()

    def refresh(self) -> None:
        """Rescan the checkpoint and VAE folders."""
        self.checkpoints.refresh()
        self.vaes.refresh()

    # -- loading -------------------------------------------------------------------------------------
    def get(self) -> LoadedModel:
        """The model for the next job: the selected checkpoint on the device, with its VAE."""
        return self.load()

    def load(self, info: CheckpointInfo | None = None) -> LoadedModel:
        """`info` (default: the selected checkpoint) on the device with its VAE (A1111's
        `reload_model_weights(info=...)`); `get()` loads the selected one again."""
        return self.executor.call("load model", lambda: self._load(info))

    def _load(self, info: CheckpointInfo | None) -> LoadedModel:
        with self._lock:
            loaded = self._activate(info or self.selected_checkpoint())
            self._ensure_vae(loaded)
            self._configure_compile(loaded)
            return loaded

    def offload(self) -> None:
        """Move the active model to the CPU to free VRAM; the next `get()` moves it back.

        What A1111's `lowvram.send_everything_to_cpu` and `sd_models.unload_model_weights` do."""
        self.executor.call("unload model", self._offload)

    def _offload(self) -> None:
        with self._lock:
            offloader = offload.offloader_of(self.active.sd) if self.active is not None else None
            if offloader is not None:  # under --medvram/--lowvram: every part back to RAM, hooks stay
                offloader.send_everything_to_storage()
            else:
                self._park_active()

    def set_offload(self, policy: str | None) -> None:
        """Put the active model under `policy` ("none", "med", "low"; None: what the flags say) now,
        and keep it so while it stays loaded (A1111's `lowvram.setup_for_low_vram` from extensions)."""
        if policy is not None and policy not in offload.POLICIES:
            raise ValueError(f"offload policy must be one of {', '.join(offload.POLICIES)}, not {policy!r}")
        self.executor.call("place model", lambda: self._set_offload(policy))

    def _set_offload(self, policy: str | None) -> None:
        with self._lock:
            loaded = self.active or self._load(None)
            if policy is None:
                loaded.sd.extra.pop("offload_requested", None)
            else:
                loaded.sd.extra["offload_requested"] = policy
            if not self._on_device(loaded):
                self._move_to_device(loaded)

    def borrow(self, info: CheckpointInfo) -> LoadedModel:
        """`info` on the device with its VAE for part of a job (a refiner, a hires checkpoint), WITHOUT
        writing the `sd_model_checkpoint` setting; `give_back` makes the job's model active again.
        Call it from the job worker (no executor round trip: the worker is the caller)."""
        with self._lock:
            loaded = self._activate(info, remember=False)
            self._ensure_vae(loaded)
            self._configure_compile(loaded)
            return loaded

    def give_back(self, previous: LoadedModel | None) -> None:
        """Make `previous` (the model active before `borrow`) the active one again: the same object, so a
        job holding it goes on with it even when the cache limit dropped it meanwhile; its VAE as it was."""
        with self._lock:
            if previous is None or self.active is previous:
                return
            vae_path = previous.vae_path
            self._activate(previous.checkpoint, remember=False, loaded=previous)
            self._apply_vae(previous, vae_path)

    def _activate(
        self, info: CheckpointInfo, *, remember: bool = True, loaded: LoadedModel | None = None
    ) -> LoadedModel:
        """`info` active on the device (read unless cached or given as `loaded`). `remember`: write it
        to the `sd_model_checkpoint` setting as A1111's loads do (a borrowed model does not)."""
        key = str(info.filename)
        if self.active is not None and str(self.active.checkpoint.filename) == key:
            if self._needs_reading(self.active):
                self._reread(self.active)
            if not self._on_device(self.active):  # offloaded, moved by an extension, settings changed
                self._move_to_device(self.active)
            return self.active
        loaded = loaded or self._loaded.get(key) or self._read(info)
        self._park_active()
        if self._needs_reading(loaded):
            self._reread(loaded)
        self._move_to_device(loaded)
        self._loaded[key] = loaded
        self._loaded.move_to_end(key)
        self.active = loaded
        self._evict()
        if remember:  # the setting then holds the hashed title, as A1111's does (`name [hash]`)
            self.options.data["sd_model_checkpoint"] = loaded.checkpoint.title
            self.options.data["sd_checkpoint_hash"] = loaded.checkpoint.sha256  # None with --no-hashing
        for callback in self.on_model_loaded:
            callback(loaded)
        return loaded

    def try_state_dict(self, name: str, state_dict: dict, config_yaml: Path | None = None) -> LoadedModel:
        """Build a model from a single-file state dict in memory (a merge being tried), list it as
        `<name> (in memory)` and make it the active model; nothing is written. It stays until another
        model takes its place in the cache (then it is gone from the list)."""
        hints = read_config_yaml(config_yaml) if config_yaml is not None else None
        sd = model_from_state_dict(state_dict, Path(name), hints=hints, dtype=load_dtype(self.devices))
        return self.adopt(self.checkpoints.add_in_memory(name), sd)

    def adopt(self, info: CheckpointInfo, sd: SDModel) -> LoadedModel:
        """Make `sd`, a model built in memory (a merge being tried, `info` from
        `CheckpointRegistry.add_in_memory`), the active model, as loading a file would."""

        def run() -> LoadedModel:
            with self._lock:
                for module in (sd.unet, sd.vae, *(spec.model for spec in sd.text_encoders)):
                    module.eval()
                loaded = self._activate(info, loaded=LoadedModel(sd, info, baked_vae_state(sd)))
                self._ensure_vae(loaded)
                self._configure_compile(loaded)
                return loaded

        return self.executor.call("load model", run)

    def _read(self, info: CheckpointInfo) -> LoadedModel:
        if is_in_memory(info):
            self.checkpoints.remove_in_memory(info)
            raise ModelLoadError(
                f"{info.name} was a merge tried in memory and has been unloaded since; merge it again"
            )
        start = time.perf_counter()
        sd = load_checkpoint(
            Path(info.filename),
            allow_unsafe_pickle=self.allow_unsafe_pickle,
            config_yaml=self.checkpoints.config_yaml_for(info),
            dtype=load_dtype(self.devices),
        )
        sd.unet.eval()
        sd.vae.eval()
        for spec in sd.text_encoders:
            spec.model.eval()
        if info.hash is None and not self.checkpoints.no_hashing:
            info.calculate_hash()
        loaded = LoadedModel(sd, info, baked_vae_state(sd), load_seconds=time.perf_counter() - start)
        log.info("Loaded %s (%s) in %.1f s", info.title, sd.family, loaded.load_seconds)
        return loaded

    def _placement(self, sd: SDModel) -> tuple[str, bool, bool]:
        """(offload policy, fp8 weights, fp16 cache) the flags and settings ask for this model."""
        use_fp8 = fp8.wanted(str(self.options.fp8_storage), is_sdxl=sd.is_sdxl)
        return (
            sd.extra.get("offload_requested") or self.offload_flags.policy(is_sdxl=sd.is_sdxl),
            use_fp8,
            use_fp8 and bool(self.options.cache_fp16_weight),
        )

    def _needs_reading(self, loaded: LoadedModel) -> bool:
        """fp8-rounded weights cannot go back: leaving fp8, or wanting the fp16 cache it lacks, reads
        the file again."""
        sd = loaded.sd
        if not fp8.is_fp8(sd.unet) or is_in_memory(loaded.checkpoint):  # no file to read again
            return False
        _, use_fp8, cache = self._placement(sd)
        return not use_fp8 or cache != fp8.has_fp16_cache(sd.unet)

    def _reread(self, loaded: LoadedModel) -> None:
        """Read `loaded`'s file again into the same LoadedModel (a job holding it keeps it)."""
        offload.detach(loaded.sd)
        fresh = self._read(loaded.checkpoint)
        if "offload_requested" in loaded.sd.extra:
            fresh.sd.extra["offload_requested"] = loaded.sd.extra["offload_requested"]
        loaded.sd, loaded.baked_vae, loaded.vae_path, loaded.vae_hash = fresh.sd, fresh.baked_vae, None, None

    def _move_to_device(self, loaded: LoadedModel) -> None:
        d, sd = self.devices, loaded.sd
        policy, use_fp8, cache = self._placement(sd)
        offload.detach(sd)
        if use_fp8 and not fp8.is_fp8(sd.unet):
            fp8.store_in_fp8(sd.unet, cache_fp16=cache)
        storage = torch.device("cpu") if policy != "none" else d.device
        done = place(sd, d, device=storage)
        log.info("%s on %s: %s", loaded.checkpoint.title, d.device, done)
        if d.attention == "xformers":
            sd.unet.enable_xformers_memory_efficient_attention()
            sd.vae.enable_xformers_memory_efficient_attention()
        offload.attach(sd, policy, storage, d.device)  # type: ignore[arg-type]  # a Policy string
        sd.extra["fp8"] = use_fp8
        sd.extra["placement"] = (policy, use_fp8, cache)

    def _on_device(self, loaded: LoadedModel) -> bool:
        sd = loaded.sd
        if sd.extra.get("placement") != self._placement(sd):
            return False
        if sd.offloaded:
            return offload.offloader_of(sd) is not None
        return all(next(m.parameters()).device == self.devices.device for m in sd.modules())

    def compile_config(self) -> CompileConfig | None:
        """The compiled fast path the settings (`sumi_compile_unet`) and `--compile` ask for; None: off."""
        choice = str(self.options.sumi_compile_unet)
        if choice == "Off" and self.openvino_flag:
            choice = "OpenVINO: UNet + VAE decode"
        elif choice == "Off" and self.compile_flag:
            choice = "UNet"
        return CompileConfig.from_choice(choice)

    def _configure_compile(self, loaded: LoadedModel) -> None:
        compiled.configure(loaded.sd, self.compile_config(), self.compile_notify)

    def _park_active(self) -> None:
        """The active model to RAM (pinned on CUDA, so bringing it back is a fast copy)."""
        if self.active is not None and self.devices.is_cuda:
            compiled.forget(self.active.sd)  # its compiled graphs (CUDA graph pools) go with its VRAM
            offload.park_in_host_memory(self.active.sd, pinned=True)
            torch.cuda.empty_cache()

    def offload_report(self) -> dict | None:
        """The active model's offloader record (policy, resident units, bytes moved), if any."""
        offloader = offload.offloader_of(self.active.sd) if self.active is not None else None
        return offloader.report() if offloader is not None else None

    def _evict(self) -> None:
        limit = max(1, int(self.options.sd_checkpoints_limit))
        keep_in_cpu = bool(self.options.sd_checkpoints_keep_in_cpu)
        while len(self._loaded) > (limit if keep_in_cpu else 1):
            key, dropped = self._loaded.popitem(last=False)
            compiled.forget(dropped.sd)
            if is_in_memory(dropped.checkpoint):  # nothing to load it from again
                self.checkpoints.remove_in_memory(dropped.checkpoint)
            log.info("Unloaded %s from the model cache", dropped.checkpoint.title)

    def unload_all(self) -> None:
        """Forget every loaded model (the next `get()` reads the file again)."""
        self.executor.call("unload model", self._unload_all)

    def _unload_all(self) -> None:
        with self._lock:
            for loaded in self._loaded.values():
                compiled.forget(loaded.sd)
            self._loaded.clear()
            self.active = None

    def loaded_titles(self) -> list[str]:
        return [m.checkpoint.title for m in self._loaded.values()]

    # -- VAE -----------------------------------------------------------------------------------------
    def _ensure_vae(self, loaded: LoadedModel) -> None:
        try:
            wanted = self.vaes.resolve(
                loaded.checkpoint,
                self.options.sd_vae,
                bool(self.options.sd_vae_overrides_per_model_preferences),
            )
        except ValueError as exc:  # a VAE named in config.json that is gone: A1111 falls back to none
            log.warning("%s; using the checkpoint's own VAE instead", exc)
            wanted = None
        self._apply_vae(loaded, Path(wanted) if wanted else None)

    def load_vae(self, path: str | Path | None) -> None:
        """Put this VAE file (None: the checkpoint's own) into the active model, until the next `get()`
        applies the settings again (A1111's `sd_vae.reload_vae_weights(vae_file=...)`)."""
        self.executor.call("load VAE", lambda: self._load_vae(path))

    def _load_vae(self, path: str | Path | None) -> None:
        with self._lock:
            loaded = self.active or self._load(None)
            self._apply_vae(loaded, Path(path) if path else None)

    def _apply_vae(self, loaded: LoadedModel, wanted: Path | None) -> None:
        if wanted == loaded.vae_path:
            return
        state = (
            load_vae_file(wanted, allow_unsafe_pickle=self.allow_unsafe_pickle)
            if wanted
            else loaded.baked_vae
        )
        offloader = offload.offloader_of(loaded.sd)
        if offloader is not None:  # the new weights go where the offloader keeps them
            offloader.send_everything_to_storage()
        apply_vae(loaded.sd, state, source=str(wanted or loaded.checkpoint.filename))
        vae_device = offloader.storage if offloader is not None else self.devices.device
        vae_dtype = loaded.sd.extra.get("vae_dtype", self.devices.vae_dtype)  # placement's (size rule)
        loaded.sd.vae.to(vae_device, vae_dtype)  # pyright: ignore[reportArgumentType]
        loaded.vae_path = wanted
        loaded.vae_hash = self.vaes.short_hash(wanted) if wanted else None
        log.info("VAE for %s: %s", loaded.checkpoint.title, wanted.name if wanted else "from the checkpoint")
