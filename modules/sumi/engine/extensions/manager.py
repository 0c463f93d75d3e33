"""The extensions of one batch: their hooks in a fixed order, and one patch scope for all their patches."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from modules.sumi.engine.extensions.hooks import Extension, HookPoint, PromptEncoder, StartingNoise
from modules.sumi.engine.extensions.patches import PatchScope, release_residents
from modules.sumi.engine.model import SDModel


class ExtensionManager:
    """Runs hooks by point in (order, extension added, method defined) order, and enters every
    extension's patch together (`patched`). With no extension a hook point costs one dict lookup."""

    def __init__(self, extensions: Iterable[Extension] = ()) -> None:
        self._extensions: list[Extension] = []
        self._hooks: dict[HookPoint, list[Callable[[Any], None]]] = {}
        for extension in extensions:
            self.add(extension)

    @property
    def extensions(self) -> tuple[Extension, ...]:
        return tuple(self._extensions)

    def add(self, extension: Extension) -> None:
        key = extension.resident_key
        if key is not None and any(e.resident_key == key for e in self._extensions):
            raise ValueError(f"two extensions claim the resident patch {key!r}; give one of them all of it")
        self._extensions.append(extension)
        self._hooks = self._ordered_hooks()

    def _ordered_hooks(self) -> dict[HookPoint, list[Callable[[Any], None]]]:
        entries = [
            (spec.order, index, position, spec.point, function)
            for index, extension in enumerate(self._extensions)
            for position, (spec, function) in enumerate(extension.hooks())
        ]
        entries.sort(key=lambda entry: entry[:3])
        ordered: dict[HookPoint, list[Callable[[Any], None]]] = {}
        for _, _, _, point, function in entries:
            ordered.setdefault(point, []).append(function)
        return ordered

    def has(self, point: HookPoint) -> bool:
        return point in self._hooks

    def run(self, point: HookPoint, context: Any) -> None:
        """Call every hook of `point` with `context` (the type `HOOK_CONTEXTS[point]` names)."""
        for function in self._hooks.get(point, ()):
            function(context)

    @contextmanager
    def patched(self, model: SDModel) -> Iterator[PatchScope]:
        """Enter every extension's patch on `model`, in the order they were added; leave them in reverse.
        Resident patches no extension claims are released first, so the model holds exactly this
        scope's patches."""
        release_residents(model, keep={e.resident_key for e in self._extensions if e.resident_key})
        scope = PatchScope(model)
        with ExitStack() as stack:
            for extension in self._extensions:
                stack.enter_context(extension.patch(scope))
            yield scope

    def encode_prompts(
        self, prompts: Sequence[str], negative_prompts: Sequence[str], encode: PromptEncoder
    ) -> None:
        """Give every extension the batch's prompts and their encoder (`Extension.encode_prompts`)."""
        for extension in self._extensions:
            extension.encode_prompts(prompts, negative_prompts, encode)

    def starting_noise(self, start: StartingNoise) -> torch.Tensor:
        """The starting noise after every extension's `starting_noise`, in the order they were added."""
        for extension in self._extensions:
            extension.starting_noise(start)
        return start.noise

    def conditioning_key(self) -> tuple[Hashable, ...]:
        """The extensions' `conditioning_key`s that are not None (part of a prompt cache key)."""
        keys = ((type(e).__name__, e.conditioning_key()) for e in self._extensions)
        return tuple(key for key in keys if key[1] is not None)

    def warnings(self) -> list[str]:
        """Every extension's warnings, without repeats, in order."""
        seen: dict[str, None] = {}
        for extension in self._extensions:
            seen.update(dict.fromkeys(getattr(extension, "warnings", ())))
        return list(seen)
