"""A1111's `ScriptPostprocessingRunner`: lays out the Extras scripts' controls and runs the scripts on
an image in A1111's order.

Order: the names in opt `postprocessing_operation_order` first (in that order), then by each script's
`order`, then by name; scripts named in opt `postprocessing_disable_in_extras` and `main_ui_only`
scripts are left out. A run calls every script's `process_firstpass`, then `process` on the image and
on every extra image an earlier script added. This module never imports gradio: the front end (or
`create_args_for_run`'s `context`) provides the layout the scripts' `ui()` builds into.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from modules.sumi.services.scripts.postprocessing_base import PostprocessedImage, ScriptPostprocessing

ErrorReporter = Callable[[str, str, BaseException], None]
Layout = Callable[[], AbstractContextManager[Any]]


class ScriptPostprocessingRunner:
    """The Extras scripts of the App (A1111's `scripts.scripts_postproc`)."""

    def __init__(
        self,
        options: Any,
        state: Any = None,
        report_error: ErrorReporter | None = None,
    ) -> None:
        self.options = options
        self.state = state
        self.report_error = report_error or (lambda _file, _where, _exc: None)
        self.scripts: list[ScriptPostprocessing] | None = None
        self.ui_created = False
        self.inputs: list[Any] = []
        self._lock = threading.Lock()

    # -- set-up ---------------------------------------------------------------------------------------
    def initialize_scripts(self, scripts_data: Sequence[Any]) -> None:
        """One instance per class of `scripts_data` (objects with `script_class` and `path`)."""
        self.scripts = []
        self.ui_created = False
        for data in scripts_data:
            try:
                script: ScriptPostprocessing = data.script_class()
            except Exception as exc:  # one broken extension class must not take the tab down
                self.report_error(str(data.path), "__init__", exc)
                continue
            script.filename = str(data.path)
            self.scripts.append(script)

    def scripts_in_preferred_order(self, order: Sequence[str] | None = None) -> list[ScriptPostprocessing]:
        """The Extras scripts in run order; `order` replaces opt `postprocessing_operation_order`."""
        scripts = list(self.scripts or [])
        wanted = list(order if order is not None else self._opt("postprocessing_operation_order"))
        disabled = set(self._opt("postprocessing_disable_in_extras"))
        shown = [s for s in scripts if s.name not in disabled and not getattr(s, "main_ui_only", False)]

        def score(item: tuple[int, ScriptPostprocessing]) -> tuple[int, int, str, int]:
            index, script = item
            rank = wanted.index(script.name) if script.name in wanted else len(scripts)
            return rank, int(script.order), str(script.name or ""), index

        return [s for _, s in sorted(enumerate(shown), key=score)]

    def _opt(self, key: str) -> list[str]:
        value = getattr(self.options, key, None) if self.options is not None else None
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else []

    def setup_ui(self, group: Layout | None = None) -> list[Any]:
        """Build every script's controls (inside the current gradio layout); `group()` makes the block
        each script's controls go in (A1111: a row). Returns all controls, in run order."""
        inputs: list[Any] = []
        for script in self.scripts_in_preferred_order():
            with (group or nullcontext)() as block:
                self._create_script_ui(script, inputs)
            script.group = block
        self.inputs = inputs
        self.ui_created = True
        return inputs

    def _create_script_ui(self, script: ScriptPostprocessing, inputs: list[Any]) -> None:
        script.args_from = script.args_to = len(inputs)
        try:
            controls = script.ui()
        except Exception as exc:  # reported; the script runs with no arguments
            self.report_error(script.filename or str(script.name), "ui", exc)
            controls = None
        script.controls = dict(controls) if isinstance(controls, Mapping) else {}
        for control in script.controls.values():
            with contextlib.suppress(AttributeError):  # a plain default value, not a component
                control.custom_script_source = os.path.basename(script.filename or "")
        inputs.extend(script.controls.values())
        script.args_to = len(inputs)

    def ensure_ui(self, context: Layout | None = None) -> None:
        """Lay out the controls without a page (API-only servers), once; `context` makes the
        throwaway page the scripts' `ui()` builds into (a gr.Blocks)."""
        with self._lock:
            if not self.ui_created:
                with (context or nullcontext)():
                    self.setup_ui()

    # -- running --------------------------------------------------------------------------------------
    def create_args_for_run(
        self, scripts_args: Mapping[str, Mapping[str, Any]], context: Layout | None = None
    ) -> list[Any]:
        """A1111: the flat argument list from {script name: {argument name: value}}; a script or an
        argument not named gets its control's default value."""
        self.ensure_ui(context)
        scripts = self.scripts_in_preferred_order()
        args: list[Any] = [None] * max((s.args_to or 0 for s in scripts), default=0)
        for script in scripts:
            given = scripts_args.get(str(script.name), {})
            for i, (name, control) in enumerate((script.controls or {}).items()):
                args[(script.args_from or 0) + i] = given.get(name, _default(control))
        return args

    def script_arguments(self, args: Sequence[Any], order: Sequence[str] | None = None):
        """(script, {argument name: value}) pairs in run order, from the flat argument list."""
        pairs = []
        for script in self.scripts_in_preferred_order(order):
            values = list(args[script.args_from or 0 : script.args_to or 0])
            names = list((script.controls or {}).keys())
            pairs.append((script, dict(zip(names, values, strict=False))))
        return pairs

    def run(
        self,
        pp: PostprocessedImage,
        args: Sequence[Any],
        order: Sequence[str] | None = None,
        after_firstpass: Callable[[PostprocessedImage], None] | None = None,
    ) -> None:
        """A1111's run: every script's `process_firstpass`, then its `process` on the image and on the
        extra images earlier scripts added; afterwards `pp.extra_images` holds every extra output.
        `after_firstpass(pp)` may refuse the job once the scripts announced the size they will reach."""
        pairs = self.script_arguments(args, order)
        for script, values in pairs:
            self._call(script, "process_firstpass", pp, values)
        if after_firstpass is not None:
            after_firstpass(pp)
        all_images = [pp]
        for script, values in pairs:
            if self.state is not None and self.state.skipped:
                break
            if self.state is not None:
                self.state.job = str(script.name)
            for single in list(all_images):
                if not single.disable_processing:
                    self._call(script, "process", single, values)
                for extra in single.extra_images:
                    all_images.append(
                        extra if isinstance(extra, PostprocessedImage) else single.create_copy(extra)
                    )
                single.extra_images.clear()
        pp.extra_images = all_images[1:]

    def _call(self, script: ScriptPostprocessing, hook: str, pp: PostprocessedImage, values: dict) -> None:
        try:
            getattr(script, hook)(pp, **values)
        except Exception as exc:  # recorded with the script's file, then the job fails with it
            self.report_error(script.filename or str(script.name), hook, exc)
            raise

    def image_changed(self) -> None:
        for script in self.scripts_in_preferred_order():
            try:
                script.image_changed()
            except Exception as exc:
                self.report_error(script.filename or str(script.name), "image_changed", exc)


def _default(control: Any) -> Any:
    """A control's default value (a gradio component's `value`; a plain value is its own default)."""
    return getattr(control, "value", control)
