"""Where captioning models are, in A1111's folders: DeepDanbooru's `model-resnet_custom_v3.pt` in
`models/torch_deepdanbooru`, and BLIP in `models/BLIP` as a Hugging Face folder (config.json, weights,
processor and tokenizer files, as `Salesforce/blip-image-captioning-base` downloads). Nothing is ever
downloaded: a missing model is a CaptionModelMissing naming the file or folder to put in place."""

from __future__ import annotations

from pathlib import Path

from modules.sumi.engine.errors import InvalidRequestError

DEEPDANBOORU_DIR = "torch_deepdanbooru"
DEEPDANBOORU_FILE = "model-resnet_custom_v3.pt"
DEEPDANBOORU_URL = (
    "https://github.com/AUTOMATIC1111/TorchDeepDanbooru/releases/download/v1/model-resnet_custom_v3.pt"
)
BLIP_DIR = "BLIP"
BLIP_EXAMPLE = "Salesforce/blip-image-captioning-base"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
REQUIRED = (WEIGHT_FILES, TOKENIZER_FILES, PROCESSOR_FILES)  # one of each group


class CaptionModelMissing(InvalidRequestError):
    """A captioning model is not in place; the message says which file or folder to put where."""


def deepdanbooru_file(models_dir: Path) -> Path:
    """`model-resnet_custom_v3.pt`, or else the first `.pt` of the folder (A1111 takes any)."""
    folder = models_dir / DEEPDANBOORU_DIR
    preferred = folder / DEEPDANBOORU_FILE
    if preferred.is_file():
        return preferred
    others = sorted(p for p in folder.glob("*.pt") if p.is_file()) if folder.is_dir() else []
    if others:
        return others[0]
    raise CaptionModelMissing(
        f"DeepDanbooru is not installed: put {DEEPDANBOORU_FILE} (A1111's TorchDeepDanbooru file, "
        f"{DEEPDANBOORU_URL}) in {folder}"
    )


def blip_folders(models_dir: Path) -> list[str]:
    """The folders of `models/BLIP` (and below) holding a config.json, as paths relative to it."""
    root = models_dir / BLIP_DIR
    if not root.is_dir():
        return []
    return sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("config.json") if p.is_file())


def blip_folder(models_dir: Path, wanted: str = "") -> Path:
    """The captioning model's folder: `wanted` (a name `blip_folders` lists) or the first one, checked
    for the files transformers needs."""
    root = models_dir / BLIP_DIR
    names = blip_folders(models_dir)
    if not names:
        raise CaptionModelMissing(_no_blip_message(root))
    if wanted and wanted not in names:
        raise CaptionModelMissing(
            f"BLIP model {wanted!r} (setting interrogate_blip_model) is not in {root}; found {', '.join(names)}"
        )
    folder = root / (wanted or names[0])
    missing = [
        " or ".join(group) for group in REQUIRED if not any((folder / name).is_file() for name in group)
    ]
    if missing:
        raise CaptionModelMissing(
            f"the BLIP model in {folder} is incomplete: it has no {'; no '.join(missing)}"
        )
    return folder


def _no_blip_message(root: Path) -> str:
    old = sorted(p.name for p in root.glob("*.pth")) if root.is_dir() else []
    hint = f" ({', '.join(old)} is A1111's original BLIP file, which Sumi does not read)" if old else ""
    return (
        f"BLIP captioning is not installed: put a captioning model in Hugging Face layout (e.g. the files "
        f"of {BLIP_EXAMPLE}: config.json, model.safetensors, preprocessor_config.json, tokenizer files) in a "
        f"folder of {root}{hint}"
    )
