"""Train a canny ControlNet for Sumi's demo model with Sumi's ControlNet trainer:

    python -m tools.demo_model.train_controlnet --model modules/sumi/assets/sumi-demo-shapes.safetensors \
        --out modules/sumi/assets/control_sumi-demo_canny.safetensors

Every scene of the demo's dataset (`scenes.every_scene`) is rendered, its canny edge map made as the
"canny" preprocessor makes it (OpenCV, thresholds 100 and 200, at 128x128), and the ControlNet (a copy of
the demo UNet's encoder, `engine.training.controlnet`) learns to draw the scene from its caption and
edges; captions are left out one time in three and seldom name the position or size, so it draws the
edges' shape and place from a prompt that names only a colour. The result is an lllyasviel-layout fp16 `.safetensors` that the
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
    create_controlnet,
    sampling_view,
    save_controlnet,
    train_controlnet,
)
from modules.sumi.engine.training.loop import LoopSettings, StepReport
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.objective import ObjectiveSettings

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


# How often a ControlNet caption names each part: rarely the position and the size, which the edges
# show, so the ControlNet must carry them (with the demo's full captions it learnt to lean on the words).
CONTROL_CAPTION_KEEP_RATES = {"size": 0.1, "colour": 0.9, "shape": 0.5, "where": 0.15, "background": 0.7}


def control_caption(scene: Scene, rng: random.Random) -> str:
    """A training caption for the ControlNet (empty captions come from `proportion_empty_prompts`)."""
    keep = {part: rng.random() < rate for part, rate in CONTROL_CAPTION_KEEP_RATES.items()}
    return scene.caption_with(**keep)


def batches(scenes: list[Scene], latents: torch.Tensor, hints: torch.Tensor, batch: int):
    def batch_for(step: int, micro: int, generator: torch.Generator) -> ControlNetBatch:
        picks = torch.randint(0, len(scenes), (batch,), generator=generator).tolist()
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
        captions = [control_caption(scenes[i], rng) for i in picks]
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
    parser.add_argument("--learn-rate", default="3e-4:0.7, 1e-4", help="rate:fraction of the run, ...")
    parser.add_argument("--empty-prompts", type=float, default=0.3, help="share of captions left out")
    parser.add_argument("--scenes", type=int, default=0, help="this many scenes only (0: all)")
    parser.add_argument("--min-snr-gamma", type=float, default=5.0, help="0: off")
    parser.add_argument(
        "--no-debiased", action="store_true", help="no debiased estimation (it weights the noisy steps up)"
    )
    parser.add_argument("--snapshot-every", type=int, default=0, help="save the ControlNet every N steps")
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
        objective=ObjectiveSettings(
            min_snr_gamma=args.min_snr_gamma or None, debiased_estimation=not args.no_debiased
        ),
        proportion_empty_prompts=args.empty_prompts,
    )
    controlnet = create_controlnet(model, settings.conditioning_channels, args.seed)
    log = Log("controlnet", args.steps)

    def save(path: Path, steps: int) -> None:
        info = ControlNetFileInfo(
            output_name=path.stem,
            resolution=(IMAGE_SIDE, IMAGE_SIDE),
            steps=steps,
            num_train_images=len(scenes),
            conditioning=f"canny {CANNY_THRESHOLDS}",
            training_started_at=started,
            sd_model_name=args.model.name,
            training_comment=DESCRIPTION,
        )
        extra = {"sumi_demo": "true", "description": DESCRIPTION}
        save_controlnet(path, controlnet, controlnet_metadata(model, settings, info) | extra)

    def on_step(report: StepReport) -> None:
        log(report)
        if args.snapshot_every and report.step % args.snapshot_every == 0 and report.step < args.steps:
            with sampling_view(controlnet, torch.float32):
                save(args.out.with_name(f"{args.out.stem}-{report.step}{args.out.suffix}"), report.step)

    result = train_controlnet(
        model, batches(scenes, latents, hints, args.batch), settings, controlnet=controlnet, on_step=on_step
    )
    save(args.out, result.step)
    print(f"[done] {args.out} in {(time.time() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
