"""What this CPU can do at best: fp32 vs bf16 throughput of the kernels an SD1.5 image spends its time in.

    python bench/cpu_roofline.py            # convolutions and attention at SD1.5 512² shapes (~1 min)
    python bench/cpu_roofline.py --unet     # also where one full-size SD1.5 UNet step (batch 2) goes

A precision change can only speed an image up as much as the hardware runs bf16 faster than fp32. On a CPU
with AVX512-BF16 but no AMX the bf16 dot-product instructions do twice the fp32 work per cycle, so the
convolutions (most of the UNet and nearly all of the VAE) top out at 2x; AMX tiles go much further. This
prints GFLOP/s per kernel and precision, so a figure in docs/performance/cpu-fast.md can be read against
the machine's own ceiling.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from timing import median_seconds  # noqa: E402

from modules.sumi.engine.accel.cpu import bf16_flags, cpu_flags  # noqa: E402

# (in channels, out channels, side): 3x3 convolutions of the SD1.5 UNet (64² latents) and VAE decoder (512²)
CONVOLUTIONS = [
    (320, 320, 64),
    (640, 640, 32),
    (1280, 1280, 16),
    (512, 512, 128),
    (256, 256, 256),
    (128, 128, 512),
]
# (tokens, head size, heads, key tokens): the UNet's self-attention at 64² and 32² latents, cross-attention
ATTENTION = [(4096, 40, 8, 4096), (1024, 80, 8, 1024), (4096, 40, 8, 77)]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CPU = torch.device("cpu")


def conv_row(cin: int, cout: int, side: int, runs: int) -> dict:
    row: dict = {"kernel": f"conv3x3 {cin}->{cout} at {side}²"}
    flop = 2 * side * side * cin * cout * 9
    for name, dtype in DTYPES.items():
        x = torch.randn(2 if side <= 64 else 1, cin, side, side, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(cout, cin, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)
        row[name] = round(
            flop * x.shape[0] / median_seconds(lambda x=x, w=w: F.conv2d(x, w, padding=1), CPU, runs) / 1e9
        )
    return row


def attention_row(tokens: int, head: int, heads: int, keys: int, runs: int) -> dict:
    row: dict = {"kernel": f"SDPA {tokens}x{keys} tokens, {heads} heads of {head}"}
    flop = 2 * 2 * 2 * heads * tokens * keys * head  # batch 2, QK^T and AV
    for name, dtype in DTYPES.items():
        q = torch.randn(2, heads, tokens, head, dtype=dtype)
        kv = torch.randn(2, heads, keys, head, dtype=dtype)
        row[name] = round(
            flop
            / median_seconds(lambda q=q, kv=kv: F.scaled_dot_product_attention(q, kv, kv), CPU, runs)
            / 1e9
        )
    return row


def unet_breakdown() -> dict[str, float]:
    """Seconds per op family of one full-size SD1.5 UNet call (batch 2, 64² latents) on the fast path."""
    from torch.profiler import profile

    from modules.sumi.engine import tiny_models
    from modules.sumi.engine.devices import select_device

    config = select_device(use_cpu=True)  # the UNet's dtype and layout as Sumi places it on this CPU
    unet = tiny_models.full_size("SD1", seed=0)["unet"].to(config.dtype).eval()
    if config.channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    dtype = config.dtype
    x = torch.randn(2, 4, 64, 64, dtype=dtype)
    context = torch.randn(2, 77, 768, dtype=dtype)
    step = lambda: unet(x, torch.tensor(500.0), encoder_hidden_states=context, return_dict=False)  # noqa: E731
    step()
    with profile() as prof:
        step()
    families = {"convolution": ("convolution",), "attention": ("attention",), "linear": ("addmm", "aten::mm")}
    result = dict.fromkeys([*families, "other"], 0.0)
    for event in prof.key_averages():
        family = next((f for f, keys in families.items() if any(k in event.key for k in keys)), "other")
        result[family] += event.self_cpu_time_total / 1e6
    return {name: round(value, 2) for name, value in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--unet", action="store_true", help="profile one full-size SD1.5 UNet step")
    args = parser.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"bf16 flags: {bf16_flags(cpu_flags()) or 'none'}; torch {torch.__version__}")  # fmt: skip
    rows = []
    with torch.inference_mode():
        rows += [conv_row(*shape, runs=args.runs) for shape in CONVOLUTIONS]
        rows += [attention_row(*shape, runs=args.runs) for shape in ATTENTION]
        print("| kernel | fp32 GFLOP/s | bf16 GFLOP/s | bf16/fp32 |\n|---|---|---|---|")
        for row in rows:
            print(f"| {row['kernel']} | {row['fp32']} | {row['bf16']} | {row['bf16'] / row['fp32']:.2f}x |")
        if args.unet:
            print("UNet step, seconds per op family:", json.dumps(unet_breakdown()))


if __name__ == "__main__":
    main()
