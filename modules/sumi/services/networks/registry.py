"""Extra networks: `<name:args>` tags in prompts and the handlers that apply them (A1111's registry).

Tags are removed from the positive prompts before encoding (negative prompts keep them as text, as in
A1111); the networks of a batch come from its first prompt. Each handler (`lora`, `hypernet`, or one an
extension registers) is activated with the tags addressed to it — or with none, so it can switch
itself off — and deactivated after the job. Sumi's own handlers do not change the model themselves:
they give the job an engine extension (`set_engine_extension`) whose patch scope applies and restores
their networks around each batch.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from modules.sumi.engine.extensions import Extension
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.networks.embeddings import Embedding

log = logging.getLogger(__name__)

re_extra_net = re.compile(r"<(\w+):([^>]+)>")


@dataclass
class ExtraNetworkParams:
    """One tag's arguments: `<lora:name:0.8:te=0.5>` -> items ["name", "0.8"], named {"te": "0.5"}."""

    items: list[str] = field(default_factory=list)
    positional: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str) -> ExtraNetworkParams:
        items = text.split(":")
        positional, named = [], {}
        for item in items:
            parts = item.split("=")
            if len(parts) == 2:
                named[parts[0]] = parts[1]
            else:
                positional.append(item)
        return cls(items, positional, named)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExtraNetworkParams) and self.items == other.items


class ExtraNetwork:
    """Base class for a tag handler (A1111 API): subclasses implement activate and deactivate."""

    def __init__(self, name: str) -> None:
        self.name = name

    def activate(self, p: Any, params_list: list[ExtraNetworkParams]) -> None:
        raise NotImplementedError

    def deactivate(self, p: Any) -> None:
        raise NotImplementedError

    def bundled_embeddings(self) -> dict[str, Embedding]:
        """Embeddings the networks of the last activation bring (a LoRA file's bundled embeddings)."""
        return {}


ExtraNetworkData = dict[str, list[ExtraNetworkParams]]


def parse_prompt(prompt: str) -> tuple[str, ExtraNetworkData]:
    """The prompt without its tags, and the tags' arguments by network type (A1111 semantics)."""
    res: ExtraNetworkData = defaultdict(list)

    def found(m: re.Match) -> str:
        res[m.group(1)].append(ExtraNetworkParams.from_text(m.group(2)))
        return ""

    return re.sub(re_extra_net, found, prompt), res


def parse_prompts(prompts: list[str]) -> tuple[list[str], ExtraNetworkData]:
    """All prompts without tags; the networks come from the first prompt only, as A1111 does."""
    stripped, data = [], None
    for prompt in prompts:
        text, found = parse_prompt(prompt)
        data = found if data is None else data
        stripped.append(text)
    return stripped, data or defaultdict(list)


class ExtraNetworkRegistry:
    """The App's handlers by tag name; activation reports unknown tag types as warnings."""

    def __init__(self) -> None:
        self.handlers: dict[str, ExtraNetwork] = {}
        self.aliases: dict[str, str] = {}

    def register(self, network: ExtraNetwork, *aliases: str) -> None:
        self.handlers[network.name] = network
        for alias in aliases:
            self.aliases[alias] = network.name

    def unregister_all(self) -> None:
        self.handlers.clear()
        self.aliases.clear()

    def lookup(self, name: str) -> ExtraNetwork | None:
        return self.handlers.get(self.aliases.get(name, name))

    def activate(self, p: Any, data: ExtraNetworkData) -> list[str]:
        """Activate every handler (with [] when not mentioned); returns warnings for unknown tag types."""
        by_handler: dict[str, list[ExtraNetworkParams]] = defaultdict(list)
        warnings = []
        for name, params in data.items():
            handler = self.lookup(name)
            if handler is None:
                warnings.append(f"Unknown extra network type <{name}:...>: ignored")
                continue
            by_handler[handler.name].extend(params)
        for name, handler in self.handlers.items():
            self._call(handler, "activate", p, by_handler.get(name, []), warnings)
        return warnings

    def bundled_embeddings(self) -> dict[str, Embedding]:
        """The embeddings the handlers' last activation brings, first handler first."""
        found: dict[str, Embedding] = {}
        for handler in self.handlers.values():
            getter = getattr(handler, "bundled_embeddings", None)  # extensions' handlers may lack it
            embeddings = cast(dict[str, Embedding], getter() if callable(getter) else {})
            for name, embedding in embeddings.items():
                found.setdefault(name, embedding)
        return found

    def deactivate(self, p: Any) -> list[str]:
        warnings: list[str] = []
        for handler in self.handlers.values():
            self._call(handler, "deactivate", p, None, warnings)
        return warnings

    @staticmethod
    def _call(
        handler: ExtraNetwork,
        method: str,
        p: Any,
        params: list[ExtraNetworkParams] | None,
        warnings: list[str],
    ) -> None:
        """A failing handler is reported and skipped; the job goes on (A1111 does the same)."""
        try:
            getattr(handler, method)(p) if params is None else getattr(handler, method)(p, params)
        except Exception as exc:
            log.exception("Extra network %s.%s failed", handler.name, method)
            warnings.append(f"Extra network {handler.name} failed to {method}: {exc}")


def sumi_model(model: Any) -> SDModel | None:
    """The SDModel behind `p.sd_model`: Sumi's own, or the A1111 view extensions see."""
    if isinstance(model, SDModel):
        return model
    inner = getattr(model, "sumi_model", None)
    return inner if isinstance(inner, SDModel) else None


def set_engine_extension(p: Any, name: str, extension: Extension | None) -> None:
    """Give the job `p` the engine extension `name` for its next batches (None takes it away)."""
    extensions = getattr(p, "engine_extensions", None)
    if extensions is None:  # a processing object built without Sumi's field
        extensions = {}
        p.engine_extensions = extensions
    if extension is None:
        extensions.pop(name, None)
    else:
        extensions[name] = extension
