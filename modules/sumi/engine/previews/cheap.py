""" "Approx cheap": a fixed linear map from the 4 latent channels to RGB, no network at all.

The coefficients are the ones A1111 uses (fitted by hand on SD and SDXL latents); the picture has the
latent's size (1/8 of the image), so it costs one small einsum per preview.
"""

from __future__ import annotations

import torch

SD_LATENT_RGB = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
SDXL_LATENT_RGB = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)


def cheap_approximation(latents: torch.Tensor, sdxl: bool) -> torch.Tensor:
    """(B, 4, h, w) latents to (B, 3, h, w) pixels in about [-1, 1], float32 on the latents' device."""
    coefs = torch.tensor(
        SDXL_LATENT_RGB if sdxl else SD_LATENT_RGB, dtype=torch.float32, device=latents.device
    )
    return torch.einsum("bchw,cr->brhw", latents.float(), coefs)
