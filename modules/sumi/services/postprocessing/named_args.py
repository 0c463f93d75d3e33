"""Extras scripts' arguments given by name in a request (`{"Split oversized images": {"enable": true}}`):
each script and argument must exist, and each value must be of the kind its control holds, so a typo
is a clear error instead of a silently ignored field or a failure deep inside a script."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from modules.sumi.engine.errors import InvalidRequestError


def checked_script_args(
    runner: Any, requested: Mapping[str, Mapping[str, Any]], reserved: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """{script name: {argument: value}} for `ScriptPostprocessingRunner.create_args_for_run`, checked
    against the scripts' controls; `reserved` scripts are set by other request fields (refused here)."""
    scripts = {str(s.name): s for s in runner.scripts_in_preferred_order()}
    checked: dict[str, dict[str, Any]] = {}
    for name, values in requested.items():
        if name in reserved:
            raise InvalidRequestError(
                f"scripts: {name} is set by the request's own fields, not under scripts"
            )
        script = scripts.get(name)
        if script is None:
            choices = ", ".join(n for n in scripts if n not in reserved) or "none"
            raise InvalidRequestError(f"scripts: unknown Extras script {name!r}; choose from {choices}")
        controls = script.controls or {}
        for arg, value in values.items():
            if arg not in controls:
                raise InvalidRequestError(
                    f"scripts[{name!r}]: unknown argument {arg!r}; {name} takes {', '.join(controls) or 'none'}"
                )
            _check_kind(f"scripts[{name!r}][{arg!r}]", getattr(controls[arg], "value", controls[arg]), value)
        checked[name] = dict(values)
    return checked


def _check_kind(where: str, default: Any, value: Any) -> None:
    """`value` must be of the kind of the control's default: a bool, a finite number, a string or a list."""
    if default is None:
        return
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        kind = "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    elif isinstance(default, (list, tuple)):
        ok, kind = isinstance(value, (list, tuple)), "a list"
    else:
        return
    if not ok:
        raise InvalidRequestError(f"{where} must be {kind}, not {value!r}")
