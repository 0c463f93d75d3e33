"""NaN/inf in what the UNet or the VAE produced: an error that says where and what to try, never a
black image. A1111's `devices.test_for_nans` messages; the checks are one reduction over the latents
(after sampling) and over the decoded pixels, so they cost nothing next to a UNet step.

Sumi is stricter than A1111, which only reports a tensor that is NaN everywhere: any NaN or infinity
makes an image black (in part), so any is reported, naming the seeds of the images it is in."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from modules.sumi.engine.errors import NansException

NAMES = {"unet": "Unet", "vae": "VAE"}
DISABLE = " Use --disable-nan-check commandline argument to disable this check."


def bad_images(x: torch.Tensor) -> list[int]:
    """Indices (along the batch dimension) of the images holding NaN or infinity."""
    if x.numel() == 0:
        return []
    finite = torch.isfinite(x.detach().reshape(x.shape[0], -1)).all(dim=1)
    return [int(i) for i in torch.nonzero(~finite).flatten().tolist()]


def nan_message(where: str, dtype: torch.dtype, *, all_nan: bool = True, detail: str = "") -> str:
    """A1111's message for NaNs produced in "unet" or "vae" when the model runs in `dtype`, with the
    advice that fits: precision in half floats; the weights (checkpoint, networks) or settings in fp32.
    `detail` follows the first sentence."""
    what = "all NaNs" if all_nan else "NaN or infinite values"
    place = f" in {NAMES[where]}" if where in NAMES else ""
    advice = _ADVICE.get((where, dtype in (torch.float32, torch.float64)), "")
    return f"A tensor with {what} was produced{place}{detail}.{advice}{DISABLE}"


_ADVICE = {
    ("unet", False): (
        " There may not be enough precision in half floats to represent the picture, or the GPU may not "
        "support them; the --no-half commandline argument runs the UNet in 32-bit floats."
    ),
    ("unet", True): (
        " The UNet runs in 32-bit floats, so precision is not the cause: the checkpoint, a LoRA or other "
        "network in the prompt, or extreme settings (CFG scale, prompt weights) break it."
    ),
    ("vae", False): (
        " There may not be enough precision in half floats to represent the picture: turn on "
        "'Automatically revert VAE to 32-bit floats' in Settings > VAE, or use the --no-half-vae "
        "commandline argument."
    ),
    ("vae", True): (
        " The VAE runs in 32-bit floats, so precision is not the cause: the VAE may be broken (try another "
        "in Settings > VAE) or the latents out of range."
    ),
}


def check_output(x: torch.Tensor, where: str, dtype: torch.dtype, seeds: Sequence[int] = ()) -> None:
    """Raise NansException when any image of the batch `x` holds NaN or infinity."""
    bad = bad_images(x)
    if not bad:
        return
    detail = ""
    if seeds and len(seeds) == x.shape[0]:
        detail = (
            f" for the image{'s' if len(bad) > 1 else ''} with seed {', '.join(str(seeds[i]) for i in bad)}"
        )
    raise NansException(nan_message(where, dtype, all_nan=bool(torch.isnan(x).all()), detail=detail), where)
