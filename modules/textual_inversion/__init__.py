"""A1111's `modules.textual_inversion` package: `textual_inversion` (embeddings and their training) and
`autocrop` (the face detector lookup, without download)."""
