"""Extension code's imports: modules in an extension folder see aliased names, nothing else does."""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.scripts.extension_imports import EXTENSION_GLOBAL, ExtensionImports
from modules.sumi.services.scripts.loading import ScriptService
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
