"""One tab's scripts (A1111's `ScriptRunner`): the selectable ones of the "Script" dropdown, the always-on
ones, A1111's `script_args` layout, and the hooks the generation service calls.

`script_args[0]` is the selected script's index (0 = None); each script's own values sit at
`script_args[args_from:args_to]`; a text box without a value defaults to "" (Gradio 3's default, which
A1111's API hands to scripts). A script whose `ui()` failed has no slots there; the values an API request
gives it are passed to its hooks all the same (`ScriptArgs.passthrough`), as A1111 does. A hook that
raises is logged with its traceback, recorded in `errors` (the UI shows them), and that script's other
hooks are skipped for the rest of the job; the job's warning names the extension the script comes from.
A selected script whose `run` raises fails the job with an `ExtensionScriptError` naming the extension,
the script and the original error (Sumi's own errors and out-of-memory pass through unchanged, with their
status).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.errors import EngineError, InvalidRequestError

log = logging.getLogger(__name__)
MAX_ERRORS = 50


class _AlwaysVisible:
    def __repr__(self) -> str:
        return "AlwaysVisible"


AlwaysVisible = _AlwaysVisible()


@dataclass
class PostprocessImageArgs:
    image: Any


@dataclass
class PostprocessBatchListArgs:
    images: list


@dataclass
class PostSampleArgs:
    """A1111: the batch's sampled latents, before decoding; a script may replace them."""

    samples: Any


@dataclass
class PostProcessMaskOverlayArgs:
    """A1111: the mask and overlay (the original outside the mask) of image `index`, before the overlay."""

    index: int
    mask_for_overlay: Any
    overlay_image: Any


class MaskBlendArgs:
    """A1111's arguments of a script's `on_mask_blend`: the latents before the blend, the masks (`nmask`:
    1 = redraw), the init latents and the blend, which the script may replace; `denoiser` and `sigma` are
    set for the blends during sampling, None for the final one (`is_final_blend`)."""

    def __init__(
        self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None
    ) -> None:
        self.current_latent, self.nmask, self.init_latent = current_latent, nmask, init_latent
        self.mask, self.blended_latent = mask, blended_latent
        self.denoiser, self.sigma = denoiser, sigma
        self.is_final_blend = denoiser is None


@dataclass
class ScriptClassData:
    """A Script subclass found in a file (A1111's `scripts_data` entries)."""

    script_class: type
    path: str
    basedir: str
    module: Any


class ScriptArgs(list):
    """A job's `script_args`, plus the API values of scripts whose `ui()` failed (by script id)."""

    def __init__(self, values: Sequence[Any] = ()) -> None:
        super().__init__(values)
        self.passthrough: dict[int, list[Any]] = {}
        self.surplus: list[str] = []  # API args beyond a script's controls, which no hook receives


def args_of(p: Any, script: Any) -> list[Any]:
    """The values `script`'s hooks receive in job `p`."""
    passthrough = getattr(p.script_args, "passthrough", None)
    if passthrough and id(script) in passthrough:
        return passthrough[id(script)]
    return list(p.script_args[script.args_from : script.args_to])


@dataclass
class ScriptError:
    script: str  # file or title
    where: str  # the hook or "import"
    message: str
    traceback: str


@dataclass
class ScriptErrors:
    items: list[ScriptError] = field(default_factory=list)
    notify: Callable[[ScriptError], None] | None = field(default=None, repr=False)  # the App's notices

    def report(self, script: str, where: str, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(exc))
        log.error("Error in %s of %s:\n%s", where, script, text)
        error = ScriptError(script, where, str(exc), text)
        self.items.append(error)
        del self.items[:-MAX_ERRORS]
        if self.notify is not None:
            self.notify(error)


class ExtensionScriptError(RuntimeError):
    """A selected script's `run` raised: the message names the extension, the script and the error."""

    def __init__(self, origin: str, title: str, hook: str, exc: BaseException) -> None:
        super().__init__(f"{origin} (script '{title}') failed in {hook}: {type(exc).__name__}: {exc}")
        self.origin, self.title, self.hook = origin, title, hook


def script_origin(script: Any) -> str:
    """Who wrote a script, for messages: "Extension '<folder>'" for a file in an extension's
    `scripts/` folder, else "Built-in script"."""
    folder = getattr(script, "_sumi_extension", None)
    return f"Extension '{folder}'" if folder else "Built-in script"


def _extension_folder(data: ScriptClassData) -> str | None:
    """The extension folder name of a script file `<extension>/scripts/...py`, else None."""
    base, path = Path(data.basedir), Path(data.path)
    return base.name if (base / "scripts") in path.parents else None


def _is_text_box(control: Any) -> bool:
    return any(cls.__name__ in ("Textbox", "TextArea") for cls in type(control).__mro__)


def default_value(control: Any) -> Any:
    """A control's value as a script receives it when nothing was sent: its `value`, and "" for a text
    box without one (Gradio 3's Textbox default, which A1111 1.10 runs on; Gradio 6 says None)."""
    value = getattr(control, "value", None)
    return "" if value is None and _is_text_box(control) else value


class ScriptRunner:
    def __init__(self, tabname: str = "txt2img", errors: ScriptErrors | None = None) -> None:
        self.tabname = tabname
        self.is_img2img = tabname == "img2img"
        self.errors = errors or ScriptErrors()
        self.scripts: list[Any] = []
        self.selectable_scripts: list[Any] = []
        self.alwayson_scripts: list[Any] = []
        self.titles: list[str] = []
        self.title_map: dict[str, Any] = {}
        self.inputs: list[Any] = [None]
        self.paste_field_names: list[str] = []  # A1111: infotext fields the tab's scripts paste into

    @property
    def infotext_fields(self) -> list[Any]:
        """A1111: the `(component, infotext key)` pairs of the tab's scripts (their `infotext_fields`,
        set when their UI is made), which the tab's paste reads and extensions look through."""
        return [pair for script in self.scripts for pair in (getattr(script, "infotext_fields", None) or [])]

    # -- set-up ------------------------------------------------------------------------------------
    def initialize_scripts(self, scripts_data: Sequence[ScriptClassData]) -> None:
        self.scripts, self.selectable_scripts, self.alwayson_scripts = [], [], []
        for data in scripts_data:
            script = self._instantiate(data)
            if script is None:
                continue
            visibility = self._safe(script, "show", script.show, self.is_img2img)
            if visibility is AlwaysVisible:
                script.alwayson = True
                self.alwayson_scripts.append(script)
            elif visibility:
                self.selectable_scripts.append(script)
        self.scripts = self.alwayson_scripts + self.selectable_scripts
        self.title_map = {self._title(s).lower(): s for s in self.scripts}
        self.titles = [self._title(s) for s in self.selectable_scripts]

    def _instantiate(self, data: ScriptClassData) -> Any:
        try:
            script = data.script_class()
        except Exception as exc:
            self.errors.report(data.path, "__init__", exc)
            return None
        script.filename = data.path
        script._sumi_extension = _extension_folder(data)  # named in messages about its failures
        script.is_txt2img = not self.is_img2img
        script.is_img2img = self.is_img2img
        script.tabname = self.tabname
        return script

    def _title(self, script: Any) -> str:
        title = self._safe(script, "title", script.title)
        return str(title) if title else f"{script.filename} [error]"

    def create_inputs(self, build: Callable[[Any], Sequence[Any]] | None = None) -> list[Any]:
        """Give every script its `args_from`/`args_to` and collect its controls (index 0 = dropdown).

        `build(script)` makes the script's controls (the UI calls `script.ui` inside its layout); by
        default `script.ui` is called directly, which is enough to learn the controls and defaults.
        """
        build = build or self._build_ui
        self.inputs = [None]
        for script in self.scripts:
            script.ui_failed = False
            controls = list(build(script) or [])
            script.controls = controls
            script.args_from = len(self.inputs)
            self.inputs.extend(controls)
            script.args_to = len(self.inputs)
            script.name = self._title(script).lower()
        return self.inputs

    def _build_ui(self, script: Any) -> Any:
        try:
            return script.ui(self.is_img2img)
        except Exception as exc:  # the script still runs, with the values an API request gives it
            script.ui_failed = True
            self.errors.report(getattr(script, "filename", None) or repr(script), "ui", exc)
            return None

    def default_args(self) -> list[Any]:
        return [0] + [default_value(c) for c in self.inputs[1:]]

    def script(self, title: str) -> Any | None:
        return self.title_map.get(str(title).lower())

    # -- calls ---------------------------------------------------------------------------------------
    def _safe(self, script: Any, where: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # an extension's bug must not take the app down
            self.errors.report(getattr(script, "filename", None) or repr(script), where, exc)
            return None

    def _each_alwayson(self, p: Any, hook: str, *args: Any, **kwargs: Any) -> None:
        failed: set[int] = p.__dict__.setdefault("_sumi_failed_scripts", set())
        for script in self.alwayson_scripts:
            if id(script) in failed:
                continue
            script_args = args_of(p, script)
            try:
                getattr(script, hook)(p, *args, *script_args, **kwargs)
            except Exception as exc:
                if isinstance(exc, InvalidRequestError) and not getattr(script, "_sumi_extension", None):
                    raise  # a built-in script refusing the job's settings: the request is at fault (400)
                failed.add(id(script))
                self.errors.report(script.filename or self._title(script), hook, exc)
                p.warnings.append(
                    f"{script_origin(script)}: Script '{self._title(script)}' failed in {hook} ({exc}); "
                    "it is skipped for this job"
                )

    def empty_text_boxes(self, p: Any) -> None:
        """A text box whose value is None (Gradio 6's empty box, from the page or a short API list)
        reaches the scripts as "", as in A1111 (Gradio 3); called as the job starts."""
        args = ScriptArgs(p.script_args)
        args.passthrough = dict(getattr(p.script_args, "passthrough", None) or {})
        for i, control in enumerate(self.inputs[1:], start=1):
            if i < len(args) and args[i] is None and _is_text_box(control):
                args[i] = ""
        p.script_args = args

    def setup_scrips(self, p: Any, *, is_ui: bool = True) -> None:  # A1111's spelling
        self.empty_text_boxes(p)
        for script in self.alwayson_scripts:
            if not is_ui and script.setup_for_ui_only:
                continue
            self._safe(script, "setup", script.setup, p, *args_of(p, script))

    def before_process(self, p: Any) -> None:
        self._each_alwayson(p, "before_process")

    def process(self, p: Any) -> None:
        self._each_alwayson(p, "process")

    def before_process_batch(self, p: Any, **kwargs: Any) -> None:
        self._each_alwayson(p, "before_process_batch", **kwargs)

    def after_extra_networks_activate(self, p: Any, **kwargs: Any) -> None:
        self._each_alwayson(p, "after_extra_networks_activate", **kwargs)

    def process_batch(self, p: Any, **kwargs: Any) -> None:
        self._each_alwayson(p, "process_batch", **kwargs)

    def before_hr(self, p: Any) -> None:
        """A1111: before the hires pass of a txt2img job samples (after its networks are activated)."""
        self._each_alwayson(p, "before_hr")

    def process_before_every_sampling(self, p: Any, **kwargs: Any) -> None:
        self._each_alwayson(p, "process_before_every_sampling", **kwargs)

    def on_mask_blend(self, p: Any, mba: MaskBlendArgs) -> None:
        self._each_alwayson(p, "on_mask_blend", mba)

    def postprocess_batch(self, p: Any, images: Any, **kwargs: Any) -> None:
        self._each_alwayson(p, "postprocess_batch", images=images, **kwargs)

    def postprocess_batch_list(self, p: Any, pp: PostprocessBatchListArgs, **kwargs: Any) -> None:
        self._each_alwayson(p, "postprocess_batch_list", pp, **kwargs)

    def postprocess_image(self, p: Any, pp: PostprocessImageArgs) -> None:
        self._each_alwayson(p, "postprocess_image", pp)

    def post_sample(self, p: Any, ps: PostSampleArgs) -> None:
        self._each_alwayson(p, "post_sample", ps)

    def postprocess_maskoverlay(self, p: Any, ppmo: PostProcessMaskOverlayArgs) -> None:
        self._each_alwayson(p, "postprocess_maskoverlay", ppmo)

    def postprocess_image_after_composite(self, p: Any, pp: PostprocessImageArgs) -> None:
        self._each_alwayson(p, "postprocess_image_after_composite", pp)

    def postprocess(self, p: Any, processed: Any) -> None:
        self._each_alwayson(p, "postprocess", processed)

    def run(self, p: Any, *args: Any) -> Any:
        """Run the selected script (`args[0]`, 1-based); None when no script is selected."""
        index = int(args[0] or 0) if args else 0
        if index == 0:
            return None
        if not 0 < index <= len(self.selectable_scripts):
            raise InvalidRequestError(
                f"script index {index} is out of range (1..{len(self.selectable_scripts)})"
            )
        script = self.selectable_scripts[index - 1]
        passthrough = getattr(p.script_args, "passthrough", None) or {}
        script_args = passthrough.get(id(script), args[script.args_from : script.args_to])
        try:
            return script.run(p, *script_args)
        except (EngineError, torch.OutOfMemoryError):
            raise  # Sumi's own refusal of the job the script made, or out of memory: their status stands
        except Exception as exc:
            raise ExtensionScriptError(script_origin(script), self._title(script), "run", exc) from exc

    def script_args_for(
        self,
        script_name: str | None,
        script_args: Sequence[Any],
        alwayson: dict[str, Any],
        skip: Sequence[str] = (),
    ) -> ScriptArgs:
        """A1111's API layout: defaults, the selected script's args in its slice, each always-on
        script's `args` in its slice. Unknown titles are a 4xx (titles in `skip` are Sumi built-ins)."""
        args = ScriptArgs(self.default_args())
        if script_name:
            script = self.script(script_name)
            if script is None or script not in self.selectable_scripts:
                raise InvalidRequestError(f"Script not found: {script_name!r}")
            args[0] = self.selectable_scripts.index(script) + 1
            _place(args, script, list(script_args), script_name)
        for title, entry in (alwayson or {}).items():
            if title.lower() in skip:
                continue
            script = self.script(title)
            if script is None or not script.alwayson:
                raise InvalidRequestError(f"always on script {title} not found")
            values = entry.get("args", []) if isinstance(entry, dict) else []
            _place(args, script, list(values), title)
        return args


def _place(args: ScriptArgs, script: Any, values: list[Any], title: str) -> None:
    passed_through = getattr(script, "ui_failed", False) and values
    if passed_through:
        args.passthrough[id(script)] = values
    room = script.args_to - script.args_from
    for i, value in enumerate(values[:room]):
        args[script.args_from + i] = value
    if len(values) > room and not passed_through:  # A1111 drops them without a word
        args.surplus.append(
            f"{title}: the script takes {room} args; the {len(values) - room} after them were ignored"
        )
