"""A1111's `modules.sd_samplers_kdiffusion`, as far as Sumi honours it: the denoiser class extensions
subclass to change the guidance, `CFGDenoiserKDiffusion` (and `CFGDenoiser`, which A1111 imports there):
sd-dynamic-thresholding ("CFG Scale Fix") overrides its `combine_denoised` and puts it on a sampler it
registers. Its `combine_denoised` gets A1111's rows (see `sd_samplers_cfg_denoiser`).

`KDiffusionSampler` is the class of the batch's sampler object (`p.sampler`): its `callback_state(self, d)`
replaced on the class runs once per step of a k-diffusion sampler (vectorscope-cc, resharpen), with
k-diffusion's dict, whose `x` and `denoised` the step goes on with. Its other methods, k-diffusion's
schedules and sampler functions are A1111's loop, which Sumi does not have (its sampling loop is its
own), so an extension that overrides them needs a port; asking for a missing name is an error naming it,
and the console says why.
"""

from __future__ import annotations

import logging

from modules.sumi.services.jobs.a1111_sampler import A1111Sampler, CFGDenoiser

log = logging.getLogger(__name__)


class CFGDenoiserKDiffusion(CFGDenoiser):
    """A1111 1.6+'s k-diffusion denoiser: Sumi's rows are already k-diffusion's x0 predictions."""


# A1111's sampler object class, as far as Sumi honours it: `callback_state(self, d)` replaced on the class
# is called once per step of a k-diffusion sampler (vectorscope-cc); its other methods are A1111's loop,
# which Sumi does not have (see services/jobs/a1111_sampler.py)
KDiffusionSampler = A1111Sampler


def __getattr__(name: str) -> object:
    if not name.startswith("__"):
        log.error(
            "modules.sd_samplers_kdiffusion.%s is A1111's k-diffusion sampler code, which Sumi does not have "
            "(its sampling loop is its own); the extension that asked for it needs a port to Sumi's hooks",
            name,
        )
    raise AttributeError(f"module 'modules.sd_samplers_kdiffusion' has no attribute {name!r} in Sumi")


__all__ = ["CFGDenoiser", "CFGDenoiserKDiffusion", "KDiffusionSampler"]
