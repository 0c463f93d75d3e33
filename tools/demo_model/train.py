"""Train Sumi's demo model from scratch, deterministically, on the CPU:

    python -m tools.demo_model.train --out modules/sumi/assets/sumi-demo-shapes.safetensors

1. renders every scene of the procedural dataset (`scenes.every_scene`, 2240 pictures at 128x128);
2. trains the VAE on them and fits its latents to SD1's scaling factor (`autoencoder`);
3. writes the untrained model as an A1111 single-file checkpoint and loads it back through Sumi's own
   loader, then trains the UNet and the text encoder from scratch with Sumi's fine-tune trainer
   (`engine.training.finetune.train_finetune`) on the cached latents, with captions that name some or
   all of each picture's parts (`Scene.training_caption`);
4. saves the result as fp16 `.safetensors` with the training recipe in its metadata.

The defaults take about an hour on two cores. Every random choice comes from `--seed`, so a rerun on the
same machine, torch version and thread count gives the same weights. `--work` keeps the stages' results
(the trained VAE, a snapshot every `--snapshot-every` steps, the loss log) so a run can be inspected
while it trains.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.tiny_models import write_checkpoint
from modules.sumi.engine.training.finetune import (
    FinetuneFileInfo,
    FinetuneSession,
    FinetuneTrainSettings,
    finetune_metadata,
    save_finetuned,
    train_finetune,
)
from modules.sumi.engine.training.loop import LoopSettings, StepReport
from modules.sumi.engine.training.lora import TrainingBatch
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.objective import ObjectiveSettings

from .architecture import IMAGE_SIDE, SCALING_FACTOR, demo_components
from .autoencoder import encoder_means, fit_latent_scale, fractions_to_steps, train_autoencoder
from .scenes import Scene, every_scene, render

DESCRIPTION = (
    "Sumi's demo model: trained from scratch by Sumi (tools/demo_model) on procedural pictures of one "
    "coloured shape (circle, square, triangle, star) at a position, on a plain background. 128x128."
)


def render_all(scenes: list[Scene]) -> torch.Tensor:
    """The scenes as one [N, 3, 128, 128] tensor in [-1, 1]."""
    arrays = np.stack([np.asarray(render(scene, IMAGE_SIDE), dtype=np.float32) for scene in scenes])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) / 127.5 - 1.0


class Log:
    """Progress lines with the rate and the time left, and the losses kept for the log file."""

    def __init__(self, stage: str, steps: int, every: int = 25) -> None:
        self.stage, self.steps, self.every = stage, steps, every
        self.start = time.monotonic()
        self.losses: list[float] = []

    def __call__(self, report: StepReport) -> None:
        self.losses.append(report.loss)
        if report.step % self.every and report.step != self.steps:
            return
        spent = time.monotonic() - self.start
        left = spent / report.step * (self.steps - report.step)
        recent = sum(self.losses[-self.every :]) / len(self.losses[-self.every :])
        print(
            f"[{self.stage}] step {report.step}/{self.steps} loss {recent:.4f} lr {report.learn_rate:.2e} "
            f"{spent / report.step:.2f}s/step, {left / 60:.1f} min left",
            flush=True,
        )


def train_vae_stage(
    components: dict, images: torch.Tensor, args: argparse.Namespace, work: Path
) -> list[float]:
    saved = work / "vae.safetensors"
    autoencoder = components["vae"]
    if args.reuse_vae and saved.exists():
        autoencoder.load_state_dict(load_file(saved))
        print(f"[vae] reused {saved}", flush=True)
        return []
    log = Log("vae", args.vae_steps)
    losses = train_autoencoder(autoencoder, images, steps=args.vae_steps, seed=args.seed, on_step=log)
    fit_latent_scale(autoencoder, images, SCALING_FACTOR)
    save_file({k: v.contiguous() for k, v in autoencoder.state_dict().items()}, saved)
    return losses


def load_untrained(components: dict, work: Path) -> SDModel:
    """The model written as a checkpoint and read back by Sumi's loader, as users' files are."""
    path = write_checkpoint(work / "untrained.safetensors", components)
    return load_checkpoint(path)


def finetune_settings(args: argparse.Namespace) -> FinetuneTrainSettings:
    schedule = LearnRateSchedule.parse(fractions_to_steps(args.learn_rate, args.steps), args.steps)
    return FinetuneTrainSettings(
        loop=LoopSettings(args.steps, schedule, seed=args.seed),
        objective=ObjectiveSettings(min_snr_gamma=5.0, debiased_estimation=True),
        train_text_encoder=True,
        text_encoder_lr=args.text_encoder_lr,
        ema_decay=args.ema,
    )


def caption_batches(scenes: list[Scene], latents: torch.Tensor, batch: int):
    def batch_for(step: int, micro: int, generator: torch.Generator) -> TrainingBatch:
        picks = torch.randint(0, len(scenes), (batch,), generator=generator).tolist()
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
        return TrainingBatch([scenes[i].training_caption(rng) for i in picks], latents=latents[picks])

    return batch_for


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    parser.add_argument("--work", type=Path, default=Path("outputs/demo-model-training"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=1200)
    parser.add_argument("--steps", type=int, default=3000, help="UNet and text encoder steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--learn-rate", default="5e-4:0.7, 2e-4:0.9, 5e-5", help="rate:fraction of the run, ..."
    )
    parser.add_argument(
        "--text-encoder-lr",
        type=float,
        default=2e-5,
        help="the text encoder's first rate (its schedule has the UNet's shape). Far below the UNet's: at "
        "the UNet's rate the encoder learns colour words first and merges the position words before the "
        "UNet can use them ('left' and 'right' end nearly equal)",
    )
    parser.add_argument("--ema", type=float, default=0.998)
    parser.add_argument("--snapshot-every", type=int, default=500)
    parser.add_argument(
        "--scenes", type=int, default=0, help="train on this many scenes only (0: all; for a quick try)"
    )
    parser.add_argument("--reuse-vae", action="store_true", help="take the VAE from --work if it is there")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()

    scenes = every_scene()
    if args.scenes:
        scenes = scenes[:: max(1, len(scenes) // args.scenes)][: args.scenes]
    images = render_all(scenes)
    print(f"[data] {len(scenes)} scenes rendered", flush=True)
    components = demo_components(args.seed)
    vae_losses = train_vae_stage(components, images, args, args.work)
    model = load_untrained(components, args.work)
    latents = encoder_means(model.vae, images) * SCALING_FACTOR
    print(
        f"[data] latents {tuple(latents.shape)} mean {latents.mean():.3f} std {latents.std():.3f}", flush=True
    )

    settings = finetune_settings(args)
    info = FinetuneFileInfo(
        output_name=args.out.stem,
        resolution=(IMAGE_SIDE, IMAGE_SIDE),
        num_train_images=len(scenes),
        training_started_at=started,
        training_comment=DESCRIPTION,
    )
    log = Log("unet+te", args.steps)
    session: list[FinetuneSession] = []

    def on_step(report: StepReport) -> None:
        log(report)
        if args.snapshot_every and report.step % args.snapshot_every == 0 and report.step < args.steps:
            with session[0].for_sampling():
                save_finetuned(args.work / f"snapshot-{report.step}.safetensors", model)

    result = train_finetune(
        model,
        caption_batches(scenes, latents, args.batch),
        settings,
        on_step=on_step,
        on_start=session.append,
    )
    metadata = finetune_metadata(model, settings, dataclasses.replace(info, steps=result.step))
    metadata |= {"sumi_demo": "true", "description": DESCRIPTION, "modelspec.resolution": "128x128"}
    save_finetuned(args.out, model, metadata)
    (args.work / "losses.json").write_text(json.dumps({"vae": vae_losses, "unet+te": result.losses}))
    print(f"[done] {args.out} in {(time.time() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
