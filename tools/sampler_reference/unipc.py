"""Reference trajectories for Sumi's UniPC from the UniPC authors' solver, which A1111 ships (with hooks
added) as `modules/models/diffusion/uni_pc/uni_pc.py` and runs as its "UniPC" sampler.

    python tools/sampler_reference/unipc.py /path/to/uni_pc.py > tests/fixtures/reference/unipc.json

`uni_pc.py`: A1111's file, or the authors' `example/stable-diffusion/ldm/models/diffusion/uni_pc/uni_pc.py`
(github.com/wl-zhao/UniPC; the same solver without A1111's hooks). Each case runs the solver as A1111's
`sd_samplers_timesteps_impl.unipc` does: SD's noise schedule, the model called at (t - 1/1000) * 1000,
data prediction, multistep, t_start = last timestep / 1000 + 1/1000 for img2img. The model is a fixed
smooth function of (x, timestep), so the trajectory depends only on the solver. The fixture in the repo
was written on 2026-12-06 from the authors' file at commit cf9de85.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

SUMI = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SUMI))

from modules.sumi.engine.sampling.schedules import ModelSigmas  # noqa: E402
from tests.engine.unipc_cases import CASES, a1111_timesteps, start_latents, toy_eps  # noqa: E402


def _load(path: Path):
    spec = importlib.util.spec_from_file_location("reference_uni_pc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(reference, case: dict) -> dict:
    alphas_cumprod = ModelSigmas.from_config({}).alphas_cumprod
    schedule = reference.NoiseScheduleVP("discrete", alphas_cumprod=alphas_cumprod)
    calls: list[float] = []

    def model(x, t_continuous):
        t_input = (t_continuous - 1.0 / schedule.total_N) * 1000.0
        calls.append(float(t_input[0]))
        return toy_eps(x, t_input)

    solver = reference.UniPC(model, schedule, predict_x0=True, thresholding=False, variant=case["variant"])
    timesteps = a1111_timesteps(case["steps"], case.get("run_steps"))
    t_start = timesteps[-1] / 1000 + 1 / 1000 if case.get("run_steps") else None
    with contextlib.redirect_stdout(io.StringIO()):  # the authors' solver prints every step's order
        x = solver.sample(
            start_latents(),
            steps=len(timesteps),
            t_start=t_start,
            skip_type=case["skip_type"],
            method="multistep",
            order=case["order"],
            lower_order_final=case["lower_order_final"],
        )
    return {**case, "model_timesteps": calls, "result": x.reshape(-1).tolist()}


def main() -> None:
    reference = _load(Path(sys.argv[1]))
    json.dump([_run(reference, case) for case in CASES], sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
