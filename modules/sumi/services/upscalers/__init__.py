"""The upscaler registry: A1111's upscaler names (None, Lanczos, Nearest, model files) in one place."""
