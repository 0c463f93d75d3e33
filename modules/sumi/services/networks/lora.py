"""The `<lora:name:te:unet>` / `<lyco:...>` handler: A1111's built-in Lora extension as a service.

Networks are parsed once and cached in RAM. Activation checks them against the model and gives the job
a resident `NetworkPatch` engine extension: each batch's patch scope adds the deltas in place through the
model's own `NetworkPatcher` (which keeps exact copies of what it changed). The deltas stay between jobs
that name the same networks; a job that names none, and a failed or interrupted one, restores the
weights bit-exactly, and switching between sets only touches the layers that differ.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.networks import (
    NetworkError,
    NetworkFile,
    NetworkPatch,
    NetworkPatcher,
    drop_refused,
    load_network,
)
from modules.sumi.engine.networks.block_weights import (
    ALL_ONES,
    DEFAULT_ELEMENT_PRESETS,
    DEFAULT_PRESETS,
    BlockWeights,
    is_block_weight_list,
    parse_block_weights,
    parse_elements,
    read_element_presets,
    read_presets,
)
from modules.sumi.engine.networks.embeddings import Embedding
from modules.sumi.engine.networks.extensions import REFUSED
from modules.sumi.services.networks.files import NetworkFileInfo, NetworkFileRegistry
from modules.sumi.services.networks.registry import (
    ExtraNetwork,
    ExtraNetworkParams,
    set_engine_extension,
    sumi_model,
)
from modules.sumi.util.cache import FileCache

log = logging.getLogger(__name__)
PATCHER_KEY = "lora_patcher"
CACHE_SIZE = 16


def addnet_hash(path: Path) -> str:
    """sha256 of a .safetensors file's tensor data (after its header), as A1111's `Lora hashes` use."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if path.suffix.lower() == ".safetensors":
            header_size = struct.unpack("<Q", f.read(8))[0]
            f.seek(8 + header_size)
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def block_weight_spec(params: ExtraNetworkParams, presets: dict[str, str]) -> str | None:
    """sd-webui-lora-block-weight's `lbw=` (or `w=`), or its older third positional item when that is a
    preset name or a block list rather than the unet multiplier (`<lora:name:1:OUTD>`)."""
    named = params.named.get("lbw", params.named.get("w"))
    if named is not None:
        return named
    pos = params.positional
    if len(pos) > 2 and not _is_number(pos[2]) and is_block_weight_list(pos[2], presets):
        return pos[2]
    return None


def _step(name: str, value: str) -> int:
    try:
        step = int(value)
    except ValueError:
        raise ValueError(f"{name}={value} is not a step number") from None
    if step < 1:
        raise ValueError(f"{name}={value}: steps count from 1")
    return step


def step_window(params: ExtraNetworkParams) -> tuple[int, int | None] | None:
    """sd-webui-lora-block-weight's `start=N`, `stop=M` or `step=N-M`: the UNet deltas act from sampling
    step N to before step M (counted from 1); None when the tag limits nothing."""
    named = params.named
    start, stop = named.get("start"), named.get("stop")
    if "step" in named:
        first, dash, last = named["step"].partition("-")
        if not dash:
            raise ValueError(f"step={named['step']} is not N-M (from step N to before step M)")
        start, stop = first, last
    if start is None and stop is None:
        return None
    first = _step("start", start) if start is not None else 1
    last = _step("stop", stop) if stop is not None else None
    if start is not None and last is not None and last <= first:
        raise ValueError(f"stop={last} must come after start={first}")
    return first, last


def multipliers(params: ExtraNetworkParams, presets: dict[str, str] | None = None) -> tuple[float, float]:
    """(te, unet) from `<lora:name:te:unet>` and named `te=`/`unet=` (unet defaults to te), as A1111; a
    third item that is block weights (see `block_weight_spec`) leaves unet at te."""
    pos, named = params.positional, params.named
    te = float(named.get("te", pos[1] if len(pos) > 1 else 1.0))
    third = pos[2] if len(pos) > 2 else None
    if (
        third is not None
        and not _is_number(third)
        and is_block_weight_list(third, presets or DEFAULT_PRESETS)
    ):
        third = None
    unet = float(named.get("unet", third if third is not None else te))
    return te, unet


@dataclass(frozen=True)
class ActiveLora:
    """A network the last activation applied (A1111's `networks.loaded_networks` shows them)."""

    mentioned_name: str  # the name the prompt used: the file stem or the alias
    info: NetworkFileInfo
    te_multiplier: float
    unet_multiplier: float
    block_weights: BlockWeights | None = None


class LoraNetwork(ExtraNetwork):
    def __init__(
        self,
        files: NetworkFileRegistry,
        *,
        allow_unsafe_pickle: bool = False,
        block_weight_presets: list[Path] | None = None,
        element_presets: list[Path] | None = None,
    ) -> None:
        super().__init__("lora")
        self.block_weight_presets = list(block_weight_presets or [])  # lbwpresets.txt files, first wins
        self.element_preset_files = list(element_presets or [])  # elempresets.txt files, first wins
        self.active: list[ActiveLora] = []  # replaced (never changed in place) by each activation
        self.bundled: dict[str, Embedding] = {}  # the active networks' bundled embeddings
        self.files = files
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._parsed: FileCache[NetworkFile] = FileCache(CACHE_SIZE)
        self._hashes: dict[tuple, str] = {}

    def activate(self, p: Any, params_list: list[ExtraNetworkParams]) -> None:
        set_engine_extension(p, self.name, None)
        self.active = []
        self.bundled = {}
        model = sumi_model(getattr(p, "sd_model", None))
        if model is None:
            return
        mentioned: dict[int, tuple[str, NetworkFileInfo]] = {}
        wanted = []
        for params in params_list:
            spec = self._spec(p, params)
            if spec is not None:
                wanted.append(spec)
                name = params.positional[0]
                mentioned[id(spec[0])] = (name, cast(NetworkFileInfo, self.files.find(name)))
        patcher = _patcher(model)
        wanted, results, refusals = drop_refused(patcher.check, wanted)
        self.active = [
            ActiveLora(*mentioned[id(net)], te, unet, net.block_weights) for net, te, unet in wanted
        ]
        self.bundled = self._bundled(p, [network for network, _, _ in wanted])
        p.warnings.extend(REFUSED + message for message in refusals)
        for (network, _, _), result in zip(wanted, results, strict=True):
            if result.unmatched:
                p.warnings.append(f"Lora {network.name}: {result.summary()}")
        if wanted:
            p.extra_generation_params["Lora hashes"] = ", ".join(
                f"{network.name.replace(':', '').replace(',', '')}: {self._hash(network)[:12]}"
                for network, _, _ in wanted
            )
            set_engine_extension(p, self.name, NetworkPatch(patcher, wanted, resident=True))

    def deactivate(self, p: Any) -> None:
        """The job is over; its deltas stay on the model until a batch needs other networks or none."""
        set_engine_extension(p, self.name, None)

    def bundled_embeddings(self) -> dict[str, Embedding]:
        return self.bundled

    def _bundled(self, p: Any, networks: list[NetworkFile]) -> dict[str, Embedding]:
        """The networks' bundled embeddings (the first network wins a name), hashed as their file is
        for `TI hashes`; unreadable ones are warnings."""
        found: dict[str, Embedding] = {}
        for network in networks:
            p.warnings.extend(f"Lora {network.name}: {error}" for error in network.bundle_errors)
            for name, embedding in network.embeddings.items():
                if name not in found:
                    found[name] = replace(embedding, filename=network.path, sha256=self._hash(network))
        return found

    def resolve(self, tags: str, seed: int = 0) -> tuple[list[tuple[NetworkFile, float, float]], list[str]]:
        """The networks `<lora:...>` / `<lyco:...>` tags in `tags` name, as a job would apply them (block
        weights and all), and the warnings for those that cannot be used."""
        from types import SimpleNamespace

        from modules.sumi.services.networks.registry import parse_prompt

        job = SimpleNamespace(warnings=[], all_seeds=[seed])
        _, found = parse_prompt(tags)
        specs = [self._spec(job, params) for kind in ("lora", "lyco") for params in found.get(kind, [])]
        return [spec for spec in specs if spec is not None], job.warnings

    def _spec(self, p: Any, params: ExtraNetworkParams) -> tuple[NetworkFile, float, float] | None:
        name = params.positional[0] if params.positional else ""
        info = self.files.find_or_refresh(name)
        if info is None:
            p.warnings.append(f"Lora not found: {name} (put it in models/Lora and press refresh)")
            return None
        try:
            presets = self.presets()
            te, unet = multipliers(params, presets)
            network = self._load(info)
            spec = block_weight_spec(params, presets)
            if spec is not None:
                network = network.with_block_weights(self._block_weights(p, params, spec, presets))
            window = step_window(params)
            if window is not None:
                network = network.with_steps(*window)
            if "lbwe" in params.named:
                network = self._with_elements(p, name, network, params.named["lbwe"])
            return network, te, unet
        except (ValueError, NetworkError) as exc:
            p.warnings.append(f"Lora {name}: {exc}")
            return None

    def presets(self) -> dict[str, str]:
        """Block-weight presets: the extension's built-in ones, overridden by the presets files (read
        on each use, so an edit applies to the next job); an unreadable file is skipped with a log line."""
        return _presets(DEFAULT_PRESETS, self.block_weight_presets, read_presets, "block weight")

    def element_presets(self) -> dict[str, str]:
        """Element-weight presets: the extension's built-in ones, overridden by the elempresets.txt files
        (read on each use, like the block-weight presets)."""
        return _presets(
            DEFAULT_ELEMENT_PRESETS, self.element_preset_files, read_element_presets, "element weight"
        )

    def _with_elements(self, p: Any, name: str, network: NetworkFile, preset: str) -> NetworkFile:
        """`lbwe=NAME`: the preset's element rules on top of the block weights (all 1 without lbw=)."""
        presets = self.element_presets()
        if preset.strip() not in presets:
            known = ", ".join(sorted(presets))
            p.warnings.append(
                f"Lora {name}: element weight preset '{preset}' is not in elempresets.txt (known: {known}); "
                "the LoRA is applied without element weights"
            )
            return network
        rules = parse_elements(presets[preset.strip()])
        weights = network.block_weights or parse_block_weights(ALL_ONES, {})
        return network.with_block_weights(replace(weights, elements=rules))

    @staticmethod
    def _block_weights(
        p: Any, params: ExtraNetworkParams, spec: str, presets: dict[str, str]
    ) -> BlockWeights:
        pos = params.positional
        inherited = float(params.named.get("x", pos[3] if len(pos) > 3 else 1.0))
        seeds = getattr(p, "all_seeds", None) or [getattr(p, "seed", 0)]
        return parse_block_weights(spec, presets, inherited=inherited, seed=int(seeds[0]))

    def _load(self, info: NetworkFileInfo) -> NetworkFile:
        return self._parsed.get(
            info.path, lambda: load_network(info.path, allow_unsafe_pickle=self.allow_unsafe_pickle)
        )

    def _hash(self, network: NetworkFile) -> str:
        key = network.identity
        if key not in self._hashes:
            self._hashes[key] = addnet_hash(Path(network.path))
        return self._hashes[key]


def _presets(
    built_in: dict[str, str], files: list[Path], read: Callable[[str], dict[str, str]], kind: str
) -> dict[str, str]:
    """`built_in` overridden by the preset files, the first file winning; a missing file is skipped,
    an unreadable one with a log line."""
    presets = dict(built_in)
    for path in reversed(files):
        try:
            presets.update(read(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("LoRA %s presets %s cannot be read: %s", kind, path, exc)
    return presets


def _patcher(model: SDModel) -> NetworkPatcher:
    """The model's patcher lives with the model (in `model.extra`), so it goes when the model goes."""
    if PATCHER_KEY not in model.extra:
        model.extra[PATCHER_KEY] = NetworkPatcher(model)
    return model.extra[PATCHER_KEY]
