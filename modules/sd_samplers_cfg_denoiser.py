"""A1111's `modules.sd_samplers_cfg_denoiser`: the `CFGDenoiser` class and the conditioning helpers.

`CFGDenoiser.combine_denoised(x_out, conds_list, uncond, cond_scale)` and
`combine_denoised_for_edit_model(x_out, cond_scale)` are override points: replacing them on the class, on
a sampler's `model_wrap_cfg`, or in a subclass changes the job's guidance (Sumi's sampling loop calls
them on A1111's row layout, see services/jobs/cfg_bridge.py). Calling the denoiser itself is not
supported: the loop is Sumi's.
"""

from modules.sumi.services.jobs.a1111_sampler import (
    CFGDenoiser,
    catenate_conds,
    pad_cond,
    subscript_cond,
)

__all__ = ["CFGDenoiser", "catenate_conds", "pad_cond", "subscript_cond"]
