"""LoRA / LyCORIS training: kohya's layer choice and names, hooks that leave the model exact, a loss
that goes down, files in kohya's layout that load back (Sumi's loader, diffusers) to the trained
function, SDXL, text-encoder adapters, and an exact resume."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.networks import NetworkPatcher, build_index, load_network
from modules.sumi.engine.networks.adapters import LoRA
from modules.sumi.engine.text.encoder import encode_prompts
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import LoopSettings
from modules.sumi.engine.training.lora import (
    LoraFileInfo,
    LoRALayer,
    LoraSettings,
    LoraTrainSettings,
    TrainingBatch,
    create_network,
    factorization,
    lora_metadata,
    save_lora,
    select_targets,
    tag_frequency,
    train_lora,
)
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.model_io import unet_predictor
from modules.sumi.engine.training.objective import DiffusionObjective
from modules.sumi.engine.training.resume import load_resume_state, save_resume_state

CAPTIONS = ["a red circle, top left", "a blue square, bottom"]


@pytest.fixture(scope="module")
def sd1(tiny_sd1_ckpt):
    """One tiny SD1 model for tests that leave it as they found it (which is what training must do)."""
    return load_checkpoint(tiny_sd1_ckpt[0])


def _latents(seed: int = 0, count: int = 2, size: int = 8) -> torch.Tensor:
    return torch.randn(count, 4, size, size, generator=torch.Generator().manual_seed(seed))


def _batches(latents: torch.Tensor, captions=CAPTIONS):
    return lambda step, micro, generator: TrainingBatch(list(captions), latents=latents)


def _training(steps: int, rate: float = 1e-2, **kwargs) -> LoraTrainSettings:
    loop = kwargs.pop("loop", None) or LoopSettings(steps, LearnRateSchedule.parse(rate, steps), seed=3)
    return LoraTrainSettings(loop=loop, **kwargs)


def _unet_out(model, context, pooled=None, latents=None, t: int = 400) -> torch.Tensor:
    """The UNet's output for fixed inputs (with SDXL's added conditioning when `pooled`)."""
    latents = _latents(5, count=context.shape[0]) if latents is None else latents
    from modules.sumi.engine.text.encoder import Conditioning

    predict = unet_predictor(model, Conditioning(context, pooled), 64, 64)
    with torch.no_grad():
        return predict(latents, torch.full((latents.shape[0],), t))


def _encode(model, prompts=CAPTIONS):
    with torch.no_grad():
        cond = encode_prompts(model.text_encoders, prompts)
    return cond.context, cond.pooled


def _outputs(model):
    context, pooled = _encode(model)
    return context, _unet_out(model, context, pooled)


# -- which layers, which names ----------------------------------------------------------------------------
def test_layers_follow_kohyas_module_lists(sd1):
    def paths(**kwargs):
        return {(t.component, t.path) for t in select_targets(sd1, LoraSettings(**kwargs))}

    attention = paths(unet_target="attention", train_text_encoder=False)
    default = paths()
    locon = paths(conv_rank=2)
    assert attention and all(p.split(".")[-1] in ("to_q", "to_k", "to_v", "0") for _, p in attention)
    assert attention < default
    assert ("unet", "down_blocks.0.attentions.0.proj_in") in default  # 1x1 conv in the transformer
    assert ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2") in default
    assert ("te0", "encoder.layers.0.self_attn.q_proj") in default
    assert ("te0", "encoder.layers.0.mlp.fc2") in default
    assert not any("resnets" in p for _, p in default)
    assert ("unet", "down_blocks.0.resnets.0.conv1") in locon  # 3x3, at the conv rank
    assert ("unet", "down_blocks.0.downsamplers.0.conv") in locon
    assert ("unet", "up_blocks.0.resnets.0.time_emb_proj") in locon
    assert not any(p in ("conv_in", "conv_out") or "time_embedding" in p for _, p in locon)
    linear = paths(unet_target="all_linear", train_text_encoder=False)
    assert ("unet", "up_blocks.0.resnets.0.conv_shortcut") in linear
    assert not any(p.endswith(("conv1", "conv2")) for _, p in linear)
    attention_conv = paths(unet_target="attention", conv_rank=2, train_text_encoder=False)
    assert attention | {("unet", "down_blocks.0.resnets.0.conv1")} <= attention_conv
    assert ("unet", "up_blocks.0.resnets.0.time_emb_proj") not in attention_conv
    ranks = {t.path: t.rank for t in select_targets(sd1, LoraSettings(rank=4, conv_rank=2))}
    assert ranks["down_blocks.0.resnets.0.conv1"] == 2 and ranks["down_blocks.0.attentions.0.proj_in"] == 4


@pytest.mark.parametrize("family", ["SD1", "SDXL"])
def test_network_keys_are_kohyas_names_for_the_same_layers(family, sd1, tiny_sdxl_ckpt):
    model = sd1 if family == "SD1" else load_checkpoint(tiny_sdxl_ckpt[0])
    network = create_network(model, LoraSettings(conv_rank=2))
    index = build_index(model)
    for name, target in network.targets.items():
        assert index[name].module is target.module
    names = list(network.targets)
    if family == "SDXL":
        assert any(n.startswith("lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q") for n in names)
        assert {n[:8] for n in names if n.startswith("lora_te")} == {"lora_te1", "lora_te2"}
    else:
        assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k" in names
        assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in names


def test_lokr_factorization_is_lycoris_split():
    assert factorization(32) == (4, 8)
    assert factorization(64) == (8, 8)
    assert factorization(96) == (8, 12)
    assert factorization(7) == (1, 7)
    assert factorization(64, 4) == (4, 16)


@pytest.mark.parametrize("conv", [False, True])
def test_the_plain_lora_path_equals_the_loaders_merge(conv):
    generator = torch.Generator().manual_seed(0)
    base = torch.nn.Conv2d(6, 5, 3, padding=1) if conv else torch.nn.Linear(6, 5)
    layer = LoRALayer(base, rank=3, alpha=2.0, dropout=0.0, generator=generator)
    torch.nn.init.normal_(layer.lora_up.weight, generator=generator)
    x = torch.randn(2, 6, 4, 4) if conv else torch.randn(2, 6)
    delta = LoRA({k: v for k, v in layer.state_dict().items()}).delta(base.weight.detach())
    merged = F.conv2d(x, delta, None, 1, 1) if conv else F.linear(x, delta)
    torch.testing.assert_close(layer(base, x), merged, rtol=1e-5, atol=1e-6)


# -- the model stays exact ----------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["lora", "loha", "lokr"])
def test_a_fresh_network_is_the_base_model_and_training_leaves_the_model_exact(algo, sd1):
    weights = {k: v.clone() for m in sd1.modules() for k, v in m.state_dict().items()}
    flags = [p.requires_grad for m in sd1.modules() for p in m.parameters()]
    before = _outputs(sd1)
    network = create_network(sd1, LoraSettings(algo=algo, rank=4, conv_rank=2))
    with network.applied():
        fresh = _outputs(sd1)
    assert all(torch.equal(a, b) for a, b in zip(before, fresh, strict=True))

    train_lora(sd1, _batches(_latents()), LoraSettings(algo=algo, rank=4, conv_rank=2), _training(2))
    after = _outputs(sd1)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not any(m._forward_hooks for module in sd1.modules() for m in module.modules())
    assert flags == [p.requires_grad for m in sd1.modules() for p in m.parameters()]
    assert not sd1.unet.training and not sd1.unet.is_gradient_checkpointing
    now = {k: v for m in sd1.modules() for k, v in m.state_dict().items()}
    assert all(torch.equal(weights[k], now[k]) for k in weights)


# -- learning ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["lora", "loha"])
def test_training_lowers_the_loss_on_a_fixed_batch(algo, sd1):
    latents = _latents()
    settings = LoraSettings(algo=algo, rank=4, alpha=4)
    objective = DiffusionObjective(sd1.scheduler_config, sd1.prediction_type)

    def fixed_loss(network) -> float:
        total = 0.0
        with network.applied(), torch.no_grad():
            cond = encode_prompts(sd1.text_encoders, CAPTIONS)
            for seed in range(4):
                predict = unet_predictor(sd1, cond, 64, 64)
                total += objective.loss(predict, latents, torch.Generator().manual_seed(seed)).item()
        return total / 4

    before = fixed_loss(create_network(sd1, settings))
    result = train_lora(sd1, _batches(latents), settings, _training(30, 1e-2))
    network = create_network(sd1, settings)
    network.load_file_state_dict(result.tensors)
    assert result.finished and result.step == 30
    assert fixed_loss(network) < before * 0.9


def test_text_encoder_adapters_receive_gradients(sd1):
    settings = LoraSettings(rank=4, train_unet=False)
    result = train_lora(sd1, _batches(_latents()), settings, _training(2))
    ups = [v for k, v in result.tensors.items() if k.endswith("lora_up.weight")]
    assert ups and all(k.startswith("lora_te_") for k in result.tensors)
    assert all(v.abs().sum() > 0 for v in ups)


def test_separate_rates_scale_each_parts_steps(sd1):
    """SGD from zero: one step moves each part's up weights in proportion to its own rate."""
    settings = LoraSettings(rank=4)

    def ups(unet_lr, te_lr):
        training = _training(1, 1e-2, optimizer="SGD", unet_lr=unet_lr, text_encoder_lr=te_lr)
        tensors = train_lora(sd1, _batches(_latents()), settings, training).tensors
        return {k: v for k, v in tensors.items() if k.endswith("lora_up.weight")}

    same, scaled = ups(None, None), ups(1e-2, 5e-3)
    for key, value in same.items():
        factor = 0.5 if key.startswith("lora_te") else 1.0
        torch.testing.assert_close(scaled[key], value * factor, rtol=1e-4, atol=1e-9)


def test_gradient_checkpointing_and_bf16_train_the_same_network(sd1):
    settings = LoraSettings(rank=4)
    plain = train_lora(sd1, _batches(_latents()), settings, _training(2)).tensors
    checkpointed = train_lora(
        sd1, _batches(_latents()), settings, _training(2, gradient_checkpointing=True)
    ).tensors
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=1e-4, atol=1e-6)
    assert not sd1.unet.is_gradient_checkpointing  # turned off again after the run
    bf16 = train_lora(sd1, _batches(_latents()), settings, _training(2, mixed_precision="bf16"))
    assert all(torch.isfinite(v).all() for v in bf16.tensors.values())
    assert all(torch.isfinite(torch.tensor(bf16.losses)))


def test_pixel_batches_are_encoded_with_the_vae(sd1):
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    result = train_lora(
        sd1,
        lambda step, micro, generator: TrainingBatch(CAPTIONS, pixels=pixels),
        LoraSettings(rank=2, train_text_encoder=False),
        _training(1),
    )
    assert result.finished and len(result.losses) == 1


# -- files -------------------------------------------------------------------------------------------------
def _trained(model, settings, steps=4, rate=3e-2):
    return train_lora(model, _batches(_latents()), settings, _training(steps, rate))


def _hooked_outputs(model, settings, tensors):
    network = create_network(model, settings)
    network.load_file_state_dict(tensors)
    with network.applied():
        return _outputs(model)


@pytest.mark.parametrize(
    "settings",
    [
        LoraSettings(algo="lora", rank=4, alpha=2),
        LoraSettings(algo="locon", rank=4, alpha=2, conv_rank=2, conv_alpha=1),
        LoraSettings(algo="loha", rank=4, alpha=2, conv_rank=2, conv_alpha=1),
        LoraSettings(algo="lokr", rank=2, alpha=1, conv_rank=2, conv_alpha=1, unet_target="all_linear"),
    ],
    ids=["lora", "locon", "loha", "lokr"],
)
def test_a_saved_file_loads_back_through_sumis_loader_as_the_trained_function(
    settings, tiny_sd1_ckpt, tmp_path
):
    model = load_checkpoint(tiny_sd1_ckpt[0])
    result = _trained(model, settings)
    base = _outputs(model)
    hooked = _hooked_outputs(model, settings, result.tensors)
    assert (hooked[1] - base[1]).abs().max() > 1e-3  # training changed the function
    path = save_lora(tmp_path / "trained.safetensors", result.tensors, dtype="fp32")

    network = load_network(path)
    patcher = NetworkPatcher(model)
    [match] = patcher.apply([(network, 1.0, 1.0)])
    assert not match.unmatched and len(match.patches) == len(network.layers)
    try:
        patched = _outputs(model)
    finally:
        patcher.restore()
    torch.testing.assert_close(patched[0], hooked[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(patched[1], hooked[1], rtol=1e-4, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(_outputs(model), base, strict=True))


def test_diffusers_loads_a_saved_lora_to_the_same_function(tiny_sd1_ckpt, tmp_path):
    pytest.importorskip("peft")  # diffusers' LoRA loader needs it
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    model = load_checkpoint(tiny_sd1_ckpt[0])
    settings = LoraSettings(rank=4, alpha=2)
    result = _trained(model, settings)
    save_lora(tmp_path / "trained.safetensors", result.tensors, dtype="fp32")
    spec = model.text_encoders[0]
    ids = spec.tokenizer(CAPTIONS, padding="max_length", max_length=77, return_tensors="pt").input_ids
    network = create_network(model, settings)
    network.load_file_state_dict(result.tensors)
    with network.applied(), torch.no_grad():
        hooked_text = spec.model(ids).last_hidden_state
        hooked_unet = _unet_out(model, hooked_text)

    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=spec.model,
        tokenizer=spec.tokenizer,
        unet=model.unet,
        scheduler=DDPMScheduler.from_config(model.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.load_lora_weights(str(tmp_path), weight_name="trained.safetensors")
    with torch.no_grad():
        text = pipe.text_encoder(ids).last_hidden_state
        out = pipe.unet(_latents(5), torch.full((2,), 400), encoder_hidden_states=text).sample
    torch.testing.assert_close(text, hooked_text, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out, hooked_unet, rtol=1e-4, atol=1e-5)


def test_sdxl_trains_both_text_encoders_and_round_trips(tiny_sdxl_ckpt, tmp_path):
    model = load_checkpoint(tiny_sdxl_ckpt[0])
    settings = LoraSettings(rank=4, alpha=4)
    result = _trained(model, settings, steps=2)
    assert {k[:8] for k in result.tensors if k.startswith("lora_te")} == {"lora_te1", "lora_te2"}
    hooked = _hooked_outputs(model, settings, result.tensors)
    path = save_lora(tmp_path / "xl.safetensors", result.tensors, dtype="fp32")
    patcher = NetworkPatcher(model)
    [match] = patcher.apply([(load_network(path), 1.0, 1.0)])
    assert not match.unmatched
    try:
        patched = _outputs(model)
    finally:
        patcher.restore()
    for got, want in zip(patched, hooked, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_the_file_has_kohyas_metadata_and_hashes(sd1, tmp_path):
    from modules.sumi.services.networks.lora import addnet_hash

    settings = LoraSettings(algo="locon", rank=4, alpha=2, conv_rank=2, conv_alpha=1)
    training = _training(1, 1e-4, unet_lr=1e-4, text_encoder_lr=5e-5)
    result = train_lora(sd1, _batches(_latents()), settings, training)
    info = LoraFileInfo(
        "my_style",
        resolution=(64, 64),
        steps=result.step,
        num_train_images=2,
        tag_frequency={"10_shapes": tag_frequency(CAPTIONS + ["a red circle"])},
        training_started_at=1700000000.0,
    )
    path = save_lora(
        tmp_path / "my_style.safetensors", result.tensors, lora_metadata(sd1, settings, training, info)
    )
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        names = f.keys()
        assert {f.get_tensor(k).dtype for k in names} == {torch.float16}
        assert set(names) == set(result.tensors)
    assert meta["ss_network_module"] == "networks.lora"
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "2", "conv_alpha": "1"}
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2")
    assert (meta["ss_base_model_version"], meta["ss_v2"]) == ("sd_v1", "False")
    assert (meta["ss_resolution"], meta["ss_steps"], meta["ss_num_train_images"]) == ("(64, 64)", "1", "2")
    assert (meta["ss_learning_rate"], meta["ss_unet_lr"], meta["ss_text_encoder_lr"]) == (
        "0.0001",
        "0.0001",
        "5e-05",
    )
    assert meta["ss_output_name"] == "my_style" and meta["ss_training_started_at"] == "1700000000.0"
    assert json.loads(meta["ss_tag_frequency"]) == {
        "10_shapes": {"a red circle": 2, "top left": 1, "a blue square": 1, "bottom": 1}
    }
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert meta["sshs_model_hash"] == addnet_hash(path)  # what A1111 shows as the Lora hash
    assert len(meta["sshs_legacy_hash"]) == 8
    assert load_network(path).alias == "my_style"


def test_lycoris_files_name_their_algorithm(sd1):
    settings = LoraSettings(algo="lokr", rank=4, conv_rank=2)
    meta = lora_metadata(sd1, settings, _training(1), LoraFileInfo("x"))
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert json.loads(meta["ss_network_args"])["algo"] == "lokr"


# -- resume ------------------------------------------------------------------------------------------------
def test_an_interrupted_run_resumed_from_its_state_equals_the_uninterrupted_run(sd1, tmp_path):
    """Dropout, accumulation, a schedule and randomly sampled latents: all drawn per step."""
    settings = LoraSettings(algo="lora", rank=4, dropout=0.2)
    loop = LoopSettings(4, LearnRateSchedule.parse("0.01:2, 0.005", 4), gradient_accumulation=2, seed=11)
    training = LoraTrainSettings(loop=loop, latent_sampling="random")
    pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1

    def batches(step, micro, generator):
        return TrainingBatch(CAPTIONS[micro : micro + 1], pixels=pixels)

    whole = train_lora(sd1, batches, settings, training)
    reports = []
    first = train_lora(
        sd1, batches, settings, training, on_step=reports.append, should_stop=lambda: len(reports) >= 2
    )
    assert (first.step, first.finished) == (2, False)
    save_resume_state(tmp_path / "run.state", first.resume)
    state = load_resume_state(tmp_path / "run.state", "lora")
    resumed = train_lora(sd1, batches, settings, training, resume=state)
    assert resumed.finished and resumed.step == 4
    for key, value in whole.tensors.items():
        torch.testing.assert_close(resumed.tensors[key], value, rtol=0, atol=0)

    with pytest.raises(TrainingError, match="other network settings"):
        train_lora(sd1, batches, LoraSettings(algo="lora", rank=8), training, resume=state)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algo": "dora"},
        {"rank": 0},
        {"dropout": 1.0},
        {"unet_target": "everything"},
        {"train_unet": False, "train_text_encoder": False},
    ],
)
def test_bad_network_settings_are_clear_errors(kwargs):
    with pytest.raises(TrainingError):
        LoraSettings(**kwargs)
