"""Tiled VAE (the multidiffusion-upscaler extension's second script, built in): the job's VAE encode and
decode always in tiles, with the extension's tile sizes, on Sumi's tiled VAE (engine.accel.tiled_vae).

Its args are the extension's, in its order, so `alwayson_scripts: {"Tiled VAE": {"args": [true, 1536, 96,
true, true, true, false]}}` works as with the extension: enabled, encoder tile size (image pixels),
decoder tile size (latent pixels), move the VAE to the GPU, fast decoder, fast encoder, fast encoder colour
fix. "Fast" is the extension's GroupNorm estimation: every tile normalised with statistics taken from the
whole picture shrunk to one tile, so tiles have no seams. Sumi places the VAE itself (on the model's
device; --medvram/--lowvram move it), so the GPU switch is a hint, as in the extension ("if possible").
The colour fix limits the fast encoder's estimate to the GroupNorms before the encoder's first downsample
(the deeper ones take each tile's own statistics). Without this script, Settings > VAE > Tiled VAE decides
(Auto tiles only what would not fit).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

import modules.scripts as scripts
from modules.sumi.builtin_scripts.support.img2img import switched_on, whole
from modules.sumi.engine.accel.tiled_vae import TilingPolicy
from modules.sumi.engine.errors import InvalidRequestError

TITLE = "Tiled VAE"
OVERLAP = 16  # latent pixels of context and blending between tiles


def job_policy(
    encoder_tile: Any, decoder_tile: Any, fast_decoder: Any, fast_encoder: Any, color_fix: Any = False
) -> TilingPolicy:
    """The extension's settings as Sumi's policy: tiles always, the encoder's from image to latent pixels."""
    decoder, encoder = (
        whole(decoder_tile, "decoder tile size", TITLE, 1, 4096),
        whole(encoder_tile, "encoder tile size", TITLE, 8, 32768) // 8,
    )
    try:
        return TilingPolicy(
            mode="Always",
            tile=decoder,
            overlap=min(OVERLAP, decoder // 2, encoder // 2),
            estimate_norms=bool(fast_decoder),
            encode_tile=encoder,
            encode_estimate_norms=bool(fast_encoder),
            encode_color_fix=bool(fast_encoder) and switched_on(color_fix),
        )
    except ValueError as exc:
        raise InvalidRequestError(f"{TITLE}: {exc}") from None


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        from modules.ui_components import InputAccordion

        tab = "i2i" if is_img2img else "t2i"
        with InputAccordion(False, label=TITLE, elem_id=f"MDV-{tab}-enabled") as enabled:
            vae_to_gpu = gr.Checkbox(True, label="Move VAE to GPU (if possible)", elem_id=f"MD-{tab}-vae2gpu")
            with gr.Row():
                encoder_tile = gr.Slider(
                    256, 4096, step=16, value=1024, label="Encoder Tile Size", elem_id=f"MD-{tab}-enc-size"
                )
                decoder_tile = gr.Slider(
                    48, 512, step=16, value=96, label="Decoder Tile Size", elem_id=f"MD-{tab}-dec-size"
                )
            with gr.Row():
                fast_encoder = gr.Checkbox(True, label="Fast Encoder", elem_id=f"MD-{tab}-fastenc")
                fast_decoder = gr.Checkbox(True, label="Fast Decoder", elem_id=f"MD-{tab}-fastdec")
                color_fix = gr.Checkbox(
                    False, label="Fast Encoder Color Fix", elem_id=f"MD-{tab}-fastenc-colorfix"
                )
        return [enabled, encoder_tile, decoder_tile, vae_to_gpu, fast_decoder, fast_encoder, color_fix]

    def process(self, p: Any, enabled: Any = False, *args: Any) -> None:
        if not enabled:
            return
        values = [*args, *[1024, 96, True, True, True, False][len(args) :]]
        encoder_tile, decoder_tile, _vae_to_gpu, fast_decoder, fast_encoder, color_fix = values[:6]
        p.vae_tiling = job_policy(encoder_tile, decoder_tile, fast_decoder, fast_encoder, color_fix)
