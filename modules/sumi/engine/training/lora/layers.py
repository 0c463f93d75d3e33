"""Trainable adapters for one model layer, in bypass form: the layer's output plus the adapter's.

Each class holds exactly the tensors a kohya / LyCORIS file stores for that layer, under the same
names (`lora_down.weight`, `hada_w1_a`, `lokr_w2_b`, `alpha`...), so a layer's `state_dict()` is the
file's entry for it. LoHa and LoKr compute their weight change with the loader's own adapter classes
(`engine.networks.adapters`), so a saved file patched into the weights gives the function that was
trained. Plain LoRA uses the cheaper `up(down(x))` (tests check it equals the loader's merge).

Initialisation follows kohya / LyCORIS so training starts from the base model (the delta is zero):
LoRA down kaiming-uniform, up zero; LoHa w1 normal (0.1 / 1), w2_a zero; LoKr w1 kaiming, w2_b zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.networks.adapters import Adapter, LoHa, LoKr

ADAPTABLE = (nn.Linear, nn.Conv2d)


def _dims(base: nn.Module) -> tuple[int, int, tuple[int, ...]]:
    """(out features, in features, kernel size) of a Linear or Conv2d."""
    weight = base.weight
    assert isinstance(weight, Tensor)
    return int(weight.shape[0]), int(weight.shape[1]), tuple(int(k) for k in weight.shape[2:])


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    return int(values[0]), int(values[1])


def bypass(base: nn.Module, x: Tensor, weight: Tensor) -> Tensor:
    """`base`'s operation with another weight and no bias (conv keeps the base's geometry)."""
    if isinstance(base, nn.Conv2d):
        return F.conv2d(x, weight, None, base.stride, base.padding, base.dilation, base.groups)
    return F.linear(x, weight)


class TrainableLayer(nn.Module):
    """One layer's adapter. `forward(base, x)` returns what is added to `base(x)`."""

    kind = "base"
    network_module = ""

    def __init__(self, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.rank = rank
        self.dropout = dropout
        self.set_alpha(alpha)

    def set_alpha(self, alpha: float) -> None:
        self.alpha_value = float(alpha)
        self.register_buffer("alpha", torch.tensor(self.alpha_value))

    def forward(self, base: nn.Module, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _dropping(self) -> bool:
        """Dropout only while training with gradients (samples drawn mid-training see the whole adapter)."""
        return self.dropout > 0 and self.training and torch.is_grad_enabled()

    def _compute_dtype(self, x: Tensor) -> torch.dtype:
        """Under autocast the adapter follows it; otherwise it computes in its own fp32."""
        return x.dtype if torch.is_autocast_enabled(x.device.type) else torch.float32


class LoRALayer(TrainableLayer):
    """kohya's LoRA / LoCon module: down (k x k for conv, the base's stride and padding), up 1 x 1."""

    kind = "lora"

    def __init__(
        self, base: nn.Module, rank: int, alpha: float, dropout: float, generator: torch.Generator
    ) -> None:
        super().__init__(rank, alpha, dropout)
        out_dim, in_dim, kernel = _dims(base)
        if isinstance(base, nn.Conv2d):
            padding = base.padding if isinstance(base.padding, str) else _pair(base.padding)
            self.lora_down = nn.Conv2d(
                in_dim, rank, _pair(kernel), _pair(base.stride), padding, _pair(base.dilation), bias=False
            )
            self.lora_up = nn.Conv2d(rank, out_dim, 1, bias=False)
        else:
            self.lora_down = nn.Linear(in_dim, rank, bias=False)
            self.lora_up = nn.Linear(rank, out_dim, bias=False)
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5), generator=generator)
            nn.init.zeros_(self.lora_up.weight)

    def forward(self, base: nn.Module, x: Tensor) -> Tensor:
        hidden = self.lora_down(x.to(self._compute_dtype(x)))
        if self._dropping():
            hidden = F.dropout(hidden, self.dropout)  # kohya's neuron dropout on the rank activations
        return self.lora_up(hidden) * (self.alpha_value / self.rank)


class DeltaLayer(TrainableLayer):
    """A LyCORIS type whose weight change the loader's adapter class computes from the parameters."""

    adapter_type: type[Adapter] = Adapter

    def adapter_weights(self) -> dict[str, Tensor]:
        weights: dict[str, Tensor] = dict(self.named_parameters())
        weights["alpha"] = torch.tensor(self.alpha_value)  # a CPU scalar: no device sync per call
        return weights

    def forward(self, base: nn.Module, x: Tensor) -> Tensor:
        weight = base.weight
        assert isinstance(weight, Tensor)
        delta = self.adapter_type(self.adapter_weights()).delta(weight.detach())
        out = bypass(base, x.to(self._compute_dtype(x)), delta.to(self._compute_dtype(x)))
        return F.dropout(out, self.dropout) if self._dropping() else out


class LoHaLayer(DeltaLayer):
    """LyCORIS LoHa: (w1_a @ w1_b) * (w2_a @ w2_b); conv factors are flattened to (rank, in * k * k)."""

    kind = "loha"
    adapter_type = LoHa

    def __init__(
        self, base: nn.Module, rank: int, alpha: float, dropout: float, generator: torch.Generator
    ) -> None:
        super().__init__(rank, alpha, dropout)
        out_dim, in_dim, kernel = _dims(base)
        fan_in = in_dim * math.prod(kernel)
        self.hada_w1_a = nn.Parameter(torch.randn(out_dim, rank, generator=generator) * 0.1)
        self.hada_w1_b = nn.Parameter(torch.randn(rank, fan_in, generator=generator))
        self.hada_w2_a = nn.Parameter(torch.zeros(out_dim, rank))
        self.hada_w2_b = nn.Parameter(torch.randn(rank, fan_in, generator=generator))


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """(m, n), m <= n, m * n = dimension: LyCORIS's split of a dimension for the Kronecker product.

    A positive `factor` that divides the dimension is used as is; otherwise the split closest to a
    square whose smaller part does not exceed `factor` (-1: no limit)."""
    if factor > 0 and dimension % factor == 0:
        return tuple(sorted((factor, dimension // factor)))  # type: ignore[return-value]
    limit = dimension if factor < 0 else factor
    m, n = 1, dimension
    while m < n:
        candidate = m + 1
        while dimension % candidate:
            candidate += 1
        other = dimension // candidate
        if candidate + other > m + n or candidate > limit:
            break
        m, n = candidate, other
    return (m, n) if m <= n else (n, m)


class LoKrLayer(DeltaLayer):
    """LyCORIS LoKr: kron(w1, w2), w1 full, w2 low rank (`lokr_w2_a @ lokr_w2_b`) unless the rank is at
    least half its size, then full (and the scale is 1, as LyCORIS and the loader have it)."""

    kind = "lokr"
    adapter_type = LoKr

    def __init__(
        self,
        base: nn.Module,
        rank: int,
        alpha: float,
        dropout: float,
        generator: torch.Generator,
        factor: int = -1,
    ) -> None:
        super().__init__(rank, alpha, dropout)
        out_dim, in_dim, kernel = _dims(base)
        out_l, out_k = factorization(out_dim, factor)
        in_m, in_n = factorization(in_dim, factor)
        self.lokr_w1 = nn.Parameter(torch.empty(out_l, in_m))
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.lokr_w1, a=math.sqrt(5), generator=generator)
        if rank < max(out_k, in_n) / 2:
            self.lokr_w2_a = nn.Parameter(torch.empty(out_k, rank))
            with torch.no_grad():
                nn.init.kaiming_uniform_(self.lokr_w2_a, a=math.sqrt(5), generator=generator)
            self.lokr_w2_b = nn.Parameter(torch.zeros(rank, in_n * math.prod(kernel)))
        else:
            self.lokr_w2 = nn.Parameter(torch.zeros(out_k, in_n, *kernel))
            self.set_alpha(rank)  # both sides full: LyCORIS saves alpha = rank (the scale is 1)
