"""Where user files live: the A1111 folder layout under `--data-dir`.

`DataPaths` is built once from the parsed flags and handed to whoever needs a folder. A1111's
`modules.paths` names for extensions are answered by that facade from the running App's paths.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

UPSCALER_KINDS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT")
# A1111's flag adding a folder of each kind (A1111 has none for HAT)
UPSCALER_FLAGS = {
    "ESRGAN": "esrgan_models_path",
    "RealESRGAN": "realesrgan_models_path",
    "SwinIR": "swinir_models_path",
    "DAT": "dat_models_path",
}
REPO_ROOT = Path(__file__).resolve().parents[4]  # modules/sumi/services/settings/paths.py


def _opt_path(ns: argparse.Namespace, name: str) -> Path | None:
    value = getattr(ns, name, None)
    return Path(value).expanduser().resolve() if value else None


@dataclass(frozen=True)
class DataPaths:
    """Every folder and file Sumi reads or writes on the user's behalf (absolute paths)."""

    repo_root: Path
    data_dir: Path
    models_dir: Path
    ckpt_dirs: tuple[Path, ...]
    vae_dirs: tuple[Path, ...]
    lora_dir: Path
    lycoris_dir: Path
    controlnet_dir: Path
    embeddings_dir: Path
    hypernetwork_dir: Path
    gfpgan_dir: Path
    codeformer_dir: Path
    extensions_dir: Path
    extensions_builtin_dir: Path
    outputs_dir: Path
    config_file: Path
    ui_config_file: Path
    localizations_dir: Path
    cache_file: Path
    styles_file: Path
    params_file: Path
    ckpt_file: Path | None = None
    vae_file: Path | None = None
    # Folders outside the data dir that path settings may name (A1111's --gradio-allowed-path).
    allowed_dirs: tuple[Path, ...] = ()
    # Upscaler models by kind ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT"): models/<kind> and the
    # folder of A1111's --<kind>-models-path
    upscaler_dirs: tuple[tuple[str, tuple[Path, ...]], ...] = ()
    # A1111's --textual-inversion-templates-dir: the prompt templates of TI / hypernetwork training
    # (default: the folder shipped with Sumi, in the repo as A1111 has it)
    textual_inversion_templates_dir: Path | None = None

    def notification_sound(self) -> Path | None:
        """A1111's `notification.mp3`, played when a job's images arrive: the data folder's, else the one
        in Sumi's own folder (where A1111 reads it)."""
        for folder in (self.data_dir, self.repo_root):
            if (folder / "notification.mp3").is_file():
                return folder / "notification.mp3"
        return None

    @classmethod
    def from_args(cls, ns: argparse.Namespace, repo_root: Path | str) -> DataPaths:
        """Apply A1111's rules: --data-dir moves everything, --models-dir moves models, the rest override one folder."""
        root = Path(repo_root).resolve()
        data = _opt_path(ns, "data_dir") or root
        models = _opt_path(ns, "models_dir") or data / "models"
        return cls(
            repo_root=root,
            data_dir=data,
            models_dir=models,
            ckpt_dirs=_with_extra(models / "Stable-diffusion", _opt_path(ns, "ckpt_dir")),
            vae_dirs=_with_extra(models / "VAE", _opt_path(ns, "vae_dir")),
            lora_dir=_opt_path(ns, "lora_dir") or models / "Lora",
            lycoris_dir=_opt_path(ns, "lyco_dir_backcompat") or models / "LyCORIS",
            controlnet_dir=_opt_path(ns, "controlnet_dir") or models / "ControlNet",
            embeddings_dir=_opt_path(ns, "embeddings_dir") or data / "embeddings",
            hypernetwork_dir=_opt_path(ns, "hypernetwork_dir") or models / "hypernetworks",
            gfpgan_dir=_opt_path(ns, "gfpgan_models_path") or models / "GFPGAN",
            codeformer_dir=_opt_path(ns, "codeformer_models_path") or models / "Codeformer",
            extensions_dir=data / "extensions",
            # A1111's built-in extensions that extensions import by their top-level names (Lora's
            # `networks`, `lora`, `network`); modules.shared puts Lora on sys.path
            extensions_builtin_dir=root / "modules" / "sumi" / "extensions_builtin",
            outputs_dir=data / "outputs",
            config_file=_opt_path(ns, "ui_settings_file") or data / "config.json",
            ui_config_file=_opt_path(ns, "ui_config_file") or data / "ui-config.json",
            localizations_dir=_opt_path(ns, "localizations_dir") or data / "localizations",
            cache_file=data / "cache.json",
            styles_file=data / "styles.csv",
            params_file=data / "params.txt",
            ckpt_file=_opt_path(ns, "ckpt"),
            vae_file=_opt_path(ns, "vae_path"),
            allowed_dirs=tuple(
                Path(p).expanduser().resolve() for p in (getattr(ns, "gradio_allowed_path", None) or []) if p
            ),
            upscaler_dirs=tuple(
                (kind, _with_extra(models / kind, _opt_path(ns, UPSCALER_FLAGS.get(kind, ""))))
                for kind in UPSCALER_KINDS
            ),
            textual_inversion_templates_dir=_opt_path(ns, "textual_inversion_templates_dir")
            or root / "textual_inversion_templates",
        )

    def folders(self) -> list[Path]:
        """The folders `ensure()` creates: the defaults under the data dir, not user-given extras."""
        return [
            self.models_dir,
            self.ckpt_dirs[0],
            self.vae_dirs[0],
            self.lora_dir,
            self.lycoris_dir,
            self.controlnet_dir,
            self.embeddings_dir,
            self.hypernetwork_dir,
            self.gfpgan_dir,
            self.codeformer_dir,
            self.extensions_dir,
            self.data_dir / "localizations",  # A1111 ships it; extensions list it (bilingual-localization)
            self.outputs_dir,
            self.config_file.parent,
            *(dirs[0] for _, dirs in self.upscaler_dirs),
        ]

    @property
    def templates_dir(self) -> Path:
        """The textual-inversion templates folder (`textual_inversion_templates_dir`, or the repo's)."""
        return self.textual_inversion_templates_dir or self.repo_root / "textual_inversion_templates"

    def ensure(self) -> None:
        """Create the folders a user expects to find (idempotent)."""
        for folder in self.folders():
            folder.mkdir(parents=True, exist_ok=True)

    def resolve(self, path: str | Path) -> Path:
        """A setting's path (e.g. opt `outdir_txt2img_samples`): relative ones are under the data dir."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.data_dir / p

    def confine(self, value: str | Path) -> Path:
        """The real path a path setting names (relative to the data dir; `~`, `..` and links resolved);
        ValueError unless it lies inside the data dir or a folder allowed with --gradio-allowed-path."""
        return confine_path(value, self.data_dir, self.allowed_dirs)

    def shown(self, path: str | Path) -> str:
        """A path as the user knows it: relative to the data dir when inside it, else the file name
        (never an absolute server path in a response)."""
        try:
            return Path(path).resolve().relative_to(self.data_dir.resolve()).as_posix()
        except ValueError:
            return Path(path).name


def confine_path(value: str | Path, base: Path, allowed: Sequence[Path] = ()) -> Path:
    """`value` resolved against `base`; ValueError if it leaves `base` and every `allowed` folder."""
    text = os.fspath(value)
    if "\0" in text:
        raise ValueError("a path must not contain a NUL character")
    path = Path(text).expanduser()
    real = Path(os.path.realpath(path if path.is_absolute() else base / path))
    roots = [Path(os.path.realpath(root)) for root in (base, *allowed)]
    if not any(real == root or root in real.parents for root in roots):
        where = ", ".join(str(root) for root in roots)
        raise ValueError(
            f"{text!r} is outside the data folder ({where}); start Sumi with "
            f"--gradio-allowed-path <folder> to allow another folder"
        )
    return real


def _with_extra(default: Path, extra: Path | None) -> tuple[Path, ...]:
    return (default,) if extra is None or extra == default else (default, extra)


def current_paths(argv: list[str] | None = None) -> DataPaths:
    """The paths this process was started with, derived from its command line (no cached state)."""
    from modules.sumi.services.settings import flags as cmd_args

    parser = cmd_args.build_parser()
    try:
        ns, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    except SystemExit:  # a command line that is not ours (a test runner, a script): use the defaults
        ns, _ = parser.parse_known_args([])
    return DataPaths.from_args(ns, REPO_ROOT)
