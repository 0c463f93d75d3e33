"""`modules.script_callbacks` as extensions use it: registration, calling, error isolation, removal."""

from __future__ import annotations

import pytest

from modules import script_callbacks as sc
from modules.sumi.services.scripts.callbacks import CallbackRegistry


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("callbacks"), "--nowebui")


@pytest.fixture(autouse=True)
def fresh_registry(app):
    app.callbacks.clear()
    app.callbacks.errors.clear()


def test_callbacks_run_in_order_with_their_arguments(app):
    seen = []
    sc.on_app_started(lambda demo, fastapi_app: seen.append(("a", demo, fastapi_app)))
    sc.on_app_started(lambda demo, fastapi_app: seen.append(("b", demo, fastapi_app)), name="second")
    sc.app_started_callback("blocks", "api")
    assert seen == [("a", "blocks", "api"), ("b", "blocks", "api")]
    assert app.callbacks.entries["app_started"][1].name == "second"


def test_a_failing_callback_is_recorded_and_the_others_still_run(app):
    seen = []

    def broken(params):
        raise ValueError("extension bug")

    sc.on_cfg_denoiser(broken)
    sc.on_cfg_denoiser(lambda params: seen.append(params.sampling_step))
    params = sc.CFGDenoiserParams(None, None, None, 3, 20, None, None)
    sc.cfg_denoiser_callback(params)
    assert seen == [3]
    error = app.callbacks.errors[-1]
    assert error.category == "cfg_denoiser" and "extension bug" in error.message
    assert "ValueError" in error.traceback


def test_ui_tabs_are_flattened_and_a_none_result_is_skipped(app):
    sc.on_ui_tabs(lambda: [("blocks1", "Tab 1", "tab1")])
    sc.on_ui_tabs(lambda: None)
    sc.on_ui_tabs(lambda: [("blocks2", "Tab 2", "tab2"), ("blocks3", "Tab 3", "tab3")])
    assert [t[1] for t in sc.ui_tabs_callback()] == ["Tab 1", "Tab 2", "Tab 3"]


def test_callbacks_of_one_script_are_removed_together(app):
    registry = app.callbacks
    registry.current_script = "extensions/x/scripts/x.py"
    sc.on_image_saved(lambda p: None)
    sc.on_model_loaded(lambda m: None)
    registry.current_script = "extensions/y/scripts/y.py"
    kept = lambda m: None  # noqa: E731
    sc.on_model_loaded(kept)
    registry.current_script = "extensions/x/scripts/x.py"
    sc.remove_current_script_callbacks()
    registry.current_script = ""
    assert not registry.has("image_saved")
    assert [e.callback for e in registry.entries["model_loaded"]] == [kept]
    sc.remove_callbacks_for_function(kept)
    assert not registry.has("model_loaded")


def test_model_loaded_callbacks_get_the_model_when_a_checkpoint_loads(app):
    seen = []
    sc.on_model_loaded(seen.append)
    app.models.unload_all()
    app.models.get()
    assert seen and seen[-1].sd_checkpoint_info is app.models.active.checkpoint  # shared.sd_model's facade
    assert seen[-1].unet is app.models.active.sd.unet


def test_bad_registrations_are_refused():
    registry = CallbackRegistry()
    with pytest.raises(ValueError, match="unknown callback category"):
        registry.add("no_such_thing", lambda: None)
    with pytest.raises(TypeError, match="must be callable"):
        registry.add("app_started", "not a function")


def test_image_grid_runs_the_on_image_grid_callbacks_which_may_change_its_pictures_and_shape(app):
    from PIL import Image

    from modules import images

    pictures = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue", "white")]

    def reversed_in_one_row(params: sc.ImageGridLoopParams) -> None:
        params.imgs = list(reversed(params.imgs))
        params.cols, params.rows = 4, 1

    sc.on_image_grid(reversed_in_one_row)
    grid = images.image_grid(pictures, rows=2)
    assert grid.size == (32, 8)
    assert grid.getpixel((0, 0)) == (255, 255, 255) and grid.getpixel((31, 0)) == (255, 0, 0)


def test_an_on_image_grid_callback_that_leaves_no_usable_shape_is_ignored(app):
    from PIL import Image

    from modules import images

    def broken(params: sc.ImageGridLoopParams) -> None:
        params.cols = 0

    sc.on_image_grid(broken)
    grid = images.image_grid([Image.new("RGB", (8, 8), "red")] * 4, rows=2)
    assert grid.size == (16, 16)


SCRIPT_REGISTERING_IN_PROCESS = """
from modules import script_callbacks

def process(enable):
    if not enable:
        script_callbacks.remove_current_script_callbacks()
        return
    script_callbacks.on_cfg_denoiser(lambda params: None)
"""


def _load(path, source):
    import importlib.util

    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_remove_current_script_callbacks_from_process_drops_what_that_file_registered_at_run_time(
    app, tmp_path
):
    """Kohya's Deep Shrink registers an on_cfg_denoiser callback in `process` and, in a later job with
    it off, removes it with `remove_current_script_callbacks()`: A1111 removes by the calling file."""
    deep_shrink = _load(tmp_path / "khrfix.py", SCRIPT_REGISTERING_IN_PROCESS)
    other = _load(tmp_path / "other.py", SCRIPT_REGISTERING_IN_PROCESS)
    deep_shrink.process(True)
    deep_shrink.process(True)
    other.process(True)
    assert len(app.callbacks.entries["cfg_denoiser"]) == 3
    deep_shrink.process(False)
    assert [e.filename for e in app.callbacks.entries["cfg_denoiser"]] == [str(tmp_path / "other.py")]
