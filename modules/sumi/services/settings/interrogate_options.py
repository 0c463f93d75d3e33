"""A1111's settings for captioning pictures (section "Interrogate"), keys, labels and defaults as A1111
1.10, for the img2img Interrogate buttons, `POST /sdapi/v1/interrogate` and the Extras Caption script.
A1111's CLIP category settings (`interrogate_clip_dict_limit`, `interrogate_clip_skip_categories`) are
left out: Sumi's "CLIP" interrogation is the BLIP caption, without A1111's ranked CLIP categories."""

from __future__ import annotations

from typing import Any

INTERROGATE = ("interrogate", "Interrogate")


def interrogate_options(option: Any, section: Any) -> dict[str, Any]:
    """The options, built with `option` (OptionInfo) and placed with `section` (options_section)."""
    return section(
        INTERROGATE,
        {
            "interrogate_keep_models_in_memory": option(False, "Keep models in VRAM"),
            "interrogate_return_ranks": option(False, "Include ranks of model tags matches in results.").info(
                "booru only"
            ),
            "interrogate_clip_num_beams": option(
                1, "BLIP: num_beams", "slider", {"minimum": 1, "maximum": 16, "step": 1}
            ).bounds(1, 16),
            "interrogate_clip_min_length": option(
                24, "BLIP: minimum description length", "slider", {"minimum": 1, "maximum": 128, "step": 1}
            ).bounds(1, 128),
            "interrogate_clip_max_length": option(
                48, "BLIP: maximum description length", "slider", {"minimum": 1, "maximum": 256, "step": 1}
            ).bounds(1, 256),
            "interrogate_blip_model": option(
                "", "BLIP: captioning model (a folder of models/BLIP)", "dropdown", {"choices": [""]}
            ).info("Sumi; empty = the first folder found"),
            "interrogate_deepbooru_score_threshold": option(
                0.5, "deepbooru: score threshold", "slider", {"minimum": 0, "maximum": 1, "step": 0.01}
            ).bounds(0, 1),
            "deepbooru_sort_alpha": option(True, "deepbooru: sort tags alphabetically").info(
                "if not: sort by score"
            ),
            "deepbooru_use_spaces": option(True, "deepbooru: use spaces in tags").info(
                "if not: use underscores"
            ),
            "deepbooru_escape": option(True, "deepbooru: escape (\\) brackets").info(
                "so they are used as literal brackets and not for emphasis"
            ),
            "deepbooru_filter_tags": option("", "deepbooru: filter out those tags").info("separate by comma"),
        },
    )
