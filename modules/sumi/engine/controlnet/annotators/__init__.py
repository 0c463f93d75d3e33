"""Annotator networks: the preprocessors that need weights (HED, ...), loaded from the user's files."""
