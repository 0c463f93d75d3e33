"""Gradio's page scripts are served with Sumi's patches (frontends/gradio/asset_patches.py): each patch
finds its piece in the installed Gradio, the page gets the patched files, other files are untouched.
What the patched code does in a browser: tests/browser/test_asset_patches_browser.py."""

from __future__ import annotations

import pytest

from modules.sumi.frontends.gradio import asset_patches


def asset_of(patch: asset_patches.AssetPatch) -> str:
    """The one file a patch is for (of those its pattern names, the one with its marker)."""
    names = [
        p.name
        for p in asset_patches.assets_dir().iterdir()
        if patch.asset.match(p.name) and (patch.marker is None or patch.marker in p.read_bytes())
    ]
    assert len(names) == 1, names
    return names[0]


@pytest.mark.parametrize("patch", asset_patches.PATCHES, ids=lambda p: p.name)
def test_the_installed_gradio_has_the_piece_each_patch_replaces(patch):
    # Fails after a Gradio upgrade that changed the piece: look at the new code, then update the patch.
    source = (asset_patches.assets_dir() / asset_of(patch)).read_bytes()
    assert source.count(patch.original) == 1
    body = asset_patches.patched_asset(asset_of(patch))
    assert body is not None and patch.original not in body and patch.patched in body


@pytest.mark.parametrize(
    "name", ["index.js", "Blocks-../../x.js", "Blocks-missing.js", "blocks-A.js", "core-x.css"]
)
def test_other_names_are_not_patched(name):
    assert asset_patches.patched_asset(name) is None


def test_files_a_patch_pattern_names_without_its_marker_are_not_patched(caplog):
    # GROUP_ID_ONCE's pattern names every component's Index-<hash>.js; only the Group's is its file
    group = asset_of(asset_patches.GROUP_ID_ONCE)
    others = [p.name for p in asset_patches.assets_dir().glob("Index-*.js") if p.name != group]
    assert others
    assert all(asset_patches.patched_asset(name) is None for name in others)
    assert "changed" not in caplog.text


@pytest.fixture(scope="module")
def app(tmp_path_factory, make_module_app):
    return make_module_app(tmp_path_factory.mktemp("asset-patches") / "data", start=False)


def test_the_page_gets_the_patched_assets_and_other_assets_unchanged(client):
    for patch in asset_patches.PATCHES:
        name = asset_of(patch)
        served = client.get(f"/assets/{name}")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("application/javascript")
        assert served.content == asset_patches.patched_asset(name)
    index = next(asset_patches.assets_dir().glob("index-*.js"))
    other = client.get(f"/assets/{index.name}")
    assert other.status_code == 200 and other.content == index.read_bytes()
