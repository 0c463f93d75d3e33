"""Full fine-tune and DreamBooth: the UNet (and optionally the text encoders) trained in place, saved as
an A1111 single-file checkpoint. Drivable from a script, from pretrained weights or from scratch:

    model = load_checkpoint("base.safetensors")        # or a freshly initialised model written and loaded
    settings = FinetuneTrainSettings(loop=LoopSettings(1000, LearnRateSchedule.parse("1e-5", 1000)))
    result = train_finetune(model, batch_for, settings)  # batch_for(step, micro, generator) -> TrainingBatch
    info = FinetuneFileInfo("my-model", resolution=(512, 512), steps=result.step)
    save_finetuned("models/Stable-diffusion/my-model.safetensors", model, finetune_metadata(model, settings, info))
    save_resume_state("my-model.safetensors.state", result.resume)   # to continue later

DreamBooth's prior preservation: `batch_for` returns `FinetuneBatch(instance, prior)` with the class
images' batch as `prior`. A caller that keeps generating with the model wraps the run in
`preserved_weights(...)`, which puts every weight back exactly.
"""

from modules.sumi.engine.training.lora.trainer import TrainingBatch

from .parts import TrainedParts, WeightAverage
from .saving import FinetuneFileInfo, checkpoint_state_dict, finetune_metadata, save_finetuned
from .snapshot import WeightSnapshot, preserved_weights
from .trainer import (
    RESUME_KIND,
    BatchFor,
    FinetuneBatch,
    FinetuneSession,
    FinetuneTrainResult,
    FinetuneTrainSettings,
    settings_digest,
    train_finetune,
)

__all__ = [
    "RESUME_KIND",
    "BatchFor",
    "FinetuneBatch",
    "FinetuneFileInfo",
    "FinetuneSession",
    "FinetuneTrainResult",
    "FinetuneTrainSettings",
    "TrainedParts",
    "TrainingBatch",
    "WeightAverage",
    "WeightSnapshot",
    "checkpoint_state_dict",
    "finetune_metadata",
    "preserved_weights",
    "save_finetuned",
    "settings_digest",
    "train_finetune",
]
