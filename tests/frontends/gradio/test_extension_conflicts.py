"""What extensions asked for and did not get, shown in the Extensions tab ("Packages"), the start-up
notices and the API (issue 15, point 5). The conflicts themselves are found in
tests/services/test_protected_installs.py (pip for real); here one App starts on a data folder with
an extension whose requirements.txt asks for `transformers<5` and whose last install.py run reported
a `pydantic<2` (kept in cache.json, as `ExtensionManager.run_install_script` leaves it)."""

from __future__ import annotations

import importlib.metadata

import pytest

from modules.sumi.frontends.gradio.extension_conflicts import packages_html
from modules.sumi.services.extensions import install
from modules.sumi.services.extensions.conflicts import Conflict
from modules.sumi.util.package_guard import BrokenPackage
from tests.app_support import local_client
from tests.fixtures.files import write_files

TRANSFORMERS = importlib.metadata.version("transformers")
PYDANTIC = importlib.metadata.version("pydantic")


@pytest.fixture(scope="module")
def app(tmp_path_factory, make_module_app):
    data = tmp_path_factory.mktemp("conflicts") / "data"
    write_files(data / "extensions" / "old-ext", {"requirements.txt": "transformers<5\nrich\n"})
    write_files(data / "extensions" / "fine-ext", {"requirements.txt": "transformers>=4\n"})
    recorded = Conflict("old-ext", "pydantic", "pydantic<2", f"=={PYDANTIC}", "install.py: launch.run_pip")
    install._InstallRecords(data / "cache.json").put_conflicts("old-ext", [recorded])
    return make_module_app(data, "--nowebui", "--skip-install")


def test_conflicts_are_start_up_notices_naming_the_extension(app):
    assert (
        f"Extensions: Extension old-ext asked for transformers<5 (requirements.txt); Sumi keeps transformers {TRANSFORMERS}"
        in app.notices
    )
    assert (
        f"Extensions: Extension old-ext asked for pydantic<2 (install.py: launch.run_pip); Sumi keeps pydantic {PYDANTIC}"
        in app.notices
    )
    assert not [n for n in app.notices if "fine-ext" in n]


def test_the_packages_area_lists_each_conflict_and_broken_package(app, monkeypatch):
    shown = packages_html(app)
    assert shown.count('<tr data-extension="old-ext"') == 2 and "fine-ext" not in shown
    assert "<code>transformers&lt;5</code>" in shown and f"<code>transformers=={TRANSFORMERS}</code>" in shown
    assert "requirements.txt" in shown and "install.py: launch.run_pip" in shown
    broken = BrokenPackage("torchvision", "0.28.0", "RuntimeError: operator torchvision::nms does not exist")
    monkeypatch.setattr(app, "broken_packages", [broken])
    assert "operator torchvision::nms does not exist" in packages_html(app)


def test_the_api_lists_conflicts_per_extension_and_the_notices(app):
    from webui import build_server

    client = local_client(build_server(app))
    listed = {e["name"]: e for e in client.get("/sdapi/v1/extensions").json()}
    assert listed["fine-ext"]["conflicts"] == []
    assert {c["asked"] for c in listed["old-ext"]["conflicts"]} == {"transformers<5", "pydantic<2"}
    assert listed["old-ext"]["conflicts"][0] == {
        "package": "transformers", "asked": "transformers<5", "kept": f"=={TRANSFORMERS}", "source": "requirements.txt",
    }  # fmt: skip
    assert client.get("/sdapi/v1/notices").json()["notices"] == app.notices


def test_without_conflicts_the_area_says_so(tmp_path, make_app):
    app = make_app(tmp_path / "data", start=False)
    assert packages_html(app) == '<p class="sumi-note">No package conflicts.</p>'
