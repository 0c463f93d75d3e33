"""LoRA training speed: seconds per step at 512x512 for a rank-16 LoRA on SD1.5-sized weights, Sumi's
trainer next to diffusers' own route (UNet `add_adapter(LoraConfig)` from peft, the loss written out as
diffusers' train_text_to_image_lora.py does), on the same random weights, latents and captions.

    python bench/training_speed.py [--steps 3] [--precisions no,bf16]

Both train the UNet's attention projections (to_q/k/v/out.0) only, batch 1, AdamW, fp32 weights; "bf16"
runs the forward pass under torch.autocast (CPU with AMX/AVX512-BF16, or CUDA). Each trainer runs twice, in
the order A B B A, each time after one warm-up step; the table gives the median of all timed steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from modules.sumi.engine import tiny_models  # noqa: E402
from modules.sumi.engine.model import SDModel, TextEncoderSpec  # noqa: E402
from modules.sumi.engine.text.encoder import encode_prompts  # noqa: E402
from modules.sumi.engine.text.tokenizer import get_tokenizer  # noqa: E402
from modules.sumi.engine.training.loop import LoopSettings  # noqa: E402
from modules.sumi.engine.training.lora import LoraSettings, LoraTrainSettings, TrainingBatch, train_lora  # noqa: E402
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule  # noqa: E402
from modules.sumi.engine.training.objective import DiffusionObjective  # noqa: E402

SCHEDULE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
}
CAPTION = "a photo of a red square on a blue background"
ABBA = ("Sumi train_lora", "diffusers + peft", "diffusers + peft", "Sumi train_lora")


def sd15(device: torch.device) -> SDModel:
    c = tiny_models.full_size("SD1", seed=0)
    model = SDModel(
        "SD1", c["unet"], c["vae"], [TextEncoderSpec(c["text_encoders"][0], get_tokenizer())], SCHEDULE
    )
    return model.to(device)


def sumi_step_times(model: SDModel, latents: torch.Tensor, steps: int, precision: str) -> list[float]:
    times: list[float] = []
    last = [time.perf_counter()]

    def on_step(_report) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    loop = LoopSettings(steps + 1, LearnRateSchedule.parse(1e-4, steps + 1), seed=0)
    network = LoraSettings(algo="lora", rank=16, alpha=8, unet_target="attention", train_text_encoder=False)
    train = LoraTrainSettings(loop=loop, mixed_precision=precision)
    last[0] = time.perf_counter()
    train_lora(
        model, lambda s, m, g: TrainingBatch([CAPTION], latents=latents), network, train, on_step=on_step
    )
    return times[1:]  # the first step warms up


def diffusers_step_times(model: SDModel, latents: torch.Tensor, steps: int, precision: str) -> list[float]:
    from peft import LoraConfig  # diffusers' documented LoRA route

    unet = model.unet
    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(
            r=16,
            lora_alpha=8,
            init_lora_weights="gaussian",
            target_modules=["to_k", "to_q", "to_v", "to_out.0"],
        )
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    objective = DiffusionObjective(SCHEDULE, "epsilon")
    with torch.no_grad():
        context = encode_prompts(model.text_encoders, [CAPTION]).context
    unet.train()
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(step)
        noise = torch.randn(latents.shape, generator=generator)
        t = torch.randint(0, 1000, (1,), generator=generator)
        noisy = objective.scheduler.add_noise(latents, noise, t)  # pyright: ignore[reportArgumentType]
        ctx = (
            torch.autocast(latents.device.type, dtype=torch.bfloat16)
            if precision == "bf16"
            else torch.autocast(latents.device.type, enabled=False)
        )
        with ctx:
            pred = unet(noisy, t, encoder_hidden_states=context, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precisions", default="no,bf16")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    latents = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(1)).to(device)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {device}"
    )
    print("| trainer | precision | s/step (median) | steps/s |")
    print("|---|---|---|---|")
    trainers = {"Sumi train_lora": sumi_step_times, "diffusers + peft": diffusers_step_times}
    for precision in args.precisions.split(","):
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for name in ABBA:  # A B B A: a machine slowing down or speeding up over the run favours neither
            times[name] += trainers[name](sd15(device), latents, args.steps, precision)
        for name, measured in times.items():
            median = statistics.median(measured)
            print(f"| {name} | {precision} | {median:.2f} | {1 / median:.3f} |", flush=True)


if __name__ == "__main__":
    main()
