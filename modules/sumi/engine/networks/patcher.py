"""Add network deltas to the live weights in place, and take them out again bit-exactly.

`NetworkPatcher(model).apply([(network, te_multiplier, unet_multiplier), ...])` sets the model's
active networks. Per layer, the deltas of every network are computed in fp32 from the layer's
pristine weight, summed, added once and cast back to the weight's dtype, on the weight's device.
The pristine tensor of each touched parameter is kept (see `backup_device`), and `restore()` copies
it back, so the model is bit-identical to the one before. Applying a new set only touches layers
whose (network, multiplier) list changed: switching LoRA A -> B restores A's layers and patches
B's, and layers both share with equal multipliers stay as they are.

Backups live on the CPU by default (`backup_device="cpu"`, like A1111): on a GPU they cost no
VRAM, and restoring a layer is one host-to-device copy. Pass `backup_device=None` to keep them
beside the weights (faster switches, more VRAM).

Every delta is computed and checked before the first weight changes, so a network that does not
fit (a wrong family: no layer matches, or a layer's shape differs), or whose deltas would make a
weight NaN, infinite or too big for its dtype (a black image), raises NetworkError naming the file
and the layers, and leaves the model exactly as it was. `check` runs the cheap family and layer
checks alone.

The patcher is model state that outlives a job; jobs use it through the engine extension
`extensions.NetworkPatch`, whose patch scope applies a set and restores it (or leaves it resident).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from modules.sumi.engine.extensions import WeightBackups
from modules.sumi.engine.model import SDModel

from ..files import weight_problem
from .block_weights import BlockWeights
from .keys import Target, a1111_layer_name, build_index, target_block
from .network_file import MAX_EXAMPLES, MatchResult, NetworkError, NetworkFile, Patch, match

NetworkSpec = tuple[NetworkFile, float, float]  # (network, te multiplier, unet multiplier)


@dataclass(frozen=True)
class _Use:
    network: NetworkFile
    multiplier: float
    patch: Patch

    @property
    def signature(self) -> tuple:
        return (self.network.identity, self.multiplier)


class NetworkPatcher:
    """Owns the network patches of one SDModel. Not thread-safe: one job at a time."""

    def __init__(self, model: SDModel, *, backup_device: str | torch.device | None = "cpu") -> None:
        self.model = model
        self.backup_device = backup_device
        self._index: dict[str, Target] | None = None
        self._targets: dict[str, Target] = {}
        self._blocks: dict[str, str | None] = {}
        self._names: dict[str, str] = {}  # layer key -> its A1111 name (element weights)
        self._backups = WeightBackups(backup_device)
        self._applied: dict[str, tuple] = {}
        self.results: list[MatchResult] = []

    @property
    def index(self) -> dict[str, Target]:
        if self._index is None:
            self._index = build_index(self.model)
        return self._index

    @property
    def patched_layers(self) -> set[str]:
        """Keys (`component:path`) of the layers that currently hold deltas."""
        return set(self._applied)

    def apply(self, networks: Iterable[NetworkSpec]) -> list[MatchResult]:
        """Make exactly `networks` active; returns one MatchResult per network (unmatched keys)."""
        networks = list(networks)
        results = [self._match(network) for network, _, _ in networks]
        wanted = self._wanted(networks, results)
        signatures = {key: tuple(use.signature for use in uses) for key, uses in wanted.items()}
        changed = [k for k in {*signatures, *self._applied} if signatures.get(k) != self._applied.get(k)]
        deltas = self._deltas({k: wanted[k] for k in changed if k in wanted})
        with torch.no_grad():
            for key in changed:
                self._restore_layer(key)
                if key in deltas:
                    self._patch_layer(key, deltas[key])
        self._applied = signatures
        self.results = results
        return results

    def check(self, networks: Iterable[NetworkSpec]) -> list[MatchResult]:
        """Match every network to the model without changing a weight; raises NetworkError for a
        network of another family or one none of whose layers match (the layer shapes are checked
        when applying)."""
        return [self._match(network) for network, _, _ in networks]

    def restore(self) -> None:
        """Put every patched parameter back exactly as it was before the first apply."""
        with torch.no_grad():
            for key in list(self._applied):
                self._restore_layer(key)
        self._applied = {}

    def commit(self) -> None:
        """Keep the applied deltas as the model's own weights (baking a LoRA into a model): the backups
        are dropped, so `restore()` no longer undoes them."""
        self._backups.forget_all()
        self._applied = {}

    # -- steps ------------------------------------------------------------------------------------

    def _match(self, network: NetworkFile) -> MatchResult:
        family = self.model.family
        if network.family and family and network.family != family:
            raise NetworkError(
                f"{network.path or network.name}: this is an {network.family} network and the loaded model "
                f"is {family}; choose a {family} network or load an {network.family} model"
            )
        result = match(network, self.model, self.index)
        if not result.patches and network.layers:
            looks = f" (it looks like an {network.family} network)" if network.family else ""
            raise NetworkError(
                f"{network.path or network.name}: none of its {len(network.layers)} layers match this "
                f"{self.model.family} model{looks}; is it for another model family? {result.summary()}"
            )
        return result

    def _wanted(self, networks: Sequence[NetworkSpec], results: Sequence[MatchResult]) -> dict[str, list]:
        wanted: dict[str, list[_Use]] = {}
        for (network, te_mult, unet_mult), result in zip(networks, results, strict=True):
            for patch in result.patches:
                multiplier = float(te_mult if patch.target.is_text_encoder else unet_mult)
                if network.block_weights is not None:
                    multiplier *= self._ratio(network.block_weights, patch.target)
                if multiplier == 0.0:
                    continue
                self._targets[patch.target.key] = patch.target
                wanted.setdefault(patch.target.key, []).append(_Use(network, multiplier, patch))
        return wanted

    def _block(self, target: Target) -> str | None:
        if target.key not in self._blocks:
            self._blocks[target.key] = target_block(self.model, target)
        return self._blocks[target.key]

    def _ratio(self, weights: BlockWeights, target: Target) -> float:
        """The layer's block weight, or its element weight when the weights have element rules."""
        block = self._block(target)
        if not weights.elements:
            return weights.ratio(block)
        if target.key not in self._names:
            self._names[target.key] = a1111_layer_name(self.model, target)
        return weights.layer_ratio(block, self._names[target.key])

    def _original(self, key: str, name: str) -> Tensor | None:
        """The layer's pristine `name` in fp32: the backup once patched, else the live tensor. A weight
        stored in fp8 with an fp16 cache (`fp16_weight`, engine.accel.fp8) starts from that cache."""
        module = self._targets[key].module
        param = getattr(module, name, None)
        if param is None:
            return None
        cached = getattr(module, "fp16_weight", None) if name == "weight" else None
        backup = self._backups.original(key, name)
        source = cached if cached is not None else param if backup is None else backup
        return source.detach().to(param.device, torch.float32)

    def _deltas(self, wanted: dict[str, list[_Use]]) -> dict[str, dict]:
        """fp32 weight/bias deltas per layer, all computed and checked before anything changes."""
        out: dict[str, dict[str, Tensor]] = {}
        errors: dict[str, list[str]] = {}
        bounds: list[tuple[str, str, Tensor]] = []  # (layer, "weight"/"bias", [min, max] patched)
        for key, uses in wanted.items():
            originals = {"weight": self._original(key, "weight"), "bias": self._original(key, "bias")}
            total: dict[str, Tensor] = {}
            for use in uses:
                patch = use.patch
                try:
                    if originals["weight"] is None:
                        raise ValueError("the layer has no weight to patch")
                    delta = patch.adapter.delta(originals["weight"]) * use.multiplier
                    bias_delta = patch.adapter.bias_delta(originals["bias"])
                except (ValueError, RuntimeError) as exc:
                    errors.setdefault(_name(use), []).append(f"{patch.layer_name}: {exc}")
                    continue
                total["weight"] = total["weight"] + delta if "weight" in total else delta
                if bias_delta is not None:
                    bias_delta = bias_delta * use.multiplier
                    total["bias"] = total["bias"] + bias_delta if "bias" in total else bias_delta
            for name, delta in total.items():
                original = originals[name]
                if original is not None:
                    bounds.append((key, name, torch.stack(torch.aminmax(original + delta))))
            out[key] = total
        if errors:
            raise NetworkError(
                "; ".join(_shape_message(name, errs, self.model.family) for name, errs in errors.items())
            )
        self._check_range(wanted, out, bounds)
        return out

    def _check_range(
        self, wanted: dict[str, list[_Use]], deltas: dict[str, dict], bounds: list[tuple[str, str, Tensor]]
    ) -> None:
        """Raise NetworkError naming the networks and layers whose patched weights would hold NaN or
        infinity or exceed their dtype's range (every image black). The min/max of every patched layer
        come to the host in one transfer; only a failing layer is looked at again, network by network,
        to name the one at fault (all of them when only their sum overflows)."""
        if not bounds:
            return
        device = bounds[0][2].device
        values = torch.stack([b.to(device) for _, _, b in bounds]).tolist()
        overflows: dict[str, list[str]] = {}
        for (key, name, _), (low, high) in zip(bounds, values, strict=True):
            dtype = getattr(self._targets[key].module, name).dtype
            if math.isfinite(low) and math.isfinite(high) and max(-low, high) <= torch.finfo(dtype).max:
                continue
            original = self._original(key, name)
            if original is None:
                continue
            for network, problem in _blame(wanted[key], original, deltas[key][name], name, dtype):
                overflows.setdefault(network, []).append(problem)
        if overflows:
            raise NetworkError("; ".join(_overflow_message(name, errs) for name, errs in overflows.items()))

    def _patch_layer(self, key: str, deltas: dict[str, Tensor]) -> None:
        module = self._targets[key].module
        for name, delta in deltas.items():
            param = getattr(module, name)
            self._backups.save(key, module, name)
            base = self._original(key, name)
            assert base is not None
            param.copy_((base + delta.to(base.device)).to(param.dtype))

    def _restore_layer(self, key: str) -> None:
        self._backups.restore(key)


def _name(use: _Use) -> str:
    return str(use.network.path or use.network.name)


def _blame(
    uses: list[_Use], original: Tensor, total: Tensor, name: str, dtype: torch.dtype
) -> list[tuple[str, str]]:
    """(network, "layer (problem)") for each network whose own delta breaks the layer's `name`; all
    of them when only their sum does."""
    found = []
    for use in uses:
        try:
            alone = _single_delta(use, original, name)
        except (ValueError, RuntimeError):  # does not fit: reported as such
            continue
        problem = None if alone is None else weight_problem(original + alone, dtype)
        if problem is not None:
            found.append((_name(use), f"{use.patch.layer_name} ({name} {problem})"))
    if found:
        return found
    problem = weight_problem(original + total, dtype)
    return [(_name(use), f"{use.patch.layer_name} (with the others, {name} {problem})") for use in uses]


def _single_delta(use: _Use, original: Tensor, name: str) -> Tensor | None:
    """One network's delta of the layer's `name` ("weight" or "bias"), times its multiplier."""
    adapter = use.patch.adapter
    delta = adapter.delta(original) if name == "weight" else adapter.bias_delta(original)
    return None if delta is None else delta * use.multiplier


def _overflow_message(name: str, problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_EXAMPLES])
    more = f" ... ({len(problems) - MAX_EXAMPLES} more)" if len(problems) > MAX_EXAMPLES else ""
    return (
        f"{name}: its deltas overflow the model's weights in {len(problems)} "
        f"layer{'s' if len(problems) > 1 else ''}, so it is not applied (every image would be black; the "
        f"model is unchanged; use a lower weight or another file): {shown}{more}"
    )


def _shape_message(name: str, errors: list[str], family: str) -> str:
    shown = "; ".join(errors[:MAX_EXAMPLES])
    more = f" ... ({len(errors) - MAX_EXAMPLES} more)" if len(errors) > MAX_EXAMPLES else ""
    return (
        f"{name}: {len(errors)} layers do not fit this {family} model (is the network for another "
        f"model family?): {shown}{more}"
    )
