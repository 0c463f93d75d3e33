"""A1111's `modules.deepbooru`: `model`, the DeepDanbooru tagger extensions call.

`model.tag(image)` gives the tags of Sumi's captioning service (A1111's TorchDeepDanbooru file in
models/torch_deepdanbooru, never downloaded), on the job worker with the Interrogate settings;
`tag_multi(image, force_disable_ranks=True)` leaves the `(tag:score)` ranks out. `load`, `start` and
`stop` are accepted: the service loads on use and moves the network back to RAM by
`interrogate_keep_models_in_memory`.
"""

from __future__ import annotations

import re
from typing import Any

re_special = re.compile(r"([\\()])")


class DeepDanbooru:
    def __init__(self) -> None:
        self.model = None

    def load(self) -> None:
        """The network loads on first use."""

    def start(self) -> None:
        """The network moves to the device for each call."""

    def stop(self) -> None:
        """The network moves back to RAM after each call unless it is to stay in VRAM."""

    def tag(self, pil_image: Any) -> str:
        return self.tag_multi(pil_image)

    def tag_multi(self, pil_image: Any, force_disable_ranks: bool = False) -> str:
        from modules import shared

        return shared.app().captioning.tag(pil_image, ranks=False if force_disable_ranks else None)


model = DeepDanbooru()
