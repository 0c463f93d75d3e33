"""ControlNet training on the live model, saved in the layout sd-webui-controlnet users download.

    training = ControlNetTrainSettings(loop=LoopSettings(steps=1000, learn_rate=LearnRateSchedule.parse(1e-5, 1000)))
    result = train_controlnet(model, batch_for, training)
    metadata = controlnet_metadata(model, training, ControlNetFileInfo("my_canny", steps=result.step))
    save_controlnet("models/ControlNet/my_canny.safetensors", result.controlnet, metadata, dtype="fp16")
    save_resume_state("models/ControlNet/my_canny.safetensors.state", result.resume)  # to continue later

`batch_for(step, micro, generator)` returns a `ControlNetBatch` (captions, latents or pixels, control
images in [0, 1]); nothing here reads files or settings.
"""

from .saving import (
    SAVE_DTYPES,
    ControlNetFileInfo,
    controlnet_metadata,
    controlnet_state_dict,
    save_controlnet,
)
from .trainer import (
    RESUME_KIND,
    BatchFor,
    ControlNetBatch,
    ControlNetTrainResult,
    ControlNetTrainSettings,
    create_controlnet,
    sampling_view,
    settings_digest,
    train_controlnet,
)

__all__ = [
    "RESUME_KIND",
    "SAVE_DTYPES",
    "BatchFor",
    "ControlNetBatch",
    "ControlNetFileInfo",
    "ControlNetTrainResult",
    "ControlNetTrainSettings",
    "controlnet_metadata",
    "controlnet_state_dict",
    "create_controlnet",
    "sampling_view",
    "save_controlnet",
    "settings_digest",
    "train_controlnet",
]
