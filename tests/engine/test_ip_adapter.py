"""IP-Adapter in the engine: files in h94's layouts load; a job with an IP-Adapter unit equals diffusers'
pipeline with the same adapter loaded by `load_ip_adapter` and the same CLIP features; the extension's
weight and guidance window; CLIP vision encoders read from their files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessor

from modules.sumi.engine import generate as engine
from modules.sumi.engine.controlnet.clip_vision import (
    ClipImageFeatures,
    clip_pixels,
    clip_vision_shape,
    encode_pictures,
    load_clip_vision,
)
from modules.sumi.engine.controlnet.ip_adapter import (
    ImagePromptAttention,
    ImagePromptExtension,
    ImagePromptUnit,
    build_ip_adapter,
    check_block_weights,
    check_fits,
    cross_attention_layers,
    ip_adapter_shape,
    token_mask,
    transformer_blocks,
)
from modules.sumi.engine.controlnet.models import load_controlnet
from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError
from modules.sumi.engine.files import read_state_dict
from tests.engine.pipeline_reference import ip_adapter_pipeline, pipeline_call
from tests.fixtures.tiny_ip_adapter import (
    CLIP_PROJECTION,
    CLIP_WIDTH,
    ip_adapter_state,
    tiny_clip_vision,
    write_clip_vision,
    write_ip_adapter,
)

SIZE = 64


def _features(seed: int = 5) -> ClipImageFeatures:
    g = torch.Generator().manual_seed(seed)
    return ClipImageFeatures(
        image_embeds=torch.randn(1, CLIP_PROJECTION, generator=g) * 2,
        penultimate=torch.randn(1, 257, CLIP_WIDTH, generator=g),
        zero_image_embeds=torch.zeros(1, CLIP_PROJECTION),
        zero_penultimate=torch.randn(1, 257, CLIP_WIDTH, generator=g),
    )


def _request(units=(), **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox", "a blue house"],
        negative_prompts=["blurry", ""],
        seeds=[7, 8],
        width=SIZE,
        height=SIZE,
        steps=4,
        cfg_scale=6.0,
        sampler=kw.pop("sampler", "Euler a"),
        control_units=list(units),
        **kw,
    )


def _latents(model, request) -> torch.Tensor:
    return engine.generate(model, request, progress_bar=False).latents


def _diffusers_embeds(kind: str, features: ClipImageFeatures, batch: int) -> torch.Tensor:
    """diffusers' `ip_adapter_image_embeds`: negative rows, then positive, [2B, 1, ...]."""
    if kind == "plain":
        pos, neg = features.image_embeds, features.zero_image_embeds
    else:
        pos, neg = features.penultimate, features.zero_penultimate
    pos = pos.unsqueeze(1).expand(batch, *pos.unsqueeze(1).shape[1:])
    neg = neg.unsqueeze(1).expand(batch, *neg.unsqueeze(1).shape[1:])
    return torch.cat([neg, pos])


def _pipeline_latents(model, request, state, kind, features, scale: float | dict) -> torch.Tensor:
    pipe = ip_adapter_pipeline(model, request, state, scale)
    embeds = _diffusers_embeds(kind, features, len(request.prompts))
    return pipe(**pipeline_call(model, request), ip_adapter_image_embeds=[embeds]).images


@pytest.mark.parametrize("kind", ["plain", "plus", "full"])
def test_a_job_with_an_ip_adapter_unit_equals_diffusers_load_ip_adapter(model, kind):
    state = ip_adapter_state(model.unet, kind, seed=3)
    adapter = build_ip_adapter(state, f"ip-adapter-{kind}_sd15.safetensors")
    assert adapter.shape.kind == kind
    check_fits(adapter, model.unet, "tiny")
    features = _features()
    tokens, negative = adapter.tokens(features)
    unit = ImagePromptUnit(adapter, tokens, negative, weight=0.8)
    ours = _latents(model, _request([unit]))
    expected = _pipeline_latents(model, _request(), state, kind, features, scale=0.8)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=5e-4)
    assert (ours - _latents(model, _request())).abs().max() > 1e-3  # the picture matters


def test_weight_zero_and_a_closed_window_leave_the_job_unchanged_and_processors_are_restored(model):
    adapter = build_ip_adapter(ip_adapter_state(model.unet, "plain", seed=4), "ip-adapter_sd15.safetensors")
    tokens, negative = adapter.tokens(_features())
    before = {k: v for k, v in model.unet.attn_processors.items()}
    plain = _latents(model, _request())
    assert torch.equal(
        _latents(model, _request([ImagePromptUnit(adapter, tokens, negative, weight=0.0)])), plain
    )
    late = ImagePromptUnit(adapter, tokens, negative, guidance_start=0.9, guidance_end=1.0)
    torch.testing.assert_close(
        _latents(model, _request([late])), plain
    )  # 4 steps: calls 0..3 of 4, none >= 0.9
    half = ImagePromptUnit(adapter, tokens, negative, guidance_start=0.5)
    assert (_latents(model, _request([half])) - plain).abs().max() > 1e-4
    assert model.unet.attn_processors == before  # the same processor objects are back


def test_cond_rows_attend_to_the_picture_and_uncond_rows_to_the_negative_image(model):
    from modules.sumi.engine.extensions import UNetBatch
    from modules.sumi.engine.text.encoder import Conditioning

    adapter = build_ip_adapter(ip_adapter_state(model.unet, "plain", seed=4), "ip-adapter_sd15.safetensors")
    tokens = torch.randn(2, 4, 32)
    negative = torch.randn(1, 4, 32)
    extension = ImagePromptExtension([ImagePromptUnit(adapter, tokens, negative, weight=0.5)])
    batch = UNetBatch(
        x=torch.zeros(3, 4, 8, 8),
        timestep=torch.tensor(1.0),
        context=Conditioning(context=torch.zeros(3, 77, 32)),
        time_ids=None,
        images=torch.tensor([1, 0, 1]),
        is_cond=torch.tensor([True, True, False]),
        step=0,
        total_steps=4,
    )
    extension.pick_tokens(batch)
    (active,) = extension.current.active
    rows = active.tokens
    assert active.unit.weight == 0.5
    assert (
        torch.equal(rows[0], tokens[1])
        and torch.equal(rows[1], tokens[0])
        and torch.equal(rows[2], negative[0])
    )


def test_files_in_both_layouts_load_and_their_family_is_read_from_the_text_width(model, tmp_path):
    state = ip_adapter_state(model.unet, "plus", seed=1)
    safetensors = write_ip_adapter(tmp_path / "ip-adapter-plus_sd15.safetensors", state)
    pickle = write_ip_adapter(tmp_path / "ip-adapter-plus_sd15.bin", state)
    flat = read_state_dict(pickle)
    assert set(flat) == set(state)
    a = load_controlnet(safetensors, expected_family="SD1")
    b = load_controlnet(pickle, expected_family="SD1")
    features = _features()
    torch.testing.assert_close(a.model.tokens(features)[0], b.model.tokens(features)[0])
    real = {
        "image_proj.proj.weight": torch.zeros(4 * 2048, 1280),
        "ip_adapter.1.to_k_ip.weight": torch.zeros(640, 2048),
    }
    shape = ip_adapter_shape(real, "ip-adapter_sdxl.safetensors")
    assert (shape.family, shape.kind, shape.clip_width) == ("SDXL", "plain", 1280)


def test_face_adapters_load_by_their_projection_or_name_and_pulid_is_refused_naming_what_runs(model):
    layers = {k: v for k, v in ip_adapter_state(model.unet, "plain").items() if k.startswith("ip_adapter.")}
    faceid = {  # MLPProjModelFaceId: proj.0, proj.2, norm
        "image_proj.proj.0.weight": torch.zeros(1024, 512),
        "image_proj.proj.0.bias": torch.zeros(1024),
        "image_proj.proj.2.weight": torch.zeros(128, 1024),
        "image_proj.proj.2.bias": torch.zeros(128),
        "image_proj.norm.weight": torch.ones(32),
        "image_proj.norm.bias": torch.zeros(32),
        **layers,
    }
    assert build_ip_adapter(faceid, "ip-adapter-faceid_sd15.bin").shape.kind == "faceid"
    odd = {
        **faceid,
        "image_proj.proj.0.weight": torch.zeros(64, 512),
        "image_proj.proj.2.weight": torch.zeros(128, 64),
    }
    with pytest.raises(ModelLoadError, match="does not widen the face embedding by a whole factor"):
        build_ip_adapter(odd, "odd.bin")
    plus = ip_adapter_state(model.unet, "faceid_plus")  # told by its face resampler
    assert build_ip_adapter(plus, "my_adapter.bin").shape.kind == "faceid_plus"
    instant = build_ip_adapter(ip_adapter_state(model.unet, "instantid"), "ip-adapter_instant_id_sdxl.bin")
    assert instant.shape.kind == "instantid"  # told by name, as the extension
    with pytest.raises(ModelLoadError, match="InstantID IP-Adapter without its resampler"):
        build_ip_adapter(ip_adapter_state(model.unet, "plain"), "ip-adapter_instant_id_sdxl.bin")
    with pytest.raises(ModelLoadError, match="FaceID Plus / Plus v2 and InstantID do run"):
        build_ip_adapter(ip_adapter_state(model.unet, "plain"), "ip-adapter_pulid_sdxl_fp16.safetensors")


def test_an_adapter_for_another_unet_is_refused(model):
    state = ip_adapter_state(model.unet, "plain")
    del state["ip_adapter.7.to_k_ip.weight"], state["ip_adapter.7.to_v_ip.weight"]
    adapter = build_ip_adapter(state, "ip-adapter_sd15.safetensors")
    with pytest.raises(InvalidRequestError, match="another model"):
        check_fits(adapter, model.unet, "ip-adapter_sd15")


def test_a_wrong_encoder_width_names_the_preprocessor_to_use(model):
    adapter = build_ip_adapter(ip_adapter_state(model.unet, "plain"), "ip-adapter_sd15.safetensors")
    wrong = ClipImageFeatures(
        torch.zeros(1, 7), torch.zeros(1, 3, 5), torch.zeros(1, 7), torch.zeros(1, 3, 5)
    )
    with pytest.raises(InvalidRequestError, match="ip-adapter_clip_g"):
        adapter.tokens(wrong)


# --- CLIP vision -----------------------------------------------------------------------------------


def _picture(seed: int = 0, size=(300, 200)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    return cv2.GaussianBlur(picture, (0, 0), 3)


def test_pictures_are_prepared_as_the_extension_does():
    picture = _picture()
    processor = CLIPImageProcessor(
        crop_size=224,
        do_center_crop=True,
        do_convert_rgb=True,
        do_normalize=True,
        do_resize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
        size=224,
    )
    expected = processor(
        images=cv2.resize(picture, (224, 224), interpolation=cv2.INTER_AREA), return_tensors="pt"
    )
    torch.testing.assert_close(clip_pixels(picture, 224), expected["pixel_values"], rtol=0, atol=1e-5)
    mask = np.zeros(picture.shape[:2], np.uint8)
    mask[:, : picture.shape[1] // 2] = 255  # white: left out of what CLIP sees
    masked = clip_pixels(picture, 224, mask)
    assert masked[..., :100].abs().max() == 0 and torch.equal(
        masked[..., 124:], clip_pixels(picture, 224)[..., 124:]
    )


@pytest.mark.parametrize("name", ["clip_vision/clip_h.pth", "image_encoder/model.safetensors"])
def test_an_encoder_file_loads_sized_from_its_weights_and_equals_transformers(tmp_path, name):
    theirs = tiny_clip_vision(seed=2)
    path = write_clip_vision(tmp_path / name, theirs)
    ours = load_clip_vision(path)
    shape = clip_vision_shape(read_state_dict(path), str(path))
    assert (shape.width, shape.projection, shape.layers, shape.image_size) == (
        CLIP_WIDTH,
        CLIP_PROJECTION,
        3,
        224,
    )
    pictures = [_picture(1), _picture(2, (128, 128))]
    found = encode_pictures(ours, pictures)
    pixels = torch.cat([clip_pixels(p, 224) for p in pictures])
    with torch.no_grad():
        out = theirs(pixel_values=pixels, output_hidden_states=True)
        zero = theirs(pixel_values=torch.zeros_like(pixels[:1]), output_hidden_states=True)
    torch.testing.assert_close(found.image_embeds, out.image_embeds, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(found.penultimate, out.hidden_states[-2], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(found.zero_penultimate, zero.hidden_states[-2], rtol=1e-4, atol=1e-5)
    assert torch.equal(found.zero_image_embeds, torch.zeros(1, CLIP_PROJECTION))


def test_a_file_that_is_not_an_encoder_says_what_it_is(tmp_path):
    path = tmp_path / "clip_h.safetensors"
    from safetensors.torch import save_file

    save_file({"visual.conv1.weight": torch.zeros(4, 3, 14, 14)}, path)
    with pytest.raises(ModelLoadError, match="OpenCLIP"):
        load_clip_vision(path)


def test_hypernetworks_and_an_ip_adapter_chain_their_processors(model, tmp_path):
    from modules.sumi.engine.networks.extensions import HypernetworkPatch
    from modules.sumi.engine.networks.hypernetwork import load_hypernetwork
    from tests.fixtures.tiny_hypernetworks import write_hypernetwork

    write_hypernetwork(tmp_path / "hn.pt", (model.unet.config.cross_attention_dim,), seed=3, scale=0.5)
    hn = load_hypernetwork(tmp_path / "hn.pt")
    adapter = build_ip_adapter(ip_adapter_state(model.unet, "plain", seed=4), "ip-adapter_sd15.safetensors")
    tokens, negative = adapter.tokens(_features())
    before = list(model.unet.attn_processors.values())

    def run(ip: bool, hyper: bool) -> torch.Tensor:
        units = [ImagePromptUnit(adapter, tokens, negative)] if ip else []
        extensions = [HypernetworkPatch([(hn, 1.0)])] if hyper else []
        return engine.generate(model, _request(units), extensions=extensions, progress_bar=False).latents

    both, ip_only, hn_only = run(True, True), run(True, False), run(False, True)
    assert (both - ip_only).abs().max() > 1e-4 and (both - hn_only).abs().max() > 1e-4
    assert all(a is b for a, b in zip(before, model.unet.attn_processors.values(), strict=True))


# -- advanced weighting and the effective region mask ---------------------------------------------------


def _layout_unet(down: list[str], up: list[str], layers: tuple[int, ...]):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32,) * len(down),
        down_block_types=down,
        up_block_types=up,
        layers_per_block=2,
        transformer_layers_per_block=layers,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def test_transformer_blocks_are_numbered_as_the_extension_numbers_them():
    """SD1: 6 down, the middle (6), 9 up = 16; SDXL: 4 down, the middle (4), 6 up = 11, every layer of a
    block (SDXL's 2 and 10) under one number."""
    sd1 = _layout_unet(
        ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, (1,) * 4
    )
    names = {i: n.split(".transformer_blocks")[0] for i, n in enumerate(sd1.attn_processors)}
    blocks = transformer_blocks(sd1)
    by_name = {names[i]: b for i, b in blocks.items()}
    assert sorted(set(blocks.values())) == list(range(16))
    assert by_name["down_blocks.0.attentions.0"] == 0 and by_name["down_blocks.2.attentions.1"] == 5
    assert by_name["mid_block.attentions.0"] == 6
    assert by_name["up_blocks.1.attentions.0"] == 7 and by_name["up_blocks.3.attentions.2"] == 15
    sdxl = _layout_unet(
        ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        (1, 2, 10),
    )
    blocks = transformer_blocks(sdxl)
    names = {i: n.split(".transformer_blocks")[0] for i, n in enumerate(sdxl.attn_processors)}
    assert sorted(set(blocks.values())) == list(range(11))
    assert {b for i, b in blocks.items() if names[i] == "down_blocks.1.attentions.0"} == {0}
    assert [b for i, b in blocks.items() if names[i] == "mid_block.attentions.0"] == [4] * 10
    assert {b for i, b in blocks.items() if names[i] == "up_blocks.0.attentions.0"} == {5}
    with pytest.raises(InvalidRequestError, match="11 transformer blocks.*got 16"):
        check_block_weights([1.0] * 16, sdxl)


def test_block_weights_equal_diffusers_per_block_ip_adapter_scales(model):
    """The tiny UNet's blocks: down_blocks.0 (0), the middle (1), up_blocks.1's two (2, 3)."""
    state = ip_adapter_state(model.unet, "plain", seed=3)
    adapter = build_ip_adapter(state, "ip-adapter_sd15.safetensors")
    features = _features()
    tokens, negative = adapter.tokens(features)
    weights = (0.9, 0.0, 0.3, 1.2)
    check_block_weights(weights, model.unet)
    unit = ImagePromptUnit(adapter, tokens, negative, weight=0.1, block_weights=weights)
    ours = _latents(model, _request([unit]))
    scale = {"down": {"block_0": [0.9]}, "mid": 0.0, "up": {"block_1": [0.3, 1.2]}}
    expected = _pipeline_latents(model, _request(), state, "plain", features, scale=scale)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=5e-4)
    same = ImagePromptUnit(adapter, tokens, negative, weight=0.7, block_weights=(0.7,) * 4)
    assert torch.equal(
        _latents(model, _request([same])), _latents(model, _request([_with_weight(unit, 0.7)]))
    )
    off = ImagePromptUnit(adapter, tokens, negative, block_weights=(0.0,) * 4)
    assert torch.equal(_latents(model, _request([off])), _latents(model, _request()))


def _with_weight(unit: ImagePromptUnit, weight: float) -> ImagePromptUnit:
    return ImagePromptUnit(unit.adapter, unit.tokens, unit.negative, weight=weight)


def test_an_effective_region_mask_limits_the_image_attention_to_its_tokens(model):
    from diffusers.models.attention_processor import AttnProcessor2_0

    from modules.sumi.engine.extensions import UNetBatch
    from modules.sumi.engine.text.encoder import Conditioning

    adapter = build_ip_adapter(ip_adapter_state(model.unet, "plain", seed=4), "ip-adapter_sd15.safetensors")
    tokens, negative = adapter.tokens(_features())
    index, attn = next(iter(cross_attention_layers(model.unet).items()))
    mask = torch.zeros(1, 1, 40, 40)
    mask[..., 10:, 20:] = 1.0
    latent = (8, 8)
    hidden = torch.randn(2, 64, attn.to_q.in_features, generator=torch.Generator().manual_seed(1))
    context = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(2))
    outputs = []
    for region in (None, mask):
        extension = ImagePromptExtension(
            [ImagePromptUnit(adapter, tokens, negative, 0.8, region_mask=region)]
        )
        extension.pick_tokens(
            UNetBatch(
                x=torch.zeros(2, 4, *latent),
                timestep=torch.tensor(1.0),
                context=Conditioning(context=context),
                time_ids=None,
                images=torch.tensor([0, 0]),
                is_cond=torch.tensor([True, False]),
                step=0,
                total_steps=4,
            )
        )
        processor = ImagePromptAttention(AttnProcessor2_0(), index, 0, extension.current)
        with torch.no_grad():
            outputs.append(processor(attn, hidden, context))
    with torch.no_grad():
        text = AttnProcessor2_0()(attn, hidden, context)
    per_token = torch.nn.functional.interpolate(mask, size=latent, mode="bilinear").reshape(1, 64, 1)
    torch.testing.assert_close(outputs[1] - text, (outputs[0] - text) * per_token, rtol=1e-5, atol=1e-6)
    assert (outputs[0] - text).abs().max() > 1e-3


def test_region_masks_follow_the_unets_levels_on_odd_latent_sizes():
    mask = torch.ones(1, 1, 16, 16)
    assert token_mask(mask, (9, 7), 9 * 7, torch.float32).shape == (1, 63, 1, 1)
    assert token_mask(mask, (9, 7), 5 * 4, torch.float32).shape == (1, 20, 1, 1)
    assert token_mask(mask, (9, 7), 3 * 2, torch.float32).shape == (1, 6, 1, 1)
    with pytest.raises(InvalidRequestError, match="does not match"):
        token_mask(mask, (9, 7), 7, torch.float32)
