"""A1111's settings for the Extras tab and its scripts (section "Postprocessing", and the two file-name
settings A1111 shows under "Saving images/grids"), keys and defaults as A1111 1.10. The choices of the script lists are the loaded Extras scripts' names (`offer_script_choices`,
called once the scripts are loaded); other names are accepted too (an extension not loaded yet)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

POSTPROCESSING = ("postprocessing", "Postprocessing", "postprocessing")
SAVING_IMAGES = ("saving-images", "Saving images/grids")
_NAMES = {"choices": [], "multiselect": True, "allow_custom_value": True}


def postprocessing_options(option: Any, section: Any) -> dict[str, Any]:
    """The options, built with `option` (OptionInfo) and placed with `section` (options_section)."""
    return section(
        POSTPROCESSING,
        {
            "postprocessing_enable_in_main_ui": option(
                [], "Enable postprocessing operations in txt2img and img2img tabs", "dropdown", dict(_NAMES)
            ).needs_restart(),
            "postprocessing_disable_in_extras": option(
                [], "Disable postprocessing operations in extras tab", "dropdown", dict(_NAMES)
            ),
            "postprocessing_operation_order": option(
                [], "Postprocessing operation order", "dropdown", dict(_NAMES)
            ),
            "upscaling_max_images_in_cache": option(
                5,
                "Maximum number of images in upscaling cache",
                "slider",
                {"minimum": 0, "maximum": 10, "step": 1},
            ).bounds(0, 10),
            "postprocessing_existing_caption_action": option(
                "Ignore",
                "Action for existing captions",
                "radio",
                {"choices": ["Ignore", "Keep", "Prepend", "Append"]},
            )
            .one_of(["Ignore", "Keep", "Prepend", "Append"])
            .info(
                "when generating captions using postprocessing; Ignore = use generated; Keep = use original; "
                "Prepend/Append = combine both"
            ),
            "set_scale_by_when_changing_upscaler": option(
                False, "Automatically set the Scale by factor based on the name of the selected Upscaler."
            ),
        },
    ) | section(
        SAVING_IMAGES,  # A1111 shows these two under "Saving images/grids"
        {
            "use_original_name_batch": option(
                True, "Use original name for output filename during batch process in extras tab"
            ),
            "use_upscaler_name_as_suffix": option(
                False, "Use upscaler name as filename suffix in the extras tab"
            ),
        },
    )


def script_choices(scripts_data: Sequence[Any], main_ui: bool) -> dict[str, Any]:
    """The dropdown of Extras script names: for txt2img/img2img all but `extra_only` scripts, for the
    Extras tab all but `main_ui_only` ones (A1111's `shared_items.postprocessing_scripts`)."""
    hidden = "extra_only" if main_ui else "main_ui_only"
    names = [
        str(d.script_class.name)
        for d in scripts_data
        if getattr(d.script_class, "name", None) and not getattr(d.script_class, hidden, False)
    ]
    return {**_NAMES, "choices": list(dict.fromkeys(names))}


def offer_script_choices(options: Any, scripts_data: Sequence[Any]) -> None:
    """Give the three script-list settings the loaded scripts' names as their choices."""
    for key, main_ui in (
        ("postprocessing_enable_in_main_ui", True),
        ("postprocessing_disable_in_extras", False),
        ("postprocessing_operation_order", False),
    ):
        info = options.data_labels.get(key)
        if info is not None:
            info.component_args = partial(script_choices, scripts_data, main_ui)
