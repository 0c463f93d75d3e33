"""A1111's UNet block lists (`input_blocks`, `middle_block`, `output_blocks`, `out`) over Sumi's diffusers
UNets: unchanged they cost nothing, and once an extension replaces or hooks a block, the UNet runs in
LDM order through the lists and computes what diffusers computes, residuals and odd sizes included."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine.extensions import ldm_blocks
from modules.sumi.engine.extensions.skip_concat import set_skip_concat
from modules.sumi.engine.tiny_models import tiny
from tests.fixtures.tiny_models import unet_call

FAMILIES = ["SD1", "SD2", "SDXL"]


class Wrapper(torch.nn.Module):
    """What Kohya's Deep Shrink puts into the lists: a module around a block, `forward(x, *args)`."""

    def __init__(self, block: torch.nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.block = block
        self.scale = scale

    def forward(self, x, *args):
        if self.scale != 1.0:
            x = torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic")
        return self.block(x, *args)


@pytest.fixture(scope="module", params=FAMILIES)
def unet(request):
    model = tiny(request.param)["unet"].eval()
    keys = list(model.state_dict())
    blocks = ldm_blocks.attach(model)
    assert blocks is not None
    assert list(model.state_dict()) == keys  # the lists are not registered submodules
    yield model
    model.input_blocks[:] = blocks._originals[0]
    model.output_blocks[:] = blocks._originals[1]


def inputs(unet, height: int = 8, width: int = 8):
    return unet_call(unet, height, width, tokens=5)


def skip_shapes(unet, x, t, kwargs) -> list[torch.Size]:
    """The shapes of the skips the input blocks keep (a ControlNet residual's shapes)."""
    emb = unet.time_embedding(unet.get_time_embed(sample=x, timestep=t))
    if "added_cond_kwargs" in kwargs:
        emb = emb + unet.get_aug_embed(
            emb=emb, encoder_hidden_states=None, added_cond_kwargs=kwargs["added_cond_kwargs"]
        )
    h, shapes = x, []
    for block in unet.input_blocks:
        h = block(h, emb, kwargs["encoder_hidden_states"])
        shapes.append(h.shape)
    return shapes


def diffusers(unet, x, t, kwargs, **extra):
    return unet(x, t, return_dict=False, **kwargs, **extra)[0]


def ldm(unet, x, t, kwargs, **extra):
    return vars(unet)["_sumi_ldm_blocks"].forward(x, t, return_dict=False, **kwargs, **extra)[0]


def test_the_lists_have_a1111_s_block_counts(unet):
    layers = unet.config.layers_per_block
    levels = len(unet.config.block_out_channels)
    assert len(unet.input_blocks) == 1 + levels * layers + (levels - 1)
    assert len(unet.output_blocks) == levels * (layers + 1)
    assert isinstance(unet.input_blocks[1], torch.nn.Sequential)  # A1111's TimestepEmbedSequential is one
    assert ldm_blocks.forward_of(unet) is unet  # nothing changed: diffusers' own forward


@pytest.mark.parametrize(("height", "width"), [(8, 8), (9, 7)])
@torch.no_grad()
def test_the_ldm_order_forward_equals_diffusers_at_any_latent_size(unet, height, width):
    x, t, kwargs = inputs(unet, height, width)
    torch.testing.assert_close(ldm(unet, x, t, kwargs), diffusers(unet, x, t, kwargs), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_controlnet_and_t2i_adapter_residuals_are_added_where_diffusers_adds_them(unet):
    x, t, kwargs = inputs(unet)
    g = torch.Generator().manual_seed(3)
    shapes = skip_shapes(unet, x, t, kwargs)
    down = tuple(torch.randn(s, generator=g) for s in shapes)
    mid = torch.randn(shapes[-1], generator=g)
    control = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
    torch.testing.assert_close(
        ldm(unet, x, t, kwargs, **control), diffusers(unet, x, t, kwargs, **control), rtol=1e-5, atol=1e-5
    )
    adapter_shapes = [shapes[i] for i in sorted(vars(unet)["_sumi_ldm_blocks"].adapter_points)]
    adapter = [torch.randn(s, generator=g) for s in adapter_shapes]
    torch.testing.assert_close(
        ldm(unet, x, t, kwargs, down_intrablock_additional_residuals=[a.clone() for a in adapter]),
        diffusers(unet, x, t, kwargs, down_intrablock_additional_residuals=[a.clone() for a in adapter]),
        rtol=1e-5,
        atol=1e-5,
    )


@torch.no_grad()
def test_a_replaced_block_makes_the_unet_run_through_the_lists_and_putting_it_back_ends_that(unet):
    x, t, kwargs = inputs(unet)
    plain = diffusers(unet, x, t, kwargs)
    original = unet.input_blocks[1]
    unet.input_blocks[1] = Wrapper(original)
    try:
        routed = ldm_blocks.forward_of(unet)
        assert routed is not unet
        torch.testing.assert_close(routed(x, t, return_dict=False, **kwargs)[0], plain, rtol=1e-5, atol=1e-5)
    finally:
        unet.input_blocks[1] = original
    assert ldm_blocks.forward_of(unet) is unet


@torch.no_grad()
def test_deep_shrink_s_scalers_change_the_picture_and_keep_its_size(unet):
    x, t, kwargs = inputs(unet, 16, 16)
    plain = diffusers(unet, x, t, kwargs)
    down, up = unet.input_blocks[1], unet.output_blocks[-2]
    unet.input_blocks[1], unet.output_blocks[-2] = Wrapper(down, 0.5), Wrapper(up, 2.0)
    try:
        shrunk = ldm_blocks.forward_of(unet)(x, t, return_dict=False, **kwargs)[0]
    finally:
        unet.input_blocks[1], unet.output_blocks[-2] = down, up
    assert shrunk.shape == plain.shape
    assert torch.isfinite(shrunk).all()
    assert (shrunk - plain).abs().mean() > 1e-3


@torch.no_grad()
def test_a_forward_hook_or_a_replaced_forward_on_a_block_is_honoured(unet):
    x, t, kwargs = inputs(unet)
    plain = diffusers(unet, x, t, kwargs)
    handle = unet.output_blocks[0].register_forward_hook(lambda module, args, output: output * 0)
    try:
        hooked = ldm_blocks.forward_of(unet)(x, t, return_dict=False, **kwargs)[0]
    finally:
        handle.remove()
    assert not torch.allclose(hooked, plain)
    block = unet.middle_block
    original_forward = block.forward
    calls = []
    block.forward = lambda *args: calls.append(1) or original_forward(*args)
    try:
        torch.testing.assert_close(
            ldm_blocks.forward_of(unet)(x, t, return_dict=False, **kwargs)[0], plain, rtol=1e-5, atol=1e-5
        )
    finally:
        del block.forward
    assert calls == [1]
    assert ldm_blocks.forward_of(unet) is unet


@torch.no_grad()
def test_the_skip_joins_go_through_a1111_s_replaceable_concatenation(unet):
    x, t, kwargs = inputs(unet)
    original = unet.input_blocks[0]
    unet.input_blocks[0] = Wrapper(original)
    joins = []

    def counting_cat(tensors, dim=1):
        joins.append(tuple(t.shape[1] for t in tensors))
        return torch.cat(tensors, dim=dim)

    set_skip_concat(counting_cat)
    try:
        ldm_blocks.forward_of(unet)(x, t, return_dict=False, **kwargs)
    finally:
        set_skip_concat(torch.cat)
        unet.input_blocks[0] = original
    assert len(joins) == len(unet.output_blocks)


def test_a_unet_without_diffusers_blocks_gets_no_lists():
    assert ldm_blocks.attach(torch.nn.Linear(2, 2)) is None


def test_an_unloaded_unet_is_freed_at_once_and_a_copy_gets_its_own_lists():
    import copy
    import gc
    import weakref

    model = tiny("SD1")["unet"].eval()
    ldm_blocks.attach(model)
    model.input_blocks[1] = Wrapper(model.input_blocks[1])
    twin = copy.deepcopy(model)
    assert ldm_blocks.forward_of(twin) is twin  # the original's lists are not the copy's
    blocks = ldm_blocks.attach(twin)
    assert (
        blocks is not None and blocks.unet is twin and twin.input_blocks[1].__class__.__name__ == "LdmBlock"
    )
    gone = weakref.ref(model)
    gc.disable()
    try:
        del model
        assert gone() is None  # no reference cycle through the lists: freed without the collector
    finally:
        gc.enable()
