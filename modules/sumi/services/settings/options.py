"""Settings (`config.json`): A1111's `OptionInfo` and `Options`, keys and defaults.

An `Options` object is owned by the App; the UI, the API and extensions (through `shared.opts`) read
and write it. Keys, defaults and infotext labels are A1111's so that `config.json`, the
`/sdapi/v1/options` API and `override_settings` carry over. Sumi-only options say so in their label.

`OptionInfo.component` is either a gradio component class (what A1111 extensions pass) or, for the
built-in options, one of the strings "checkbox", "textbox", "number", "slider", "radio", "dropdown",
which the UI maps to a component; None means "infer from the default's type". This module never
imports gradio.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.sumi.engine.accel.compiled import CHOICES as COMPILE_CHOICES
from modules.sumi.services.settings import limits
from modules.sumi.services.settings.extra_networks_options import extra_networks_options
from modules.sumi.services.settings.interrogate_options import interrogate_options
from modules.sumi.services.settings.postprocessing_options import postprocessing_options
from modules.sumi.services.upscalers.model_files import DAT_KNOWN, REALESRGAN_KNOWN
from modules.sumi.util.atomic import write_json_atomic

log = logging.getLogger(__name__)

Section = tuple[str | None, str]  # id None: hidden from the Settings page (A1111)
PREVIEW_METHODS = ("Full", "Approx NN", "Approx cheap", "TAESD")  # engine.previews.METHODS
PREVIEW_FORMATS = ("jpeg", "png", "webp")


class OptionInfo:
    """One setting: its default, its label in Settings and how to edit it (A1111's constructor)."""

    def __init__(
        self,
        default: Any = None,
        label: str = "",
        component: Any = None,
        component_args: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        onchange: Callable[[], None] | None = None,
        section: Section | None = None,
        refresh: Callable[[], None] | None = None,
        comment_before: str = "",
        comment_after: str = "",
        infotext: str | None = None,
        restrict_api: bool = False,
        category_id: str | None = None,
    ) -> None:
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api
        # Sumi: explicit bounds and choices checked on every write, and whether the value names a folder
        # or file (confined to the data dir); see `bounds`, `one_of`, `path_setting`.
        self.value_bounds: tuple[float | None, float | None] | None = None
        self.allowed_values: list[Any] | None = None
        self.names_a_path = False

    def bounds(self, minimum: float | None = None, maximum: float | None = None) -> OptionInfo:
        """Sumi: the smallest and largest value a write may store (None: no limit that side)."""
        self.value_bounds = (minimum, maximum)
        return self

    def one_of(self, values: list[Any]) -> OptionInfo:
        """Sumi: the values a write may store, when the component (a textbox) does not list them."""
        self.allowed_values = list(values)
        return self

    def path_setting(self) -> OptionInfo:
        """Sumi: the value names a folder or file; writes from the UI and the API must stay inside the
        data dir or a folder allowed with --gradio-allowed-path."""
        self.names_a_path = True
        return self

    def link(self, label: str, url: str) -> OptionInfo:
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label: str, js_func: str) -> OptionInfo:
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def info(self, info: str) -> OptionInfo:
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html: str) -> OptionInfo:
        self.comment_after += html
        return self

    def needs_restart(self) -> OptionInfo:
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self) -> OptionInfo:
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self

    def resolved_component_args(self) -> dict[str, Any]:
        """`component_args`, calling it first when it is a function (A1111 allows both)."""
        args = self.component_args() if callable(self.component_args) else self.component_args
        return dict(args or {})

    def static_choices(self) -> list[Any] | None:
        """The fixed list of allowed values, or None when any value (or a dynamic list) is allowed."""
        if callable(self.component_args) or not self.component_args:
            return None
        args = self.component_args
        choices = args.get("choices")
        if (
            not isinstance(choices, (list, tuple))
            or args.get("multiselect")
            or args.get("allow_custom_value")
        ):
            return None
        return [c[1] if isinstance(c, (tuple, list)) and len(c) == 2 else c for c in choices]

    def allowed(self) -> list[Any] | None:
        """The values a write may store: `one_of`, else the component's fixed choices; None: any."""
        return self.allowed_values if self.allowed_values is not None else self.static_choices()

    def value_range(self) -> tuple[float | None, float | None]:
        """(minimum, maximum) for a number: `bounds`, else the component's `minimum`/`maximum`."""
        if self.value_bounds is not None:
            return self.value_bounds
        args = self.component_args if isinstance(self.component_args, dict) else {}
        low, high = args.get("minimum"), args.get("maximum")
        number = (int, float)
        return (low if isinstance(low, number) else None, high if isinstance(high, number) else None)

    def wants_whole_number(self) -> bool:
        """An int default (not a bool), or a number field with `precision` 0."""
        args = self.component_args if isinstance(self.component_args, dict) else {}
        is_int = isinstance(self.default, int) and not isinstance(self.default, bool)
        return is_int or args.get("precision") == 0


class OptionHTML(OptionInfo):
    """A block of explanatory HTML on the Settings page; not a value, never saved."""

    def __init__(self, text: str) -> None:
        super().__init__(str(text).strip(), label="", component="html")
        self.do_not_save = True


def options_section(
    section_identifier: tuple[str | None, ...], options_dict: dict[str, OptionInfo]
) -> dict[str, OptionInfo]:
    """Put every option of `options_dict` in a section: `(id, title)` or `(id, title, category_id)`."""
    for info in options_dict.values():
        info.section = (section_identifier[0], str(section_identifier[1]))
        if len(section_identifier) == 3:
            info.category_id = section_identifier[2]
    return options_dict


@dataclass
class OptionsCategory:
    id: str
    label: str


class OptionsCategories:
    """A1111's `options.categories`: the groups of sections on the Settings page, by id.

    Extensions register theirs (`categories.register_category("my_ext", "My extension")`) and put
    it third in their section tuples; Sumi keeps the labels (Settings lists sections without groups)."""

    def __init__(self) -> None:
        self.mapping: dict[str, OptionsCategory] = {}

    def register_category(self, category_id: str, label: str) -> str:
        self.mapping.setdefault(category_id, OptionsCategory(category_id, label))
        return category_id


categories = OptionsCategories()

_BUILTIN_FIELDS = frozenset({"data", "data_labels", "restricted_opts", "typemap", "_lock", "_data"})

# The job views open in this thread (or task), by Options object: what `data` is while a job runs.
_JOB_VIEWS: contextvars.ContextVar[Mapping[int, dict[str, Any]] | None] = contextvars.ContextVar(
    "sumi_job_options", default=None
)


class Options:
    """Current setting values (`data`) plus their descriptions (`data_labels`).

    Attribute access reads a value (`opts.samples_save`); assigning an attribute stores it without
    checks, as in A1111. `set()` is the checked path used by the UI and the API: it validates the
    type, range and choices and runs `onchange`.

    Jobs own their settings: inside `job_view(overrides)` (opened on the job's worker thread) `data` is a
    private copy of the values taken when the job started, with the job's `override_settings` on top.
    Everything the job (and the extensions it runs) reads or writes goes to that copy; other threads
    keep seeing and changing the global values, which the job neither sees nor reverts.
    """

    typemap = {int: float}

    def __init__(
        self, data_labels: dict[str, OptionInfo] | None = None, restricted_opts: set[str] | None = None
    ) -> None:
        labels = builtin_options() if data_labels is None else dict(data_labels)
        object.__setattr__(self, "data_labels", labels)
        object.__setattr__(self, "_data", {k: v.default for k, v in labels.items() if not v.do_not_save})
        object.__setattr__(self, "restricted_opts", set(restricted_opts or ()))
        object.__setattr__(self, "_lock", threading.RLock())

    @property
    def data(self) -> dict[str, Any]:
        """The values this thread sees: the running job's own copy inside `job_view`, else the globals."""
        views = _JOB_VIEWS.get()
        view = views.get(id(self)) if views else None
        return view if view is not None else self._data

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", value)

    def global_data(self) -> dict[str, Any]:
        """The global values, whichever thread asks (what config.json holds)."""
        return self._data

    def in_job_view(self) -> bool:
        views = _JOB_VIEWS.get()
        return bool(views) and id(self) in views  # type: ignore[operator]

    @contextlib.contextmanager
    def job_view(self, overrides: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Give the code run inside (on this thread) a private copy of the values it sees now, with
        `overrides` on top; the copy is dropped on exit, so nothing is restored over the globals."""
        with self._lock:
            view = dict(self.data)
        view.update(overrides or {})
        views = dict(_JOB_VIEWS.get() or {})
        views[id(self)] = view
        token = _JOB_VIEWS.set(views)
        try:
            yield view
        finally:
            _JOB_VIEWS.reset(token)

    @contextlib.contextmanager
    def outside_job_view(self) -> Iterator[None]:
        """Code inside reads and writes the global values even on a job's thread (the settings service)."""
        views = _JOB_VIEWS.get()
        if not views or id(self) not in views:
            yield
            return
        token = _JOB_VIEWS.set({k: v for k, v in views.items() if k != id(self)})
        try:
            yield
        finally:
            _JOB_VIEWS.reset(token)

    def __setattr__(self, key: str, value: Any) -> None:
        if key in _BUILTIN_FIELDS:
            object.__setattr__(self, key, value)
            return
        if key in self.data or key in self.data_labels:
            info = self.data_labels.get(key)
            if info is not None and info.do_not_save:
                return
            self.data[key] = value
            return
        object.__setattr__(self, key, value)

    def __getattr__(self, item: str) -> Any:
        # Only called when normal lookup fails, i.e. for setting keys.
        if item.startswith("__") or item in _BUILTIN_FIELDS:
            raise AttributeError(item)
        if "_data" not in self.__dict__:
            raise AttributeError(item)
        data = self.data
        if item in data:
            return data[item]
        labels = self.__dict__.get("data_labels", {})
        if item in labels:
            return labels[item].default
        raise AttributeError(f"no setting named {item!r}")

    # --- reading ---------------------------------------------------------------------------------

    def get_default(self, key: str) -> Any:
        info = self.data_labels.get(key)
        return None if info is None else info.default

    def as_dict(self) -> dict[str, Any]:
        """Every value, including keys found in config.json that no option has claimed (yet)."""
        with self._lock:
            values = {k: v.default for k, v in self.data_labels.items() if not v.do_not_save}
            values.update(self.data)
        return values

    def dumpjson(self) -> str:
        """Values plus each option's comments, as the Settings page's JavaScript expects."""
        labels = self.data_labels
        d: dict[str, Any] = {k: self.data.get(k, v.default) for k, v in labels.items()}
        d["_comments_before"] = {k: v.comment_before for k, v in labels.items() if v.comment_before}
        d["_comments_after"] = {k: v.comment_after for k, v in labels.items() if v.comment_after}
        d["_item_categories"] = {k: v.category_id for k, v in labels.items() if v.category_id}
        return json.dumps(d, default=str, ensure_ascii=False)

    # --- writing ---------------------------------------------------------------------------------

    def same_type(self, x: Any, y: Any) -> bool:
        """True if `y` may replace `x`: same type, None on either side, or int for float."""
        if x is None or y is None:
            return True
        type_x = self.typemap.get(type(x), type(x))
        type_y = self.typemap.get(type(y), type(y))
        return type_x == type_y

    def validate(self, key: str, value: Any) -> None:
        """Raise KeyError for an unknown key and ValueError (with a message for the user) for a bad
        value: the wrong type, a number that is not finite, out of the option's range or not whole
        where it must be, or a value outside its choices."""
        info = self.data_labels.get(key)
        if info is None:
            raise KeyError(f"unknown setting {key!r}")
        if not self.same_type(info.default, value):
            raise ValueError(
                f"setting {key!r} expects a {type(info.default).__name__}, got {type(value).__name__} {value!r}"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _check_number(key, info, value)
        choices = info.allowed()
        if choices is None:
            return
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, (str, int, float)) and item not in choices:
                raise ValueError(f"setting {key!r} must be one of {choices}, got {item!r}")

    def checked_value(self, key: str, value: Any) -> Any:
        """`value` validated, a whole float (3.0) for an int option stored as an int."""
        self.validate(key, value)
        info = self.data_labels[key]
        if isinstance(value, float) and info.wants_whole_number() and isinstance(info.default, int):
            return int(value)
        return value

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """Store a checked value and run the option's `onchange`; True if the value changed.

        Returns False for unchanged values, options that are not saved, and options with
        `restrict_api` when `is_api`. If `onchange` raises, the old value is put back and the
        exception propagates so the caller can tell the user.
        """
        with self._lock:
            old = self.data.get(key, self.get_default(key))
            if old == value and type(old) is type(value):
                return False
            value = self.checked_value(key, value)
            info = self.data_labels[key]
            if info.do_not_save or (is_api and info.restrict_api):
                return False
            self.data[key] = value
        if run_callbacks and info.onchange is not None:
            try:
                info.onchange()
            except Exception:
                with self._lock:
                    self.data[key] = old
                raise
        return True

    def onchange(self, key: str, func: Callable[[], None], call: bool = True) -> None:
        self.data_labels[key].onchange = func
        if call:
            func()

    def add_option(self, key: str, info: OptionInfo) -> None:
        """Register an option (extensions call this from `on_ui_settings`); a loaded value is kept if it fits."""
        with self._lock:
            self.data_labels[key] = info
            if info.do_not_save:
                return
            data = self._data
            if key in data and not self.same_type(info.default, data[key]):
                log.warning("Setting %s had a %s; reset to its default", key, type(data[key]).__name__)
                del data[key]
            data.setdefault(key, info.default)

    def cast_value(self, key: str, value: Any) -> Any:
        """Convert text (from an infotext or a form) to the option's type: cast_value("eta_noise_seed_delta", "12") == 12."""
        if value is None:
            return None
        default = self.data_labels[key].default if key in self.data_labels else None
        if default is None:
            default = self.data.get(key)
        if default is None:
            return None
        expected = type(default)
        if expected is bool and isinstance(value, str):
            return value.strip().lower() not in ("false", "0", "", "no", "off")
        return expected(value)

    # --- config.json -------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write every global value to `path` atomically (a crash leaves the old file intact); a job's
        own values are never saved."""
        with self._lock:
            data = {k: v for k, v in self._data.items() if not self._is_unsaved(k)}
        write_json_atomic(Path(path), data)

    def _is_unsaved(self, key: str) -> bool:
        info = self.data_labels.get(key)
        return info is not None and info.do_not_save

    def load(self, path: str | Path) -> list[str]:
        """Read `path` over the defaults; returns warnings for the user (a corrupt file is backed up)."""
        path = Path(path)
        warnings: list[str] = []
        loaded = _read_config(path, warnings)
        _migrate(loaded)
        with self._lock:
            data = {k: v.default for k, v in self.data_labels.items() if not v.do_not_save}
            for key, value in loaded.items():
                info = self.data_labels.get(key)
                if info is not None and not self.same_type(info.default, value):
                    warnings.append(
                        f"Setting {key} in {path} has a bad value {value!r} "
                        f"(expected a {type(info.default).__name__}); using the default {info.default!r}"
                    )
                    continue
                problem = self._load_problem(key, info, value)
                if problem is not None and info is not None:
                    warnings.append(f"Setting {key} in {path}: {problem}; using the default {info.default!r}")
                    continue
                data[key] = value
            object.__setattr__(self, "_data", data)
        return warnings

    def _load_problem(self, key: str, info: OptionInfo | None, value: Any) -> str | None:
        """Why a value from config.json is out of range or choices (written before Sumi checked), or None."""
        if info is None:
            return None
        try:
            self.validate(key, value)
        except ValueError as exc:
            return str(exc)
        return None


def _check_number(key: str, info: OptionInfo, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"setting {key!r} must be a finite number, got {value!r}")
    if info.wants_whole_number() and not float(value).is_integer():
        raise ValueError(f"setting {key!r} must be a whole number, got {value!r}")
    low, high = info.value_range()
    if (low is not None and value < low) or (high is not None and value > high):
        span = (
            f"from {_fmt(low)} to {_fmt(high)}"
            if low is not None and high is not None
            else (f"at least {_fmt(low)}" if low is not None else f"at most {_fmt(high)}")
        )
        raise ValueError(f"setting {key!r} must be {span}, got {value!r}")


def _fmt(number: float | None) -> str:
    return str(int(number)) if number is not None and float(number).is_integer() else str(number)


def _read_config(path: Path, warnings: list[str]) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError("the top level is not a JSON object")
        return loaded
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, backup)
        warnings.append(
            f"The settings file {path} could not be read ({e}); moved it to {backup} and using defaults"
        )
        return {}


def _migrate(data: dict[str, Any]) -> None:
    """Carry values of renamed A1111 settings over to their new keys."""
    if (
        data.get("sd_vae_as_default") is not None
        and data.get("sd_vae_overrides_per_model_preferences") is None
    ):
        data["sd_vae_overrides_per_model_preferences"] = not data["sd_vae_as_default"]
    if isinstance(data.get("quicksettings"), str) and data.get("quicksettings_list") is None:
        data["quicksettings_list"] = [i.strip() for i in data["quicksettings"].split(",") if i.strip()]


# --- built-in options ---------------------------------------------------------------------------

SAVING_IMAGES: Section = ("saving-images", "Saving images/grids")
SAVING_PATHS: Section = ("saving-paths", "Paths for saving")
SAVING_TO_DIRS: Section = ("saving-to-dirs", "Saving to a directory")
STABLE_DIFFUSION: Section = ("sd", "Stable Diffusion")
VAE: Section = ("vae", "VAE")
INFOTEXT: Section = ("infotext", "Infotext")
USER_INTERFACE: Section = ("ui", "User interface")
LIVE_PREVIEWS: Section = ("ui_preview", "Live previews")
SAMPLER_PARAMS: Section = ("sampler-params", "Sampler parameters")
LIMITS: Section = ("sumi-limits", "Limits")
CONTROLNET: Section = ("control_net", "ControlNet")
IMG2IMG: Section = ("img2img", "img2img")
COMPATIBILITY: Section = ("compatibility", "Compatibility")
UPSCALING: Section = ("upscaling", "Upscaling")
OPTIMIZATIONS: Section = ("optimizations", "Optimizations")
FACE_RESTORATION: Section = ("face-restoration", "Face restoration")
HIDDEN: tuple[None, str] = (None, "Hidden options")  # A1111: a section id of None is not shown in Settings


# What `samples_format`/`grid_format` may name: the formats Sumi writes with their infotext.
IMAGE_FORMATS = ["png", "jpg", "jpeg", "webp", "avif", "gif"]
# Opt `save_images_replace_action` (A1111's values; `services.images.saving.SaveSettings` reads them).
REPLACE_ACTIONS = ["Replace", "Add number suffix"]
MAX_ENSD = 2**32 - 1  # the noise seed is seed + ENSD; torch takes seeds below 2**64


def _slider(minimum: float, maximum: float, step: float) -> dict[str, float]:
    return {"minimum": minimum, "maximum": maximum, "step": step}


def _saving_images() -> dict[str, OptionInfo]:
    return options_section(
        SAVING_IMAGES,
        {
            "samples_save": OptionInfo(True, "Always save all generated images"),
            "samples_format": OptionInfo("png", "File format for images").one_of(IMAGE_FORMATS),
            "samples_filename_pattern": OptionInfo("", "Images filename pattern").info(
                "empty = [seed], or [seed]-[prompt_spaces] when not saving to a subdirectory"
            ),
            "save_images_add_number": OptionInfo(True, "Add number to filename when saving"),
            "save_images_replace_action": OptionInfo(
                REPLACE_ACTIONS[0],
                "Saving the image to an existing file",
                "radio",
                {"choices": list(REPLACE_ACTIONS)},
            ),
            "grid_save": OptionInfo(True, "Always save all generated image grids"),
            "grid_format": OptionInfo("png", "File format for grids").one_of(IMAGE_FORMATS),
            "grid_extended_filename": OptionInfo(
                False, "Add extended info (seed, prompt) to filename when saving grid"
            ),
            "grid_only_if_multiple": OptionInfo(True, "Do not save grids consisting of one picture"),
            "n_rows": OptionInfo(
                -1,
                "Grid row count; use -1 for autodetect and 0 for it to be same as batch size",
                "slider",
                _slider(-1, 16, 1),
            ),
            "grid_prevent_empty_spots": OptionInfo(
                False, "Prevent empty spots in grid (when set to autodetect)"
            ),
            "font": OptionInfo("", "Font for image grids that have text").info(
                "a .ttf/.otf/.ttc file; empty = the built-in font"
            ),
            "grid_text_active_color": OptionInfo("#000000", "Text color for image grids", "color"),
            "grid_text_inactive_color": OptionInfo("#999999", "Inactive text color for image grids", "color"),
            "grid_background_color": OptionInfo("#ffffff", "Background color for image grids", "color"),
            "enable_pnginfo": OptionInfo(
                True, "Save text information about generation parameters as chunks to png files"
            ),
            "save_txt": OptionInfo(False, "Create a text file with infotext next to every generated image"),
            "jpeg_quality": OptionInfo(
                80, "Quality for saved jpeg and avif images", "slider", _slider(1, 100, 1)
            )
            .bounds(1, 100)
            .info("also for webp unless lossless"),
            "webp_lossless": OptionInfo(False, "Use lossless compression for webp images"),
            "export_for_4chan": OptionInfo(True, "Save copy of large images as JPG").info(
                "if the file size is above the limit, or either width or height are above the limit"
            ),
            "img_downscale_threshold": OptionInfo(
                4.0, "File size limit for the above option, MB", "number"
            ).bounds(0, None),
            "target_side_length": OptionInfo(
                4000, "Width/height limit for the above option, in pixels", "number"
            ).bounds(1, 65535),
            "img_max_size_mp": OptionInfo(200, "Maximum image size", "number")
            .bounds(1, None)
            .info("in megapixels; grids larger than this are not made"),
            "save_selected_only": OptionInfo(
                True, "When using 'Save' button, only save a single selected image"
            ),
            "save_write_log_csv": OptionInfo(True, "Write log.csv when saving images using 'Save' button"),
            "grid_zip_filename_pattern": OptionInfo("", "Archive filename pattern").info(
                "empty = [datetime]_[[model_name]]_[seed]-[seed_last]"
            ),
            "save_images_before_face_restoration": OptionInfo(
                False, "Save a copy of image before doing face restoration."
            ),
            "save_images_before_color_correction": OptionInfo(
                False, "Save a copy of image before applying color correction to img2img results"
            ),
            "save_mask": OptionInfo(False, "For inpainting, save a copy of the greyscale mask"),
            "save_mask_composite": OptionInfo(False, "For inpainting, save a masked composite"),
            "return_mask": OptionInfo(False, "For inpainting, include the greyscale mask in results for web"),
            "return_mask_composite": OptionInfo(
                False, "For inpainting, include masked composite in results for web"
            ),
            "save_init_img": OptionInfo(False, "Save init images when using img2img"),
            "save_incomplete_images": OptionInfo(False, "Save incomplete images").info(
                "save images that have been interrupted or skipped in mid-generation; even if not "
                "saved, they will still show up in the output"
            ),
            "open_dir_button_choice": OptionInfo(
                "Subdirectory",
                "What directory the [📂] button opens",
                "radio",
                {"choices": ["Output Root", "Subdirectory", "Subdirectory (even temp dir)"]},
            ),
        },
    )


def _saving_paths() -> dict[str, OptionInfo]:
    return options_section(
        SAVING_PATHS,
        {
            "outdir_samples": OptionInfo(
                "", "Output directory for images; if empty, defaults to the directories below"
            ).path_setting(),
            "outdir_txt2img_samples": OptionInfo(
                "outputs/txt2img-images", "Output directory for txt2img images"
            ).path_setting(),
            "outdir_img2img_samples": OptionInfo(
                "outputs/img2img-images", "Output directory for img2img images"
            ).path_setting(),
            "outdir_grids": OptionInfo(
                "", "Output directory for grids; if empty, defaults to the directories below"
            ).path_setting(),
            "outdir_txt2img_grids": OptionInfo(
                "outputs/txt2img-grids", "Output directory for txt2img grids"
            ).path_setting(),
            "outdir_img2img_grids": OptionInfo(
                "outputs/img2img-grids", "Output directory for img2img grids"
            ).path_setting(),
            "outdir_init_images": OptionInfo(
                "outputs/init-images", "Directory for saving init images when using img2img"
            ).path_setting(),
            "outdir_extras_samples": OptionInfo(
                "outputs/extras-images", "Output directory for images from extras tab"
            ).path_setting(),
            "outdir_save": OptionInfo(
                "log/images", "Directory for saving images using the Save button"
            ).path_setting(),
        },
    )


def _saving_to_dirs() -> dict[str, OptionInfo]:
    return options_section(
        SAVING_TO_DIRS,
        {
            "save_to_dirs": OptionInfo(True, "Save images to a subdirectory"),
            "grid_save_to_dirs": OptionInfo(True, "Save grids to a subdirectory"),
            "directories_filename_pattern": OptionInfo("[date]", "Directory name pattern"),
            "use_save_to_dirs_for_ui": OptionInfo(
                False, 'Use "Save images to a subdirectory" option for images saved with the Save button'
            ),
        },
    )


def _img2img() -> dict[str, OptionInfo]:
    """A1111's img2img settings (the ones Sumi's img2img uses, with A1111's keys, labels and defaults)."""
    return options_section(
        IMG2IMG,
        {
            "inpainting_mask_weight": OptionInfo(
                1.0,
                "Inpainting conditioning mask strength",
                "slider",
                _slider(0.0, 1.0, 0.01),
                infotext="Conditional mask weight",
            ).bounds(0.0, 1.0),
            "initial_noise_multiplier": OptionInfo(
                1.0,
                "Noise multiplier for img2img",
                "slider",
                _slider(0.0, 1.5, 0.001),
                infotext="Noise multiplier",
            ).bounds(0.0, 1.5),
            "img2img_extra_noise": OptionInfo(
                0.0,
                "Extra noise multiplier for img2img and hires fix",
                "slider",
                _slider(0.0, 1.0, 0.01),
                infotext="Extra noise",
            )
            .bounds(0.0, 1.0)
            .info("0 = disabled (default); should be lower than denoising strength"),
            "img2img_color_correction": OptionInfo(
                False, "Apply color correction to img2img results to match original colors."
            ),
            "img2img_fix_steps": OptionInfo(
                False, "With img2img, do exactly the amount of steps the slider specifies."
            ).info("normally you'd do less with less denoising"),
            "img2img_background_color": OptionInfo(
                "#ffffff", "With img2img, fill transparent parts of the input image with this color."
            ),
            "img2img_editor_height": OptionInfo(
                720, "Height of the image editor", "slider", _slider(80, 1600, 1)
            )
            .bounds(80, 1600)
            .info("in pixels"),
            "img2img_sketch_default_brush_color": OptionInfo("#ffffff", "Sketch initial brush color"),
            "img2img_inpaint_mask_brush_color": OptionInfo("#ffffff", "Inpaint mask brush color"),
            "img2img_inpaint_sketch_default_brush_color": OptionInfo(
                "#ffffff", "Inpaint sketch initial brush color"
            ),
            "img2img_batch_show_results_limit": OptionInfo(
                32, "Show the first N batch img2img results in UI", "slider", _slider(-1, 1000, 1)
            )
            .bounds(-1, 1000)
            .info("0: disable, -1: show all images. Too many images can cause lag"),
            "overlay_inpaint": OptionInfo(True, "Overlay original for inpaint").info(
                "when inpainting, overlay the original image over the areas that weren't inpainted."
            ),
        },
    )


def _hires_fix() -> dict[str, OptionInfo]:
    """A1111's Hires. fix settings (keys, labels and defaults of A1111 1.10, in its sections)."""
    return {
        **options_section(
            SAVING_IMAGES,
            {
                "save_images_before_highres_fix": OptionInfo(
                    False, "Save copy of image before applying highres fix."
                ),
            },
        ),
        **options_section(
            USER_INTERFACE,
            {
                "hires_fix_show_sampler": OptionInfo(
                    False, "Hires fix: show hires checkpoint and sampler selection"
                ).needs_reload_ui(),
                "hires_fix_show_prompts": OptionInfo(
                    False, "Hires fix: show hires prompt and negative prompt"
                ).needs_reload_ui(),
            },
        ),
        **options_section(
            COMPATIBILITY,
            {
                "use_old_hires_fix_width_height": OptionInfo(
                    False,
                    "For hires fix, use width/height sliders to set final resolution rather than first pass "
                    "(disables Upscale by, Resize width/height to).",
                ),
            },
        ),
    }


def _upscaling() -> dict[str, OptionInfo]:
    """A1111's Upscaling section (SwinIR's from its built-in extension). The upscaler lists get their
    choices from the App's upscaler registry (`UpscalerRegistry.attach_choices`)."""
    tile, overlap = _slider(0, 512, 16), _slider(0, 48, 1)
    realesrgan = {"choices": [name for name, _ in REALESRGAN_KNOWN.values()], "multiselect": True}
    dat = {"choices": [name for name, _ in DAT_KNOWN.values()], "multiselect": True}
    return options_section(
        UPSCALING,
        {
            "ESRGAN_tile": OptionInfo(192, "Tile size for ESRGAN upscalers.", "slider", tile)
            .bounds(0, 512)
            .info("0 = no tiling"),
            "ESRGAN_tile_overlap": OptionInfo(8, "Tile overlap for ESRGAN upscalers.", "slider", overlap)
            .bounds(0, 48)
            .info("Low values = visible seam"),
            "realesrgan_enabled_models": OptionInfo(
                ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
                "Select which Real-ESRGAN models to show in the web UI.",
                "dropdown",
                realesrgan,
            ),
            "dat_enabled_models": OptionInfo(
                ["DAT x2", "DAT x3", "DAT x4"],
                "Select which DAT models to show in the web UI.",
                "dropdown",
                dat,
            ),
            "DAT_tile": OptionInfo(192, "Tile size for DAT upscalers.", "slider", tile)
            .bounds(0, 512)
            .info("0 = no tiling"),
            "DAT_tile_overlap": OptionInfo(8, "Tile overlap for DAT upscalers.", "slider", overlap)
            .bounds(0, 48)
            .info("Low values = visible seam"),
            "SWIN_tile": OptionInfo(192, "Tile size for all SwinIR.", "slider", tile).bounds(0, 512),
            "SWIN_tile_overlap": OptionInfo(
                8, "Tile overlap, in pixels for SwinIR. Low values = visible seam.", "slider", overlap
            ).bounds(0, 48),
            "upscaler_for_img2img": OptionInfo(
                None, "Upscaler for img2img", "dropdown", lambda: {"choices": ["None", "Lanczos", "Nearest"]}
            ),
        },
    )


def _stable_diffusion() -> dict[str, OptionInfo]:
    return options_section(
        STABLE_DIFFUSION,
        {
            "sd_model_checkpoint": OptionInfo(
                None, "Stable Diffusion checkpoint", "dropdown", infotext="Model hash"
            ),
            "sd_checkpoints_limit": OptionInfo(
                1, "Maximum number of checkpoints loaded at the same time", "slider", _slider(1, 10, 1)
            ),
            "sd_checkpoints_keep_in_cpu": OptionInfo(True, "Only keep one model on device").info(
                "will keep models other than the currently used one in RAM rather than VRAM"
            ),
            "list_hidden_files": OptionInfo(True, "Load models/files in hidden directories").info(
                'directory is hidden if its name starts with "."'
            ),
            "CLIP_stop_at_last_layers": OptionInfo(
                1, "Clip skip", "slider", _slider(1, 12, 1), infotext="Clip skip"
            ).info("ignore last layers of CLIP network; 1 ignores none, 2 ignores one layer"),
            "emphasis": OptionInfo(
                "Original",
                "Emphasis mode",
                "radio",
                {"choices": ["None", "Ignore", "Original", "No norm"]},
                infotext="Emphasis",
            ).info("how (more:1.1) and (less:0.9) in a prompt change attention to those words"),
            "comma_padding_backtrack": OptionInfo(
                20, "Prompt word wrap length limit", "slider", _slider(0, 74, 1)
            ).info(
                "in tokens - for texts shorter than specified, if they don't fit into 75 token limit, move them to the next 75 token chunk"
            ),
            "pad_cond_uncond": OptionInfo(
                False, "Pad prompt/negative prompt to be same length", infotext="Pad conds"
            ).info(
                "improves performance when prompt and negative prompt have different lengths; changes seeds"
            ),
            "use_old_scheduling": OptionInfo(
                False,
                "Use old prompt editing timelines.",
                infotext="Old prompt editing timelines",
            ).info(
                "for [red:green:N]; old: a number below 1 is a fraction of steps, else steps; new: a fraction has a dot"
            ),
            "randn_source": OptionInfo(
                "CPU",
                "Random number generator source",
                "radio",
                {"choices": ["GPU", "CPU", "NV"]},
                infotext="RNG",
            ).info(
                "changes seeds drastically; Sumi defaults to CPU so a seed gives the same picture on any hardware; "
                "NV gives the noise an NVIDIA GPU draws (A1111's NV) on any machine"
            ),
            "disable_weights_auto_swap": OptionInfo(
                True, "Do not change the checkpoint when pasting an infotext"
            ).info("when reading generation parameters from text into UI"),
            "tiling": OptionInfo(False, "Tiling", infotext="Tiling").info(
                "produce a tileable picture (the default of the Tiling checkbox and of the API's `tiling`)"
            ),
        },
    )


def _fp8_weights() -> dict[str, OptionInfo]:
    """A1111's "FP8 weight" options (Optimizations): engine.accel.fp8."""
    return options_section(
        OPTIMIZATIONS,
        {
            "fp8_storage": OptionInfo(
                "Disable", "FP8 weight", "radio", {"choices": ["Disable", "Enable for SDXL", "Enable"]}
            ).info(
                "store the UNet's Linear/Conv weights in FP8 (half the memory of fp16), upcast layer by "
                "layer when used; changing it reloads the model"
            ),
            "cache_fp16_weight": OptionInfo(False, "Cache FP16 weight for LoRA").info(
                "with FP8 weight: keep an fp16 copy of each weight in RAM so LoRA is applied to it "
                "(better LoRA quality, more RAM)"
            ),
        },
    )


def _vae() -> dict[str, OptionInfo]:
    return options_section(
        VAE,
        {
            "sd_vae": OptionInfo("Automatic", "SD VAE", "dropdown", infotext="VAE").info(
                "Automatic = use one with the same name as the checkpoint; None = use the VAE inside the checkpoint"
            ),
            "sd_vae_overrides_per_model_preferences": OptionInfo(
                True, "Selected VAE overrides per-model preferences"
            ),
            "auto_vae_precision": OptionInfo(True, "Automatically revert VAE to 32-bit floats").info(
                "triggers when the VAE produces NaNs; without it such images come out black"
            ),
            "sumi_tiled_vae": OptionInfo(
                "Auto", "Tiled VAE", "radio", {"choices": ["Auto", "Always", "Never"]}
            ).info(
                "encode and decode large images in tiles; Auto: when the whole image would not fit in free "
                "memory, and after the VAE runs out of memory"
            ),
            "sumi_tiled_vae_tile_size": OptionInfo(
                64,
                "Tiled VAE tile size (latent pixels)",
                "slider",
                {"minimum": 16, "maximum": 256, "step": 8},
            ).info("8 image pixels each; smaller tiles need less memory"),
            "sumi_tiled_vae_overlap": OptionInfo(
                16, "Tiled VAE overlap (latent pixels)", "slider", {"minimum": 0, "maximum": 64, "step": 1}
            ).info(
                "blended between neighbouring tiles, and the context each tile sees; at most half the tile"
            ),
        },
    )


def _infotext() -> dict[str, OptionInfo]:
    return options_section(
        INFOTEXT,
        {
            "add_model_hash_to_info": OptionInfo(True, "Add model hash to infotext"),
            "add_model_name_to_info": OptionInfo(True, "Add model name to infotext"),
            "add_version_to_infotext": OptionInfo(True, "Add program version to infotext"),
            "infotext_styles": OptionInfo(
                "Apply if any",
                "Infer styles from prompts of pasted infotext",
                "radio",
                {"choices": ["Ignore", "Apply", "Discard", "Apply if any"]},
            ).info(
                "when reading generation parameters from text into UI; Ignore: keep prompt and styles; "
                "Apply: remove style text from prompt, always set the styles dropdown to the found styles; "
                "Discard: remove style text from prompt, keep the styles dropdown; "
                "Apply if any: remove style text from prompt, set the styles dropdown only if styles were found"
            ),
        },
    )


def _user_interface() -> dict[str, OptionInfo]:
    return options_section(
        USER_INTERFACE,
        {
            "return_grid": OptionInfo(True, "Show grid in gallery"),
            "send_seed": OptionInfo(True, "Send seed when sending prompt or image to other interface"),
            "send_size": OptionInfo(True, "Send size when sending prompt or image to other interface"),
            # choices: the App sets them to the localizations found (services/settings/localizations.py)
            "localization": OptionInfo(
                "None", "Localization", "dropdown", lambda: {"choices": ["None"]}
            ).info(
                "localizations/<name>.json of the data folder and of extensions; applies when the page is loaded"
            ),
            "gallery_height": OptionInfo("", "Gallery height")
            .info("a CSS length for the results galleries, for example 768px or 20em; empty: fit the images")
            .needs_reload_ui(),
            "notification_audio": OptionInfo(True, "Play notification sound after image generation").info(
                "notification.mp3 in the data folder or Sumi's folder"
            ),
            "notification_volume": OptionInfo(
                100, "Notification sound volume", "slider", _slider(0, 100, 1)
            ).bounds(0, 100),
            "multiple_tqdm": OptionInfo(True, "Second console progress bar for the whole job"),
            **_prompt_editing(),
        },
    )


def _prompt_editing() -> dict[str, OptionInfo]:
    """A1111's keys for Ctrl+Up/Down and Alt+Left/Right in the prompt boxes (edit_attention.js reads them)."""
    return {
        "keyedit_precision_attention": OptionInfo(
            0.1,
            "Precision for (attention:1.1) when editing the prompt with Ctrl+up/down",
            "slider",
            _slider(0.01, 0.2, 0.001),
        ).bounds(0.01, 0.2),
        "keyedit_precision_extra": OptionInfo(
            0.05,
            "Precision for <extra networks:0.9> when editing the prompt with Ctrl+up/down",
            "slider",
            _slider(0.01, 0.2, 0.001),
        ).bounds(0.01, 0.2),
        "keyedit_delimiters": OptionInfo(
            r".,\/!?%^*;:{}=`~() ", "Word delimiters when editing the prompt with Ctrl+up/down"
        ),
        "keyedit_delimiters_whitespace": OptionInfo(
            ["Tab", "Carriage Return", "Line Feed"],
            "Ctrl+up/down whitespace delimiters",
            "dropdown",
            {"choices": ["Tab", "Carriage Return", "Line Feed"], "multiselect": True},
        ),
        "keyedit_move": OptionInfo(True, "Alt+left/right moves prompt elements"),
    }


def _live_previews() -> dict[str, OptionInfo]:
    return options_section(
        LIVE_PREVIEWS,
        {
            "show_progressbar": OptionInfo(True, "Show progressbar"),
            "live_previews_enable": OptionInfo(True, "Show live previews of the created image"),
            "live_previews_image_format": OptionInfo(
                "png", "Live preview file format", "radio", {"choices": list(PREVIEW_FORMATS)}
            ),
            "show_progress_every_n_steps": OptionInfo(
                10, "Live preview display period", "slider", _slider(-1, 32, 1)
            ).info(
                "in sampling steps - show a new live preview every N sampling steps; 0 or -1 = no previews while sampling"
            ),
            "show_progress_type": OptionInfo(
                "Approx NN", "Live preview method", "radio", {"choices": list(PREVIEW_METHODS)}
            ).info(
                "Full = slow but pretty; Approx NN and TAESD = fast but low quality; Approx cheap = super fast "
                "but terrible otherwise; Approx NN and TAESD need their files in models/VAE-approx (see "
                "docs/performance.md), else Approx cheap is shown"
            ),
            "live_preview_allow_lowvram_full": OptionInfo(
                False, "Allow Full live preview method with lowvram/medvram"
            ).info(
                "If not, Approx NN will be used instead; Full live preview method is very detrimental to speed "
                "if lowvram/medvram optimizations are enabled"
            ),
            "live_preview_content": OptionInfo(
                "Prompt",
                "Live preview subject",
                "radio",
                {"choices": ["Combined", "Prompt", "Negative prompt"]},
            ),
            "live_preview_fast_interrupt": OptionInfo(
                False, "Return image with chosen live preview method on interrupt"
            ).info("makes interrupts faster"),
            "live_preview_refresh_period": OptionInfo(300, "Progressbar and preview update period").info(
                "in milliseconds; how often the page asks for progress and a new preview (A1111: 1000)"
            ),
        },
    )


def _sampler_params() -> dict[str, OptionInfo]:
    return options_section(
        SAMPLER_PARAMS,
        {
            "eta_ddim": OptionInfo(
                0.0, "Eta for DDIM", "slider", _slider(0.0, 1.0, 0.01), infotext="Eta DDIM"
            ).info("noise multiplier; higher = more unpredictable results"),
            "eta_ancestral": OptionInfo(
                1.0, "Eta for k-diffusion samplers", "slider", _slider(0.0, 1.0, 0.01), infotext="Eta"
            ).info("noise multiplier; applies to ancestral samplers (i.e. Euler a) and SDE samplers"),
            "eta_noise_seed_delta": OptionInfo(
                0, "Eta noise seed delta", "number", {"precision": 0}, infotext="ENSD"
            )
            .bounds(0, MAX_ENSD)
            .info(
                "ENSD; does not improve anything, just produces different results for ancestral samplers - only useful for reproducing images"
            ),
            **_churn_options(),
            **_schedule_options(),
            **_unipc_options(),
            "skip_early_cond": OptionInfo(
                0.0,
                "Ignore negative prompt during early sampling",
                "slider",
                _slider(0.0, 1.0, 0.01),
                infotext="Skip Early CFG",
            )
            .bounds(0.0, 1.0)
            .info(
                "disables CFG on a proportion of steps at the beginning of generation; 0=skip none; 1=skip all; "
                "can both improve sample diversity/quality and speed up sampling"
            ),
        },
    )


def _churn_options() -> dict[str, OptionInfo]:
    """k-diffusion's churn for Euler, Heun and DPM2 (engine.sampling.tuning.Churn)."""
    only = "; only applies to Euler, Heun, and DPM2"
    return {
        "s_churn": OptionInfo(0.0, "sigma churn", "slider", _slider(0.0, 100.0, 0.01), infotext="Sigma churn")
        .bounds(0.0, 100.0)
        .info("amount of stochasticity" + only),
        "s_tmin": OptionInfo(0.0, "sigma tmin", "slider", _slider(0.0, 10.0, 0.01), infotext="Sigma tmin")
        .bounds(0.0, 10.0)
        .info("enable stochasticity; start value of the sigma range" + only),
        "s_tmax": OptionInfo(0.0, "sigma tmax", "slider", _slider(0.0, 999.0, 0.01), infotext="Sigma tmax")
        .bounds(0.0, 999.0)
        .info("0 = inf; end value of the sigma range" + only),
        "s_noise": OptionInfo(1.0, "sigma noise", "slider", _slider(0.0, 1.1, 0.001), infotext="Sigma noise")
        .bounds(0.0, 1.1)
        .info("amount of additional noise to counteract loss of detail during sampling" + only),
    }


def _unipc_options() -> dict[str, OptionInfo]:
    """A1111's UniPC settings (engine.sampling.unipc; engine.sampling.tuning.UniPCTuning)."""
    return {
        "uni_pc_variant": OptionInfo(
            "bh1",
            "UniPC variant",
            "radio",
            {"choices": ["bh1", "bh2", "vary_coeff"]},
            infotext="UniPC variant",
        ),
        "uni_pc_skip_type": OptionInfo(
            "time_uniform",
            "UniPC skip type",
            "radio",
            {"choices": ["time_uniform", "time_quadratic", "logSNR"]},
            infotext="UniPC skip type",
        ),
        "uni_pc_order": OptionInfo(3, "UniPC order", "slider", _slider(1, 50, 1), infotext="UniPC order")
        .bounds(1, 50)
        .info("must be < sampling steps"),
        "uni_pc_lower_order_final": OptionInfo(
            True, "UniPC lower order final", infotext="UniPC lower order final"
        ),
    }


def _schedule_options() -> dict[str, OptionInfo]:
    """The k-diffusion samplers' schedule (engine.sampling.tuning.ScheduleTuning)."""
    return {
        "sigma_min": OptionInfo(0.0, "sigma min", "number", infotext="Schedule min sigma")
        .bounds(0.0, 1000.0)
        .info("0 = default (~0.03); minimum noise strength for k-diffusion noise scheduler"),
        "sigma_max": OptionInfo(0.0, "sigma max", "number", infotext="Schedule max sigma")
        .bounds(0.0, 1000.0)
        .info("0 = default (~14.6); maximum noise strength for k-diffusion noise scheduler"),
        "rho": OptionInfo(0.0, "rho", "number", infotext="Schedule rho")
        .bounds(0.0, 100.0)
        .info(
            "0 = default (7 for karras, 1 for polyexponential); higher values result in a steeper noise "
            "schedule (decreases faster)"
        ),
        "always_discard_next_to_last_sigma": OptionInfo(
            False, "Always discard next-to-last sigma", infotext="Discard penultimate sigma"
        ),
        "sgm_noise_multiplier": OptionInfo(
            False, "SGM noise multiplier", infotext="SGM noise multiplier"
        ).info("Match initial noise to official SDXL implementation - only useful for reproducing images"),
        "beta_dist_alpha": OptionInfo(
            0.6, "Beta scheduler - alpha", "slider", _slider(0.01, 1.0, 0.01), infotext="Beta schedule alpha"
        )
        .bounds(0.01, 1.0)
        .info("Default = 0.6; the alpha parameter of the beta distribution used in Beta sampling"),
        "beta_dist_beta": OptionInfo(
            0.6, "Beta scheduler - beta", "slider", _slider(0.01, 1.0, 0.01), infotext="Beta schedule beta"
        )
        .bounds(0.01, 1.0)
        .info("Default = 0.6; the beta parameter of the beta distribution used in Beta sampling"),
    }


def _token_merging(label: str, infotext: str | None) -> OptionInfo:
    """A token merging ratio (engine/accel/token_merging.py): A1111's slider, 0 to 0.9."""
    return OptionInfo(0.0, label, "slider", _slider(0.0, 0.9, 0.1), infotext=infotext).bounds(0.0, 0.9)


def _negative_guidance() -> dict[str, OptionInfo]:
    """NGMS (Optimizations): CFG without the negative prompt late in sampling (engine.sampling.tuning)."""
    return options_section(
        OPTIMIZATIONS,
        {
            "s_min_uncond": OptionInfo(
                0.0,
                "Negative Guidance minimum sigma",
                "slider",
                _slider(0.0, 15.0, 0.01),
                infotext="NGMS",
            )
            .bounds(0.0, 15.0)
            .info(
                "skip negative prompt for some steps when the image is almost ready; 0=disable, higher=faster"
            ),
            "s_min_uncond_all": OptionInfo(
                False, "Negative Guidance minimum sigma all steps", infotext="NGMS all steps"
            ).info("By default, NGMS above skips every other step; this makes it skip all steps"),
            "token_merging_ratio": _token_merging("Token merging ratio", "Token merging ratio").info(
                "0=disable, higher=faster"
            ),
            "token_merging_ratio_img2img": _token_merging("Token merging ratio for img2img", None).info(
                "only applies if non-zero and overrides above"
            ),
            "token_merging_ratio_hr": _token_merging(
                "Token merging ratio for high-res pass", "Token merging ratio hr"
            ).info("only applies if non-zero and overrides above"),
        },
    )


def _limits() -> dict[str, OptionInfo]:
    def number(default: int, label: str, ceiling: int, minimum: int = 1) -> OptionInfo:
        info = OptionInfo(default, label, "number", {"precision": 0, "minimum": minimum, "maximum": ceiling})
        return info.bounds(minimum, ceiling)

    return options_section(
        LIMITS,
        {
            "max_steps": number(150, "Maximum sampling steps a job may ask for (Sumi)", limits.STEPS_CEILING),
            "max_batch_size": number(
                32, "Maximum batch size a job may ask for (Sumi)", limits.BATCH_SIZE_CEILING
            ),
            "max_batch_count": number(
                100, "Maximum batch count a job may ask for (Sumi)", limits.BATCH_COUNT_CEILING
            ),
            "max_image_size": number(
                2048,
                "Maximum width or height of a generated image, in pixels (Sumi)",
                limits.IMAGE_SIDE_CEILING,
                limits.MIN_IMAGE_SIDE,
            ),
            "max_prompt_length": number(
                limits.DEFAULT_MAX_PROMPT_LENGTH,
                "Maximum length of a prompt or negative prompt, in characters (Sumi)",
                limits.PROMPT_LENGTH_CEILING,
            ),
        },
    )


def _controlnet() -> dict[str, OptionInfo]:
    """sd-webui-controlnet's settings that Sumi honours, under the extension's keys."""
    return options_section(
        CONTROLNET,
        {
            "control_net_unit_count": OptionInfo(
                3, "Multi-ControlNet: ControlNet unit number (requires restart)", "slider", _slider(1, 10, 1)
            ).needs_reload_ui(),
            "control_net_model_cache_size": OptionInfo(
                2, "Model cache size (requires restart)", "slider", _slider(1, 10, 1)
            ),
            "control_net_inpaint_blur_sigma": OptionInfo(
                7, "ControlNet inpainting Gaussian blur sigma", "slider", _slider(0, 64, 1)
            ),
            "control_net_no_detectmap": OptionInfo(False, "Do not append detectmap to output"),
            "control_net_detectmap_autosaving": OptionInfo(False, "Allow detectmap auto saving").info(
                "each unit's detected map is written to <the directory below>/<preprocessor>/"
            ),
            "control_net_detectedmap_dir": OptionInfo(
                "detected_maps", "Directory for detected maps auto saving"
            )
            .info("relative to the job's image folder")
            .path_setting(),
        },
    )


def _face_restoration() -> dict[str, OptionInfo]:
    """A1111's section; the model radio lists the restorers found (the App sets its choices)."""
    return options_section(
        FACE_RESTORATION,
        {
            "face_restoration": OptionInfo(False, "Restore faces").info(
                "will use a third-party model on generation result to reconstruct faces"
            ),
            "face_restoration_model": OptionInfo(
                "CodeFormer", "Face restoration model", "radio", {"choices": ["CodeFormer", "GFPGAN"]}
            ).one_of(["CodeFormer", "GFPGAN"]),
            "code_former_weight": OptionInfo(0.5, "CodeFormer weight", "slider", _slider(0, 1, 0.01)).info(
                "0 = maximum effect; 1 = minimum effect"
            ),
            "face_restoration_unload": OptionInfo(
                False, "Move face restoration model from VRAM into RAM after processing"
            ),
        },
    )


def _refiner() -> dict[str, OptionInfo]:
    """A1111's refiner settings, in A1111's sections (services/jobs/refiner.py reads them)."""
    return {
        **options_section(
            STABLE_DIFFUSION,
            {
                "hires_fix_refiner_pass": OptionInfo(
                    "second pass",
                    "Hires fix: which pass to enable refiner for",
                    "radio",
                    {"choices": ["first pass", "second pass", "both passes"]},
                    infotext="Hires refiner",
                ),
            },
        ),
        **options_section(
            ("sdxl", "Stable Diffusion XL"),
            {
                "sdxl_refiner_low_aesthetic_score": OptionInfo(
                    2.5, "SDXL low aesthetic score", "number"
                ).info("used for refiner model negative prompt"),
                "sdxl_refiner_high_aesthetic_score": OptionInfo(
                    6.0, "SDXL high aesthetic score", "number"
                ).info("used for refiner model prompt"),
            },
        ),
        **options_section(
            ("compatibility", "Compatibility"),
            {
                "refiner_switch_by_sample_steps": OptionInfo(
                    False,
                    "Switch to refiner by sampling steps instead of model timesteps. Old behavior for refiner.",
                    infotext="Refiner switch by sampling steps",
                ),
            },
        ),
    }


def _compile() -> dict[str, OptionInfo]:
    """The compiled fast path (engine/accel/compiled.py; the model manager applies it to each job)."""
    return options_section(
        ("optimizations", "Optimizations"),
        {
            "sumi_compile_unet": OptionInfo(
                "Off",
                "Compile the UNet (torch.compile, CUDA graphs on a GPU; or OpenVINO on a CPU)",
                "radio",
                {"choices": list(COMPILE_CHOICES)},
            ).info(
                "faster steps after a one-time compilation per resolution and batch (the first image at a "
                "new size says 'compiling (once)'); LoRA changes need no recompile; hypernetworks, "
                "ControlNet and --lowvram run uncompiled; --compile turns it on as 'UNet'. OpenVINO "
                "(CPU only, pip install openvino): about a minute per size to trace, then the fastest "
                "CPU steps; a LoRA change compiles again in about a second; --use-openvino"
            ),
        },
    )


def _training() -> dict[str, OptionInfo]:
    """A1111's Training section (keys, labels and defaults of 1.10); Sumi's trainers read them."""
    return options_section(
        ("training", "Training"),
        {
            "unload_models_when_training": OptionInfo(
                False, "Move VAE and CLIP to RAM when training if possible. Saves VRAM."
            ).info("not used by Sumi yet: the model stays where it is while training"),
            "pin_memory": OptionInfo(
                False,
                "Turn on pin_memory for DataLoader. Makes training slightly faster but can increase memory usage.",
            ).info("no effect in Sumi: latents are cached on the training device, there is no DataLoader"),
            "save_optimizer_state": OptionInfo(
                False,
                "Saves Optimizer state as separate *.optim file. Training of embedding or HN can be resumed "
                "with the matching optim file.",
            ),
            "save_training_settings_to_txt": OptionInfo(
                True, "Save textual inversion and hypernet settings to a text file whenever training starts."
            ),
            "dataset_filename_word_regex": OptionInfo("", "Filename word regex"),
            "dataset_filename_join_string": OptionInfo(" ", "Filename join string"),
            "training_image_repeats_per_epoch": OptionInfo(
                1,
                "Number of repeats for a single input image per epoch (Sumi repeats the images within an epoch)",
                "number",
                {"precision": 0},
            ).bounds(1, None),
            "training_write_csv_every": OptionInfo(
                500, "Save an csv containing the loss to log directory every N steps, 0 to disable"
            ).bounds(0, None),
            "training_xattention_optimizations": OptionInfo(
                False, "Use cross attention optimizations while training"
            ).info("no effect in Sumi: training uses the same attention (SDPA) as generation"),
            "training_enable_tensorboard": OptionInfo(False, "Enable tensorboard logging.").info(
                "not supported by Sumi: the Train tab plots the loss; the loss CSV is in the log directory"
            ),
            "training_tensorboard_save_images": OptionInfo(
                False, "Save generated images within tensorboard."
            ).info("not supported by Sumi (no tensorboard logging)"),
            "training_tensorboard_flush_every": OptionInfo(
                120,
                "How often, in seconds, to flush the pending tensorboard events and summaries to disk.",
            ).info("not supported by Sumi (no tensorboard logging)"),
        },
    )


def _a1111_only() -> dict[str, OptionInfo]:
    """A1111 settings for features Sumi does not have (A1111's console and gallery layout), with A1111's
    defaults, so extensions that read them find them.
    Hidden in Settings: changing them changes nothing in Sumi."""
    return options_section(
        HIDDEN,
        {
            "temp_dir": OptionInfo(
                "", "Directory for temporary images; leave empty for default"
            ).path_setting(),
            "clean_temp_dir_at_start": OptionInfo(
                False, "Cleanup non-default temporary directory when starting webui"
            ),
            "enable_console_prompts": OptionInfo(False, "Print prompts to console"),
            "samples_log_stdout": OptionInfo(False, "Always print all generation info to standard output"),
            "compact_prompt_box": OptionInfo(False, "Compact prompt layout"),
            "do_not_show_images": OptionInfo(False, "Do not show any images in gallery"),
            # obsolete in A1111 1.10 too ("set to 0 and use the two settings above"); supermerger sets it
            # to 0 while it merges and puts it back. Sumi's model cache is sd_checkpoints_limit
            "sd_checkpoint_cache": OptionInfo(0, "Checkpoints to cache in RAM", "slider", _slider(0, 10, 1)),
            # A1111 1.6+ keeps it (and `p.ddim_discretize`), but its DDIM takes uniform timesteps and reads
            # it nowhere; Sumi's DDIM does the same, so images match A1111 1.10's whatever it says
            "ddim_discretize": OptionInfo(
                "uniform", "img2img DDIM discretize", "radio", {"choices": ["uniform", "quad"]}
            ),
        },
    )


def _extensions() -> dict[str, OptionInfo]:
    """Which extensions load; written by the Extensions tab, hidden in Settings (A1111's keys and values)."""
    return options_section(
        HIDDEN,
        {
            "disabled_extensions": OptionInfo(
                [],
                "Disable these extensions",
                "dropdown",
                {"choices": [], "multiselect": True, "allow_custom_value": True},
            ),
            "disable_all_extensions": OptionInfo(
                "none",
                "Disable all extensions (preserves the list of disabled extensions)",
                "radio",
                {"choices": ["none", "extra", "all"]},
            ),
        },
    )


def _current_checkpoint() -> dict[str, OptionInfo]:
    """Written when a checkpoint loads, hidden in Settings (A1111's key; API clients read it from
    /sdapi/v1/options to find the loaded model in /sdapi/v1/sd-models by its sha256)."""
    return options_section(
        HIDDEN, {"sd_checkpoint_hash": OptionInfo("", "SHA256 hash of the current checkpoint")}
    )


def builtin_options() -> dict[str, OptionInfo]:
    """A fresh dict of the built-in options (new objects each call, so no two Options share state)."""
    labels: dict[str, OptionInfo] = {}
    for group in (
        _saving_images,
        _saving_paths,
        _saving_to_dirs,
        _stable_diffusion,
        _img2img,
        _hires_fix,
        _upscaling,
        _vae,
        _fp8_weights,
        _negative_guidance,
        _infotext,
        _user_interface,
        _live_previews,
        _sampler_params,
        _limits,
        _controlnet,
        _face_restoration,
        _extensions,
        _current_checkpoint,
        _refiner,
        _compile,
        _training,
        _a1111_only,
    ):
        labels.update(group())
    labels.update(postprocessing_options(OptionInfo, options_section))
    labels.update(interrogate_options(OptionInfo, options_section))
    labels.update(extra_networks_options(OptionInfo, options_section))
    return labels
