"""OpenVINO as a backend of the compiled fast path, for the CPU (the `sumi_compile_unet` choices
"OpenVINO: ..." and `--use-openvino`, SD.Next's flag).

One `OpenVINOGraph` per compile-cache entry (one static shape): on its first call the module is traced
with those inputs (`openvino.convert_model`) and compiled for the CPU plugin, in bf16 when the module
computes in bf16 (OpenVINO's bf16 kernels beat PyTorch's on CPUs with AVX512-BF16; see
docs/performance/cpu-fast.md) and in fp32 otherwise (`--no-half`).

Weights: the converted graph shares the module's weight memory, but the compiled one keeps its own
repacked copy of part of them. So each call first compares a cheap fingerprint of the weights (every
parameter's storage, version counter and a few sampled values) with the one it compiled: a LoRA patched
in place, a merge tried in memory or an extension's edit changes it, and the graph is compiled again
from the converted model (about a second for SD1.5, not the tracing's minute) before it runs; weights
in new storage (a checkpoint loaded into the module, a device or layout change) are traced again.

The traced module must be in the contiguous memory format (the shared constants are read as if they
were): a channels_last module is turned contiguous in place before tracing.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

INSTALL_HINT = "OpenVINO is not installed: `pip install openvino` in Sumi's environment, then restart"
_SAMPLES = 4  # values sampled per parameter for the weight fingerprint


def available() -> bool:
    """Whether the `openvino` package is installed (found, not imported)."""
    return importlib.util.find_spec("openvino") is not None


def import_openvino() -> Any:
    """`openvino`, imported without its usage telemetry.

    Importing `openvino` sends a usage event (and every model conversion more) to Google Analytics
    unless the user opted out with OpenVINO's own tool; its model converter falls back to a silent stub
    when `openvino_telemetry` cannot be imported, so Sumi makes it unimportable first. Sumi never phones
    home. (If something imported OpenVINO before Sumi did, its event is already gone.)"""
    sys.modules.setdefault("openvino_telemetry", None)  # pyright: ignore[reportArgumentType]
    return importlib.import_module("openvino")


def _core() -> Any:
    global _CORE
    if _CORE is None:
        _CORE = import_openvino().Core()
    return _CORE


_CORE: Any = None


Fingerprint = tuple[tuple[int, ...], tuple[int, ...], torch.Tensor]


def weights_fingerprint(module: torch.nn.Module) -> Fingerprint:
    """What changes when the module's weights do: each parameter's storage (a new one means the traced
    graph must be converted again), its in-place version counter and a few of its values (edits
    through `.data` bypass the counter); either of those means compiling again."""
    params = list(module.parameters())
    with torch.no_grad():
        values = torch.cat([_sampled(p.detach()) for p in params]) if params else torch.zeros(0)
    return tuple(p.data_ptr() for p in params), tuple(p._version for p in params), values


def _sampled(p: torch.Tensor) -> torch.Tensor:
    flat = p.reshape(-1)
    step = max(1, flat.numel() // _SAMPLES)
    return flat[::step][:_SAMPLES].float()


def _same(a: Fingerprint, b: Fingerprint) -> bool:
    return a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


class _Traced(torch.nn.Module):
    """`function(module, *args)` with tensor arguments as fp32 inputs (numpy has no bf16), cast back to
    the dtypes the module was called with; absent (None) arguments are left out of the graph."""

    def __init__(self, function: Callable, module: torch.nn.Module, args: tuple) -> None:
        super().__init__()
        self.function = function
        self.inner = module
        self.dtypes = [None if a is None else a.dtype for a in args]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        given = iter(inputs)
        args = [None if dtype is None else next(given).to(dtype) for dtype in self.dtypes]
        return self.function(self.inner, *args).float()


def _as_input(tensor: torch.Tensor) -> Any:
    t = tensor.detach()
    if t.is_floating_point():
        t = t.float()
    return t.contiguous().numpy()


def convert(module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """`module` traced with `example` and converted by OpenVINO's PyTorch frontend, its weights shared.

    Not `openvino.convert_model`: OpenVINO's model converter around the frontend reports each
    conversion as usage telemetry (see `import_openvino`)."""
    import_openvino()
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    decoder = TorchScriptPythonDecoder(module, example_input=example, shared_memory=True)
    frontend = FrontEndManager().load_by_framework("pytorch")
    return frontend.convert(frontend.load(decoder))


class OpenVINOGraph:
    """Stands for `function(module, *args)` at one static shape; built on the first call."""

    def __init__(self, function: Callable) -> None:
        self.function = function
        self.model: Any = None  # the converted openvino.Model (shares the module's weights)
        self.compiled: Any = None
        self.fingerprint: Fingerprint | None = None
        self.conversions = 0  # tracings (the first call; new weight storage)
        self.recompiles = 0  # compilations of a converted graph after its first: weights changed

    def __call__(self, module: torch.nn.Module, *args: torch.Tensor | None) -> torch.Tensor:
        if _device_type(args[0]) != "cpu":
            raise RuntimeError("OpenVINO runs on the CPU only; a GPU job runs eager or with inductor")
        compiled = self._ready(module, args)
        out = compiled([_as_input(a) for a in args if a is not None])[0]
        return torch.from_numpy(out.copy()).to(args[0].dtype)  # pyright: ignore[reportOptionalMemberAccess]

    def _ready(self, module: torch.nn.Module, args: tuple) -> Any:
        """The compiled graph for the module's weights as they are now: traced again for new weight
        storage, compiled again for weights changed in place."""
        fingerprint = weights_fingerprint(module)
        if self.fingerprint is not None and fingerprint[0] != self.fingerprint[0]:
            self.model = None  # new weight storage: the converted graph's shared memory is stale
        if self.model is None:
            self._convert(module, args)
            fingerprint = weights_fingerprint(module)  # made contiguous: new storage
            self.compiled = None
        elif self.fingerprint is None or not _same(fingerprint, self.fingerprint):
            self.recompiles += 1
            log.info("The model's weights changed: compiling its OpenVINO graph again")
            self.compiled = None
        if self.compiled is None:
            self.compiled = self._compile(module)
            self.fingerprint = fingerprint
        return self.compiled

    def _convert(self, module: torch.nn.Module, args: tuple) -> None:
        if not available():
            raise RuntimeError(INSTALL_HINT)
        _contiguous(module)
        traced = _Traced(self.function, module, args).eval()
        example = tuple(a.detach().float() if a.is_floating_point() else a for a in args if a is not None)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks: one static shape
            self.model = convert(traced, example)
        self.conversions += 1

    def _compile(self, module: torch.nn.Module) -> Any:
        precision = "bf16" if _compute_dtype(module) == torch.bfloat16 else "f32"
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        return _core().compile_model(self.model, "CPU", config)


def _device_type(tensor: torch.Tensor | None) -> str:
    return "cpu" if tensor is None else tensor.device.type


def _compute_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _contiguous(module: torch.nn.Module) -> None:
    """The module's 4-D weights in the contiguous format (OpenVINO reads shared weights as such)."""
    if any(p.dim() == 4 and not p.is_contiguous() for p in module.parameters()):
        module.to(memory_format=torch.contiguous_format)  # pyright: ignore[reportCallIssue]
