"""The demo model's training script: captions that teach every part of a prompt, a VAE fitted to SD1's
latent scale without changing what it decodes, and a run that writes a checkpoint Sumi loads back."""

from __future__ import annotations

import json
import random

import torch
from safetensors import safe_open

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.tiny_models import vae
from tools.demo_model import train
from tools.demo_model.autoencoder import encoder_means, fit_latent_scale
from tools.demo_model.scenes import Scene, every_scene


def test_every_combination_is_in_the_dataset_once():
    scenes = every_scene()
    assert len(scenes) == len(set(scenes)) == 8 * 4 * 5 * 2 * 7
    assert all(s.colour != s.background for s in scenes)


def test_training_captions_leave_parts_out_and_some_are_empty_for_guidance():
    scene = Scene("red", "star", "left", "small", "blue")
    rng = random.Random(0)
    captions = [scene.training_caption(rng) for _ in range(2000)]
    assert captions == [scene.training_caption(r) for r in [random.Random(0)] for _ in range(2000)]
    assert 0.07 < captions.count("") / len(captions) < 0.13
    said = [c for c in captions if c]
    assert all(c.startswith("a ") and ("star" in c or "shape" in c) for c in said)
    assert scene.caption() in said and "a red star" in said
    assert {w for c in said for w in c.replace(",", "").split()} <= {
        "a", "small", "red", "star", "shape", "on", "the", "left", "blue", "background"
    }  # fmt: skip


def test_fitting_the_latent_scale_keeps_the_decoded_images_and_normalises_the_latents():
    torch.manual_seed(0)
    autoencoder = vae((24, 32), norm_groups=8).eval()
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = autoencoder.decode(encoder_means(autoencoder, images)).sample
    fit_latent_scale(autoencoder, images, 0.18215)
    means = encoder_means(autoencoder, images)
    with torch.no_grad():
        after = autoencoder.decode(means).sample
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    scaled = means * 0.18215
    torch.testing.assert_close(scaled.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(scaled.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4, rtol=0)


def test_a_short_run_writes_a_checkpoint_sumi_loads_with_the_recipe(tmp_path):
    out = tmp_path / "demo.safetensors"
    work = tmp_path / "work"
    args = ["--out", str(out), "--work", str(work), "--scenes", "16", "--vae-steps", "2", "--steps", "2"]
    train.main([*args, "--batch", "4", "--snapshot-every", "1"])
    model = load_checkpoint(out)
    assert model.family == "SD1" and model.unet.config.cross_attention_dim == 64
    with safe_open(str(out), framework="pt") as handle:
        metadata = handle.metadata()
        assert handle.get_tensor(next(iter(handle.keys()))).dtype == torch.float16
    assert metadata["sumi_demo"] == "true" and metadata["modelspec.resolution"] == "128x128"
    assert metadata["ss_steps"] == "2" and metadata["ss_train_text_encoder"] == "True"
    assert (work / "snapshot-1.safetensors").is_file()
    assert len(json.loads((work / "losses.json").read_text())["unet+te"]) == 2
