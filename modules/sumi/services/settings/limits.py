"""The hard bounds of a job's values: what the HTTP API's schema states and the Limits settings may
not exceed.

The live limits are settings (`max_image_size`, `max_steps`, `max_batch_size`, `max_batch_count`,
`max_prompt_length`), checked for every job by the generation service; these constants are their
ceilings, so a schema-driven client knows the widest a request can ever be.
"""

from __future__ import annotations

MAX_SEED = 2**64 - 1  # what torch's generators take; -1 means "random"
MIN_IMAGE_SIDE = 64
IMAGE_SIDE_CEILING = 16384  # pixels; a multiple of 8
STEPS_CEILING = 10_000
BATCH_SIZE_CEILING = 1_000
BATCH_COUNT_CEILING = 10_000
CFG_SCALE_MAX = 100.0
PROMPT_LENGTH_CEILING = 1_000_000  # characters
DEFAULT_MAX_PROMPT_LENGTH = 20_000  # characters: ~5,000 tokens, far above any real prompt
# characters of one base64 image in a request (img2img's init images and mask); the request body limit
# (--max-request-body-mb) and the 64-megapixel decode limit apply too
BASE64_IMAGE_CEILING = 256 * 1024 * 1024
