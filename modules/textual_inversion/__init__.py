"""A1111's `modules.textual_inversion` package: only `autocrop` is provided (Sumi has no training)."""
