"""A1111's "Extra Networks" settings (section `extra_networks`), keys, labels and defaults as A1111 1.10,
for the card tabs beside "Generation" and the prompt: what a card click writes (default multiplier,
separator, LoRA name), how the cards look and are ordered, the tabs' order, and "Add network to prompt"
(`sd_lora`, a LoRA added to every job's prompt), and how the folders show: A1111's "Dirs" view (buttons
above the cards) or its "Tree" view (a folder tree beside them), with the hidden-directory display."""

from __future__ import annotations

from typing import Any

EXTRA_NETWORKS = ("extra_networks", "Extra Networks", "sd")

CARD_ORDER_FIELDS = ["Path", "Name", "Date Created", "Date Modified"]
CARD_ORDERS = ["Ascending", "Descending"]
LORA_NAMES = ["Alias from file", "Filename"]
HIDDEN_MODELS = ["Always", "When searched", "Never"]
TREE_VIEW_STYLES = ["Tree", "Dirs"]
MODEL_VERSIONS = ("SD1", "SD2", "SDXL")


def extra_networks_options(option: Any, section: Any) -> dict[str, Any]:
    """The options, built with `option` (OptionInfo) and placed with `section` (options_section)."""
    return section(
        EXTRA_NETWORKS,
        {
            "extra_networks_show_hidden_directories": option(True, "Show hidden directories").info(
                'a folder is hidden if its name starts with "."; its button is left out otherwise'
            ),
            "extra_networks_dir_button_function": option(
                False, "Add a '/' to the beginning of directory buttons"
            ).info("a folder's button then finds what is in that folder, not every name containing its name"),
            "extra_networks_hidden_models": option(
                "When searched",
                "Show cards for models in hidden directories",
                "radio",
                {"choices": HIDDEN_MODELS},
            ).info('"When searched" shows them only while the search has 4 characters or more'),
            "extra_networks_tree_view_style": option(
                "Dirs", "Extra Networks directory view style", "radio", {"choices": TREE_VIEW_STYLES}
            ).info(
                "Dirs: a button per folder above the cards; Tree: a folder tree, with the files, beside them"
            ),
            "extra_networks_tree_view_default_enabled": option(
                True, "Show the Extra Networks directory view by default"
            ).info("the folder buttons or the tree; the tab's folder button shows or hides them"),
            "extra_networks_tree_view_default_width": option(
                180, "Default width for the Extra Networks directory tree view"
            )
            .bounds(10, 2048)
            .info("in pixels"),
            "extra_networks_default_multiplier": option(
                1.0,
                "Default multiplier for extra networks",
                "slider",
                {"minimum": 0.0, "maximum": 2.0, "step": 0.01},
            )
            .bounds(0.0, 2.0)
            .info("the weight a LoRA or hypernetwork card writes when its card has no preferred weight"),
            "extra_networks_card_width": option(0, "Card width for Extra Networks")
            .bounds(0, 2048)
            .info("in pixels; 0 = the default"),
            "extra_networks_card_height": option(0, "Card height for Extra Networks")
            .bounds(0, 2048)
            .info("in pixels; 0 = the default"),
            "extra_networks_card_text_scale": option(
                1.0, "Card text scale", "slider", {"minimum": 0.0, "maximum": 3.0, "step": 0.01}
            )
            .bounds(0.0, 3.0)
            .info("1 = original size"),
            "extra_networks_card_show_desc": option(True, "Show description on card"),
            "extra_networks_card_order_field": option(
                "Path",
                "Default order field for Extra Networks cards",
                "dropdown",
                {"choices": CARD_ORDER_FIELDS},
            ),
            "extra_networks_card_order": option(
                "Ascending", "Default order for Extra Networks cards", "dropdown", {"choices": CARD_ORDERS}
            ),
            "extra_networks_add_text_separator": option(" ", "Extra networks separator").info(
                "extra text to add before <...> when adding extra network to prompt"
            ),
            "ui_extra_networks_tab_reorder": option("", "Extra networks tab order")
            .info("names of the tabs, comma-separated, the ones to show first")
            .needs_reload_ui(),
            "sd_lora": option("None", "Add network to prompt", "dropdown", {"choices": ["None"]}).info(
                "a LoRA added to the prompt of every job, at the default multiplier, unless the prompt has it"
            ),
            "lora_preferred_name": option(
                "Alias from file", "When adding to prompt, refer to Lora by", "radio", {"choices": LORA_NAMES}
            ),
            "lora_show_all": option(False, "Always show all networks on the Lora page").info(
                "otherwise, those detected as for an incompatible version of Stable Diffusion will be hidden"
            ),
            "lora_hide_unknown_for_versions": option(
                [],
                "Hide networks of unknown versions for model versions",
                "dropdown",
                {"choices": list(MODEL_VERSIONS), "multiselect": True},
            ),
        },
    )
