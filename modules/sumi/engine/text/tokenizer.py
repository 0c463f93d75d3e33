"""The CLIP BPE tokenizer, built offline from the vocabulary file shipped in this folder.

The file is OpenAI CLIP's `bpe_simple_vocab_16e6.txt.gz` (MIT licence). It gives the 49,408-token
vocabulary that SD1 (CLIP ViT-L), SD2 (OpenCLIP ViT-H) and SDXL (both) share; only the padding token
differs: `<|endoftext|>` for OpenAI CLIP, `!` (id 0) for OpenCLIP.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import ftfy
from transformers import CLIPTokenizer

BPE_FILE = Path(__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
BOS_ID = 49406
EOS_ID = 49407
VOCAB_SIZE = 49408


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


@functools.cache
def _vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    with gzip.open(BPE_FILE) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = tuple((a, b) for a, b in (line.split() for line in lines[1 : 49152 - 256 - 2 + 1]))
    tokens = list(_bytes_to_unicode().values())
    tokens += [t + "</w>" for t in tokens]
    tokens += ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


@functools.cache
def get_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """A CLIP tokenizer (77 tokens). `pad_token="!"` gives OpenCLIP's padding (id 0)."""
    vocab, merges = _vocab_and_merges()
    return CLIPTokenizer(
        vocab=dict(vocab),
        merges=list(merges),  # pyright: ignore[reportArgumentType]  # the tokenizers BPE takes (a, b) pairs
        model_max_length=77,
        pad_token=pad_token,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def clean_text(text: str) -> str:
    """What CLIP's own tokenizer does before BPE: fix mojibake and smart quotes (ftfy)."""
    return ftfy.fix_text(text)


def tokenize(text: str, pad_token: str = "<|endoftext|>") -> list[int]:
    """Token ids of `text` without BOS/EOS and without any length limit."""
    tokenizer = get_tokenizer(pad_token)
    return tokenizer(clean_text(text), add_special_tokens=False, truncation=False)["input_ids"]
