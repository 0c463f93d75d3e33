"""Upscaling in the engine: latent resizing (hires fix's latent modes) and model upscalers (spandrel)."""
