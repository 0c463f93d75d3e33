"""A1111's `--opt-sdp-no-mem-attention`: PyTorch SDPA with the memory-efficient kernel disabled.

A1111 runs its SDPA attention inside `sdp_kernel(enable_mem_efficient=False)`, so CUDA picks flash
attention (or the math kernel) and images are deterministic run to run. Sumi does the same per
attention layer: each diffusers attention processor runs inside `sdpa_kernel(ALLOWED)`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

# Every backend but EFFICIENT_ATTENTION (torch picks the fastest of these that fits the inputs).
ALLOWED = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]


class NoMemEfficientProcessor:
    """Runs the layer's own processor inside `sdpa_kernel(ALLOWED)`."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ) -> torch.Tensor:
        with sdpa_kernel(ALLOWED):
            return self.wrapped(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


def use_sdpa_without_mem_efficient(model: torch.nn.Module) -> int:
    """Wrap every attention layer's processor in `model` (once); returns how many layers were wrapped."""
    count = 0
    for module in model.modules():
        processor = getattr(module, "processor", None)
        if processor is None or not callable(processor) or isinstance(processor, NoMemEfficientProcessor):
            continue
        module.processor = NoMemEfficientProcessor(processor)  # pyright: ignore[reportArgumentType]
        count += 1
    return count
