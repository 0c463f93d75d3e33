"""ControlNet: model files (lllyasviel, diffusers), preprocessors, and the residuals the denoiser adds."""
