"""A1111's `modules.shared_items`: the lists behind some settings' choices."""

from __future__ import annotations


def sd_vae_items() -> list[str]:
    from modules import sd_vae

    return ["Automatic", "None", *sd_vae.vae_dict]


def refresh_vae_list() -> None:
    from modules import sd_vae

    sd_vae.refresh_vae_list()


def list_checkpoint_tiles(use_short: bool = False) -> list[str]:
    from modules import sd_models

    return sd_models.checkpoint_tiles(use_short)


def refresh_checkpoints() -> None:
    from modules import sd_models

    sd_models.list_models()


def list_samplers() -> list:
    from modules import sd_samplers

    return sd_samplers.all_samplers


def reload_hypernetworks() -> None:
    from modules import shared

    shared.reload_hypernetworks()


def sd_unet_items() -> list[str]:
    """A1111's SD UNet choices; Sumi always uses the checkpoint's own UNet."""
    return ["Automatic", "None"]


def refresh_unet_list() -> None:
    pass


def cross_attention_optimizations() -> list[str]:
    return ["Automatic", "sdp", "None"]
