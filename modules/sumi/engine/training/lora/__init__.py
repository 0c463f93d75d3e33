"""LoRA / LyCORIS training (LoRA, LoCon, LoHa, LoKr) on the live model, saved in kohya's layout.

    settings = LoraSettings(algo="lora", rank=8, alpha=4)
    result = train_lora(model, batch_for, settings, LoraTrainSettings(loop=LoopSettings(...)))
    metadata = lora_metadata(model, settings, training, LoraFileInfo("my_lora", steps=result.step, ...))
    save_lora("models/Lora/my_lora.safetensors", result.tensors, metadata, dtype="fp16")
    save_resume_state("models/Lora/my_lora.safetensors.state", result.resume)  # to continue later

`create_network(model, settings)` and `TrainableNetwork.applied()` give the adapters without the trainer.
"""

from .layers import LoHaLayer, LoKrLayer, LoRALayer, TrainableLayer, factorization
from .network import (
    ALGORITHMS,
    UNET_TARGETS,
    LayerTarget,
    LoraSettings,
    TrainableNetwork,
    create_network,
    select_targets,
)
from .saving import LoraFileInfo, addnet_hashes, lora_metadata, network_module, save_lora, tag_frequency
from .trainer import (
    RESUME_KIND,
    BatchFor,
    LoraTrainResult,
    LoraTrainSettings,
    TrainingBatch,
    settings_digest,
    train_lora,
)

__all__ = [
    "ALGORITHMS",
    "RESUME_KIND",
    "UNET_TARGETS",
    "BatchFor",
    "LayerTarget",
    "LoHaLayer",
    "LoKrLayer",
    "LoRALayer",
    "LoraFileInfo",
    "LoraSettings",
    "LoraTrainResult",
    "LoraTrainSettings",
    "TrainableLayer",
    "TrainableNetwork",
    "TrainingBatch",
    "addnet_hashes",
    "create_network",
    "factorization",
    "lora_metadata",
    "network_module",
    "save_lora",
    "select_targets",
    "settings_digest",
    "tag_frequency",
    "train_lora",
]
