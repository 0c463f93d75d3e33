"""Train a canny ControlNet for Sumi's demo model with Sumi's ControlNet trainer:

    python -m tools.demo_model.train_controlnet --model modules/sumi/assets/sumi-demo-shapes.safetensors \
        --out modules/sumi/assets/control_sumi-demo_canny.safetensors

Every scene of the demo's dataset (`scenes.every_scene`) is rendered, its canny edge map made as the
"canny" preprocessor makes it (OpenCV, thresholds 100 and 200, at 128x128), and the ControlNet (a copy of
the demo UNet's encoder, `engine.training.controlnet`) learns to draw the scene from its caption and
edges; captions are left out one time in three, so it also draws the edges' shape and place from a
prompt that names only a colour. The result is an lllyasviel-layout fp16 `.safetensors` that the
ControlNet extension's API and Sumi's ControlNet panel load like any downloaded one. Deterministic for
one `--seed`, machine, torch version and thread count.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.training.controlnet import (
    ControlNetBatch,
    ControlNetFileInfo,
    ControlNetTrainSettings,
    controlnet_metadata,
    save_controlnet,
    train_controlnet,
)
from modules.sumi.engine.training.loop import LoopSettings
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule

from .architecture import IMAGE_SIDE
from .autoencoder import encoder_means, fractions_to_steps
from .scenes import Scene, every_scene, render
from .train import Log, render_all

CANNY_THRESHOLDS = (100, 200)  # the preprocessor's defaults
DESCRIPTION = (
    "Canny ControlNet for Sumi's demo model (sumi-demo-shapes), trained by Sumi (tools/demo_model/"
    "train_controlnet.py) on the demo's procedural pictures and their canny edges (100, 200). 128x128."
)


def canny_edges(scene: Scene) -> np.ndarray:
    """The scene's edge map as the canny preprocessor gives it: [H, W] uint8, 255 on edges."""
    return cv2.Canny(np.asarray(render(scene, IMAGE_SIDE)), *CANNY_THRESHOLDS)


def edge_maps(scenes: list[Scene]) -> torch.Tensor:
    """The scenes' edge maps as ControlNet hints: [N, 3, H, W] in [0, 1]."""
    edges = torch.from_numpy(np.stack([canny_edges(scene) for scene in scenes])).float() / 255.0
    return edges[:, None].expand(-1, 3, -1, -1).contiguous()


def batches(scenes: list[Scene], latents: torch.Tensor, hints: torch.Tensor, batch: int):
    def batch_for(step: int, micro: int, generator: torch.Generator) -> ControlNetBatch:
        picks = torch.randint(0, len(scenes), (batch,), generator=generator).tolist()
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
        captions = [scenes[i].training_caption(rng) for i in picks]
        return ControlNetBatch(captions, hints[picks], latents=latents[picks])

    return batch_for


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="the demo checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="the ControlNet .safetensors to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--learn-rate", default="3e-4:0.8, 1e-4", help="rate:fraction of the run, ...")
    parser.add_argument("--empty-prompts", type=float, default=0.3, help="share of captions left out")
    parser.add_argument("--scenes", type=int, default=0, help="this many scenes only (0: all)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    started = time.time()

    scenes = every_scene()
    if args.scenes:
        scenes = scenes[:: max(1, len(scenes) // args.scenes)][: args.scenes]
    model = load_checkpoint(args.model)
    with torch.no_grad():
        latents = encoder_means(model.vae, render_all(scenes)) * model.vae_scaling_factor
    hints = edge_maps(scenes)
    print(f"[data] {len(scenes)} scenes with edge maps", flush=True)

    schedule = LearnRateSchedule.parse(fractions_to_steps(args.learn_rate, args.steps), args.steps)
    settings = ControlNetTrainSettings(
        loop=LoopSettings(args.steps, schedule, seed=args.seed),
        proportion_empty_prompts=args.empty_prompts,
    )
    result = train_controlnet(
        model, batches(scenes, latents, hints, args.batch), settings, on_step=Log("controlnet", args.steps)
    )
    info = ControlNetFileInfo(
        output_name=args.out.stem,
        resolution=(IMAGE_SIDE, IMAGE_SIDE),
        steps=result.step,
        num_train_images=len(scenes),
        conditioning=f"canny {CANNY_THRESHOLDS}",
        training_started_at=started,
        sd_model_name=args.model.name,
        training_comment=DESCRIPTION,
    )
    metadata = controlnet_metadata(model, settings, info) | {"sumi_demo": "true", "description": DESCRIPTION}
    save_controlnet(args.out, result.controlnet, metadata)
    print(f"[done] {args.out} in {(time.time() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
