"""Changing settings: checks, model switches, saving to config.json, and extensions' own options.

What the Settings tab, the quick-settings checkpoint list, the checkpoint cards and POST
/sdapi/v1/options all call. The model manager and the callback registry sit above the settings (they
read the options), so they come in through the small protocols below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths


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


class SettingsService:
    def __init__(
        self,
        options: Options,
        paths: DataPaths,
        models: ModelChoices,
        callbacks: UiSettingsCallbacks,
        notice: Callable[[str], None],
    ) -> None:
        self.options = options
        self.paths = paths
        self.models = models
        self.callbacks = callbacks
        self.notice = notice
        # Problems found while the UI took in extensions' settings and tabs (shown in the Extensions tab).
        self.extension_problems: list[str] = []
        self._extension_options_added = False

    # -- changing settings ------------------------------------------------------------------------
    def set(self, values: dict[str, Any]) -> None:
        """Apply and persist settings; switching `sd_model_checkpoint` or `sd_vae` loads the model now.

        Nothing is changed when a value is refused; a model that fails to load leaves the old
        settings selected (as A1111 does)."""
        values = self._checked(values)
        previous = {key: getattr(self.options, key) for key in values}
        try:
            for key, value in values.items():
                self._set_option(key, value)
            if values.get("sd_model_checkpoint") is not None or "sd_vae" in values:
                self.models.get()
        except Exception:
            for key, value in previous.items():
                self.options.set(key, value)
            raise
        self.options.save(self.paths.config_file)

    def _checked(self, values: dict[str, Any]) -> dict[str, Any]:
        """`values` with the checkpoint as its title; InvalidRequestError for a name that is not known."""
        checkpoint = values.get("sd_model_checkpoint")
        if checkpoint is not None:
            title = self.models.checkpoint_title(str(checkpoint))
            if title is None:
                raise InvalidRequestError(f"Checkpoint not found: {checkpoint!r}")
            values = {**values, "sd_model_checkpoint": title}
        self._check_vae_name(values.get("sd_vae"))
        unknown = [key for key in values if key not in self.options.data_labels]
        if unknown:
            raise InvalidRequestError(f"Unknown setting: {', '.join(map(repr, unknown))}")
        return values

    def _check_vae_name(self, name: Any) -> None:
        """An explicit VAE choice must exist (a stale one in config.json only falls back, as A1111)."""
        names = self.models.vae_names()
        if name is None or name in names:
            return
        raise InvalidRequestError(f"VAE not found: {name!r}; choices: {', '.join(names)}")

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
