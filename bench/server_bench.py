"""Sumi as a user runs it beside plain diffusers on the same weights, in one run, one table.

    python bench/server_bench.py                      # CUDA: SD1.5 512² and SDXL 1024², 20 steps, every case
    python bench/server_bench.py --quick --only sd15  # fewer repeats, one model
    python bench/server_bench.py --server-args="--compile" --option sumi_compile_unet=true
    python bench/server_bench.py --preset cpu         # full-size SD1.5 512², 4 steps, txt2img only
    python bench/server_bench.py --preset tiny        # the demo model, 64², 2 steps (what the test runs)
    python bench/server_bench.py --only sd15 --cases tiled_diffusion   # issue 19: 4096² tiled, 4x upscale

Sumi side: `webui.py --nowebui` started as a subprocess on a fresh data folder (the checkpoint linked
into models/Stable-diffusion), jobs through POST /sdapi/v1/txt2img, Euler a, CFG 7, batch 1.
diffusers side: bench/diffusers_side.py, `from_single_file` on the same checkpoint, in its own process.
Full-size random-weight checkpoints (fp16 files) are written once into --cache-dir. Each server and
each diffusers run is its own process, so every peak memory figure is that process's own.
The table goes to stdout and, with the raw figures, to <out>.md and <out>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import diffusers  # noqa: E402
import torch  # noqa: E402
from bench_files import BenchFiles, bench_files, link  # noqa: E402
from sumi_server import SumiServer, png_base64  # noqa: E402
from timing import its_from_step_counts  # noqa: E402

from modules.sumi.services.settings.flags import build_parser, startup_notices  # noqa: E402

SIZES = {"sd15": 512, "sdxl": 1024, "tiny": 64}
ALL_CASES = (
    "txt2img",
    "switch",
    "lora",
    "controlnet",
    "medvram",
    "lowvram",
    "fp8",
    "tiled",
    "tiled_diffusion",
)
# Each low-memory mode is its own server (peak memory since start is that mode's own).
MEMORY_MODES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "medvram": (["--medvram"], {}),
    "lowvram": (["--lowvram"], {}),
    "fp8": ([], {"fp8_storage": "Enable"}),
}
SDXL_MEMORY_MODES = {"medvram": (["--medvram-sdxl"], {})}  # the SDXL target is --medvram-sdxl
TILED_SIZE = 2048  # a decode of 256x256 latents
TILED_SETTINGS = {"sumi_tiled_vae": True}
# Tiled Diffusion (issue 19): a plain job at the base size, then 4x the base size drawn in tiles, and a
# base-size picture upscaled 4x (Lanczos, noise inversion, tiles); each on its own server (its own peak)
TD_BASE = {"sd15": 1024, "sdxl": 1024, "tiny": 64}
TD_SCALE = 4
PRESETS: dict[str, dict[str, Any]] = {
    "gpu": {"models": ["sd15", "sdxl"], "steps": 20, "runs": 5, "one_step_runs": 3, "cases": list(ALL_CASES)},
    "cpu": {"models": ["sd15"], "steps": 4, "runs": 2, "one_step_runs": 1, "cases": ["txt2img"]},
    "tiny": {
        "models": ["tiny"],
        "steps": 2,
        "runs": 1,
        "one_step_runs": 1,
        "cases": ["txt2img", "switch", "lora", "controlnet", "tiled_diffusion"],
    },
}
PROMPT = "a photograph of an astronaut riding a horse"


@dataclass
class Row:
    model: str
    case: str
    side: str
    seconds: float | None = None  # one image (median of the runs for the txt2img rows)
    it_s: float | None = None
    extra_s: float | None = None  # job time minus the plain job's median on the same server
    vram_mib: float | None = None
    rss_mib: float | None = None
    first_image_s: float | None = None
    note: str = ""


@dataclass
class Config:
    models: list[str]
    steps: int
    runs: int
    one_step_runs: int
    cases: list[str]
    server_args: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    diffusers: bool = True


def _job(kind: str, cfg: Config, **changes: Any) -> dict:
    size = SIZES[kind]
    body = {
        "prompt": PROMPT,
        "negative_prompt": "",
        "steps": cfg.steps,
        "sampler_name": "Euler a",
        "cfg_scale": 7,
        "width": size,
        "height": size,
        "batch_size": 1,
        "n_iter": 1,
        "seed": 0,
        "save_images": False,
        "send_images": True,
    }
    return body | changes


def _clock(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _median_jobs(server: SumiServer, body: dict, runs: int) -> float:
    return statistics.median(
        _clock(lambda s=seed: server.txt2img(body | {"seed": s})) for seed in range(1, runs + 1)
    )


def _expect(response: dict, text: str, what: str) -> dict:
    """A job that did not do what the case times (a LoRA not found, ...) stops the case with a message."""
    if text not in str(response.get("info", "")):
        raise RuntimeError(f"{what}: the job's infotext lacks {text!r}: {str(response.get('info'))[:300]}")
    return response


def _notes(server: SumiServer, flags: list[str]) -> str:
    """What the server ignores of what it was given: flags not acted on yet, settings it does not know."""
    notes = startup_notices(build_parser().parse_args(flags))
    refused = server.refused_settings()
    if refused:
        notes.append("settings this server refuses: " + ", ".join(refused))
    return "; ".join(notes)


def _data_dir(root: Path, name: str, files: BenchFiles, second: bool = False) -> tuple[Path, str, str]:
    """A fresh data folder with the checkpoint (and a second name for it), the LoRA and the ControlNet."""
    data = root / name
    models = data / "models"
    first = link(files.checkpoint, models / "Stable-diffusion" / files.checkpoint.name).name
    other = ""
    if second:  # another file name is another checkpoint to Sumi: loaded from the file, cached apart
        other = link(
            files.checkpoint, models / "Stable-diffusion" / f"{files.checkpoint.stem}-b.safetensors"
        ).name
    if files.lora is not None:
        link(files.lora, models / "Lora" / files.lora.name)
    if files.controlnet is not None:
        link(files.controlnet, models / "ControlNet" / files.controlnet.name)
    return data, first, other


def _timed_server(
    kind: str, cfg: Config, server: SumiServer, case: str, flags: list[str]
) -> tuple[Row, float]:
    """First image, then the median of `runs` images and of 1-step images: the case's main row."""
    body = _job(kind, cfg)
    server.txt2img(body)
    first = time.perf_counter() - server.started_at
    full = _median_jobs(server, body, cfg.runs)
    one = _median_jobs(server, body | {"steps": 1}, cfg.one_step_runs) if cfg.steps > 1 else None
    row = Row(
        kind,
        case,
        "Sumi",
        seconds=full,
        it_s=its_from_step_counts(cfg.steps, full, one) if one is not None else None,
        vram_mib=server.peak_vram_mib(),
        rss_mib=server.peak_rss_mib(),
        first_image_s=first,
        note=_notes(server, flags),
    )
    return row, full


def sumi_main(kind: str, files: BenchFiles, cfg: Config, root: Path) -> list[Row]:
    """The default server: txt2img, then checkpoint switches, LoRA and ControlNet on the same server."""
    data, first_name, second_name = _data_dir(root, f"sumi-{kind}", files, second="switch" in cfg.cases)
    settings = {"sd_model_checkpoint": first_name, "sd_checkpoints_limit": 2, **cfg.options}
    flags = list(cfg.server_args)
    rows: list[Row] = []
    with SumiServer(data, flags, settings) as server:
        main, plain = _timed_server(kind, cfg, server, "txt2img", flags)
        rows.append(main)
        body = _job(kind, cfg, seed=1)

        def extra(case: str, call: Callable[[], object], note: str = "") -> None:
            seconds = _clock(call)
            rows.append(Row(kind, case, "Sumi", seconds=seconds, extra_s=seconds - plain, note=note))

        if second_name:
            switches = (
                ("checkpoint switch, cold", second_name, "from the file (in the OS page cache)"),
                (
                    "checkpoint switch, warm",
                    first_name,
                    "back to the model kept in RAM (sd_checkpoints_limit 2)",
                ),
            )
            for case, name, note in switches:

                def switch(n: str = name, what: str = case) -> None:
                    server.set_options({"sd_model_checkpoint": n})
                    _expect(server.txt2img(body), Path(n).stem, what)

                extra(case, switch, f"POST /options sd_model_checkpoint, then one image; {note}")
        if "lora" in cfg.cases and files.lora is not None:
            with_lora = body | {"prompt": f"{PROMPT} <lora:{files.lora.stem}:1>"}
            extra(
                "LoRA, first job (read + apply)",
                lambda: _expect(server.txt2img(with_lora), "Lora hashes", "LoRA"),
            )
            extra(
                "LoRA, next job (applied)", lambda: _expect(server.txt2img(with_lora), "Lora hashes", "LoRA")
            )
            extra("LoRA removed, first job (restore)", lambda: server.txt2img(body))
        if "controlnet" in cfg.cases and files.controlnet is not None:
            size = SIZES[kind]
            unit = {"enabled": True, "module": "none", "model": files.controlnet.stem, "weight": 1.0}
            unit["image"] = png_base64(size, size)
            with_cn = body | {"alwayson_scripts": {"ControlNet": {"args": [unit]}}}
            _expect(server.txt2img(with_cn), "ControlNet 0", "ControlNet")  # loads the ControlNet
            seconds = _median_jobs(server, with_cn, cfg.runs)
            rows.append(
                Row(kind, "ControlNet (1 unit)", "Sumi", seconds=seconds, extra_s=seconds - plain,
                    note=f"{seconds / plain:.2f}x a plain job")
            )  # fmt: skip
    return rows


def sumi_memory_mode(kind: str, files: BenchFiles, cfg: Config, root: Path, mode: str) -> Row:
    modes = {**MEMORY_MODES, **(SDXL_MEMORY_MODES if kind == "sdxl" else {})}
    flags, settings = modes[mode]
    flags = [*cfg.server_args, *flags]
    data, name, _ = _data_dir(root, f"sumi-{kind}-{mode}", files)
    with SumiServer(data, flags, {"sd_model_checkpoint": name, **cfg.options, **settings}) as server:
        row, _ = _timed_server(kind, cfg, server, "txt2img " + (" ".join(flags) or mode), flags)
        if settings:
            row.case = f"txt2img {json.dumps(settings)}"
    return row


def sumi_tiled(kind: str, files: BenchFiles, cfg: Config, root: Path) -> Row:
    """A TILED_SIZE² job with 1 step: the cost is the 256² latent decode (tiled when the server tiles)."""
    data, name, _ = _data_dir(root, f"sumi-{kind}-tiled", files)
    flags = list(cfg.server_args)
    with SumiServer(data, flags, {"sd_model_checkpoint": name, **cfg.options, **TILED_SETTINGS}) as server:
        body = _job(kind, cfg, steps=1, width=TILED_SIZE, height=TILED_SIZE)
        seconds = _clock(lambda: server.txt2img(body))
        return Row(
            kind,
            f"{TILED_SIZE}² decode (1 step)",
            "Sumi",
            seconds=seconds,
            vram_mib=server.peak_vram_mib(),
            rss_mib=server.peak_rss_mib(),
            note=_notes(server, flags),
        )


def _tiled_diffusion_args(base: int, upscale: bool) -> list:
    """The extension's script args: MultiDiffusion, its 96-latent tiles (at most half the big picture's
    latents), half a tile of overlap, 4 tiles a batch; for the upscale, Lanczos x4 and 10 steps of noise
    inversion."""
    tile = max(8, min(96, base * TD_SCALE // 16))
    args = [True, "MultiDiffusion", False, True, 1024, 1024, tile, tile, tile // 2, 4]
    args += ["Lanczos", float(TD_SCALE)] if upscale else ["None", 1.0]
    if upscale:
        args += [True, 10, 1.0, 1.0, 64]  # noise inversion: steps, retouch, renoise strength, kernel
    return args


def _tiled_diffusion_jobs(kind: str, cfg: Config) -> list[tuple[str, str, dict]]:
    base = TD_BASE[kind]
    big = base * TD_SCALE
    scripts = {"Tiled Diffusion": {"args": _tiled_diffusion_args(base, upscale=False)}}
    upscale = {"Tiled Diffusion": {"args": _tiled_diffusion_args(base, upscale=True)}}
    tile = _tiled_diffusion_args(base, upscale=False)[6] * 8
    return [
        (f"plain {base}²", "txt2img", _job(kind, cfg, width=base, height=base)),
        (
            f"Tiled Diffusion {big}² (MultiDiffusion, {tile}² tiles, tiled VAE)",
            "txt2img",
            _job(kind, cfg, width=big, height=big, alwayson_scripts=scripts),
        ),
        (
            f"{TD_SCALE}x upscale {base}² -> {big}² (Lanczos, noise inversion, tiles)",
            "img2img",
            _job(kind, cfg, width=base, height=base, alwayson_scripts=upscale)
            | {"init_images": [png_base64(base, base)], "denoising_strength": 0.4},
        ),
    ]


def sumi_tiled_diffusion(kind: str, files: BenchFiles, cfg: Config, root: Path) -> list[Row]:
    """Each job on its own server with tiled VAE on, so each peak is that job's own (the tiny preset runs
    them on one server: its figures only keep the harness honest)."""
    flags = list(cfg.server_args)
    settings = {**cfg.options, **TILED_SETTINGS}
    rows: list[Row] = []
    shared = kind == "tiny"
    jobs = _tiled_diffusion_jobs(kind, cfg)
    groups = [jobs] if shared else [[job] for job in jobs]
    for number, group in enumerate(groups):
        data, name, _ = _data_dir(root, f"sumi-{kind}-tiled-diffusion-{number}", files)
        with SumiServer(data, flags, {"sd_model_checkpoint": name, **settings}) as server:
            for case, route, body in group:
                call = server.img2img if route == "img2img" else server.txt2img
                tiled = "alwayson_scripts" in body
                seconds = _clock(
                    lambda c=call, b=body, t=tiled, w=case: _expect(c(b), "Tiled Diffusion", w) if t else c(b)
                )
                note = "peaks since the server started (shared server)" if shared else _notes(server, flags)
                rows.append(
                    Row(kind, case, "Sumi", seconds=seconds, vram_mib=server.peak_vram_mib(),
                        rss_mib=server.peak_rss_mib(), note=note)
                )  # fmt: skip
    return rows


def diffusers_rows(kind: str, files: BenchFiles, cfg: Config) -> list[Row]:
    spec = {
        "checkpoint": str(files.checkpoint),
        "config": str(files.config),
        "xl": files.xl,
        "prompt": PROMPT,
        "width": SIZES[kind],
        "height": SIZES[kind],
        "steps": cfg.steps,
        "runs": cfg.runs,
        "one_step_runs": cfg.one_step_runs,
        "tiled": TILED_SIZE if "tiled" in cfg.cases else None,
        "launched_at": time.time(),
    }
    done = subprocess.run(
        [sys.executable, str(BENCH / "diffusers_side.py"), json.dumps(spec)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the diffusers side failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    pipeline = "StableDiffusionXLPipeline" if files.xl else "StableDiffusionPipeline"
    rows = [
        Row(kind, "txt2img", "diffusers", out["seconds"], out["it_s"], None, out["vram_mib"], out["rss_mib"],
            out["first_image_s"], f"{pipeline}.from_single_file")
    ]  # fmt: skip
    if out.get("tiled"):
        tiled = out["tiled"]
        rows.append(
            Row(kind, f"{TILED_SIZE}² decode (1 step)", "diffusers", tiled["seconds"], vram_mib=tiled["vram_mib"],
                note="vae.enable_tiling()")
        )  # fmt: skip
    return rows


def run(cfg: Config, cache: Path) -> list[Row]:
    rows: list[Row] = []
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="sumi-bench-") as tmp:
        root = Path(tmp)
        for kind in cfg.models:
            files = bench_files(kind, cache)
            steps: list[tuple[str, Callable[[], list[Row]]]] = []
            if cfg.diffusers:
                steps.append(("diffusers", lambda k=kind, f=files: diffusers_rows(k, f, cfg)))
            steps.append(("Sumi", lambda k=kind, f=files: sumi_main(k, f, cfg, root)))
            for mode in ("medvram", "lowvram", "fp8"):
                if mode in cfg.cases:
                    steps.append(
                        (mode, lambda k=kind, f=files, m=mode: [sumi_memory_mode(k, f, cfg, root, m)])
                    )
            if "tiled" in cfg.cases:
                steps.append(("tiled", lambda k=kind, f=files: [sumi_tiled(k, f, cfg, root)]))
            if "tiled_diffusion" in cfg.cases:
                steps.append(
                    ("tiled_diffusion", lambda k=kind, f=files: sumi_tiled_diffusion(k, f, cfg, root))
                )
            for name, step in steps:
                print(f"[{kind}] {name} ...", flush=True)
                try:
                    done = step()
                    rows += done
                    for row in done:  # a long run shows its figures as they come
                        print("  " + json.dumps(asdict(row)), flush=True)
                except Exception as exc:  # one failing case is a row saying why, the rest still runs
                    rows.append(Row(kind, name, "Sumi" if name != "diffusers" else "diffusers",
                                    note=f"FAILED: {str(exc)[:300]}"))  # fmt: skip
                    print(f"[{kind}] {name} failed: {exc}", file=sys.stderr, flush=True)
    if not cuda:
        for row in rows:
            row.vram_mib = None
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def environment(cfg: Config, argv: list[str]) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/server_bench.py " + shlex.join(argv),
        "device": torch.cuda.get_device_name() if cuda else f"CPU: {cpu}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "steps": cfg.steps,
        "runs": cfg.runs,
        "server_args": cfg.server_args,
        "options": cfg.options,
    }


def markdown(env: dict[str, Any], rows: list[Row]) -> str:
    head = [
        f"Device: {env['device']} · torch {env['torch']} · diffusers {env['diffusers']} · {env['date']}",
        f"Command: `{env['command']}`",
        f"Sumi flags: `{' '.join(['--nowebui', *env['server_args']])}` · settings: `{json.dumps(env['options'])}`",
        f"{env['steps']} steps Euler a, CFG 7, batch 1; s/image is the median of {env['runs']} after a warm-up.",
        "",
        "| model | case | side | s/image | it/s | extra s | peak VRAM MiB | peak RSS MiB | first image s | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines = [
        f"| {r.model} | {r.case} | {r.side} | {_fmt(r.seconds)} | {_fmt(r.it_s, 2)} | {_fmt(r.extra_s)} | "
        f"{_fmt(r.vram_mib, 0)} | {_fmt(r.rss_mib, 0)} | {_fmt(r.first_image_s, 1)} | {r.note} |"
        for r in rows
    ]
    return "\n".join(head + lines) + "\n"


def parse_config(argv: list[str]) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="default: gpu with CUDA, else cpu")
    parser.add_argument("--only", action="append", choices=sorted(SIZES), help="models to run (repeatable)")
    parser.add_argument("--cases", help=f"comma-separated, from: {','.join(ALL_CASES)}")
    parser.add_argument("--quick", action="store_true", help="2 images per figure, 1 for the 1-step jobs")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument(
        "--server-args", default="", help='extra webui.py flags, e.g. --server-args="--compile"'
    )
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every server (its config.json); VALUE is JSON or a string")  # fmt: skip
    parser.add_argument("--no-diffusers", action="store_true", help="time Sumi alone")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "sumi-bench")
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="writes <out>.md and <out>.json"
    )
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset or ("gpu" if torch.cuda.is_available() else "cpu")]
    cases = args.cases.split(",") if args.cases else list(preset["cases"])
    unknown = [c for c in cases if c not in ALL_CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {', '.join(ALL_CASES)}")
    options: dict[str, Any] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--option wants KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    cfg = Config(
        models=args.only or list(preset["models"]),
        steps=args.steps or preset["steps"],
        runs=args.runs or (2 if args.quick else preset["runs"]),
        one_step_runs=1 if args.quick else preset["one_step_runs"],
        cases=cases,
        server_args=shlex.split(args.server_args),
        options=options,
        diffusers=not args.no_diffusers,
    )
    return cfg, args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    cfg, args = parse_config(argv)
    rows = run(cfg, args.cache_dir)
    env = environment(cfg, argv)
    table = markdown(env, rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table)
    args.out.with_suffix(".json").write_text(json.dumps({**env, "rows": [asdict(r) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
