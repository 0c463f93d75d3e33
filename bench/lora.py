"""LoRA costs: load, apply and restore an SD1.5-sized LoRA; a UNet step with and without it; switching.

    python bench/lora.py            # SD1.5 architecture with random weights (fp16 on CUDA, fp32 on CPU)

The LoRA is a kohya file (rank 16, attention and MLP layers of the UNet and the text encoder, like most
files on Civitai) written for that model, then read and applied by Sumi's own code path.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from timing import median_seconds, sync  # noqa: E402

from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.devices import select_device  # noqa: E402
from modules.sumi.engine.model import SDModel, TextEncoderSpec  # noqa: E402
from modules.sumi.engine.networks import NetworkPatcher, load_network  # noqa: E402
from modules.sumi.engine.text.tokenizer import get_tokenizer  # noqa: E402
from tests.fixtures.tiny_networks import write_lora  # noqa: E402


def main() -> None:
    devices = select_device()
    components = tiny_models.full_size("SD1", seed=0)
    unet, vae, (text,) = components["unet"], components["vae"], components["text_encoders"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"lora_{i}.safetensors" for i in range(2)]
        for i, path in enumerate(paths):
            write_lora(path, components, rank=16, seed=i)
        size_mb = paths[0].stat().st_size / 2**20
        start = time.perf_counter()
        networks = [load_network(p) for p in paths]
        load_s = (time.perf_counter() - start) / 2
    model = SDModel("SD1", unet, vae, [TextEncoderSpec(text, get_tokenizer())], {})
    model.to(devices.device, devices.dtype)
    patcher = NetworkPatcher(model)
    a, b = networks

    def apply_and_restore():
        patcher.apply([(a, 1.0, 1.0)])
        patcher.restore()

    apply_restore_s = median_seconds(apply_and_restore, devices.device)
    patcher.apply([(a, 1.0, 1.0)])
    start = time.perf_counter()
    patcher.apply([(a, 1.0, 1.0), (b, 1.0, 1.0)])
    sync(devices.device)
    add_b_s = time.perf_counter() - start
    patcher.restore()

    side = 64 if devices.is_cuda else 32
    x = torch.randn(2, 4, side, side, device=devices.device, dtype=devices.dtype)
    ctx = torch.randn(2, 77, 768, device=devices.device, dtype=devices.dtype)
    t = torch.tensor(500.0, device=devices.device)
    with torch.inference_mode():
        step = lambda: model.unet(x, t, encoder_hidden_states=ctx)  # noqa: E731
        plain_s = median_seconds(step, devices.device, 3)
        patcher.apply([(a, 1.0, 1.0)])
        lora_s = median_seconds(step, devices.device, 3)
        patcher.restore()
    name = torch.cuda.get_device_name() if devices.is_cuda else "CPU"
    print(f"device {name}, {devices.dtype}, SD1.5 architecture, LoRA rank 16, {size_mb:.1f} MB file")
    print(f"read + parse one LoRA file: {load_s * 1000:.0f} ms (cached in RAM afterwards)")
    print(f"apply + restore one LoRA: {apply_restore_s * 1000:.0f} ms")
    print(f"switch {{A}} -> {{A, B}} (only B's layers change): {add_b_s * 1000:.0f} ms")
    print(
        f"UNet step (batch 2, {side}x{side} latent): {plain_s * 1000:.0f} ms plain, {lora_s * 1000:.0f} ms with LoRA"
    )


if __name__ == "__main__":
    main()
