"""Cost of prompt conditioning against one sampling step.

    python bench/prompt_encoding.py            # CUDA: SD1.5-shaped random weights; CPU: the tiny demo model

The prompt has about 300 tokens, three prompt-editing changes and two AND parts. Encoding happens once per
job (every distinct text once), so its cost is compared with a single denoising step (one batched
UNet call for cond and uncond) at 512x512.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from pipelines import load_bench_model, write_bench_checkpoint  # noqa: E402
from timing import median_seconds  # noqa: E402

from modules.sumi.engine import generate as engine  # noqa: E402
from modules.sumi.engine.devices import select_device  # noqa: E402
from modules.sumi.engine.sampling.denoiser import CFGDenoiser  # noqa: E402
from modules.sumi.engine.text.token_count import count_tokens  # noqa: E402

WORDS = "masterpiece, best quality, (detailed skin:1.2), soft light, film grain, bokeh, 35mm, golden hour"
PROMPT = (
    f"a [portrait:landscape:5] of a [red:blue:0.5] fox in a [forest:city:12], {WORDS}, " * 8
    + f"AND a small hat on a table, {WORDS}:0.7"
)


def main() -> None:
    devices = select_device()
    size = "sd15" if devices.is_cuda else "tiny"
    with tempfile.TemporaryDirectory() as tmp:
        model = load_bench_model(write_bench_checkpoint(size, Path(tmp)), devices)
    request = engine.BatchRequest(
        prompts=[PROMPT], negative_prompts=["blurry, lowres"], seeds=[1], width=512, height=512, steps=20
    )
    tokens, _ = count_tokens(model.text_encoders[0].tokenizer, PROMPT.split("AND")[0], 20)
    with torch.inference_mode():
        guidance = engine.conditioning(model, request)
        denoiser = CFGDenoiser(model.unet, guidance, 20)
        x = torch.randn(1, 4, 64, 64, device=devices.device, dtype=devices.dtype)
        t = torch.tensor(500.0, device=devices.device)
        encode = median_seconds(lambda: engine.conditioning(model, request), devices.device, 5)
        step = median_seconds(lambda: denoiser(x, t, 6), devices.device, 5)
    texts = {s.text for c in guidance.conditioning.conds for _, sched in c.parts for s in sched}
    name = torch.cuda.get_device_name() if devices.is_cuda else "CPU"
    print(
        f"device {name}, model {size}, {devices.dtype}; first AND part {tokens} tokens, {len(texts)} distinct texts"
    )
    print(
        f"encode whole job: {encode * 1000:.1f} ms;  one sampling step at 512x512: {step * 1000:.1f} ms;  "
        f"ratio {encode / step:.2f} steps"
    )


if __name__ == "__main__":
    main()
