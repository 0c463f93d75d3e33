"""Changing settings: checks, model switches, saving to config.json, and extensions' own options.

What the Settings tab, the quick-settings checkpoint list, the checkpoint cards and POST
/sdapi/v1/options all call. The model manager and the callback registry sit above the settings (they
read the options), so they come in through the small protocols below.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from modules.sumi.engine.accel import openvino_graph
from modules.sumi.engine.accel.compiled import OPENVINO_PREFIX
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.settings.options import OptionInfo, Options
from modules.sumi.services.settings.paths import DataPaths

# Settings whose change loads or re-places the model now (the VAE; fp8 weight storage).
PLACEMENT_KEYS = frozenset({"sd_vae", "fp8_storage", "cache_fp16_weight"})


class ModelChoices(Protocol):
    """What the settings need of the model manager."""

    def checkpoint_title(self, name: str) -> str | None: ...

    def vae_names(self) -> list[str]: ...

    def get(self) -> object: ...


class UiSettingsCallbacks(Protocol):
    """What the settings need of the scripts' callback registry: the `ui_settings` entries (each with
    `callback`, `script` and `name`) and the place to report one that raised."""

    @property
    def entries(self) -> Mapping[str, Sequence[Any]]: ...

    def report(self, category: str, entry: Any, exc: BaseException) -> None: ...


# A1111's `restricted_opts`: with --hide-ui-dir-config these (and every path setting) cannot be changed.
RESTRICTED_OPTS = frozenset(
    {
        "samples_filename_pattern",
        "directories_filename_pattern",
        "outdir_samples",
        "outdir_txt2img_samples",
        "outdir_img2img_samples",
        "outdir_extras_samples",
        "outdir_grids",
        "outdir_txt2img_grids",
        "outdir_save",
        "outdir_init_images",
    }
)
_PATH_SUFFIXES = ("_dir", "_path", "_file", "_folder", "_directory")


def is_path_setting(key: str, info: OptionInfo) -> bool:
    """Does the setting name a folder or file? Sumi's marked ones, and by A1111's naming: `outdir_*`,
    `*_dir`, `*_path`, `*_file`, `*_folder`, `*_directory` (extensions' settings included)."""
    return info.names_a_path or key.startswith("outdir_") or key.endswith(_PATH_SUFFIXES)


class SettingsNotSaved(RuntimeError):
    """config.json could not be written; the settings in memory were put back as they were."""


class SettingsService:
    def __init__(
        self,
        options: Options,
        paths: DataPaths,
        models: ModelChoices,
        callbacks: UiSettingsCallbacks,
        notice: Callable[[str], None],
        flags: Any = None,
    ) -> None:
        self.options = options
        self.paths = paths
        self.models = models
        self.callbacks = callbacks
        self.notice = notice
        self.flags = flags
        # Problems found while the UI took in extensions' settings and tabs (shown in the Extensions tab).
        self.extension_problems: list[str] = []
        self._extension_options_added = False
        self._writing = threading.RLock()

    # -- changing settings ------------------------------------------------------------------------
    def set(self, values: dict[str, Any], *, is_api: bool = False) -> None:
        """Check, apply and persist settings; switching `sd_model_checkpoint` or `sd_vae` loads the model now.

        Values equal to those held are left out (`_changes`); every other value is checked first (known
        key, type, range, choices, paths inside the data dir, the --freeze-settings/--hide-ui-dir-config
        locks): one bad value refuses them all with an InvalidRequestError and nothing changes. A model that fails to load, or a config.json that
        cannot be written (SettingsNotSaved), puts the old values back in memory."""
        with self.options.outside_job_view():
            with self._writing:
                values = self.checked(self._changes(values), is_api=is_api)
                data = self.options.global_data()
                previous = {key: data.get(key, self.options.get_default(key)) for key in values}
                self._applied(previous, lambda: [self._set_option(k, v) for k, v in values.items()])
            if values.get("sd_model_checkpoint") is not None or PLACEMENT_KEYS & values.keys():
                # Not under the lock: the load waits for the running job, which may change settings too.
                self._applied(previous, self.models.get)
            with self._writing:
                self._applied(previous, self._save)

    def _applied(self, previous: dict[str, Any], step: Callable[[], object]) -> None:
        """Run one step of `set`; if it fails, put the values back as they were before `set`."""
        try:
            step()
        except BaseException:
            with self._writing:
                self._restore(previous)
            raise

    def _save(self) -> None:
        path = self.paths.config_file
        try:
            self.options.save(path)
        except OSError as exc:
            raise SettingsNotSaved(
                f"The settings could not be saved to {path} ({exc.strerror or exc}); nothing was changed"
            ) from exc

    def _restore(self, previous: dict[str, Any]) -> None:
        data = self.options.global_data()
        for key, value in previous.items():
            try:
                self.options.set(key, value)
            except Exception:  # a value that no longer passes the checks (or an onchange that fails)
                data[key] = value

    def _changes(self, values: Any) -> Any:
        """`values` less those equal to the value held, known setting or not: A1111's `opts.set` returns
        early for them, unchecked. Clients post back all of GET /sdapi/v1/options with one value changed
        (Open WebUI's model switch), config.json keys no option claims included."""
        if not isinstance(values, dict):
            return values  # `checked` refuses it
        current = self.options.global_data()
        return {key: value for key, value in values.items() if not _same(current.get(key), value)}

    def checked(self, values: dict[str, Any], *, is_api: bool = False) -> dict[str, Any]:
        """`values` as they would be stored (the checkpoint as its title, 3.0 as 3 for an int option);
        InvalidRequestError naming the first setting that may not take its value."""
        if not isinstance(values, dict):
            raise InvalidRequestError("Settings must be a JSON object of setting names and values")
        unknown = [key for key in values if key not in self.options.data_labels]
        if unknown:
            raise InvalidRequestError(f"Unknown setting: {', '.join(map(repr, unknown))}")
        current = self.options.global_data()
        changed = {key: value for key, value in values.items() if not _same(current.get(key), value)}
        for key in changed:
            self._check_lock(key, is_api=is_api)
        return {key: self._checked_value(key, value) for key, value in values.items()}

    def checked_overrides(
        self, values: dict[str, Any], *, is_api: bool = False
    ) -> tuple[dict[str, Any], list[str]]:
        """A job's `override_settings` as the job will see them, and warnings for keys no setting has
        (ignored, as A1111 does). The same checks as `set`: a bogus checkpoint, a value out of range or
        choices, a path outside the data dir, or a locked setting is an InvalidRequestError."""
        if not isinstance(values, dict):
            raise InvalidRequestError("override_settings must be a JSON object of setting names and values")
        known = {key: value for key, value in values.items() if key in self.options.data_labels}
        warnings = [
            f"override_settings: unknown setting {key!r} (ignored)" for key in values if key not in known
        ]
        return self.checked(known, is_api=is_api), warnings

    def _check_lock(self, key: str, *, is_api: bool) -> None:
        """The flags that lock settings (A1111's semantics, refused with a clear message)."""
        flags, info = self.flags, self.options.data_labels[key]
        if flags is not None and getattr(flags, "freeze_settings", False):
            raise InvalidRequestError(
                f"Setting {key!r} cannot be changed: settings are frozen (--freeze-settings)"
            )
        section = (info.section or (None, ""))[0]
        if section and section in _csv(getattr(flags, "freeze_settings_in_sections", None)):
            raise InvalidRequestError(
                f"Setting {key!r} cannot be changed: its section {section!r} is frozen (--freeze-settings-in-sections)"
            )
        if key in _csv(getattr(flags, "freeze_specific_settings", None)):
            raise InvalidRequestError(
                f"Setting {key!r} cannot be changed: it is frozen (--freeze-specific-settings)"
            )
        if getattr(flags, "hide_ui_dir_config", False) and self.is_dir_config(key):
            raise InvalidRequestError(
                f"Setting {key!r} cannot be changed: folders are locked (--hide-ui-dir-config)"
            )
        if is_api and info.restrict_api:
            raise InvalidRequestError(f"Setting {key!r} cannot be changed through the API")

    def is_dir_config(self, key: str) -> bool:
        """What --hide-ui-dir-config locks and hides: A1111's restricted settings, every path setting,
        and settings an extension hides with `shared.hide_dirs`."""
        info = self.options.data_labels[key]
        args = info.component_args if isinstance(info.component_args, dict) else {}
        hidden = "visible" in args and set(args) <= {"visible", "minimum", "maximum", "step"}
        return key in RESTRICTED_OPTS or is_path_setting(key, info) or hidden

    def _checked_value(self, key: str, value: Any) -> Any:
        if key == "sd_model_checkpoint" and value is not None:
            title = self.models.checkpoint_title(str(value))
            if title is None:
                raise InvalidRequestError(
                    f"Setting 'sd_model_checkpoint': no checkpoint is called {value!r} "
                    "(use a title, name or hash from /sdapi/v1/sd-models)"
                )
            return title
        if key == "sd_vae":
            self._check_vae_name(value)
        if (
            key == "sumi_compile_unet"
            and str(value).startswith(OPENVINO_PREFIX)
            and not openvino_graph.available()
        ):
            raise InvalidRequestError(f"Setting 'sumi_compile_unet': {openvino_graph.INSTALL_HINT}")
        try:
            value = self.options.checked_value(key, value)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRequestError(f"Setting {key!r}: {exc}") from exc
        if isinstance(value, str) and value and is_path_setting(key, self.options.data_labels[key]):
            try:
                self.paths.confine(value)
            except ValueError as exc:
                raise InvalidRequestError(f"Setting {key!r}: {exc}") from exc
        return value

    def _check_vae_name(self, name: Any) -> None:
        """An explicit VAE choice must exist (a stale one in config.json only falls back, as A1111)."""
        names = self.models.vae_names()
        if name is None or name in names:
            return
        raise InvalidRequestError(f"Setting 'sd_vae': no VAE is called {name!r}; choices: {', '.join(names)}")

    def _set_option(self, key: str, value: Any) -> None:
        try:
            self.options.set(key, value)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRequestError(f"Setting {key!r}: {exc}") from exc

    # -- extensions' options ----------------------------------------------------------------------
    def add_extension_options(self) -> None:
        """Run the `on_ui_settings` callbacks once, so extensions' options exist for the UI and the API.

        An option key that is already taken (by Sumi or an earlier extension) keeps its first
        description and value; the later one is reported in `notices` and `extension_problems`."""
        if self._extension_options_added:
            return
        self._extension_options_added = True
        owners = {key: "Sumi" for key in self.options.data_labels}
        for entry in list(self.callbacks.entries["ui_settings"]):
            labels, values = dict(self.options.data_labels), dict(self.options.data)
            try:
                entry.callback()
            except Exception as exc:  # an extension's bug: recorded, the other extensions go on
                self.callbacks.report("ui_settings", entry, exc)
            source = self._script_label(entry.script) if entry.script else entry.name
            for key, info in list(self.options.data_labels.items()):
                first = labels.get(key)
                if first is None:
                    owners[key] = source
                elif info is not first:
                    self._keep_first_option(key, first, values, owners[key], source)

    def _script_label(self, path: str) -> str:
        """ "<extension> (scripts/x.py)" for a file in an extension folder, else the path."""
        target = Path(path)
        for folder in (self.paths.extensions_dir, self.paths.extensions_builtin_dir):
            if folder is not None and Path(folder) in target.parents:
                relative = target.relative_to(folder)
                return f"{relative.parts[0]} ({Path(*relative.parts[1:]).as_posix()})"
        return path

    def _keep_first_option(self, key: str, first: Any, values: dict[str, Any], owner: str, by: str) -> None:
        self.options.data_labels[key] = first
        if key in values:
            self.options.data[key] = values[key]
        self.report_extension_problem(
            f"Setting {key!r} added by {by} is already defined by {owner}; the first definition is kept"
        )

    def report_extension_problem(self, message: str) -> None:
        """Something an extension did wrong while the UI took it in: a notice, and a line in the
        Extensions tab's problems."""
        self.extension_problems.append(message)
        self.notice(message)


def _same(old: Any, new: Any) -> bool:
    return old == new and type(old) is type(new)


def _csv(text: str | None) -> set[str]:
    return {part.strip() for part in (text or "").split(",") if part.strip()}
