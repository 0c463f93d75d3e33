"""What `import pydantic` gives code in an extension folder: pydantic 2 with A1111 1.10's pydantic 1 manners.

A1111 1.10 ran pydantic 1; Sumi runs pydantic 2. Extensions define their own request, response and
storage models on `pydantic.BaseModel` the pydantic 1 way (agent-scheduler does), and two of its rules
changed in ways that stop them at import or at the first request:

- every model class had `Model.__config__` (extensions subclass it: `class Config(Model.__config__)`);
- a field typed `Optional[X]` with no default (`name: Optional[str] = Field(title="Name")`) was optional,
  default None; pydantic 2 makes it required.

Extension code's `pydantic` is the real module except for `BaseModel`, a subclass that restores both for
the classes derived from it. The models are still pydantic 2 models (FastAPI, `.dict()`, `.json()` and
class-based `Config` work as pydantic 2 allows), and `isinstance(x, BaseModel)` holds for every pydantic
model, Sumi's own included. Sumi's code never sees this module.
"""

from __future__ import annotations

import types
import typing
from types import ModuleType
from typing import Any

import pydantic
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

# Config keys a pydantic 1 style `Config` subclass may read back from `Model.__config__`.
_CONFIG_KEYS = frozenset(pydantic.ConfigDict.__annotations__)


def _allows_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    if isinstance(annotation, str):  # postponed annotation: read as pydantic 1 would have after evaluating
        text = annotation.replace(" ", "")
        return text.startswith(("Optional[", "typing.Optional[")) or "|None" in text or "None|" in text
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_allows_none(arg) for arg in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Annotated:
        return _allows_none(typing.get_args(annotation)[0])
    return False


def _implicit_none_defaults(namespace: dict[str, Any]) -> None:
    """pydantic 1: an Optional field without a default defaults to None (`Field(...)` stays required)."""
    for name, annotation in namespace.get("__annotations__", {}).items():
        if name.startswith("_") or not _allows_none(annotation):
            continue
        if typing.get_origin(annotation) is typing.ClassVar:
            continue
        value = namespace.get(name, PydanticUndefined)
        if value is PydanticUndefined:
            namespace[name] = None
        elif (
            isinstance(value, FieldInfo)
            and value.default is PydanticUndefined
            and value.default_factory is None
        ):
            value.default = None
            attributes_set = getattr(value, "_attributes_set", None)  # what pydantic merges into the field
            if isinstance(attributes_set, dict):
                attributes_set["default"] = None


class _V1ConfigView:
    """`Model.__config__`: a fresh class holding the model's config keys as attributes, as pydantic 1's."""

    def __get__(self, instance: Any, owner: type) -> type:
        config = getattr(owner, "model_config", {}) or {}
        values = {key: value for key, value in config.items() if key in _CONFIG_KEYS}
        return type("Config", (), values)


class _V1ModelMetaclass(ModelMetaclass):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> type:
        if namespace.get("__module__") != __name__:
            _implicit_none_defaults(namespace)
        return super().__new__(mcs, name, bases, namespace, **kwargs)

    def __instancecheck__(cls, instance: Any) -> bool:
        if cls is BaseModel:  # `isinstance(x, BaseModel)` in extension code: any pydantic model
            return isinstance(instance, pydantic.BaseModel)
        return super().__instancecheck__(instance)

    def __subclasscheck__(cls, subclass: type) -> bool:
        if cls is BaseModel:
            return issubclass(subclass, pydantic.BaseModel)
        return super().__subclasscheck__(subclass)


class BaseModel(pydantic.BaseModel, metaclass=_V1ModelMetaclass):
    """pydantic's BaseModel as A1111 1.10's extensions knew it (see the module's docstring)."""

    __config__: typing.ClassVar[Any] = _V1ConfigView()


class _CompatPydantic(ModuleType):
    def __getattr__(self, name: str) -> Any:
        return getattr(pydantic, name)


_module: ModuleType | None = None


def compat_pydantic() -> ModuleType:
    """What `import pydantic` gives code in an extension folder."""
    global _module
    if _module is None:
        module = _CompatPydantic("pydantic", pydantic.__doc__)
        module.__dict__.update(
            {
                "BaseModel": BaseModel,
                "__file__": pydantic.__file__,
                "__path__": list(getattr(pydantic, "__path__", [])),
                "__version__": pydantic.VERSION,
                "VERSION": pydantic.VERSION,
            }
        )
        _module = module
    return _module


def install(scripts: Any) -> None:
    """Give extension code the pydantic 1 manners (`scripts`: the App's ScriptService)."""
    scripts.imports.alias("pydantic", compat_pydantic)
