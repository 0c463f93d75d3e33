"""LoRA/LyCORIS and hypernetworks as engine extensions: patches of the model for one patch scope.

    patcher = NetworkPatcher(model)                  # lives with the model (it owns the weight backups)
    generate(model, request, extensions=[NetworkPatch(patcher, [(lora, 1.0, 0.8)]),
                                         HypernetworkPatch([(hn, 0.5)])])

`NetworkPatch` adds the deltas in place when the scope opens (only layers whose networks changed are
rewritten) and restores the weights bit-exactly when it closes. With `resident=True` (what the app
uses, as A1111 does) a scope that completed leaves the deltas on the model: the next scope with the
same networks rewrites nothing, one with others rewrites only the layers that differ, and one without
networks, or a failed or interrupted one, restores them. `HypernetworkPatch` wraps the UNet's attention
processors for the scope and puts the original processor objects back.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from modules.sumi.engine.extensions import Extension, HookPoint, PatchScope, StepContext, claim_resident, hook
from modules.sumi.engine.networks.hypernetwork import Hypernetwork, apply_hypernetworks, remove_hypernetworks
from modules.sumi.engine.networks.network_file import NetworkError, NetworkFile
from modules.sumi.engine.networks.patcher import NetworkPatcher, NetworkSpec

T = TypeVar("T")
REFUSED = "Lora refused: "
RESIDENT_KEY = "networks"


def drop_refused(
    attempt: Callable[[list[NetworkSpec]], T], networks: Sequence[NetworkSpec]
) -> tuple[list[NetworkSpec], T, list[str]]:
    """Run `attempt` on the networks; one it refuses (a NetworkError naming its file) is dropped and the
    rest tried again. Returns the networks kept, the attempt's result for them, and the refusals."""
    kept, refusals = list(networks), []
    while True:
        try:
            return kept, attempt(kept), refusals
        except NetworkError as exc:
            refusals.append(str(exc))
            bad = [spec for spec in kept if str(spec[0].path) in str(exc)]
            kept = [spec for spec in kept if spec not in bad] if bad else []


def _text_ratio(network: NetworkFile) -> float:
    weights = network.block_weights
    return 1.0 if weights is None else weights.ratio("BASE")


def _text_elements(network: NetworkFile) -> tuple:
    """Element rules may give text-encoder layers their own ratios (even with BASE 0)."""
    weights = network.block_weights
    return () if weights is None else weights.elements


class NetworkPatch(Extension):
    """Makes exactly `networks` active on the patcher's model for the scope (see the module docstring).
    A network the model refuses is dropped, with a warning in `warnings`."""

    resident_key = RESIDENT_KEY

    def __init__(
        self, patcher: NetworkPatcher, networks: Sequence[NetworkSpec], *, resident: bool = False
    ) -> None:
        super().__init__()
        self.patcher = patcher
        self.networks = list(networks)
        self.resident = resident
        self._kept: list[NetworkSpec] = []  # the networks the model took
        self._applied: tuple = ()

    def conditioning_key(self) -> Hashable | None:
        """Text-encoder deltas change the encoded prompts; UNet-only networks do not (nor do block
        weights that zero the text encoder: BASE 0)."""
        key = tuple(
            (network.identity, float(te) * _text_ratio(network), _text_elements(network))
            for network, te, _ in self.networks
            if te
        )
        key = tuple(entry for entry in key if entry[1] or entry[2])
        return key or None

    @contextmanager
    def patch(self, scope: PatchScope) -> Iterator[None]:
        if scope.model is not self.patcher.model:
            raise ValueError("NetworkPatch: the patcher belongs to another model than the scope's")
        claim_resident(scope.model, RESIDENT_KEY)
        try:
            self._kept, _, refusals = drop_refused(self.patcher.apply, self.networks)
            self._applied = _signature(self._kept)
            self.warnings.extend(REFUSED + message for message in refusals)
            yield
        finally:
            if self.resident and scope.completed:
                scope.keep_resident(RESIDENT_KEY, self.patcher.restore)
            else:
                self.patcher.restore()

    @hook(HookPoint.PRE_STEP)
    def _step_window(self, step: StepContext) -> None:
        """Networks limited to some steps (`start=`/`stop=`) take their UNet deltas in and out; the
        patcher rewrites only their layers."""
        if not any(network.steps for network, _, _ in self._kept):
            return
        wanted = [(n, te, unet if n.acts_at(step.step) else 0.0) for n, te, unet in self._kept]
        signature = _signature(wanted)
        if signature != self._applied:
            self.patcher.apply(wanted)
            self._applied = signature


def _signature(networks: Sequence[NetworkSpec]) -> tuple:
    return tuple((id(network), float(te), float(unet)) for network, te, unet in networks)


class HypernetworkPatch(Extension):
    """Wraps the UNet's attention processors with `active` hypernetworks (hypernetwork, multiplier)
    for the scope; the exact original processor objects are back afterwards."""

    def __init__(self, active: Sequence[tuple[Hypernetwork, float]]) -> None:
        super().__init__()
        self.active = list(active)

    @contextmanager
    def patch(self, scope: PatchScope) -> Iterator[None]:
        try:
            apply_hypernetworks(scope.model.unet, self.active, scope.model.device)
            yield
        finally:
            remove_hypernetworks(scope.model.unet)
