"""Textual-inversion embeddings: the file formats, model compatibility, and the encoder's lookup hook.

Formats read by `load_embedding_file` (A1111 semantics, see reference/a1111.md §4.1):
- A1111 / original `.pt`: `{"string_to_param": {"*": [n, D]}, "step", "sd_checkpoint", ...}`; the
  old rinongal files pickle `string_to_param` as an `nn.ParameterDict`, which is allowed here;
- SDXL (usually `.safetensors`): `{"clip_l": [n, 768], "clip_g": [n, 1280]}`;
- one tensor under any key: diffusers `.bin` `{"<token>": [D]}`, kohya `{"emb_params": [n, D]}`;
- PNG/WebP images carrying an embedding: the `sd-ti-embedding` PNG text chunk (base64 JSON) or the
  data A1111 hides in the pixels of its side blocks. Images without an embedding give None.

The name of a file embedding is its file stem; an image embedding uses the `name` stored in it.
Pickles are read only with `torch.load(weights_only=True)` (see `modules.sumi.engine.files`).

`EmbeddingHook` is the `token_override` of `encode_prompts` (and, per encoder, the `find_embedding`
of the chunker and token counter): it finds embedding names in token ids as A1111 does (keyed by the
first token id, longest name first) and records which embeddings a job used, for the infotext's
`TI hashes`. This module scans no folders: `modules.sumi.services.networks.embeddings` does that.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from modules.sumi.engine import files
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.model import TextEncoderSpec
from modules.sumi.engine.text.chunks import EmbeddingFinder, EmbeddingMatch, tokenize_fragments

EMBEDDING_SUFFIXES = (".pt", ".bin", ".safetensors", ".png", ".webp")
IMAGE_SUFFIXES = (".png", ".webp")
SDXL_KEYS = ("clip_l", "clip_g")
PNG_TEXT_KEY = "sd-ti-embedding"
FIELD_KEYS = ("name", "step", "sd_checkpoint", "sd_checkpoint_name")
"""An embedding's fields beside its vectors (in a pickle's dict or a .safetensors header)."""
TENSOR_JSON_KEY = "TORCHTENSOR"

Vectors = Tensor | dict[str, Tensor]


@dataclass(frozen=True)
class Embedding:
    """One textual-inversion embedding.

    `vectors` is `[n, D]`, or for SDXL `{"clip_l": [n, 768], "clip_g": [n, 1280]}`. `shape` is A1111's
    reported width (the sum of the widths for SDXL: 2048). `sha256` is of the whole file.
    """

    name: str
    vectors: Vectors
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    filename: str = ""
    sha256: str = ""

    @property
    def shape(self) -> int:
        if isinstance(self.vectors, dict):
            return sum(int(v.shape[-1]) for v in self.vectors.values())
        return int(self.vectors.shape[-1])

    @property
    def vector_count(self) -> int:
        if isinstance(self.vectors, dict):
            return max(int(v.shape[0]) for v in self.vectors.values())
        return int(self.vectors.shape[0])

    @property
    def shorthash(self) -> str:
        """A1111's TI hash: the first 12 hex digits of the file's sha256."""
        return self.sha256[:12]

    def vectors_for(self, key: str | None) -> Tensor:
        """The vectors for the encoder called `key` ("clip_l"/"clip_g"; None for a single encoder)."""
        if isinstance(self.vectors, dict):
            if key is None or key not in self.vectors:
                raise KeyError(f"embedding {self.name!r} has no vectors for encoder {key!r}")
            return self.vectors[key]
        return self.vectors

    def api_info(self) -> dict:
        """The entry of A1111's `/sdapi/v1/embeddings` for this embedding."""
        return {
            "step": self.step,
            "sd_checkpoint": self.sd_checkpoint,
            "sd_checkpoint_name": self.sd_checkpoint_name,
            "shape": self.shape,
            "vectors": self.vector_count,
        }


# -- reading files -------------------------------------------------------------------------------


def load_embedding_file(path: str | Path, *, allow_unsafe_pickle: bool = False) -> Embedding | None:
    """Read one embedding file; None for an image that carries no embedding.

    Raises ModelLoadError (UnsafeFileError for a refused pickle) naming the file when it cannot be read
    or holds no embedding in a known format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EMBEDDING_SUFFIXES:
        raise ModelLoadError(f"{path}: not an embedding file; use one of {', '.join(EMBEDDING_SUFFIXES)}")
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    name = path.stem
    if suffix in IMAGE_SUFFIXES:
        data = read_image_embedding(path)
        if data is None:
            return None
        name = str(data.get("name") or name)
    elif suffix == ".safetensors":
        data = {**_safetensors_fields(path), **files.read_state_dict(path)}
    else:
        data = _read_pickle(path, allow_unsafe_pickle)
    embedding = embedding_from_data(data, name, path)
    vectors = embedding.vectors if isinstance(embedding.vectors, Mapping) else {"vectors": embedding.vectors}
    files.check_finite(vectors, path, "embedding")
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return replace(embedding, filename=str(path), sha256=sha256)


def _safetensors_fields(path: Path) -> dict[str, str]:
    """A1111's embedding fields kept in a .safetensors file's metadata (SDXL embeddings: step, ...)."""
    metadata = files.read_safetensors_metadata(path)
    return {k: metadata[k] for k in ("step", "sd_checkpoint", "sd_checkpoint_name") if k in metadata}


def _read_pickle(path: Path, allow_unsafe: bool) -> object:
    """A weights-only unpickle that also admits `nn.ParameterDict` (old rinongal embeddings)."""
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: the file is empty (0 bytes); the download or copy did not finish")
    with torch.serialization.safe_globals([torch.nn.ParameterDict, torch.nn.Parameter]):
        return files.read_pickle(path, allow_unsafe)


def embedding_from_data(data: object, name: str, path: str | Path = "") -> Embedding:
    """Build an embedding from a loaded file's contents, checking the formats in A1111's order."""
    where = f"{path}: " if path else ""
    if not isinstance(data, Mapping):
        raise ModelLoadError(f"{where}holds a {type(data).__name__}, not an embedding")
    if "string_to_param" in data:
        params = data["string_to_param"]
        params = getattr(params, "_parameters", params)
        if not isinstance(params, Mapping) or len(params) != 1:
            count = len(params) if isinstance(params, Mapping) else "no"
            raise ModelLoadError(f"{where}embedding files with {count} terms are not supported; expected 1")
        vectors: Vectors = _as_matrix(next(iter(params.values())), where)
    elif all(key in data for key in SDXL_KEYS):
        vectors = {key: _as_matrix(data[key], where) for key in SDXL_KEYS}
    else:
        entries = {key: value for key, value in data.items() if key not in FIELD_KEYS}
        tensors = [value for value in entries.values() if isinstance(value, Tensor)]
        if len(entries) != 1 or len(tensors) != 1:
            raise ModelLoadError(
                f"{where}not a textual-inversion embedding (expected string_to_param, clip_l + clip_g, "
                f"or exactly one tensor; found keys {', '.join(map(str, list(entries)[:10]))})"
            )
        vectors = _as_matrix(tensors[0], where)
    return Embedding(
        name=name,
        vectors=vectors,
        step=_optional_int(data.get("step")),
        sd_checkpoint=_optional_str(data.get("sd_checkpoint")),
        sd_checkpoint_name=_optional_str(data.get("sd_checkpoint_name")),
    )


def _as_matrix(value: object, where: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise ModelLoadError(f"{where}embedding vectors are a {type(value).__name__}, not a tensor")
    tensor = value.detach().to("cpu")
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 2 or tensor.shape[0] == 0:
        raise ModelLoadError(f"{where}embedding vectors have shape {tuple(value.shape)}; expected [n, dim]")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    return tensor.contiguous()


def _optional_int(value: object) -> int | None:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, str) and value.strip().isdigit():  # from a .safetensors header
        return int(value)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


# -- embeddings in images ------------------------------------------------------------------------


def read_image_embedding(path: str | Path) -> dict | None:
    """The embedding data an A1111 embedding image carries (text chunk first, then pixels), or None."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            text = getattr(image, "text", None) or {}
            if PNG_TEXT_KEY in text:
                return decode_json_embedding(base64.b64decode(text[PNG_TEXT_KEY]))
            return _pixel_embedding(image)
    except ModelLoadError:
        raise
    except Exception as exc:  # PIL's many "cannot identify image" errors
        raise ModelLoadError(f"{path}: not a readable image ({exc})") from exc


def decode_json_embedding(raw: bytes | str) -> dict:
    """A1111's JSON embedding: tensors are written as `{"TORCHTENSOR": nested lists}`."""

    def tensors(obj: dict) -> object:
        if TENSOR_JSON_KEY in obj:
            return torch.from_numpy(np.array(obj[TENSOR_JSON_KEY], dtype=np.float32))
        return obj

    data = json.loads(raw, object_hook=tensors)
    if not isinstance(data, dict):
        raise ModelLoadError("the embedded data is not a JSON object")
    return data


def encode_json_embedding(data: Mapping) -> bytes:
    """The inverse of `decode_json_embedding` (used to write embedding images)."""

    def tensors(obj: object) -> object:
        if isinstance(obj, Tensor):
            return {TENSOR_JSON_KEY: obj.detach().cpu().tolist()}
        raise TypeError(f"cannot encode {type(obj).__name__}")

    return json.dumps(dict(data), default=tensors).encode()


def lcg_mask(count: int) -> np.ndarray:
    """A1111's pixel-data mask stream: LCG (a=1664525, c=1013904223, m=2^32, seed 0), value % 255."""
    out = np.empty(count, dtype=np.uint8)
    state = 0
    for i in range(count):
        state = (1664525 * state + 1013904223) % 2**32
        out[i] = state % 255
    return out


def _pixel_embedding(image) -> dict | None:
    """Data hidden in the low 4 bits of the two side blocks of an A1111 embedding image."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    nibbles = _crop_black(pixels) & 0x0F
    black_columns = np.flatnonzero(nibbles.sum(axis=(0, 2)) == 0)
    if black_columns.size < 2:
        return None
    low = nibbles[:, : black_columns.min()]
    high = nibbles[:, black_columns.max() + 1 :]
    if low.shape != high.shape or low.size == 0:
        return None
    mask = lcg_mask(low.size).reshape(low.shape) & 0x0F
    data = ((high ^ mask) << 4) | (low ^ mask)
    try:
        raw = zlib.decompress(data.astype(np.uint8).tobytes())
    except zlib.error:
        return None
    return decode_json_embedding(raw)


def _crop_black(pixels: np.ndarray) -> np.ndarray:
    """Remove the all-black border rows and columns (a pixel counts when every channel is non-zero)."""
    lit = np.asarray((pixels > 0).all(axis=2))
    rows, columns = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    if rows.size == 0 or columns.size == 0:
        return pixels[:0, :0]
    return pixels[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


# -- compatibility with a model ------------------------------------------------------------------


def encoder_keys(family: str, text_encoders: Sequence[TextEncoderSpec]) -> list[str | None]:
    """Which vectors each text encoder takes: SDXL "clip_l", "clip_g"; a single encoder None."""
    if len(text_encoders) == 1:
        return [None]
    if family == "SDXL" and len(text_encoders) == len(SDXL_KEYS):
        return list(SDXL_KEYS)
    raise ValueError(f"no embedding layout known for {family} with {len(text_encoders)} text encoders")


def encoder_width(spec: TextEncoderSpec) -> int:
    weight = spec.model.get_input_embeddings().weight
    assert isinstance(weight, torch.Tensor)
    return int(weight.shape[-1])


def incompatibility(
    embedding: Embedding, text_encoders: Sequence[TextEncoderSpec], keys: Sequence[str | None]
) -> str | None:
    """Why `embedding` cannot be used with these encoders (A1111 style "1024 ≠ 768"), or None."""
    widths = {key: encoder_width(spec) for key, spec in zip(keys, text_encoders, strict=True)}
    expected = sum(widths.values())
    if keys == [None]:
        if isinstance(embedding.vectors, dict) or embedding.shape != expected:
            return f"{embedding.shape} ≠ {expected}"
        return None
    if not isinstance(embedding.vectors, dict):
        return f"{embedding.shape} ≠ {expected} (one tensor; this model needs {' + '.join(map(str, keys))})"
    for key, width in widths.items():
        got = int(embedding.vectors[key].shape[-1]) if key in embedding.vectors else 0
        if got != width:
            return f"{embedding.shape} ≠ {expected} ({key} {got} ≠ {width})"
    return None


def partition(
    embeddings: Mapping[str, Embedding], family: str, text_encoders: Sequence[TextEncoderSpec]
) -> tuple[dict[str, Embedding], dict[str, str]]:
    """(usable embeddings, {name: reason} for the skipped ones) for a model's text encoders."""
    keys = encoder_keys(family, text_encoders)
    loaded: dict[str, Embedding] = {}
    skipped: dict[str, str] = {}
    for name, embedding in embeddings.items():
        reason = incompatibility(embedding, text_encoders, keys)
        if reason is None:
            loaded[name] = embedding
        else:
            skipped[name] = reason
    return loaded, skipped


# -- the encoder hook ----------------------------------------------------------------------------


_Index = dict[int, list[tuple[tuple[int, ...], Embedding]]]


class EmbeddingHook:
    """`token_override` for `encode_prompts`: substitutes embedding vectors where their names occur.

    Build one per job (it records the names it matched in `used`). The embeddings must be compatible
    with the encoders (see `partition`); `text_encoders`/`keys` say which vectors each encoder takes.
    """

    def __init__(
        self,
        embeddings: Mapping[str, Embedding],
        text_encoders: Sequence[TextEncoderSpec],
        keys: Sequence[str | None],
    ):
        self.embeddings = dict(embeddings)
        self._keys = {id(spec.model): key for spec, key in zip(text_encoders, keys, strict=True)}
        self._indexes: dict[int, _Index] = {}
        self._bundled: set[str] = set()
        self.used: dict[str, Embedding] = {}

    def set_bundled(self, embeddings: Mapping[str, Embedding]) -> list[str]:
        """Use these (compatible) embeddings from the batch's networks instead of the last batch's.
        A name the embeddings folder already has keeps the folder's vectors (A1111); returns those names."""
        for name in self._bundled:
            self.embeddings.pop(name, None)
        taken = [name for name in embeddings if name in self.embeddings]
        added = {name: e for name, e in embeddings.items() if name not in self.embeddings}
        if added or self._bundled:
            self._indexes.clear()
        self.embeddings.update(added)
        self._bundled = set(added)
        return taken

    def __call__(self, spec: TextEncoderSpec, tokens: Sequence[int], position: int) -> EmbeddingMatch | None:
        candidates = self._index(spec.tokenizer).get(tokens[position])
        if not candidates:
            return None
        for ids, embedding in candidates:
            if tuple(tokens[position : position + len(ids)]) == ids:
                self.used[embedding.name] = embedding
                vectors = embedding.vectors_for(self._key(spec))
                return EmbeddingMatch(vectors, len(ids), embedding.name)
        return None

    def finder(self, spec: TextEncoderSpec) -> EmbeddingFinder:
        """The chunker's `find_embedding` for one encoder (e.g. for `count_tokens`)."""
        return lambda tokens, position: self(spec, tokens, position)

    def ti_hashes(self, names: Iterable[str] | None = None) -> str:
        """A1111's `TI hashes` infotext value for `names` (default: the embeddings used so far)."""
        chosen = (
            self.used if names is None else {n: self.embeddings[n] for n in names if n in self.embeddings}
        )
        return ti_hashes(chosen.values())

    def _key(self, spec: TextEncoderSpec) -> str | None:
        try:
            return self._keys[id(spec.model)]
        except KeyError:
            raise ValueError("the embedding hook was built for another model's text encoders") from None

    def _index(self, tokenizer) -> _Index:
        index = self._indexes.get(id(tokenizer))
        if index is None:
            index = self._indexes[id(tokenizer)] = build_index(tokenizer, self.embeddings.values())
        return index


def build_index(tokenizer, embeddings: Iterable[Embedding]) -> _Index:
    """Embeddings by the first token id of their name, longest token sequence first (as A1111)."""
    embeddings = list(embeddings)
    index: _Index = {}
    token_lists = tokenize_fragments(tokenizer, [e.name for e in embeddings])
    for embedding, ids in zip(embeddings, token_lists, strict=True):
        if ids:
            index.setdefault(ids[0], []).append((tuple(ids), embedding))
    for entries in index.values():
        entries.sort(key=lambda entry: len(entry[0]), reverse=True)
    return index


def ti_hashes(embeddings: Iterable[Embedding]) -> str:
    """`"name: 0123456789ab, ..."`; names lose `:` and `,`, embeddings without a hash are left out."""
    parts = [f"{e.name.replace(':', '').replace(',', '')}: {e.shorthash}" for e in embeddings if e.shorthash]
    return ", ".join(parts)
