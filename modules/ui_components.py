"""A1111's `modules.ui_components`: the small Gradio building blocks extensions use, for Gradio 6.

Each class is the Gradio component it extends, rendered and configured as that component,
with A1111's defaults: `ToolButton` is a small square button (class `tool`), `FormRow`/`FormColumn`/
`FormGroup` are plain rows/columns/groups, `DropdownMulti` is multiselect, `DropdownEditable` accepts
custom values. `InputAccordion(value, label=..., elem_id=...)` is a checkbox whose value is True
while its accordion (`.accordion`) is open: use it as `with InputAccordion(False, label="X") as enabled:`
and put controls inside; the script receives True/False.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
from collections.abc import Iterator
from typing import Any

import gradio as gr
from gradio import component_meta

from modules.sumi.frontends.gradio.gradio3_compat import with_gradio3_events


class FormComponent:
    """A1111's marker for components that fit in a form row."""

    webui_do_not_create_gradio_pyi_thank_you = True


def _gradio_class(cls: type) -> type:
    return next(c for c in cls.__mro__ if c.__module__.startswith("gradio."))


@contextlib.contextmanager
def _no_pyi_stubs() -> Iterator[None]:
    """Gradio writes a `.pyi` stub beside the source file of every component subclass it sees
    defined; Sumi's source tree is not the place for generated files, so that is off while the
    classes below are defined (and only then)."""
    original = component_meta.create_or_modify_pyi
    component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        component_meta.create_or_modify_pyi = original


class _AsGradio:
    """Render and serialize as the Gradio class extended: its frontend, and the props of its
    constructor (Gradio reads props from the constructor's signature, which our `__init__` would hide)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__.__signature__ = inspect.signature(_gradio_class(cls).__init__)  # type: ignore[attr-defined]

    def get_block_name(self) -> str:
        return _gradio_class(type(self)).__name__.lower()

    def get_config(self, *args: Any) -> dict[str, Any]:
        # Gradio reads the props from `type(self).__init__`'s signature: keep it the Gradio class's even
        # when an extension replaced this class's `__init__` (mov2mov wraps `InputAccordion.__init__` to
        # rename repeated elem_ids), else the page would get none of its props (elem_id, value, visible)
        init = type(self).__init__
        if getattr(init, "__signature__", None) is None:
            with contextlib.suppress(AttributeError, TypeError):
                init.__signature__ = inspect.signature(_gradio_class(type(self)).__init__)  # type: ignore[attr-defined]
        return super().get_config(*args)  # type: ignore[misc]

    def get_block_class(self) -> str:
        return self.get_block_name()


with _no_pyi_stubs():

    class ToolButton(_AsGradio, gr.Button, FormComponent):
        """A small button with one symbol as text, fitting next to inputs (A1111's 🔄, 📋, ...)."""

        def __init__(self, value: str = "", *args: Any, **kwargs: Any) -> None:
            classes = kwargs.pop("elem_classes", None) or []
            classes = [classes] if isinstance(classes, str) else list(classes)
            kwargs.pop("tooltip", None)  # Gradio 3/4 argument that Gradio 6 buttons do not take
            kwargs.setdefault("min_width", 40)
            kwargs.setdefault("scale", 0)
            super().__init__(value, *args, elem_classes=["tool", *classes], **kwargs)

    class ResizeHandleRow(_AsGradio, gr.Row):
        """A row whose two columns A1111 lets the user resize; here a plain row with A1111's class."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.elem_classes = [*(self.elem_classes or []), "resize-handle-row"]

    class FormRow(_AsGradio, gr.Row, FormComponent):
        pass

    class FormColumn(_AsGradio, gr.Column, FormComponent):
        pass

    class FormGroup(_AsGradio, gr.Group, FormComponent):
        pass

    class FormHTML(_AsGradio, gr.HTML, FormComponent):
        pass

    class FormColorPicker(_AsGradio, gr.ColorPicker, FormComponent):
        pass

    class DropdownMulti(_AsGradio, gr.Dropdown, FormComponent):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**{"multiselect": True, **kwargs})

    class DropdownEditable(_AsGradio, gr.Dropdown, FormComponent):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**{"allow_custom_value": True, **kwargs})

    # Extensions call their events the Gradio 3 way (`ToolButton.click(..., _js=...)`, agent-scheduler)
    for _cls in (ToolButton, FormHTML, FormColorPicker, DropdownMulti, DropdownEditable):
        with_gradio3_events(_cls)

    def _open_accordion(checked: bool) -> gr.Accordion:
        return gr.Accordion(open=bool(checked))

    _ACCORDION_ARGS = set(inspect.signature(gr.Accordion.__init__).parameters) - {"self"}
    _accordion_ids = itertools.count()

    class InputAccordion(_AsGradio, gr.Checkbox):
        """A `gr.Accordion` usable as an input: its value is True while it is open, False while closed.

        The value lives in a hidden checkbox (this component, `elem_id` + "-checkbox"); opening or
        closing the accordion (`.accordion`, `elem_id`) sets it, and setting the checkbox (e.g. from a
        pasted infotext) opens or closes the accordion."""

        def __init__(self, value: bool = False, **kwargs: Any) -> None:
            self.accordion_id = kwargs.get("elem_id") or f"input-accordion-{next(_accordion_ids)}"
            checkbox_args = {**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": "hidden"}
            super().__init__(value, **checkbox_args)
            accordion_args = {k: v for k, v in kwargs.items() if k in _ACCORDION_ARGS}
            accordion_args.update(
                elem_id=self.accordion_id,
                label=kwargs.get("label", "Accordion"),
                elem_classes=["input-accordion"],
                open=bool(value),
            )
            self.accordion = gr.Accordion(**accordion_args)
            self.accordion.expand(None, js="() => true", outputs=[self], show_progress="hidden", queue=False)
            self.accordion.collapse(
                None, js="() => false", outputs=[self], show_progress="hidden", queue=False
            )
            self.change(
                _open_accordion, inputs=[self], outputs=[self.accordion], show_progress="hidden", queue=False
            )

        def extra(self) -> gr.Column:
            """A column for controls shown with the accordion (A1111 puts it in the accordion's label)."""
            return gr.Column(
                elem_id=self.accordion_id + "-extra", elem_classes="input-accordion-extra", min_width=0
            )

        def __enter__(self) -> InputAccordion:
            self.accordion.__enter__()
            return self

        def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
            self.accordion.__exit__(exc_type, exc_val, exc_tb)
