"""A1111's settings for the Extras tab and its scripts (section "Postprocessing"), keys and defaults
as A1111 1.10. The choices of the script lists are filled in by the Settings page from the loaded
Extras scripts (free text otherwise: an extension's script name is valid before it is loaded)."""

from __future__ import annotations

from typing import Any

POSTPROCESSING = ("postprocessing", "Postprocessing", "postprocessing")
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
            "use_original_name_batch": option(
                True, "Use original name for output filename during batch process in extras tab"
            ),
            "use_upscaler_name_as_suffix": option(
                False, "Use upscaler name as filename suffix in the extras tab"
            ),
            "set_scale_by_when_changing_upscaler": option(
                False, "Automatically set the Scale by factor based on the name of the selected Upscaler."
            ),
        },
    )
