"""A1111's `modules.sd_samplers`: the sampler name lists, from Sumi's sampler table.

Every Sumi sampler is listed (`all_samplers`, `samplers`, `samplers_for_img2img`) as a
`SamplerData` with A1111's display name, aliases and options (`scheduler`, `second_order`,
`uses_ensd`). `samplers_map` maps every lower-cased name and alias to the display name.

`create_sampler(name, model)` (and `SamplerData.constructor(model)`) build A1111's sampler object, whose
`model_wrap_cfg` is a `sd_samplers_cfg_denoiser.CFGDenoiser`. Every job batch makes its sampler through
this module's `create_sampler` as it is at that moment, so an extension that wraps it (neutral-prompt)
changes the job: see services/jobs/a1111_sampler.py.
"""

from __future__ import annotations

from typing import Any

from modules import shared
from modules.sd_samplers_common import SamplerData
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.samplers import SAMPLERS, SCHEDULE_TYPES, find_sampler
from modules.sumi.services.jobs import a1111_sampler


def _constructor(name: str) -> Any:
    def construct(model: Any) -> a1111_sampler.A1111Sampler:
        return a1111_sampler.create_sampler(name, model, all_samplers_map[name])

    return construct


all_samplers: list[SamplerData] = [
    SamplerData(s.name, _constructor(s.name), list(s.aliases), dict(s.options)) for s in SAMPLERS
]
all_samplers_map: dict[str, SamplerData] = {x.name: x for x in all_samplers}
samplers: list[SamplerData] = all_samplers  # A1111 1.7+: every sampler shows on both tabs
samplers_for_img2img: list[SamplerData] = all_samplers
samplers_map: dict[str, str] = {key.lower(): x.name for x in all_samplers for key in (x.name, *x.aliases)}
samplers_hidden: set[str] = set()


def set_samplers() -> None:
    """A1111 rebuilds the lists after settings change; Sumi's are fixed."""


def find_sampler_config(name: str | None) -> SamplerData | None:
    """The sampler named `name` (display name or alias; an entry an extension put in `all_samplers_map`
    by its exact name, as A1111 looks them up), the first sampler for None, else None."""
    if name is None:
        return all_samplers[0]
    return all_samplers_map.get(name) or all_samplers_map.get(samplers_map.get(str(name).lower(), ""))


def visible_sampler_names() -> list[str]:
    """Sampler names to show, without those listed in opt `hide_samplers` (when that setting exists)."""
    app = shared.running_app()
    hidden = set(getattr(app.options, "hide_samplers", []) or []) if app is not None else set()
    return [x.name for x in samplers if x.name not in hidden]


def get_sampler_and_scheduler(
    sampler_name: str | None, scheduler_name: str | None, *, convert_automatic: bool = True
) -> tuple[str, str]:
    """(sampler, schedule type label), splitting old "<sampler> <schedule>" names; an unknown sampler
    gives the first one. With `convert_automatic` the sampler's own default schedule becomes "Automatic"."""
    try:
        spec, schedule = find_sampler(sampler_name, scheduler_name)
    except InvalidRequestError:
        spec, schedule = find_sampler(None, None)
    if convert_automatic and schedule.name == spec.default_schedule:
        return spec.name, SCHEDULE_TYPES[0].label
    return spec.name, schedule.label


def get_sampler_from_infotext(d: dict) -> str:
    return get_sampler_and_scheduler(d.get("Sampler", "Euler"), d.get("Schedule type"))[0]


def get_scheduler_from_infotext(d: dict) -> str:
    return get_sampler_and_scheduler(d.get("Sampler", "Euler"), d.get("Schedule type"))[1]


def create_sampler(name: str, model: Any) -> Any:
    """A1111's sampler object for `name` (`model_wrap_cfg` is its CFGDenoiser); a bad name is an error."""
    config = find_sampler_config(name)
    if config is None:
        raise ValueError(f"bad sampler name: {name}")
    if config.constructor is None:
        raise ValueError(f"sampler {name} has no constructor")
    return config.constructor(model)


# Jobs build their sampler through whatever `create_sampler` is when the batch starts (a global lookup
# here, so an extension's replacement of this module's attribute is what runs).
a1111_sampler.use_factory(lambda name, model: create_sampler(name, model))
