"""Tiled VAE (engine.accel.tiled_vae): tiles equal the plain pass, and when tiling happens."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modules.sumi.engine import tiny_models
from modules.sumi.engine.accel import tiled_vae
from modules.sumi.engine.accel.tiled_vae import TilingPolicy

# Tolerances (pixels about [-1, 1]): with the whole image's GroupNorm statistics and no attention the
# tiles ARE the plain decode up to float rounding; the tiny random VAE with attention and per-tile
# statistics differs more (random weights exaggerate it: see docs/performance/tiled-vae.md).
EXACT = 1e-2
PER_TILE_MEAN = 0.25


@pytest.fixture(scope="module")
def vae():
    return tiny_models.tiny_vae(2, 0.18215, 512).eval()


@pytest.fixture(scope="module")
def conv_vae():
    """A small VAE (2 pixels per latent pixel) without mid-block attention: convolutions and GroupNorms."""
    torch.manual_seed(2)
    model = tiny_models.vae((8, 8), norm_groups=4, mid_block_add_attention=False)
    return tiny_models.jitter(model, 2).eval()


def _latents(height: int = 24, width: int = 24) -> torch.Tensor:
    torch.manual_seed(0)  # smooth, like real latents
    return F.interpolate(torch.randn(1, 4, 4, 4), size=(height, width), mode="bicubic")


def _decoder(vae):
    return lambda z: vae.decode(z, return_dict=False)[0]


@torch.no_grad()
def test_tiles_with_the_whole_images_norm_statistics_equal_the_plain_decode_at_and_away_from_seams(conv_vae):
    z = _latents(40, 56)
    decode = _decoder(conv_vae)
    plain = decode(z)
    tiled = tiled_vae.tiled(
        decode, z, scale_in=1, scale_out=2, tile=24, overlap=12, norms=conv_vae, stats_size=64
    )
    seams = [s * 2 for start, _ in tiled_vae.spans(56, 24, 12)[1:] for s in (start, start + 12)]
    assert seams  # the image really was cut into tiles
    assert (tiled - plain).abs().max() < EXACT
    assert (tiled - plain)[..., seams].abs().max() < EXACT


@torch.no_grad()
def test_tiles_with_their_own_norm_statistics_stay_within_the_stated_tolerance(vae):
    z = _latents()
    decode = _decoder(vae)
    plain = decode(z)
    tiled = tiled_vae.tiled(decode, z, scale_in=1, scale_out=8, tile=16, overlap=4)
    assert tiled.shape == plain.shape
    assert 0 < (tiled - plain).abs().mean() < PER_TILE_MEAN


@torch.no_grad()
def test_tiled_encode_equals_the_plain_encode_with_the_whole_images_statistics(conv_vae):
    pixels = torch.tanh(_decoder(conv_vae)(_latents(40, 56)))
    encode = lambda x: conv_vae.encode(x).latent_dist.mode()  # noqa: E731
    plain = encode(pixels)
    tiled = tiled_vae.tiled(
        encode, pixels, scale_in=2, scale_out=1, tile=24, overlap=12, norms=conv_vae, stats_size=64
    )
    assert tiled.shape == plain.shape
    assert (tiled - plain).abs().max() < EXACT


@torch.no_grad()
def test_the_colour_fix_keeps_the_estimate_for_the_full_resolution_norms_only(conv_vae):
    pixels = torch.tanh(_decoder(conv_vae)(_latents(40, 56)))
    encode = lambda x: conv_vae.encode(x).latent_dist.mode()  # noqa: E731
    every = tiled_vae._estimate_stats(encode, pixels, conv_vae, 128)
    full = tiled_vae._estimate_stats(encode, pixels, conv_vae, 128, full_resolution_only=True)
    sizes = []
    handles = [
        m.register_forward_hook(lambda m, a, o: sizes.append(a[0].shape[2:]))
        for m in tiled_vae._group_norms(conv_vae)
    ]
    encode(pixels)
    for handle in handles:
        handle.remove()
    kept = [size == sizes[0] for size in sizes]
    assert any(kept) and not all(kept)  # the encoder downsamples: some norms run on smaller maps
    assert [entry is not None for entry in full] == kept
    for entry, reference, keep in zip(full, every, kept, strict=True):
        if keep:
            assert entry is not None and reference is not None and torch.equal(entry[0], reference[0])
    fixed = tiled_vae.tiled(
        encode, pixels, scale_in=2, scale_out=1, tile=24, overlap=12, norms=conv_vae, stats_size=64,
        full_resolution_norms_only=True,
    )  # fmt: skip
    per_tile = tiled_vae.tiled(encode, pixels, scale_in=2, scale_out=1, tile=24, overlap=12)
    estimated = tiled_vae.tiled(
        encode, pixels, scale_in=2, scale_out=1, tile=24, overlap=12, norms=conv_vae, stats_size=64
    )
    assert not torch.equal(fixed, per_tile) and not torch.equal(fixed, estimated)


def test_spans_cover_the_length_and_share_the_overlap():
    assert tiled_vae.spans(10, 16, 4) == [(0, 10)]
    spans = tiled_vae.spans(40, 16, 4)
    assert spans[0][0] == 0 and spans[-1][1] == 40
    assert all(b[0] <= a[1] - 4 for a, b in zip(spans, spans[1:], strict=False))


@torch.no_grad()
def test_auto_tiles_only_when_the_plain_decode_would_not_fit_in_the_given_free_memory(vae):
    z = _latents()
    decode = _decoder(vae)
    need = tiled_vae.estimate_bytes(vae, "decode", z, 8)
    assert need > 0
    roomy = TilingPolicy(tile=16, overlap=4, free_memory=lambda _: need)
    tight = TilingPolicy(tile=16, overlap=4, free_memory=lambda _: need - 1)
    events: list[tiled_vae.Tiled] = []
    assert torch.equal(
        tiled_vae.run("decode", decode, z, policy=roomy, vae=vae, scale=8, events=events), decode(z)
    )
    assert events == []
    out = tiled_vae.run("decode", decode, z, policy=tight, vae=vae, scale=8, events=events)
    assert [(e.stage, e.reason) for e in events] == [("decode", "auto")]
    assert torch.equal(out, tiled_vae.tiled(decode, z, scale_in=1, scale_out=8, tile=16, overlap=4))


def test_the_estimate_grows_with_the_image_and_halves_with_half_precision(vae):
    small, big = torch.zeros(1, 4, 32, 32), torch.zeros(1, 4, 64, 64)
    assert tiled_vae.estimate_bytes(vae, "decode", big, 8) == 4 * tiled_vae.estimate_bytes(
        vae, "decode", small, 8
    )
    half = torch.nn.Module.to(tiny_models.tiny_vae(2, 0.18215, 512), torch.float16)
    assert tiled_vae.estimate_bytes(half, "decode", small, 8) * 2 == tiled_vae.estimate_bytes(
        vae, "decode", small, 8
    )


@torch.no_grad()
def test_a_plain_decode_that_runs_out_of_memory_is_retried_in_tiles(vae):
    z = _latents()
    decode = _decoder(vae)

    def decode_within(z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] > 20:  # wider than a tile and its context: a real allocation failure
            torch.empty(2**62, dtype=torch.uint8)
        return decode(z)

    events: list[tiled_vae.Tiled] = []
    out = tiled_vae.run(
        "decode", decode_within, z, policy=TilingPolicy(tile=16, overlap=4), vae=vae, scale=8, events=events
    )
    assert [e.reason for e in events] == ["out of memory"]
    assert "ran out of memory" in events[0].message()
    assert torch.equal(out, tiled_vae.tiled(decode, z, scale_in=1, scale_out=8, tile=16, overlap=4))
    with pytest.raises(RuntimeError, match="allocate"):  # "Never" does not retry
        tiled_vae.run("decode", decode_within, z, policy=TilingPolicy(mode="Never"), vae=vae, scale=8)


def test_always_tiles_and_never_does_not(vae):
    z = _latents(24, 24)
    decode = _decoder(vae)
    events: list[tiled_vae.Tiled] = []
    with torch.no_grad():
        tiled_vae.run(
            "decode",
            decode,
            z,
            policy=TilingPolicy(mode="Never", tile=16, overlap=4),
            vae=vae,
            scale=8,
            events=events,
        )
        assert events == []
        tiled_vae.run(
            "decode",
            decode,
            z,
            policy=TilingPolicy(mode="Always", tile=16, overlap=4),
            vae=vae,
            scale=8,
            events=events,
        )
    assert [(e.reason, e.tile, e.overlap) for e in events] == [("always", 16, 4)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "Sometimes"}, "one of Auto"),
        ({"tile": 4}, "at least 8"),
        ({"tile": 16, "overlap": 9}, "half"),
    ],
)
def test_bad_policies_are_refused_with_a_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TilingPolicy(**kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@torch.no_grad()
def test_tiled_decode_on_cuda_uses_less_memory_than_the_plain_decode():
    vae = tiny_models.vae((128, 256, 512, 512), norm_groups=32, layers=2).eval()
    torch.nn.Module.to(vae, device="cuda", dtype=torch.float16)
    z = torch.randn(1, 4, 128, 128, device="cuda", dtype=torch.float16)
    decode = _decoder(vae)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    decode(z)
    plain = torch.cuda.max_memory_allocated() - base
    torch.cuda.reset_peak_memory_stats()
    tiled_vae.tiled(decode, z, scale_in=1, scale_out=8, tile=32, overlap=8)
    assert torch.cuda.max_memory_allocated() - base < plain / 2
