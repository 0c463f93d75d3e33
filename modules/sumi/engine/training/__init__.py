"""Training loops over the engine's models: the diffusion objective, learning-rate schedules in A1111's
syntax, and one generic optimisation loop that every trainer kind (textual inversion, hypernetwork,
LoRA/LyCORIS, fine-tune) drives with its own parameters and loss.

Like the rest of the engine this package scans no folders and reads no settings: datasets arrive as
tensors and captions, files are written where the caller says.
"""
