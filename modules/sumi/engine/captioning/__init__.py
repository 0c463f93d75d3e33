"""Describing pictures in words for training captions and prompts: DeepDanbooru's tags (A1111's
TorchDeepDanbooru network) and a BLIP-style captioning model (transformers). Torch and transformers
only: the services find the files and pass the loaded models in."""
