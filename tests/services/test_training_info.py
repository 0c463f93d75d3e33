"""What a LoRA file's kohya metadata says about its training (services.networks.training_info)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from modules.sumi.services.networks.training_info import (
    dataset_tags,
    file_metadata,
    parsed_metadata,
    training_summary,
)

KOHYA = {
    "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
    "ss_resolution": "(512, 512)",
    "ss_num_train_images": "40",
    "ss_network_dim": "16",
    "ss_network_alpha": "8.0",
    "ss_clip_skip": "None",
    "ss_tag_frequency": json.dumps(
        {"10_zxc person": {"zxc person": 40, "smiling": 12, " ": 3}, "5_style": {"smiling": 5, "hat": 2}}
    ),
}


def test_the_summary_names_what_the_file_records_in_a1111_s_order():
    assert training_summary(KOHYA) == [
        ("Model", "v1-5-pruned-emaonly.safetensors"),
        ("Resolution", "(512, 512)"),
        ("Training images", "40"),
        ("Rank (dim)", "16"),
        ("Alpha", "8.0"),
    ]
    assert training_summary({}) == []


def test_tags_are_counted_over_every_folder_most_frequent_first():
    assert dataset_tags(KOHYA) == [("zxc person", 40), ("smiling", 17), ("hat", 2)]
    assert dataset_tags(KOHYA, limit=1) == [("zxc person", 40)]


def test_malformed_tag_metadata_gives_no_tags():
    for bad in ("{not json", '["a list"]', '{"folder": "not a dict"}', '{"f": {"tag": "many"}}'):
        assert dataset_tags({"ss_tag_frequency": bad}) == []


def test_json_values_are_read_as_json_and_a_file_without_metadata_has_none(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata=KOHYA)
    parsed = parsed_metadata(file_metadata(path))
    assert parsed["ss_tag_frequency"]["5_style"] == {"smiling": 5, "hat": 2}
    assert parsed["ss_network_dim"] == "16"
    assert file_metadata(tmp_path / "x.pt") == {}
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 20)
    assert file_metadata(tmp_path / "broken.safetensors") == {}
