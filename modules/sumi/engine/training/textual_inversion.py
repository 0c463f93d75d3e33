"""Textual inversion: new embedding vectors from an init text, the trainable vectors, and A1111's files.

Files (what A1111 writes and every loader reads):
- one text encoder (SD1/SD2): `.pt` `{"string_to_token": {"*": 265}, "string_to_param": {"*": [n, D]},
  "name", "step", "sd_checkpoint", "sd_checkpoint_name"}`;
- SDXL: `.safetensors` `{"clip_l": [n, 768], "clip_g": [n, 1280]}` only (A1111 reads every value of an
  SDXL dict as a tensor), with name/step/checkpoint in the safetensors metadata.
The optimizer state goes to `<file>.optim` `{"hash": vector_checksum, "optimizer_state_dict"}`; it is
used on resume only when the hash still matches the vectors (A1111's rule).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks.embeddings import Embedding, Vectors, encoder_keys
from modules.sumi.engine.text.chunks import tokenize_fragments
from modules.sumi.engine.training.errors import TrainingError

A1111_PLACEHOLDER_TOKEN = 265  # the "*" token id A1111 writes in string_to_token
MAX_VECTORS = 75  # A1111's slider maximum: one chunk
MAX_NAME_BYTES = 150  # room for a suffix and ".optim" within the usual 255-byte file-name limit


def sanitize_name(name: str) -> str:
    """A1111's file-name rule: keep letters, digits and `._- `; no path can come through."""
    clean = "".join(ch for ch in str(name) if ch.isalnum() or ch in "._- ").strip()
    if not clean or set(clean) <= {"."}:
        raise TrainingError(f"name {name!r}: nothing is left once unusable characters are removed")
    if len(clean.encode()) > MAX_NAME_BYTES:
        raise TrainingError(
            f"name: too long for a file name ({len(clean.encode())} bytes; at most {MAX_NAME_BYTES})"
        )
    return clean


def token_vectors(spec: TextEncoderSpec, text: str) -> torch.Tensor:
    """The input embeddings of `text`'s tokens (no start/end tokens) in one encoder, [t, D] fp32."""
    ids = tokenize_fragments(spec.tokenizer, [text])[0]
    table = _input_table(spec)
    if not ids:
        return table.new_zeros((0, table.shape[-1])).float()
    index = torch.tensor(ids, device=table.device)
    return table.detach()[index].float().cpu()


def _input_table(spec: TextEncoderSpec) -> torch.Tensor:
    """The encoder's token embedding matrix [vocab, D]."""
    embeddings = spec.model.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding)
    return embeddings.weight


def spread_vectors(tokens: torch.Tensor, count: int, width: int) -> torch.Tensor:
    """`count` vectors taken evenly from `tokens` (A1111: vector i is token i*t//count); zeros without
    tokens (an empty init text)."""
    out = torch.zeros(count, width)
    if tokens.shape[0]:
        for i in range(count):
            out[i] = tokens[i * tokens.shape[0] // count]
    return out


def initial_vectors(model: SDModel, init_text: str, count: int) -> Vectors:
    """New embedding vectors for `model`: [n, D], or {"clip_l", "clip_g"} for SDXL."""
    if not 1 <= count <= MAX_VECTORS:
        raise TrainingError(f"num_vectors_per_token must be between 1 and {MAX_VECTORS} (got {count})")
    keys = _keys(model)
    result: dict[str, torch.Tensor] = {}
    for key, spec in zip(keys, model.text_encoders, strict=True):
        width = int(_input_table(spec).shape[-1])
        tokens = token_vectors(spec, init_text or "*") if init_text else torch.zeros(0, width)
        result[key or ""] = spread_vectors(tokens, count, width)
    return result[""] if keys == [None] else result


def _keys(model: SDModel) -> list[str | None]:
    try:
        return encoder_keys(model.family, model.text_encoders)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc


def trainable(vectors: Vectors) -> Vectors:
    """Fresh fp32 leaf tensors that require gradients (the only thing textual inversion trains)."""
    if isinstance(vectors, dict):
        return {k: v.detach().float().clone().requires_grad_(True) for k, v in vectors.items()}
    return vectors.detach().float().clone().requires_grad_(True)


def parameters(vectors: Vectors) -> list[torch.Tensor]:
    return list(vectors.values()) if isinstance(vectors, dict) else [vectors]


def live_view(embedding: Embedding) -> Embedding:
    """The embedding with detached views of its vectors (same storage: it follows the optimizer's
    in-place updates), for generation while training runs."""
    vectors = embedding.vectors
    view = {k: v.detach() for k, v in vectors.items()} if isinstance(vectors, dict) else vectors.detach()
    return Embedding(
        embedding.name, view, embedding.step, embedding.sd_checkpoint, embedding.sd_checkpoint_name
    )


def vector_checksum(vectors: Vectors) -> str:
    """A1111's 4-hex checksum of the vectors (it ties a `.optim` file to the vectors it was saved with)."""
    flat = torch.cat([v.detach().float().reshape(-1) for v in parameters(vectors)]) * 100
    value = 0
    for item in flat.tolist():
        value = ((value * 281) ^ (int(item) * 997)) & 0xFFFFFFFF
    return f"{value & 0xFFFF:04x}"


def embedding_suffix(vectors: Vectors) -> str:
    return ".safetensors" if isinstance(vectors, dict) else ".pt"


def save_embedding_file(
    path: Path, name: str, vectors: Vectors, step: int, checkpoint: str | None, checkpoint_name: str | None
) -> None:
    """Write the embedding in A1111's layout for its kind (see the module docstring), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(vectors, dict):
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in vectors.items()}
        metadata = {"name": name, "step": str(step)}
        metadata.update(
            {k: v for k, v in (("sd_checkpoint", checkpoint), ("sd_checkpoint_name", checkpoint_name)) if v}
        )
        save_file(tensors, str(tmp), metadata=metadata)
    else:
        data = {
            "string_to_token": {"*": A1111_PLACEHOLDER_TOKEN},
            "string_to_param": {"*": vectors.detach().float().cpu().clone()},
            "name": name,
            "step": step,
            "sd_checkpoint": checkpoint,
            "sd_checkpoint_name": checkpoint_name,
        }
        torch.save(data, tmp)
    tmp.replace(path)


def save_optimizer_state(path: Path, vectors: Vectors, state: dict) -> None:
    """`<embedding file>.optim` as A1111 writes it."""
    torch.save({"hash": vector_checksum(vectors), "optimizer_state_dict": state}, optim_path(path))


def load_optimizer_state(path: Path, vectors: Vectors) -> dict | None:
    """The saved optimizer state when `<file>.optim` exists and matches the vectors, else None."""
    optim = optim_path(path)
    if not optim.is_file():
        return None
    try:
        data = torch.load(optim, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or truncated pickle: train without it, say why
        raise TrainingError(
            f"{optim.name} cannot be read ({exc}); delete it to start a fresh optimizer"
        ) from exc
    if not isinstance(data, dict) or data.get("hash") != vector_checksum(vectors):
        return None
    state = data.get("optimizer_state_dict")
    return state if isinstance(state, dict) else None


def optim_path(path: Path) -> Path:
    return path.with_name(path.name + ".optim")
