"""A1111's `modules.img2img`. Sumi has no img2img yet: the names exist so extensions load (adetailer
patches `process_batch` for a moment; agent-scheduler wraps `img2img`); calling them raises."""

from __future__ import annotations

from modules.sumi.util.unsupported import stand_in

img2img = stand_in("img2img.img2img()", "only txt2img jobs run for now")
process_batch = stand_in("img2img.process_batch()", "only txt2img jobs run for now")
