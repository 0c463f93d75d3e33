"""Checkpoint merging: A1111's Checkpoint Merger methods, block weights (merge block weighted /
supermerger), streamed key by key from memory-mapped files."""

from modules.sumi.engine.merging.blocks import MERGE_PRESETS, merge_block, merge_layout, parse_merge_weights
from modules.sumi.engine.merging.merge import METHODS, MergeRecipe, merge_checkpoints
from modules.sumi.engine.merging.sources import CheckpointTensors

__all__ = [
    "METHODS",
    "MERGE_PRESETS",
    "CheckpointTensors",
    "MergeRecipe",
    "merge_block",
    "merge_checkpoints",
    "merge_layout",
    "parse_merge_weights",
]
