"""Recent control maps, so the same picture through the same preprocessor and settings is detected once:
the cells of an X/Y/Z plot that vary only the ControlNet weight or guidance, a batch that repeats one
control image, a job run again, the preview followed by the generation."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

from modules.sumi.engine.controlnet.detect_args import Detection

DEFAULT_CAPACITY = 8  # maps; at most 8 x 2048 x 2048 x 3 bytes (100 MB)


def picture_key(image: np.ndarray) -> tuple[str, tuple[int, ...], str]:
    """A picture's identity: a digest of its pixels, its shape and its type."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()
    return digest, tuple(image.shape), str(image.dtype)


class DetectionCache:
    """The `capacity` most recently used detections, by a key the caller builds (picture, preprocessor,
    settings, weight files and device); maps are handed out as copies."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._found: OrderedDict[Hashable, Detection] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_detect(self, key: Hashable, detect: Callable[[], Detection]) -> Detection:
        with self._lock:
            found = self._found.pop(key, None)
            if found is not None:
                self.hits += 1
                self._found[key] = found
                return Detection(found.map.copy(), found.pose)
        detection = detect()  # outside the lock: a slow network must not hold up other callers
        with self._lock:
            self.misses += 1
            self._found[key] = Detection(detection.map.copy(), detection.pose)
            while len(self._found) > max(0, self.capacity):
                self._found.popitem(last=False)
        return detection

    def clear(self) -> None:
        with self._lock:
            self._found.clear()
