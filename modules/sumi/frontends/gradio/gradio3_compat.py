"""The `gradio` that extension code imports: Gradio 3 (A1111 1.10's 3.41) idioms on the running Gradio.

Sumi's own UI imports the real `gradio`; only modules in extension folders get this one (see
services/scripts/extension_imports.py, wired by `install`). Every component and layout class here is a
subclass of the real one, so the page renders it as that component and `isinstance` checks hold; each
takes Gradio 3's arguments and maps them (the table in docs/gradio3-compat.md):

- removed classes: `Box` -> `Group`, `Variable` -> `State`, `inputs.*` / `outputs.*` -> the components,
  `components.IOComponent` -> `Component`; `Image(tool="sketch"|"color-sketch")` -> an `ImageEditor`
  whose value is Gradio 3's (`{"image", "mask"}`, or the drawn image);
- renamed arguments: `source=` -> `sources=[...]`, `default=` -> `value=`, `Files`/`File(type="file")` ->
  `"filepath"` (a str with `.name`), `Column(scale=0.5)` -> an int scale, `brush_radius`/`brush_color` ->
  `brush=Brush(...)`;
- `Component.update(...)` -> `gr.update(...)` with the same mapping; `.style(...)` sets what still
  exists (height, width, columns/grid, rows, container, equal_height, object_fit, preview, full_width,
  size, text_align) and ignores the rest;
- events (and `.then`/`.success`/`.failure`, `Blocks.load`): `_js=` -> `js=`, `show_progress=bool` ->
  "full"/"hidden", `api_name=False` -> a private endpoint; `status_tracker` dropped;
- a `Dropdown` value outside its choices is kept (Gradio 3 never checked it);
- known Gradio-3-only arguments with no effect now (`tooltip`, `optional`, `shape`, ...) are dropped
  quietly; any other unknown argument is dropped with one warning line naming the extension.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import gradio as gr
import numpy as np
from gradio import component_meta
from gradio.blocks import Block
from gradio.blocks_events import BLOCKS_EVENTS
from gradio.components.label import LabelData
from gradio.events import Dependency
from pydantic import model_validator

from modules.sumi.services.scripts.extension_imports import extension_of

log = logging.getLogger(__name__)

# Gradio-3-era arguments with no counterpart here, dropped without a warning (they changed nothing
# essential in A1111's UI). Anything else unknown is dropped with a warning.
QUIET = frozenset(
    {
        "optional",
        "tooltip",
        "shape",
        "invert_colors",
        "mask_opacity",
        "show_share_button",
        "show_download_button",
        "show_edit_button",
        "show_copy_button",
        "max_rows",
        "max_cols",
        "overflow_row_behaviour",
        "status_tracker",
        "theme",
        "css",
        "mobile_collapse",
        "interactive",  # on layouts (components keep theirs)
    }
)
SKETCH_TOOLS = ("sketch", "color-sketch")
# Gradio 3.41's positional order where it differs from the running Gradio's
GR3_POSITIONAL: dict[str, tuple[str, ...]] = {
    "Textbox": ("value", "lines", "max_lines", "placeholder", "label"),
    "Button": ("value", "variant"),
    "Dropdown": ("choices", "value", "type", "multiselect"),
    "Radio": ("choices", "value", "type", "label"),
    "CheckboxGroup": ("choices", "value", "type", "label"),
    "Checkbox": ("value", "label"),
    "Number": ("value", "label"),
    "Slider": ("minimum", "maximum", "value", "step"),
    "Image": ("value",),
    "Gallery": ("value", "label"),
    "Row": ("variant",),
    "Column": ("scale", "min_width", "variant"),
    "Tab": ("label", "id"),
    "TabItem": ("label", "id"),
    "Accordion": ("label", "open"),
}
_warned: set[tuple[str, str, tuple[str, ...]]] = set()


# -- naming the extension ------------------------------------------------------------------------------
def calling_extension() -> str:
    """The extension whose code is calling (the nearest frame of a module in an extension folder)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = extension_of(frame.f_globals)
        if name is not None:
            return name
        frame = frame.f_back
    return "an extension"


def _drop(where: str, names: list[str]) -> None:
    """One warning line per extension, call site kind and set of dropped arguments."""
    if not names:
        return
    extension = calling_extension()
    key = (extension, where, tuple(sorted(names)))
    if key in _warned:
        return
    _warned.add(key)
    log.warning(
        "Extension %s: gradio %s does not take %s in Gradio %s; dropped",
        extension,
        where,
        ", ".join(f"{n}=" for n in sorted(names)),
        gr.__version__,
    )


# -- argument mapping -------------------------------------------------------------------------------------
@functools.cache
def _params(fn: Callable[..., Any]) -> tuple[str, ...]:
    names = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
    return tuple(n for n in names if n not in ("self", "block"))


def _gradio_class(cls: type) -> type:
    return next(c for c in cls.__mro__ if c.__module__.startswith("gradio."))


def _keep_known(real: type, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    known = set(_params(real.__init__))
    unknown = [k for k in kwargs if k not in known]
    _drop(where, [k for k in unknown if k not in QUIET])
    return {k: v for k, v in kwargs.items() if k in known}


def _int_scale(scale: Any) -> Any:
    """Gradio 3 let extensions pass float scales; the running Gradio takes ints (0 = no growth)."""
    if isinstance(scale, float):
        return max(1, round(scale)) if scale > 0 else 0
    return scale


def _choice_values(choices: Any) -> list[Any]:
    return [c[1] if isinstance(c, (tuple, list)) and len(c) == 2 else c for c in choices or []]


def _map_arguments(real: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Gradio 3 argument names and values -> the running Gradio's, for class `real`."""
    kw = dict(kwargs)
    if "default" in kw and "value" not in kw:
        kw["value"] = kw.pop("default")
    source = kw.pop("source", None)
    takes_sources = "sources" not in kw and "sources" in _params(real.__init__)
    if source is not None and source != "canvas" and takes_sources:  # canvas: the editor's default
        kw["sources"] = [source]
    if "scale" in kw:
        kw["scale"] = _int_scale(kw["scale"])
    if issubclass(real, gr.File) and kw.get("type") in ("file", "bytes"):
        kw["type"] = "filepath" if kw["type"] == "file" else "binary"
    if issubclass(real, gr.ImageEditor):
        radius, color = kw.pop("brush_radius", None), kw.pop("brush_color", None)
        if (radius is not None or color is not None) and "brush" not in kw:
            kw["brush"] = gr.Brush(
                default_size=int(radius) if radius else "auto",
                colors=[color] if color else None,
                default_color=color,
            )
    if issubclass(real, gr.Dropdown) and "allow_custom_value" not in kw:
        value = kw.get("value")
        values = value if isinstance(value, list) else [value]
        choices = _choice_values(kw.get("choices"))
        if any(v is not None and v not in choices for v in values):
            kw["allow_custom_value"] = True
    if issubclass(real, gr.CheckboxGroup) and "value" in kw:
        kw["value"] = _checkbox_group_value(kw["value"])
    if issubclass(real, gr.Image) and not issubclass(real, gr.ImageEditor):
        kw.pop("tool", None)  # "editor"/"select": the plain image's own tools
    mirror = kw.pop("mirror_webcam", None)
    if mirror is not None and "webcam_options" in _params(real.__init__) and "webcam_options" not in kw:
        kw["webcam_options"] = gr.WebcamOptions(mirror=bool(mirror))
    return kw


def _bind_positional(real: type, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    order = GR3_POSITIONAL.get(name) or _params(real.__init__)
    if len(args) > len(order):
        raise TypeError(f"gradio.{name}() takes at most {len(order)} positional arguments")
    return {**dict(zip(order, args, strict=False)), **kwargs}


def _update(real: type, **kwargs: Any) -> dict[str, Any]:
    """`Component.update(...)` of Gradio 3: a `gr.update` with the class's argument mapping."""
    kw = _map_arguments(real, kwargs)
    return gr.update(**_keep_known(real, kw, f"{real.__name__}.update()"))


# -- .style() ----------------------------------------------------------------------------------------------
def _style(self: Any, **kwargs: Any) -> Any:
    """Gradio 3's `.style(...)`: sets the properties that still exist, ignores the rest; returns self."""
    real = _gradio_class(type(self))
    params = set(_params(real.__init__))
    values = dict(kwargs)
    grid = values.pop("grid", None)
    if grid is not None and "columns" not in values:
        values["columns"] = grid[-1] if isinstance(grid, (list, tuple)) and grid else grid
    full_width = values.pop("full_width", None)
    if full_width is not None and "scale" in params:
        values.setdefault("scale", 1 if full_width else 0)
    if isinstance(values.get("columns"), (list, tuple)):
        values["columns"] = values["columns"][-1] if values["columns"] else None
    for key, value in values.items():
        if key in params and key not in ("value", "render", "key"):
            setattr(self, key, _int_scale(value) if key == "scale" else value)
    return self


# -- events ------------------------------------------------------------------------------------------------
def _event_kwargs(listener: Callable[..., Any], kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    kw = dict(kwargs)
    if "_js" in kw:
        js = kw.pop("_js")
        kw.setdefault("js", js)
    for old in ("_preprocess", "_postprocess"):
        if old in kw:
            kw.setdefault(old[1:], kw.pop(old))
    if isinstance(kw.get("show_progress"), bool):
        kw["show_progress"] = "full" if kw["show_progress"] else "hidden"
    if kw.get("api_name") is False:
        kw["api_name"] = None
        kw.setdefault("api_visibility", "private")
    known = set(_params(listener))
    unknown = [k for k in kw if k not in known]
    _drop(where, [k for k in unknown if k not in QUIET])
    return {k: v for k, v in kw.items() if k in known}


def _wrap_dependency(dep: Any) -> Any:
    """`.then` / `.success` / `.failure` of a Dependency take Gradio 3's event arguments too."""
    if not isinstance(dep, Dependency):
        return dep
    for name in ("then", "success", "failure"):
        chained = getattr(dep, name, None)
        if chained is not None:
            setattr(dep, name, _compat_listener(chained, name))
    return dep


def _compat_listener(listener: Callable[..., Any], name: str) -> Callable[..., Any]:
    target = listener.func if isinstance(listener, functools.partial) else listener

    def call(*args: Any, **kwargs: Any) -> Any:
        return _wrap_dependency(listener(*args, **_event_kwargs(target, kwargs, f".{name}()")))

    return call


def _event_method(real: type, event: str) -> Callable[..., Any]:
    original = getattr(real, event)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        kw = _event_kwargs(original, kwargs, f"{real.__name__}.{event}()")
        return _wrap_dependency(original(self, *args, **kw))

    method.__name__ = event
    for name in ("event_name", "has_trigger", "callback", "connection", "event_specific_args"):
        if hasattr(original, name):  # what `gr.on([component.change], ...)` reads of a trigger
            setattr(method, name, getattr(original, name))
    return method


def with_gradio3_events(cls: type) -> type:
    """Give `cls`, a subclass of a Gradio class made elsewhere for extensions (A1111's `ToolButton` and
    the other `modules.ui_components`), Gradio 3's event arguments (`_js=`, `show_progress=bool`, ...);
    Gradio 6's arguments pass unchanged."""
    real = _gradio_class(cls)
    events = [getattr(e, "event_name", e) for e in getattr(real, "EVENTS", None) or []]
    for event in events:
        setattr(cls, event, _event_method(real, event))
    return cls


@contextmanager
def gradio3_blocks() -> Iterator[None]:
    """Every component and layout made in the `with` block (by Sumi, for extension code: the parts of
    `ui_toprow.Toprow`) behaves as extension code expects of Gradio 3 objects: its class becomes the
    compat class of its Gradio class (`.click(..., _js=...)`, `show_progress=False`, `.update`, `.style`).
    It renders, serializes and passes `isinstance` checks as before."""
    from gradio.context import get_blocks_context

    context = get_blocks_context()
    before = set(context.blocks) if context is not None else set()
    yield
    if context is None:
        return
    for block_id, block in list(context.blocks.items()):
        if block_id not in before and type(block).__module__.startswith("gradio."):
            block.__class__ = _gradio3_events_class(type(block))


@functools.cache
def _gradio3_events_class(real: type) -> type:
    """`real` with Gradio 3's event arguments, `.update` and `.style` (a plain subclass: an object of
    `real` can take it as its class)."""
    attrs: dict[str, Any] = {"__module__": __name__, "__qualname__": real.__name__}
    attrs["update"] = staticmethod(functools.partial(_update, real))
    attrs["style"] = _style
    events = [getattr(e, "event_name", e) for e in getattr(real, "EVENTS", None) or []]
    for event in events:
        attrs[event] = _event_method(real, event)
    with _no_pyi_stubs():
        return type(real)(real.__name__, (real,), attrs)


# -- the classes ------------------------------------------------------------------------------------------
@contextmanager
def _no_pyi_stubs() -> Iterator[None]:
    """Gradio writes a `.pyi` stub beside the source of each component class defined; not for these
    classes nor for the subclasses extensions define (A1111 turns that off for extensions too)."""
    original = component_meta.create_or_modify_pyi
    component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        component_meta.create_or_modify_pyi = original


class _Gradio3Meta(type):
    """The compat classes' metaclass: a real component passes `isinstance(x, gr.Slider)` (extensions
    test the components Sumi makes), and no `.pyi` stubs are written for them or their subclasses."""

    def __new__(mcls, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        with _no_pyi_stubs():
            return super().__new__(mcls, name, bases, attrs)

    def __instancecheck__(cls, instance: Any) -> bool:
        real = cls.__dict__.get("_gradio3_real")
        if real is not None:  # by the MRO: ABCMeta's check would come back here through __subclasses__
            return real in type(instance).__mro__
        return super().__instancecheck__(instance)

    def __subclasscheck__(cls, subclass: type) -> bool:
        real = cls.__dict__.get("_gradio3_real")
        if real is not None:
            return isinstance(subclass, type) and real in subclass.__mro__
        return super().__subclasscheck__(subclass)


@functools.cache
def _metaclass(real_meta: type) -> type:
    return type(f"Gradio3{real_meta.__name__}", (_Gradio3Meta, real_meta), {})


class Gradio3Component:
    """Mixed into every compat class: renders as the real class; Gradio 3's `.style` and `.update`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # Gradio reads a component's props from its __init__ signature
            real = _gradio_class(cls)
            cls.__init__.__signature__ = inspect.signature(real.__init__)  # type: ignore[attr-defined]

    def get_block_name(self) -> str:
        real = _gradio_class(type(self))
        own = next(c for c in real.__mro__ if "get_block_name" in c.__dict__)
        if own is not Block:  # e.g. Tab renders as "tabitem", HTML as "html"
            return own.__dict__["get_block_name"](self)
        return (real.__base__ if hasattr(real, "is_template") else real).__name__.lower()  # type: ignore[union-attr]

    def get_block_class(self) -> str:
        return self.get_block_name()

    style = _style


def _make_class(real: type, name: str) -> type:
    attrs: dict[str, Any] = {"__module__": __name__, "__qualname__": name, "_gradio3_real": real}
    attrs["update"] = staticmethod(functools.partial(_update, real))
    if issubclass(real, (gr.Dropdown, gr.Radio)):
        attrs["preprocess"] = _choice_preprocess
    if issubclass(real, gr.CheckboxGroup):
        attrs["preprocess"] = _checkbox_group_preprocess
    if issubclass(real, gr.Label):
        attrs["data_model"] = _Gradio3LabelData
    cls = _metaclass(type(real))(name, (Gradio3Component, real), attrs)
    # events after creation: Gradio's metaclasses put their own listeners on every class they make
    events = [getattr(e, "event_name", e) for e in getattr(real, "EVENTS", None) or []]
    for event in [*events, *(BLOCKS_EVENTS if issubclass(real, gr.Blocks) else [])]:
        setattr(cls, event, _event_method(real, event))
    cls.__init__ = _make_init(real, name)  # set after creation: Gradio's metaclass would drop positionals
    cls.__init__.__signature__ = inspect.signature(real.__init__)  # type: ignore[attr-defined]
    return cls


def _make_init(real: type, name: str) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kw = _map_arguments(real, _bind_positional(real, name, args, kwargs))
        if (
            kw.get("visible") is False
            and not issubclass(real, gr.Tab)
            and "visible" in _params(real.__init__)
        ):
            kw["visible"] = "hidden"  # Gradio 3 drew an invisible component, hidden; page scripts look it up
        if issubclass(real, gr.Tabs):  # Gradio 3 wrapped a long tab row; Gradio 6 hides the rest in a menu
            kw.setdefault("overflow_behavior", "wrap")
        empty_range = _empty_slider_range(real, kw)
        real.__init__(self, **_keep_known(real, kw, f"{name}()"))
        if empty_range is not None:
            self.maximum = empty_range

    return __init__


def _empty_slider_range(real: type, kw: dict[str, Any]) -> Any:
    """Gradio 3 took a slider whose range is empty (`minimum=0, maximum=0` until a video is loaded, as
    mov2mov's frame slider); Gradio 6 refuses one. It is made with a range of one step, then given its
    own maximum back; the maximum it is given (None when the range is not empty)."""
    if not issubclass(real, gr.Slider):
        return None
    low, high = kw.get("minimum", 0), kw.get("maximum", 100)
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low < high:
        return None
    kw["maximum"] = low + (kw.get("step") or 1)
    return high


class _Gradio3LabelData(LabelData):
    """Gradio 3's Label took any value as an input: A1111's hidden `dummy_component = gr.Label(visible=False)`
    carries what a page function put there (`submit`'s task id, a tab index); Gradio 6 accepts only its
    `{label, confidences}` dict. A plain value is read as the label, which `preprocess` passes on."""

    @model_validator(mode="before")
    @classmethod
    def _plain_value(cls, value: Any) -> Any:
        return {"label": value} if isinstance(value, (str, int, float)) else value


def _choice_preprocess(self: Any, payload: Any) -> Any:
    """A Dropdown's or Radio's value: Gradio 3 passed one outside the choices through (choices are often
    filled in later, or renamed in a new version of the extension); Gradio 6 fails the whole event."""
    try:
        return _gradio_class(type(self)).preprocess(self, payload)
    except gr.Error:
        return payload if self.type == "value" else None


def _checkbox_group_value(value: Any) -> Any:
    """Gradio 3 took one value for a list of one, and `False` (regional-prompter's) or "" for none."""
    if value is None or callable(value) or isinstance(value, (list, tuple)):
        return value
    return [] if value in (False, "") else [value]


def _checkbox_group_preprocess(self: Any, payload: Any) -> Any:
    """Gradio 3 passed what the page sent through, unchecked (a value outside the choices, or not a list)."""
    values = payload if isinstance(payload, list) else _checkbox_group_value(payload) or []
    try:
        return _gradio_class(type(self)).preprocess(self, values)
    except gr.Error:
        if self.type == "value":
            return values
        known = _choice_values(self.choices)
        return [known.index(v) for v in values if v in known]


def _to_array(image: Any) -> Any:
    return None if image is None else np.asarray(image)


def _sketch_mask(layers: list[Any], size: tuple[int, int] | None) -> Any:
    """White where any layer was drawn on, black elsewhere (Gradio 3's sketch mask)."""
    from PIL import Image as PILImage

    painted = None
    for layer in layers or []:
        arr = np.asarray(layer)
        alpha = (
            arr[..., 3] > 0
            if arr.ndim == 3 and arr.shape[2] == 4
            else arr.reshape(arr.shape[:2] + (-1,)).any(-1)
        )
        painted = alpha if painted is None else painted | alpha
    if painted is None:
        if size is None:
            return None
        painted = np.zeros((size[1], size[0]), dtype=bool)
    return PILImage.fromarray(np.where(painted, 255, 0).astype(np.uint8)).convert("RGB")


class _SketchMixin:
    """`Image(tool="sketch")` (value `{"image", "mask"}`) and `tool="color-sketch"` (the drawn image)."""

    gradio3_tool = "sketch"

    def preprocess(self, payload: Any) -> Any:
        value = super().preprocess(payload)  # type: ignore[misc]
        if value is None:
            return None
        background = value.get("background")
        drawn = _sketch_mask(value.get("layers") or [], None)
        if background is None and (drawn is None or not np.asarray(drawn).any()):
            return None  # an empty canvas: Gradio 3's None
        if self.gradio3_tool == "color-sketch":
            return value.get("composite")
        size = getattr(background, "size", None) if background is not None else None
        if isinstance(background, np.ndarray):
            size = (background.shape[1], background.shape[0])
        mask = _sketch_mask(value.get("layers") or [], size)
        if getattr(self, "type", "numpy") == "numpy":
            return {"image": background, "mask": _to_array(mask)}
        return {"image": background, "mask": mask}


def _image_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    tool = kwargs.get("tool")
    if tool in SKETCH_TOOLS and not issubclass(cls, gr.ImageEditor):
        editor = object.__new__(_compat().SketchImage)
        editor.gradio3_tool = tool
        kwargs.pop("tool")
        kwargs.setdefault("image_mode", "RGB")  # Gradio 3's Image default (the editor's is RGBA)
        editor.__init__(*args, **kwargs)
        return editor
    return object.__new__(cls)


# -- the module extensions import -------------------------------------------------------------------------
COMPONENTS = [
    "Accordion",
    "AnnotatedImage",
    "Audio",
    "BarPlot",
    "Button",
    "Chatbot",
    "Checkbox",
    "CheckboxGroup",
    "Code",
    "ColorPicker",
    "Column",
    "DataFrame",
    "Dataframe",
    "Dataset",
    "DateTime",
    "DownloadButton",
    "Dropdown",
    "File",
    "FileExplorer",
    "Files",
    "Gallery",
    "Group",
    "HTML",
    "HighlightedText",
    "Image",
    "ImageEditor",
    "JSON",
    "Label",
    "LinePlot",
    "Markdown",
    "Model3D",
    "Number",
    "Plot",
    "Radio",
    "Row",
    "ScatterPlot",
    "Slider",
    "State",
    "Tab",
    "TabItem",
    "Tabs",
    "Text",
    "TextArea",
    "Textbox",
    "UploadButton",
    "Video",
    "Blocks",
]
ALIASES = {
    "Box": "Group",
    "Variable": "State",
    "Json": "JSON",
    "Checkboxgroup": "CheckboxGroup",
    "Highlightedtext": "HighlightedText",
    "Annotatedimage": "AnnotatedImage",
    "Sketchpad": "ImageEditor",
}
OUTPUT_ALIASES = {"KeyValues": "JSON", "Carousel": "Gallery", "Image3D": "Model3D"}


class _Namespace(ModuleType):
    """A module that looks its names up in `first`, then in `fallback` (a real gradio module)."""

    def __init__(self, name: str, first: dict[str, Any], fallback: str) -> None:
        super().__init__(name)
        self.__dict__.update(first)
        self._fallback = fallback

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        import importlib

        real = importlib.import_module(self._fallback)
        try:
            return getattr(real, name)
        except AttributeError:
            try:
                return importlib.import_module(f"{self._fallback}.{name}")
            except ImportError:
                raise AttributeError(f"module 'gradio' has no attribute {name!r}") from None


@functools.cache
def _compat() -> Any:
    """The compat `gradio` module (built once, on first use)."""
    classes: dict[str, Any] = {}
    for name in COMPONENTS:
        real = getattr(gr, name, None)
        if isinstance(real, type):
            classes[name] = _make_class(real, name)
    image = classes["Image"]
    image.__new__ = _image_new
    with _no_pyi_stubs():
        meta = _metaclass(component_meta.ComponentMeta)
        sketch = meta("SketchImage", (_SketchMixin, classes["ImageEditor"]), {"__module__": __name__})
    for name, target in ALIASES.items():
        classes[name] = classes[target]
    components = _Namespace(
        "gradio.components",
        {**classes, "IOComponent": gr.components.Component, "FormComponent": gr.components.FormComponent},
        "gradio.components",
    )
    io_classes = {**classes, **{k: classes[v] for k, v in OUTPUT_ALIASES.items()}}
    module = _Namespace(
        "gradio",
        {
            **classes,
            "SketchImage": sketch,
            "components": components,
            "inputs": _Namespace("gradio.inputs", io_classes, "gradio.components"),
            "outputs": _Namespace("gradio.outputs", io_classes, "gradio.components"),
            "update": gr.update,
            "__version__": gr.__version__,
            "__file__": gr.__file__,
            "__path__": list(getattr(gr, "__path__", [])),
            "is_gradio3_compat": True,
        },
        "gradio",
    )
    return module


@dataclass(eq=False)
class Gradio3Event:
    """An event as Gradio 3 code reads it in `demo.dependencies` / `demo.fns` that the page does not run:
    how A1111 wires a control Sumi wires its own way (`a1111_generate`: the Generate buttons). Its
    attributes are Gradio 3's `BlockFunction`'s (`fn`, `inputs`, `outputs`, ...), `dependency()` its
    entry of `demo.dependencies`. Components an extension binds from it are the page's own."""

    targets: list[Block]
    trigger: str
    inputs: list[Block]
    outputs: list[Block]
    fn: Callable[..., Any] | None = None
    js: str | None = None
    api_name: str | None = None
    preprocess: bool = True
    postprocess: bool = True
    inputs_as_dict: bool = False
    batch: bool = False
    max_batch_size: int = 4
    queue: bool | None = None
    total_runtime: float = 0
    total_runs: int = 0

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", "fn")

    def dependency(self) -> dict[str, Any]:
        """Gradio 3.41's dict of this event."""
        return {
            "targets": [t._id for t in self.targets],
            "trigger": self.trigger,
            "inputs": [c._id for c in self.inputs],
            "outputs": [c._id for c in self.outputs],
            "backend_fn": self.fn is not None,
            "js": self.js,
            "queue": self.queue,
            "api_name": self.api_name,
            "scroll_to_output": False,
            "show_progress": "full",
            "every": None,
            "batch": self.batch,
            "max_batch_size": self.max_batch_size,
            "cancels": [],
            "types": {"continuous": False, "generator": False},
            "collects_event_data": False,
            "trigger_after": None,
            "trigger_only_on_success": False,
        }


_DESCRIBED = "_sumi_gradio3_events"  # the page's list of described events


def describe_event(page: gr.Blocks, event: Gradio3Event) -> None:
    """Show `event` to Gradio 3 code reading `page` (`blocks_view`), after the page's own events."""
    setattr(page, _DESCRIBED, [*getattr(page, _DESCRIBED, []), event])


class Gradio3BlocksView(gr.Blocks):
    """The page's Blocks as Gradio 3 code reads it in `on_app_started(demo, app)`: the same object (one
    shared `__dict__`, so children, ids and config are the page's), but `.dependencies` is Gradio 3's list
    of event dicts (`{"targets": [ids], "trigger": "click", "inputs": [ids], "outputs": [ids], ...}`) and
    `.fns` the list of functions at the same places (Gradio 6 BlockFunctions, then the `Gradio3Event`s
    of `describe_event`: A1111's Generate wiring, which agent-scheduler binds its Enqueue button to);
    `with demo:` enters the page's Blocks itself, so events an extension adds there land on the page."""

    _page: gr.Blocks  # set on the per-page subclass `blocks_view` makes

    def _events(self) -> list[tuple[dict[str, Any], Any]]:
        """(dependency, function) pairs: one per event name of each page function, then the described."""
        pairs = []
        for fn in self._page.fns.values():
            config = fn.get_config()
            by_event: dict[str, list[int]] = {}
            for target, event in config.get("targets") or []:
                by_event.setdefault(event, []).append(target)
            for event, targets in by_event.items():
                pairs.append(({**config, "targets": targets, "trigger": event}, fn))
        described = getattr(self._page, _DESCRIBED, [])
        return pairs + [(event.dependency(), event) for event in described]

    @property
    def dependencies(self) -> list[dict[str, Any]]:
        return [dependency for dependency, _ in self._events()]

    @property
    def fns(self) -> list[Any]:  # type: ignore[override]
        return [fn for _, fn in self._events()]

    def __enter__(self) -> Any:
        self._page.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self._page.__exit__(*args)


def blocks_view(page: gr.Blocks) -> gr.Blocks:
    """`page` as Gradio 3 code sees it (see Gradio3BlocksView); what extensions' app_started callbacks get."""
    cls = type("Blocks", (Gradio3BlocksView,), {"_page": page, "__module__": __name__})
    view = object.__new__(cls)
    object.__setattr__(view, "__dict__", page.__dict__)
    return view


def compat_gradio() -> ModuleType:
    """What `import gradio` gives code in an extension folder."""
    return _compat()


def install(scripts: Any) -> None:
    """Give extension code the compat `gradio` (`scripts`: the App's ScriptService)."""
    scripts.imports.alias("gradio", compat_gradio)
