"""The settings service: checks, model switches with rollback, config.json, extensions' options."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.settings.options import OptionInfo, Options
from modules.sumi.services.settings.service import SettingsService


class FakeModels:
    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.options: Options | None = None
        self.loads: list[str] = []

    def checkpoint_title(self, name: str) -> str | None:
        return {"a": "a.safetensors [0123456789]", "b": "b.safetensors [abcdef0123]"}.get(name.split(".")[0])

    def vae_names(self) -> list[str]:
        return ["Automatic", "None", "kl-f8.safetensors"]

    def get(self) -> object:
        assert self.options is not None
        selected = self.options.sd_model_checkpoint
        self.loads.append(selected)
        if self.fail_on and self.fail_on in selected:
            raise ModelLoadError(f"{selected}: broken file")
        return selected


def settings_service(tmp_path, models: FakeModels | None = None, callbacks=None) -> SettingsService:
    options = Options()
    models = models or FakeModels()
    models.options = options
    paths = SimpleNamespace(
        config_file=tmp_path / "config.json",
        extensions_dir=tmp_path / "extensions",
        extensions_builtin_dir=tmp_path / "extensions-builtin",
    )
    notices: list[str] = []
    service = SettingsService(options, paths, models, callbacks or CallbackRegistry(), notices.append)  # type: ignore[arg-type]
    service.notices = notices  # type: ignore[attr-defined]
    return service


def test_set_applies_saves_and_loads_the_chosen_checkpoint_by_its_title(tmp_path):
    s = settings_service(tmp_path)
    s.set({"sd_model_checkpoint": "b", "CLIP_stop_at_last_layers": 2})
    assert s.options.sd_model_checkpoint == "b.safetensors [abcdef0123]" and s.models.loads == [
        "b.safetensors [abcdef0123]"
    ]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["CLIP_stop_at_last_layers"] == 2 and saved["sd_model_checkpoint"].startswith("b.safetensors")
    s.set({"samples_save": False})
    assert len(s.models.loads) == 1  # no model setting changed: nothing is loaded


def test_fp8_weight_settings_place_the_model_again_and_a_wrong_choice_is_refused(tmp_path):
    s = settings_service(tmp_path)
    s.set({"fp8_storage": "Enable"})
    s.set({"cache_fp16_weight": True})
    assert len(s.models.loads) == 2 and s.options.fp8_storage == "Enable"
    with pytest.raises(InvalidRequestError, match="fp8_storage"):
        s.set({"fp8_storage": "Sometimes"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sd_model_checkpoint": "nope"}, "Setting 'sd_model_checkpoint': no checkpoint is called 'nope'"),
        ({"sd_vae": "gone.pt"}, "no VAE is called 'gone.pt'; choices: Automatic, None, kl-f8.safetensors"),
        ({"samples_save": False, "no_such_key": 1}, "Unknown setting: 'no_such_key'"),
        ({"CLIP_stop_at_last_layers": "many"}, "Setting 'CLIP_stop_at_last_layers'"),
    ],
)
def test_a_refused_value_is_a_request_error_and_nothing_is_saved(tmp_path, values, message):
    s = settings_service(tmp_path)
    with pytest.raises(InvalidRequestError, match=message.replace("(", r"\(")):
        s.set(values)
    assert s.options.samples_save is True and not (tmp_path / "config.json").exists()


def test_a_checkpoint_that_fails_to_load_leaves_the_old_settings(tmp_path):
    s = settings_service(tmp_path, FakeModels(fail_on="b.safetensors"))
    s.set({"sd_model_checkpoint": "a"})
    with pytest.raises(ModelLoadError, match="broken file"):
        s.set({"sd_model_checkpoint": "b", "CLIP_stop_at_last_layers": 3})
    assert s.options.sd_model_checkpoint == "a.safetensors [0123456789]"
    assert s.options.CLIP_stop_at_last_layers == 1
    assert json.loads((tmp_path / "config.json").read_text())["sd_model_checkpoint"].startswith("a.")


def test_extension_options_are_added_once_and_a_taken_key_keeps_its_first_definition(tmp_path):
    callbacks = CallbackRegistry()
    s = settings_service(tmp_path, callbacks=callbacks)
    script = str(tmp_path / "extensions" / "ext-a" / "scripts" / "a.py")

    def add_options():
        s.options.add_option("ext_thing", OptionInfo(5, "Ext thing"))
        s.options.add_option("samples_save", OptionInfo(False, "Clash"))

    def broken():
        raise RuntimeError("settings exploded")

    callbacks.current_script = script
    callbacks.add("ui_settings", add_options)
    callbacks.add("ui_settings", broken)
    s.add_extension_options()
    s.add_extension_options()  # the second call changes nothing
    assert s.options.ext_thing == 5 and s.options.samples_save is True
    assert s.options.data_labels["samples_save"].label != "Clash"
    assert s.extension_problems == [
        "Setting 'samples_save' added by ext-a (scripts/a.py) is already defined by Sumi; "
        "the first definition is kept"
    ]
    assert s.notices == s.extension_problems  # type: ignore[attr-defined]
    assert [e.message for e in callbacks.errors] == ["settings exploded"]
