"""The engine's extension mechanism: ordered hook points with typed contexts, and patch scopes whose exit
restores the model exactly (normal exit, exception, interrupt), driven through `generate` on a tiny
model, and from a plain script without the app."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import (
    HOOK_CONTEXTS,
    DenoiserCall,
    DenoiserOutput,
    Extension,
    ExtensionManager,
    HookPoint,
    LoopContext,
    PatchScope,
    RowOutputs,
    StepContext,
    UNetBatch,
    WeightBackups,
    hook,
    release_residents,
    resident_patches,
)
from modules.sumi.engine.networks import (
    HypernetworkPatch,
    NetworkPatch,
    NetworkPatcher,
    network_from_state_dict,
)
from modules.sumi.engine.networks.hypernetwork import HypernetworkProcessor, load_hypernetwork
from modules.sumi.engine.sampling.denoiser import guided
from modules.sumi.engine.sampling.loop import SamplingControl
from modules.sumi.engine.sampling.samplers import build_scheduler
from modules.sumi.engine.text.encoder import Conditioning
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_hypernetworks import write_hypernetwork

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3


@pytest.fixture(scope="module")
def model(tiny_sd1_ckpt):
    return load_checkpoint(tiny_sd1_ckpt[0])


def _request(**kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=kw.pop("prompts", ["a red fox", "a blue house"]),
        negative_prompts=kw.pop("negative_prompts", ["blurry", ""]),
        seeds=kw.pop("seeds", [7, 8]),
        width=32,
        height=32,
        steps=kw.pop("steps", STEPS),
        cfg_scale=6.0,
        sampler=kw.pop("sampler", "Euler a"),
        **kw,
    )


def _generate(model, *extensions: Extension, **kw) -> engine.BatchResult:
    control = kw.pop("control", None)
    return engine.generate(model, _request(**kw), extensions=extensions, control=control, progress_bar=False)


def _weights(model) -> dict[str, torch.Tensor]:
    return {
        f"{i}.{k}": v.detach().clone()
        for i, part in enumerate(model.modules())
        for k, v in part.state_dict().items()
    }


def _assert_pristine(model, before: dict[str, torch.Tensor]) -> None:
    now = _weights(model)
    changed = [k for k, v in before.items() if not torch.equal(v, now[k])]
    assert changed == [], changed[:5]


# -- hooks: order and contexts ---------------------------------------------------------------------


class _Named(Extension):
    """Appends `name.method` to a shared log from two PRE_STEP hooks of different orders."""

    def __init__(self, name: str, log: list[str]):
        super().__init__()
        self.name, self.log = name, log

    @hook(HookPoint.PRE_STEP, order=5)
    def late(self, ctx: StepContext) -> None:
        self.log.append(f"{self.name}.late")

    @hook(HookPoint.PRE_STEP)
    def second(self, ctx: StepContext) -> None:
        self.log.append(f"{self.name}.second")

    @hook(HookPoint.PRE_STEP, order=-1)
    def early(self, ctx: StepContext) -> None:
        self.log.append(f"{self.name}.early")

    @hook(HookPoint.PRE_STEP)
    def third(self, ctx: StepContext) -> None:
        self.log.append(f"{self.name}.third")


def test_hooks_run_by_order_then_registration_then_definition():
    log: list[str] = []
    manager = ExtensionManager([_Named("a", log), _Named("b", log)])
    manager.run(HookPoint.PRE_STEP, StepContext(0, 1, torch.tensor(1), torch.zeros(1)))
    assert log == [
        "a.early",
        "b.early",
        "a.second",
        "a.third",
        "b.second",
        "b.third",
        "a.late",
        "b.late",
    ]
    assert not manager.has(HookPoint.POST_STEP) and manager.has(HookPoint.PRE_STEP)


def test_a_subclass_override_keeps_the_hook_and_stacked_decorators_hook_twice():
    log: list[str] = []

    class Child(_Named):
        def second(self, ctx):  # overridden without @hook: still a PRE_STEP hook
            self.log.append("child.second")

    class Twice(Extension):
        @hook(HookPoint.PRE_LOOP)
        @hook(HookPoint.POST_LOOP, order=3)
        def both(self, ctx: LoopContext) -> None:
            log.append(f"twice.{'post' if ctx.stopped else 'pre'}")

    manager = ExtensionManager([Child("c", log), Twice()])
    manager.run(HookPoint.PRE_STEP, StepContext(0, 1, torch.tensor(1), torch.zeros(1)))
    manager.run(HookPoint.PRE_LOOP, LoopContext(torch.zeros(1), torch.zeros(1), 1))
    manager.run(HookPoint.POST_LOOP, LoopContext(torch.zeros(1), torch.zeros(1), 1, stopped=True))
    assert log == ["c.early", "child.second", "c.third", "c.late", "twice.pre", "twice.post"]


class _Recorder(Extension):
    """Records (point, step, context) at every hook point."""

    def __init__(self):
        super().__init__()
        self.events: list[tuple[HookPoint, int | None, object]] = []

    def _add(self, point: HookPoint, step: int | None, ctx: object) -> None:
        self.events.append((point, step, ctx))

    @hook(HookPoint.PRE_LOOP)
    def pre_loop(self, ctx: LoopContext) -> None:
        self._add(HookPoint.PRE_LOOP, None, ctx)

    @hook(HookPoint.PRE_STEP)
    def pre_step(self, ctx: StepContext) -> None:
        self._add(HookPoint.PRE_STEP, ctx.step, ctx)

    @hook(HookPoint.PRE_MODEL_CALL)
    def pre_model_call(self, ctx: DenoiserCall) -> None:
        self._add(HookPoint.PRE_MODEL_CALL, ctx.step, ctx)

    @hook(HookPoint.UNET_FORWARD)
    def unet_forward(self, ctx: UNetBatch) -> None:
        self._add(HookPoint.UNET_FORWARD, ctx.step, ctx)

    @hook(HookPoint.POST_CFG)
    def post_cfg(self, ctx: DenoiserOutput) -> None:
        self._add(HookPoint.POST_CFG, ctx.call.step, ctx)

    @hook(HookPoint.POST_STEP)
    def post_step(self, ctx: StepContext) -> None:
        self._add(HookPoint.POST_STEP, ctx.step, ctx)

    @hook(HookPoint.POST_LOOP)
    def post_loop(self, ctx: LoopContext) -> None:
        self._add(HookPoint.POST_LOOP, None, ctx)


def test_every_hook_point_fires_at_its_step_with_its_context(model):
    recorder = _Recorder()
    result = _generate(model, recorder)
    points = [(point, step) for point, step, _ in recorder.events]
    per_step = [
        HookPoint.PRE_STEP,
        HookPoint.PRE_MODEL_CALL,
        HookPoint.UNET_FORWARD,  # cond and uncond of the same length: one forward
        HookPoint.POST_CFG,
        HookPoint.POST_STEP,
    ]
    expected = [(HookPoint.PRE_LOOP, None)]
    expected += [(point, step) for step in range(STEPS) for point in per_step]
    expected += [(HookPoint.POST_LOOP, None)]
    assert points == expected
    for point, _, ctx in recorder.events:
        assert isinstance(ctx, HOOK_CONTEXTS[point])
    forward = next(ctx for point, _, ctx in recorder.events if point is HookPoint.UNET_FORWARD)
    assert forward.images.tolist() == [0, 1, 0, 1] and forward.is_cond.tolist() == [False, False, True, True]
    assert forward.rows_on_host == ((0, 1, 0, 1), (False, False, True, True))  # the same, read without a sync
    assert forward.x.shape == (4, 4, 4, 4) and forward.total_steps == STEPS
    call = next(ctx for point, _, ctx in recorder.events if point is HookPoint.PRE_MODEL_CALL)
    assert call.conditioning.texts_at(0)[0] == ["a red fox"] and call.cfg_scale == 6.0
    last = recorder.events[-1][2]
    assert last.stopped is False and torch.equal(last.latents, result.latents)
    post_step = [ctx for point, _, ctx in recorder.events if point is HookPoint.POST_STEP]
    assert [c.total_steps for c in post_step] == [STEPS] * STEPS and post_step[-1].denoised is not None


@pytest.mark.parametrize(
    ("prompts", "negatives"),
    [(["a red fox AND a hat", "a blue house"], ["blurry", ""]), (["a fox AND a hat AND snow"], ["x " * 90])],
)
def test_the_rows_roles_reach_hooks_on_the_host_as_the_tensors_hold_them(model, prompts, negatives):
    """AND parts add cond rows to their image; a negative prompt of another length runs apart."""
    recorder = _Recorder()
    _generate(model, recorder, prompts=prompts, negative_prompts=negatives, seeds=[7] * len(prompts), steps=1)
    forwards = [ctx for point, _, ctx in recorder.events if point is HookPoint.UNET_FORWARD]
    assert forwards
    for forward in forwards:
        assert forward.rows_on_host == (tuple(forward.images.tolist()), tuple(forward.is_cond.tolist()))
        assert forward.row_roles() == forward.rows_on_host


def test_hooks_that_change_nothing_change_no_pixel(model):
    plain = _generate(model)
    hooked = _generate(model, _Recorder(), _Named("n", []))
    assert [i.tobytes() for i in plain.images] == [i.tobytes() for i in hooked.images]


def test_hooks_can_replace_the_input_the_prediction_and_the_latents(model):
    class Zero(Extension):
        def __init__(self, point: HookPoint):
            super().__init__()
            self.point = point

        @hook(HookPoint.POST_LOOP)
        def zero_latents(self, ctx: LoopContext) -> None:
            if self.point is HookPoint.POST_LOOP:
                ctx.latents = torch.zeros_like(ctx.latents)

        @hook(HookPoint.PRE_MODEL_CALL)
        def zero_input(self, call: DenoiserCall) -> None:
            if self.point is HookPoint.PRE_MODEL_CALL:
                call.x = torch.zeros_like(call.x)

        @hook(HookPoint.POST_CFG)
        def zero_prediction(self, out: DenoiserOutput) -> None:
            if self.point is HookPoint.POST_CFG:
                out.output = torch.zeros_like(out.output)

    plain = _generate(model, sampler="Euler").latents
    assert not _generate(model, Zero(HookPoint.POST_LOOP)).latents.any()
    assert not torch.equal(_generate(model, Zero(HookPoint.PRE_MODEL_CALL), sampler="Euler").latents, plain)
    # Euler with a zero noise prediction never moves: the latents stay the scaled starting noise
    still = _generate(model, Zero(HookPoint.POST_CFG), sampler="Euler").latents
    built = build_scheduler("Euler", "Automatic", model.scheduler_config)
    built.scheduler.set_timesteps(STEPS)
    noise = engine.initial_noise(model, _request())[1]
    torch.testing.assert_close(still, noise * built.scheduler.init_noise_sigma)
    assert not torch.equal(still, plain)


# -- UNet keyword arguments ------------------------------------------------------------------------


class _AddResidual(Extension):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    @hook(HookPoint.UNET_FORWARD)
    def add(self, batch: UNetBatch) -> None:
        rows = batch.x.shape[0]
        batch.add_unet_kwargs(
            {
                "down_block_additional_residuals": [torch.full((rows, 2), self.scale)],
                "mid_block_additional_residual": torch.full((rows, 3), self.scale),
            }
        )


class _KwargsUNet:
    """Returns its input and keeps the keyword arguments of every forward."""

    def __init__(self):
        self.kwargs: list[dict] = []

    def __call__(self, x, timestep, encoder_hidden_states, added_cond_kwargs=None, return_dict=False, **kw):
        self.kwargs.append(kw)
        return (x,)


class _Rows(Extension):
    """PRE_CFG on the raw rows; `mode` says what to change: "rows_x" gives every row its image's input
    explicitly, "uncond" makes the uncond rows the result, "cond_is_uncond" makes every cond row its
    image's uncond row (so the built-in guidance gives the uncond rows too)."""

    def __init__(self, mode: str = "") -> None:
        super().__init__()
        self.mode, self.seen = mode, []

    @hook(HookPoint.PRE_MODEL_CALL)
    def rows_in(self, call: DenoiserCall) -> None:
        if self.mode == "rows_x":
            owners = torch.tensor([i for i, parts in enumerate(call.conds) for _ in parts])
            call.rows_x = torch.cat([call.x[owners], call.x])

    @hook(HookPoint.PRE_CFG)
    def rows(self, rows: RowOutputs) -> None:
        self.seen.append((rows.cond.shape[0], rows.uncond.shape[0], rows.owners.tolist()))
        if self.mode == "uncond":
            rows.output = rows.uncond
        elif self.mode == "cond_is_uncond":
            rows.cond = rows.uncond[rows.owners]


def test_pre_cfg_sees_a_row_per_and_part_and_can_replace_the_rows_or_the_guidance(model):
    prompts = {"prompts": ["a red fox AND a cat", "a blue house"]}
    plain = _generate(model, **prompts)
    explicit = _Rows("rows_x")
    same = _generate(model, explicit, **prompts)
    assert [i.tobytes() for i in same.images] == [i.tobytes() for i in plain.images]
    assert explicit.seen[0] == (3, 2, [0, 0, 1]) and len(explicit.seen) == STEPS
    uncond, via_rows = (
        _generate(model, _Rows("uncond"), **prompts),
        _generate(model, _Rows("cond_is_uncond"), **prompts),
    )
    assert [i.tobytes() for i in uncond.images] == [i.tobytes() for i in via_rows.images]
    assert uncond.images[0].tobytes() != plain.images[0].tobytes()


def test_two_extensions_unet_kwargs_add_up():
    unet = _KwargsUNet()
    row = Conditioning(torch.ones(1, 77, 4))
    call = DenoiserCall(torch.ones(1, 4, 2, 2), torch.tensor(10.0), 0, 4, 7.0, [[(1.0, row)]], [row])
    guided(unet, call, ExtensionManager([_AddResidual(0.25), _AddResidual(2.0)]))
    (kwargs,) = unet.kwargs
    torch.testing.assert_close(kwargs["mid_block_additional_residual"], torch.full((2, 3), 2.25))
    torch.testing.assert_close(kwargs["down_block_additional_residuals"][0], torch.full((2, 2), 2.25))
    guided(unet, call)  # without extensions the UNet gets no extra arguments
    assert unet.kwargs[-1] == {}


# -- patch scopes ----------------------------------------------------------------------------------


class _ScaleWeights(Extension):
    """Scales every UNet weight in place for the scope; WeightBackups puts the originals back."""

    def __init__(self, factor: float = 1.5, on_enter=None):
        super().__init__()
        self.factor, self.on_enter, self.inside = factor, on_enter, False

    @contextmanager
    def patch(self, scope: PatchScope) -> Iterator[None]:
        with WeightBackups() as backups:
            for name, module in scope.model.unet.named_modules():
                if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                    backups.replace(name, module, "weight", module.weight * self.factor)
            if self.on_enter is not None:
                self.on_enter()
            self.inside = True
            try:
                yield
            finally:
                self.inside = False


def test_a_patch_changes_the_image_and_its_scope_restores_bit_exactly(model):
    before = _weights(model)
    plain = _generate(model).latents
    patched = _generate(model, _ScaleWeights()).latents
    assert not torch.equal(plain, patched)
    _assert_pristine(model, before)
    assert torch.equal(_generate(model).latents, plain)


@pytest.mark.parametrize("error", [RuntimeError("boom in a hook"), KeyboardInterrupt()])
def test_a_scope_restores_exactly_after_an_exception_or_keyboard_interrupt(model, error):
    class Raise(Extension):
        @hook(HookPoint.POST_STEP)
        def fail(self, ctx: StepContext) -> None:
            if ctx.step == 1:
                raise error

    before = _weights(model)
    scale = _ScaleWeights()
    with pytest.raises(type(error)):
        _generate(model, scale, Raise())
    assert not scale.inside
    _assert_pristine(model, before)


def test_a_scope_restores_exactly_after_an_interrupt(model):
    control = SamplingControl()

    class Interrupt(Extension):
        @hook(HookPoint.POST_STEP)
        def stop(self, ctx: StepContext) -> None:
            control.interrupted = True

    before = _weights(model)
    result = _generate(model, _ScaleWeights(), Interrupt(), control=control)
    assert result.stopped_early
    _assert_pristine(model, before)


def test_patches_enter_in_order_leave_in_reverse_and_a_failing_entry_unwinds_the_others(model):
    log: list[str] = []

    class Logged(Extension):
        def __init__(self, name: str, fail: bool = False):
            super().__init__()
            self.name, self.fail = name, fail

        @contextmanager
        def patch(self, scope: PatchScope) -> Iterator[None]:
            log.append(f"enter {self.name}")
            if self.fail:
                raise ValueError("cannot patch")
            try:
                yield
            finally:
                log.append(f"exit {self.name}")

    with ExtensionManager([Logged("a"), Logged("b")]).patched(model):
        log.append("body")
    assert log == ["enter a", "enter b", "body", "exit b", "exit a"]
    log.clear()
    before = _weights(model)
    with (
        pytest.raises(ValueError),
        ExtensionManager([_ScaleWeights(), Logged("a"), Logged("x", fail=True)]).patched(model),
    ):
        log.append("body")
    assert log == ["enter a", "enter x", "exit a"]
    _assert_pristine(model, before)


# -- resident patches ------------------------------------------------------------------------------


class _Resident(Extension):
    """A toy resident patch: scales the UNet's first conv and may stay on the model after the scope."""

    resident_key = "toy"

    def __init__(self):
        super().__init__()
        self.backups = WeightBackups()

    @contextmanager
    def patch(self, scope: PatchScope) -> Iterator[None]:
        release = resident_patches(scope.model).pop(self.resident_key, None)
        if release is None:  # not resident yet: patch now
            conv = scope.model.unet.conv_in
            self.backups.replace("conv_in", conv, "weight", conv.weight * 2)
        try:
            yield
        finally:
            if scope.completed:
                scope.keep_resident(self.resident_key, self.backups.restore_all)
            else:
                self.backups.restore_all()


def test_a_resident_patch_stays_after_a_completed_scope_until_a_scope_does_not_claim_it(model):
    before = _weights(model)
    toy = _Resident()
    with ExtensionManager([toy]).patched(model) as scope:
        scope.completed = True
    assert not torch.equal(model.unet.conv_in.weight, before["0.conv_in.weight"])
    with ExtensionManager([toy]).patched(model) as scope:  # claimed: taken over, not patched twice
        torch.testing.assert_close(model.unet.conv_in.weight, before["0.conv_in.weight"] * 2)
        scope.completed = True
    with ExtensionManager().patched(model):  # not claimed: released on entry
        _assert_pristine(model, before)
    assert resident_patches(model) == {}


def test_an_incomplete_scope_never_leaves_a_resident_patch(model):
    before = _weights(model)
    with ExtensionManager([_Resident()]).patched(model):
        pass  # the owner never said the work completed
    _assert_pristine(model, before)
    with ExtensionManager([_Resident()]).patched(model) as scope:
        scope.completed = True
    release_residents(model)
    _assert_pristine(model, before)


def test_two_extensions_cannot_claim_one_resident_patch():
    with pytest.raises(ValueError, match="resident patch 'toy'"):
        ExtensionManager([_Resident(), _Resident()])


# -- without the app ---------------------------------------------------------------------------------


SCRIPT = """
import sys
import torch
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import Extension, HookPoint, StepContext, hook
from modules.sumi.engine.generate import BatchRequest, generate

class Steps(Extension):
    def __init__(self):
        super().__init__()
        self.seen = []

    @hook(HookPoint.POST_STEP)
    def count(self, ctx: StepContext) -> None:
        self.seen.append(ctx.step)

model = load_checkpoint(sys.argv[1])
steps = Steps()
request = BatchRequest(prompts=["a fox"], negative_prompts=[""], seeds=[1], width=32, height=32, steps=2)
result = generate(model, request, extensions=[steps], progress_bar=False)
assert steps.seen == [0, 1] and result.images[0].size == (32, 32)
app_side = ("modules.sumi.services", "modules.sumi.app", "modules.sumi.frontends")
facades = [m for m in sys.modules if m.startswith("modules.") and not m.startswith("modules.sumi")]
print("app or facades loaded:", sorted(facades + [m for m in sys.modules if m.startswith(app_side)]))
"""


def test_an_extension_runs_from_a_plain_script_without_the_app(tiny_sd1_ckpt):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tiny_sd1_ckpt[0])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "app or facades loaded: []" in done.stdout, done.stdout


# -- networks as extensions ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loras(model):
    components = {
        "family": "SD1",
        "unet": model.unet,
        "text_encoders": [s.model for s in model.text_encoders],
    }
    return [
        network_from_state_dict(tn.lora_state_dict(components, seed=seed, alpha=4.0), f"lora{seed}")
        for seed in (1, 2)
    ]


@pytest.fixture
def patcher(model):
    patcher = NetworkPatcher(model)
    yield patcher
    release_residents(model)
    patcher.restore()


def _counting(patcher: NetworkPatcher) -> list[str]:
    touched: list[str] = []
    patch, restore = patcher._patch_layer, patcher._restore_layer
    patcher._patch_layer = lambda key, deltas: (touched.append(key), patch(key, deltas))
    patcher._restore_layer = lambda key: (touched.append(key), restore(key))
    return touched


def test_a_network_patch_applies_for_the_scope_and_restores_exactly(model, loras, patcher):
    before, plain = _weights(model), _generate(model).latents
    with_lora = _generate(model, NetworkPatch(patcher, [(loras[0], 1.0, 1.0)])).latents
    assert not torch.equal(with_lora, plain)
    _assert_pristine(model, before)
    assert patcher.patched_layers == set() and resident_patches(model) == {}


def test_resident_network_deltas_stay_between_batches_and_go_when_no_batch_wants_them(model, loras, patcher):
    before = _weights(model)
    touched = _counting(patcher)
    first = _generate(model, NetworkPatch(patcher, [(loras[0], 1.0, 1.0)], resident=True)).latents
    assert touched and "networks" in resident_patches(model)
    touched.clear()
    again = _generate(model, NetworkPatch(patcher, [(loras[0], 1.0, 1.0)], resident=True)).latents
    assert touched == [] and torch.equal(first, again)  # nothing rewritten, same image
    _generate(model, NetworkPatch(patcher, [(loras[0], 1.0, 1.0), (loras[1], 1.0, 1.0)], resident=True))
    assert touched and all(key in patcher.patched_layers for key in touched)  # only B's layers changed
    _generate(model)  # a batch without networks starts from pristine weights
    _assert_pristine(model, before)
    assert patcher.patched_layers == set() and resident_patches(model) == {}


def test_an_interrupted_or_failed_batch_leaves_no_resident_deltas(model, loras, patcher):
    before = _weights(model)
    control = SamplingControl()

    class Stop(Extension):
        @hook(HookPoint.POST_STEP)
        def stop(self, ctx: StepContext) -> None:
            control.interrupted = True

    _generate(model, NetworkPatch(patcher, [(loras[0], 1.0, 1.0)], resident=True), Stop(), control=control)
    _assert_pristine(model, before)
    assert resident_patches(model) == {}

    class Fail(Extension):
        @hook(HookPoint.PRE_MODEL_CALL)
        def fail(self, call: DenoiserCall) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _generate(model, NetworkPatch(patcher, [(loras[0], 1.0, 1.0)], resident=True), Fail())
    _assert_pristine(model, before)
    assert resident_patches(model) == {}


def test_prompts_encoded_under_other_text_encoder_deltas_are_not_reused(model, loras, patcher):
    cache: dict = {}
    request = _request()
    plain = engine.generate(model, request, conditioning_cache=cache, progress_bar=False).latents
    te_only = NetworkPatch(patcher, [(loras[0], 1.0, 0.0)])
    with_te = engine.generate(
        model, request, extensions=[te_only], conditioning_cache=cache, progress_bar=False
    ).latents
    assert len(cache) == 2 and not torch.equal(plain, with_te)
    unet_only = NetworkPatch(patcher, [(loras[0], 0.0, 1.0)])
    engine.generate(model, request, extensions=[unet_only], conditioning_cache=cache, progress_bar=False)
    assert len(cache) == 2  # UNet-only deltas do not change the encoded prompts


def test_a_hypernetwork_patch_wraps_the_processors_for_the_scope_only(model, tmp_path):
    dim = model.unet.config.cross_attention_dim
    write_hypernetwork(tmp_path / "hn.pt", (dim,), seed=3, scale=0.5)
    hn = load_hypernetwork(tmp_path / "hn.pt")
    processors = list(model.unet.attn_processors.values())
    plain = _generate(model).latents
    seen = []

    class Look(Extension):
        @hook(HookPoint.PRE_STEP)
        def look(self, ctx: StepContext) -> None:
            seen.append(
                any(isinstance(p, HypernetworkProcessor) for p in model.unet.attn_processors.values())
            )

    assert not torch.equal(_generate(model, HypernetworkPatch([(hn, 1.0)]), Look()).latents, plain)
    with pytest.raises(RuntimeError):
        _generate(model, HypernetworkPatch([(hn, 1.0)]), _Raise())
    assert seen == [True] * STEPS
    assert all(a is b for a, b in zip(processors, model.unet.attn_processors.values(), strict=True))
    assert torch.equal(_generate(model).latents, plain)


class _Raise(Extension):
    @hook(HookPoint.POST_CFG)
    def fail(self, out: DenoiserOutput) -> None:
        raise RuntimeError("extension bug")
