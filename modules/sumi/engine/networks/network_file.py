"""A LoRA / LyCORIS file: its tensors grouped by layer, and how they match a model.

`load_network(path)` reads the file safely (safetensors, or weights-only pickle) and groups keys
into layers: `lora_unet_x.lora_down.weight` -> layer `lora_unet_x`, weight `lora_down.weight`;
dotted diffusers/PEFT keys (`unet.a.b.lora_A.weight`) are split at the known weight names.
`match(network, model)` pairs each layer with a live model layer and an adapter.

Keys `bundle_emb.<name>.<vectors>` are textual-inversion embeddings bundled in the file (kohya's pivotal
tuning, A1111 1.7+): they become `NetworkFile.embeddings`, usable in the prompt while the network is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import Tensor

from ..errors import EngineError, ModelLoadError
from ..files import check_finite, read_safetensors_metadata, read_state_dict
from ..model import SDModel
from .adapters import Adapter, adapter_for
from .block_weights import BlockWeights
from .embeddings import Embedding, embedding_from_data
from .keys import Target, build_index

MAX_EXAMPLES = 10
BUNDLE_PREFIX = "bundle_emb."

# Weight names inside one layer, longest first so `lora_up.weight` wins over `weight`.
WEIGHT_NAMES = sorted(
    [
        "lora_up.weight", "lora_down.weight", "lora_mid.weight", "lora_A.weight", "lora_B.weight",
        "alpha", "scale", "dora_scale",
        "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
        "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t1", "lokr_t2",
        "diff", "diff_b", "w_norm", "b_norm", "on_input", "weight",
    ],
    key=len,
    reverse=True,
)  # fmt: skip


class NetworkError(EngineError):
    """A network file cannot be read or does not fit the loaded model."""


def split_key(key: str) -> tuple[str, str]:
    """`layer.weight_name` -> (layer, weight_name), for kohya and dotted diffusers/PEFT keys."""
    for weight_name in WEIGHT_NAMES:
        if key.endswith("." + weight_name):
            return key[: -len(weight_name) - 1], weight_name
    layer, _, weight_name = key.partition(".")
    return layer, weight_name


@dataclass
class NetworkFile:
    """One network's layers: `layers[layer_name][weight_name] -> Tensor` (as saved)."""

    name: str
    layers: dict[str, dict[str, Tensor]]
    alias: str = ""
    path: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    family: str = ""  # "SD1" / "SD2" / "SDXL" / "" (unknown), guessed from names and shapes
    identity: tuple = ()
    embeddings: dict[str, Embedding] = field(default_factory=dict)  # bundled, by name
    bundle_errors: list[str] = field(default_factory=list)  # bundled embeddings that could not be read
    block_weights: BlockWeights | None = None  # a ratio per UNet block (`lbw=`); None: 1 everywhere
    steps: tuple[int, int | None] | None = None  # (start, stop): UNet deltas only in steps start..stop-1

    def __post_init__(self):
        self.alias = self.alias or self.name
        self.identity = self.identity or (self.path or self.name, id(self))

    def with_block_weights(self, weights: BlockWeights) -> NetworkFile:
        """This network (the same tensors, the same identity) with a ratio per block; the patcher tells
        the layers apart by their multipliers, which the ratios scale."""
        return replace(self, block_weights=weights, identity=self.identity)

    def with_steps(self, start: int, stop: int | None) -> NetworkFile:
        """This network with its UNet deltas only from sampling step `start` to before step `stop`
        (counted from 1, as sd-webui-lora-block-weight's `start=`/`stop=`); the text encoder's stay."""
        return replace(self, steps=(start, stop), identity=self.identity)

    def acts_at(self, step: int) -> bool:
        """Whether the UNet deltas apply at sampling step `step` (counted from 0)."""
        if self.steps is None:
            return True
        start, stop = self.steps
        return start - 1 <= step and (stop is None or step < stop - 1)

    @property
    def key_count(self) -> int:
        return sum(len(weights) for weights in self.layers.values())


def network_from_state_dict(
    state_dict: Mapping[str, Tensor], name: str, *, metadata: Mapping[str, str] | None = None, path: str = ""
) -> NetworkFile:
    layers: dict[str, dict[str, Tensor]] = {}
    bundled: dict[str, dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        if key.startswith(BUNDLE_PREFIX):
            embedding, _, vectors = key[len(BUNDLE_PREFIX) :].partition(".")
            bundled.setdefault(embedding, {})[vectors] = value
            continue
        layer, weight_name = split_key(key)
        layers.setdefault(layer, {})[weight_name] = value
    metadata = dict(metadata or {})
    alias = metadata.get("ss_output_name", "").strip()
    network = NetworkFile(name, layers, alias, path, metadata, guess_family(layers))
    network.embeddings, network.bundle_errors = bundled_embeddings(bundled, path or name)
    return network


def bundled_embeddings(
    bundled: Mapping[str, Mapping[str, Tensor]], where: str
) -> tuple[dict[str, Embedding], list[str]]:
    """The bundled embeddings that can be read, and a message for each one that cannot."""
    embeddings: dict[str, Embedding] = {}
    errors: list[str] = []
    for name, data in bundled.items():
        try:
            embeddings[name] = embedding_from_data(data, name, f"{where} (bundled embedding {name})")
        except ModelLoadError as exc:
            errors.append(str(exc))
    return embeddings, errors


def load_network(path: str | Path, *, allow_unsafe_pickle: bool = False) -> NetworkFile:
    """Read a LoRA/LyCORIS file (safetensors, or .pt/.ckpt through the weights-only unpickler)."""
    path = Path(path)
    try:
        state_dict = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
        metadata = read_safetensors_metadata(path)
        check_finite(state_dict, path, "network")
    except EngineError as exc:
        raise NetworkError(str(exc)) from exc
    network = network_from_state_dict(state_dict, path.stem, metadata=metadata, path=str(path))
    stat = path.stat()
    network.identity = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    return network


def guess_family(layers: Mapping[str, Mapping[str, Tensor]]) -> str:
    """SDXL from two text encoders or SGM names; else SD1 / SD2 from the text encoder width."""
    names = list(layers)
    if any(n.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for n in names):
        return "SDXL"
    if any(
        n.startswith(("lora_unet_label_emb", "lora_unet_add_embedding", "unet.add_embedding")) for n in names
    ):
        return "SDXL"
    widths = {768: "SD1", 1024: "SD2"}
    for name, weights in layers.items():
        down = weights.get("lora_down.weight", weights.get("lora_A.weight"))
        if down is not None and name.endswith("q_proj") and ("te_" in name or "text_encoder" in name):
            return widths.get(int(down.shape[1]), "")
    return ""


@dataclass
class Patch:
    """One network's adapter for one model layer."""

    target: Target
    adapter: Adapter
    layer_name: str


@dataclass
class MatchResult:
    patches: list[Patch]
    unmatched: list[str]  # file keys whose layer is not in the model (or has an unknown type)
    unknown_type: list[str] = field(default_factory=list)

    def summary(self, limit: int = MAX_EXAMPLES) -> str:
        shown = ", ".join(self.unmatched[:limit])
        more = f", ... ({len(self.unmatched) - limit} more)" if len(self.unmatched) > limit else ""
        return (
            f"{len(self.unmatched)} unmatched keys: {shown}{more}" if self.unmatched else "all keys matched"
        )


def match(network: NetworkFile, model: SDModel, index: Mapping[str, Target] | None = None) -> MatchResult:
    """Pair the network's layers with `model`'s layers (pass a prebuilt `index` to reuse it)."""
    index = build_index(model) if index is None else index
    patches, unmatched, unknown = [], [], []
    for layer_name, weights in network.layers.items():
        target = index.get(layer_name)
        adapter = adapter_for(weights) if target is not None else None
        if target is None or adapter is None:
            unmatched.extend(f"{layer_name}.{w}" for w in sorted(weights))
            if target is not None:
                unknown.append(layer_name)
            continue
        patches.append(Patch(target, adapter, layer_name))
    return MatchResult(patches, sorted(unmatched), unknown)
