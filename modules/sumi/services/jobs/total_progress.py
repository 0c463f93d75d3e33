"""A1111's second console progress bar, "Total progress" (setting `multiple_tqdm`): every sampling step of
the whole job (all batches, and the hires passes, which count as jobs of their own), under the per-image
"Sampling" bar."""

from __future__ import annotations

from tqdm import tqdm


class TotalProgress:
    """Created per job; `step` moves it to the state's position; `close` when the job ends."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def step(self, job_no: int, job_count: int, step: int, steps: int) -> None:
        """Step `step` of `steps` in job `job_no` (counted from 0) of `job_count`."""
        if not self.enabled or steps <= 0:
            return
        total = max(1, job_count) * steps
        if self.bar is None:
            self.bar = tqdm(total=total, desc="Total progress", position=1, dynamic_ncols=True)
        self.bar.total = total
        self.bar.n = min(total, job_no * steps + step)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
