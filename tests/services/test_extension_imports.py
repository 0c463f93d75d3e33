"""Extension code's imports: modules in an extension folder see aliased names, nothing else does; and
a script whose `ui()` failed still gets the values an API request gives it."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest

from modules.sumi.services.scripts.base import Script
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.scripts.extension_imports import EXTENSION_GLOBAL, ExtensionImports
from modules.sumi.services.scripts.loading import ScriptService
from modules.sumi.services.scripts.runner import AlwaysVisible, ScriptClassData, ScriptRunner
from tests.fixtures.files import write_files


def _alias_module() -> ModuleType:
    """A stand-in for a compatibility module: `json` with one extra name and a `decoder` view."""
    import json

    alias = ModuleType("json")
    alias.__dict__.update(vars(json))
    alias.IS_ALIAS = True  # type: ignore[attr-defined]
    decoder = ModuleType("json.decoder")
    decoder.__dict__.update(vars(json.decoder))
    decoder.IS_ALIAS_DECODER = True  # type: ignore[attr-defined]
    alias.decoder = decoder  # type: ignore[attr-defined]
    return alias


EXTENSION = {
    "scripts/main.py": """
        import json
        import json.decoder as dec
        from json.decoder import IS_ALIAS_DECODER
        from helper_pkg import tools

        TOP = json.IS_ALIAS
        SUB = dec.IS_ALIAS_DECODER and IS_ALIAS_DECODER
        HELPER = tools.SEES_ALIAS

        def lazy():
            import json as later  # imported when called, long after loading
            return getattr(later, "IS_ALIAS", False)
    """,
    "helper_pkg/__init__.py": "",
    "helper_pkg/tools.py": """
        import json
        SEES_ALIAS = getattr(json, "IS_ALIAS", False)
    """,
}


@pytest.fixture
def loaded(tmp_path):
    folder = write_files(tmp_path / "my-ext", EXTENSION)
    outside = write_files(
        tmp_path / "elsewhere",
        {"plain_mod_for_alias_test.py": "import json\nIS = hasattr(json, 'IS_ALIAS')\n"},
    )
    service = ScriptService(callbacks=CallbackRegistry(), repo_root=tmp_path / "repo")
    service.imports.alias("json", _alias_module)
    module = service._import(folder / "scripts" / "main.py", str(folder))
    sys.path.insert(0, str(outside))
    try:
        yield service, module
    finally:
        sys.path.remove(str(outside))
        service.close()
        for name in ("helper_pkg", "helper_pkg.tools", "plain_mod_for_alias_test"):
            sys.modules.pop(name, None)


def test_an_extension_script_and_its_helper_package_import_the_alias(loaded):
    service, module = loaded
    assert module is not None, service.errors.items
    assert module.TOP is True and module.SUB is True and module.HELPER is True
    assert module.lazy() is True
    assert module.__dict__[EXTENSION_GLOBAL] == "my-ext"
    assert sys.modules["helper_pkg.tools"].__dict__[EXTENSION_GLOBAL] == "my-ext"


def test_code_outside_extension_folders_imports_the_real_module(loaded):
    import json

    import plain_mod_for_alias_test  # type: ignore[import-not-found]

    assert plain_mod_for_alias_test.IS is False
    assert not hasattr(json, "IS_ALIAS") and sys.modules["json"] is json


def test_after_close_new_helper_modules_import_normally(tmp_path):
    imports = ExtensionImports()
    imports.alias("json", _alias_module)
    imports.add_extension_dir(tmp_path)
    finder_count = sum(1 for f in sys.meta_path if f.__class__.__name__ == "_ExtensionFinder")
    imports.close()
    assert sum(1 for f in sys.meta_path if f.__class__.__name__ == "_ExtensionFinder") == finder_count - 1


def test_only_top_level_names_can_be_aliased():
    with pytest.raises(ValueError, match="top-level"):
        ExtensionImports().alias("json.decoder", _alias_module)


# -- a script whose ui() failed still runs with the API's values ---------------------------------------------
class _AlwaysOnFailingUi(Script):
    def title(self):
        return "Always-on failing ui"

    def show(self, is_img2img):
        return AlwaysVisible

    def ui(self, is_img2img):
        raise RuntimeError("no ui")

    def process(self, p, *args):
        p.seen.append(("process", *args))


class _SelectableFailingUi(_AlwaysOnFailingUi):
    def title(self):
        return "Selectable failing ui"

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        p.seen.append(("run", *args))
        return "ran"


def _runner_with_failing_ui() -> ScriptRunner:
    runner = ScriptRunner("txt2img")
    classes = (_AlwaysOnFailingUi, _SelectableFailingUi)
    runner.initialize_scripts([ScriptClassData(c, f"/ext/{c.__name__}.py", "/ext", None) for c in classes])
    runner.create_inputs()
    return runner


def test_a_script_whose_ui_failed_gets_its_api_args_in_its_hooks_and_run():
    runner = _runner_with_failing_ui()
    assert all(s.ui_failed for s in runner.scripts) and len(runner.scripts) == 2
    assert [e.where for e in runner.errors.items] == ["ui", "ui"]
    args = runner.script_args_for(
        "Selectable failing ui", [3, "x"], {"Always-on failing ui": {"args": [True, 0.5]}}
    )
    p = SimpleNamespace(script_args=args, warnings=[], seen=[])
    runner.process(p)
    assert runner.run(p, *p.script_args) == "ran"
    assert p.seen == [("process", True, 0.5), ("run", 3, "x")]


def test_without_api_args_a_script_whose_ui_failed_gets_none():
    runner = _runner_with_failing_ui()
    p = SimpleNamespace(script_args=runner.script_args_for(None, [], {}), warnings=[], seen=[])
    runner.process(p)
    assert runner.run(p, *p.script_args) is None  # no script selected
    assert p.seen == [("process",)]
