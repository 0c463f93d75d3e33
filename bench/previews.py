"""Cost of one live preview per method (A1111's `show_progress_type`): Approx cheap, Approx NN, TAESD and
Full, at the tiny test model's shapes and at SD1.5's 512x512 shapes (64x64 latents, full-size random
networks: the cost does not depend on the values). Each figure is latents -> PIL image, as the preview
thread does it.

    python bench/previews.py [--device cuda] [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import median_seconds  # noqa: E402
from modules.sumi.engine import previews  # noqa: E402
from modules.sumi.engine.previews import approx_nn, taesd  # noqa: E402
from modules.sumi.engine.tiny_models import tiny_vae, vae  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="Cost of one live preview per method")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        torch.save(approx_nn.VAEApprox().state_dict(), Path(folder) / approx_nn.SD_FILE)
        torch.save(taesd.decoder().state_dict(), Path(folder) / taesd.SD_FILE)
        networks = previews.PreviewNetworks(Path(folder))
        shapes = {
            "tiny (64x64 image)": (8, tiny_vae(0, 0.18215, 64)),
            "SD1.5 512x512": (64, vae((128, 256, 512, 512), norm_groups=32, layers=2, sample_size=512)),
        }
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, median of {args.runs}"
        )
        print(f"{'shapes':<20} {'method':<13} {'seconds':>9}  output")
        for label, (size, decoder) in shapes.items():
            torch.nn.Module.to(decoder, device=device, dtype=dtype).eval()
            model = SimpleNamespace(is_sdxl=False, dtype=dtype, vae=decoder, vae_scaling_factor=0.18215)
            latents = torch.randn(1, 4, size, size, device=device, dtype=dtype)
            for method in (previews.APPROX_CHEAP, previews.APPROX_NN, previews.TAESD, previews.FULL):
                seconds, image_size = _measure(method, model, latents, networks, device, args.runs)
                print(f"{label:<20} {method:<13} {seconds:9.4f}  {image_size[0]}x{image_size[1]}")


def _measure(
    method: str, model: object, latents: torch.Tensor, networks: previews.PreviewNetworks, device, runs: int
) -> tuple[float, tuple[int, int]]:
    """Median seconds of latents -> PIL image by `method`, and the image's size."""

    def one():
        pixels = previews.preview_pixels(method, model, latents, networks)  # pyright: ignore[reportArgumentType]
        assert pixels is not None
        return previews.to_image(pixels)

    return median_seconds(one, device, runs=runs), one().size


if __name__ == "__main__":
    main()
