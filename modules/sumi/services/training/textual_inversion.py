"""A1111's textual inversion: `create_embedding` and the "embedding" training kind.

Only the embedding's vectors train: the text encoder is frozen (the training guard) and the vectors
reach it through the encoder's token override, with gradients. While the run lasts, jobs see the
in-training vectors under the embedding's name (the samples use them); the file's are back after.
Resume is A1111's: from the file's `step`, with `<file>.optim` when the `save_optimizer_state` option
is on and the file's vectors still match the state's checksum.
"""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin
from safetensors import safe_open

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.networks.embeddings import (
    PNG_TEXT_KEY,
    Embedding,
    EmbeddingHook,
    encode_json_embedding,
    encoder_keys,
)
from modules.sumi.engine.training import textual_inversion as ti
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.services.networks.embeddings import EmbeddingDatabase
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.a1111_run import A1111Trainer, RunFolders, Trainee
from modules.sumi.services.training.a1111_settings import EmbeddingTrainingSettings
from modules.sumi.services.training.dataset import captions_hold, read_template
from modules.sumi.services.training.service import TrainingContext


def create_embedding_file(
    model: SDModel,
    folder: Path,
    name: str,
    num_vectors_per_token: int = 1,
    overwrite_old: bool = False,
    init_text: str = "*",
) -> Path:
    """A1111's `create_embedding`: `num_vectors_per_token` vectors from `init_text`'s token embeddings
    (zeros for an empty text), written at step 0 as `<folder>/<name>.pt` (`.safetensors` for SDXL)."""
    clean = ti.sanitize_name(name)
    vectors = ti.initial_vectors(model, init_text, int(num_vectors_per_token))
    path = folder / f"{clean}{ti.embedding_suffix(vectors)}"
    if path.exists() and not overwrite_old:
        raise TrainingError(f"file {path} already exists (set overwrite_old to replace it)")
    try:
        ti.save_embedding_file(path, clean, vectors, 0, None, None)
    except OSError as exc:
        raise TrainingError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


class EmbeddingTrainer(A1111Trainer):
    kind = "embedding"
    files_folder = "embeddings"
    csv_name = "textual_inversion_loss.csv"

    def __init__(self, paths: DataPaths, options: Options, embeddings: EmbeddingDatabase) -> None:
        super().__init__(paths, options)
        self.embeddings = embeddings

    def prepare(self, context: TrainingContext, settings: EmbeddingTrainingSettings) -> Trainee:
        self.check_template(settings.template_filename, self.dataset_folder(settings))
        found = self._find(context.model, settings.embedding_name)
        vectors = ti.trainable(found.vectors)
        suffix = ti.embedding_suffix(vectors)
        source = Path(found.filename) if found.filename else None
        if source is not None and source.suffix.lower() == suffix and source.is_file():
            output = source
        else:
            output = self.paths.embeddings_dir / f"{found.name}{suffix}"
        state = None
        if self.options.save_optimizer_state:
            state = ti.load_optimizer_state(output, vectors)
        training = Embedding(found.name, vectors, _step(found), found.sd_checkpoint, found.sd_checkpoint_name)
        return Trainee(
            found.name,
            ti.parameters(vectors),
            _step(found),
            output,
            state,
            {"embedding": training},
        )

    def check_template(self, filename: str, data_root: Path) -> None:
        """An embedding trains only through prompts that name it: the template's [name], or (as A1111,
        which fills [filewords] first) a [name] in the captions a [filewords] template brings in."""
        lines = read_template(self.paths.templates_dir, filename)
        if any("[name]" in line for line in lines):
            return
        if any("[filewords]" in line for line in lines) and captions_hold(data_root, "[name]"):
            return
        raise TrainingError(
            f"template_filename: {filename} never uses [name] (nor does any caption its [filewords] "
            "brings in), so the embedding would not train; choose a template with [name] (style, "
            "subject, ...) or write [name] into the captions"
        )

    def _find(self, model: SDModel, name: str) -> Embedding:
        self.embeddings.refresh()
        view = self.embeddings.for_model(model)
        if name in view.loaded:
            return view.loaded[name]
        if name in view.skipped:
            raise TrainingError(f"embedding_name: {name!r} does not fit this model ({view.skipped[name]})")
        raise TrainingError(f"embedding_name: no embedding called {name!r} (create it first)")

    def check(self, settings: Any) -> None:
        super().check(settings)
        self.check_template(settings.template_filename, self.dataset_folder(settings))
        if settings.embedding_name not in self.embeddings.embeddings:
            self.embeddings.refresh()
            if settings.embedding_name not in self.embeddings.embeddings:
                raise TrainingError(f"embedding_name: no embedding called {settings.embedding_name!r}")

    def patched(self, context: TrainingContext, trainee: Trainee) -> contextlib.AbstractContextManager:
        return self.embeddings.overriding(ti.live_view(trainee.extra["embedding"]))

    def token_override(self, context: TrainingContext, trainee: Trainee) -> EmbeddingHook:
        model = context.model
        loaded = dict(self.embeddings.for_model(model).loaded)
        loaded[trainee.name] = trainee.extra["embedding"]
        return EmbeddingHook(loaded, model.text_encoders, encoder_keys(model.family, model.text_encoders))

    def text_grad(self) -> bool:
        return True

    def save(self, context: TrainingContext, trainee: Trainee, path: Path, step: int, optimizer: Any) -> None:
        vectors = trainee.extra["embedding"].vectors
        ti.save_embedding_file(
            path, trainee.name, vectors, step, context.checkpoint_hash, context.checkpoint_name
        )
        if self.options.save_optimizer_state:
            ti.save_optimizer_state(path, vectors, optimizer.state_dict())
        trainee.extra["last_step"] = step
        context.wrote(path)

    def folders(self, settings: Any, name: str) -> RunFolders:
        folders = super().folders(settings, name)
        if folders.images is not None and settings.save_image_with_stored_embedding:
            folders.image_embeddings = folders.log / "image_embeddings"
            folders.image_embeddings.mkdir(parents=True, exist_ok=True)
        return folders

    def after_save(self, trainee: Trainee, path: Path, step: int, image: Path | None) -> None:
        """A1111's `image_embeddings/<name>-<step>.png`: the sample carrying the embedding (text chunk)."""
        folders: RunFolders | None = trainee.extra.get("folders")
        folder = folders.image_embeddings if folders is not None else None
        if folder is None or image is None or not image.is_file():
            return
        embedding: Embedding = trainee.extra["embedding"]
        data: dict[str, Any] = {"name": trainee.name, "step": step}
        if isinstance(embedding.vectors, dict):
            data.update({k: v.detach().float().cpu() for k, v in embedding.vectors.items()})
        else:
            data["string_to_token"] = {"*": ti.A1111_PLACEHOLDER_TOKEN}
            data["string_to_param"] = {"*": embedding.vectors.detach().float().cpu()}
        info = PngImagePlugin.PngInfo()
        info.add_text(PNG_TEXT_KEY, base64.b64encode(encode_json_embedding(data)).decode())
        with Image.open(image) as sample:
            sample.save(folder / f"{trainee.name}-{step}.png", "PNG", pnginfo=info)


def _step(embedding: Embedding) -> int:
    """The embedding's training step: the file's `step`, or (SDXL safetensors) its metadata's."""
    if embedding.step is not None:
        return int(embedding.step)
    path = Path(embedding.filename) if embedding.filename else None
    if path is not None and path.suffix.lower() == ".safetensors" and path.is_file():
        with safe_open(str(path), framework="pt") as handle:
            value = (handle.metadata() or {}).get("step", "0")
        return int(value) if str(value).isdigit() else 0
    return 0
