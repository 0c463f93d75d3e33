"""Shared pytest fixtures: tiny checkpoints (written once per session; never modify them) and Apps.

`make_app` / `make_module_app` build real Apps (tests.app_support.AppFactory) and always put
`modules.shared` back; `client` is a TestClient on the module's `app` fixture. Every test must leave
`modules.shared` as it found it (checked after each test).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Each test process keeps Gradio's file cache to itself (set before anything imports gradio, which reads
# it at import): two workers caching the same picture (the same content hash, the same path; Gradio
# rewrites the file in place) at once made one of them read a half-written PNG. A worker overrides what
# it inherits from the pytest-xdist controller, which ran this file first and set its own.
os.environ["GRADIO_TEMP_DIR"] = (
    os.path.join(
        tempfile.gettempdir(), f"gradio-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
    )
    if "PYTEST_XDIST_WORKER" in os.environ or "GRADIO_TEMP_DIR" not in os.environ
    else os.environ["GRADIO_TEMP_DIR"]
)

import pytest
import torch

from modules import shared
from tests.app_support import app_factory, local_client
from tests.fixtures.tiny_models import SD2_V_YAML, write_tiny_checkpoint


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files marked `long_file` first, the rest in their order: under the README's `--dist loadfile`
    a worker takes whole files in collection order, so a file of several minutes collected last (the
    training tests are under tests/services) runs alone at the end while the other worker waits."""
    items.sort(key=lambda item: item.get_closest_marker("long_file") is None)


def _share_cores_between_workers() -> None:
    """Under pytest-xdist (the README's `-n 2`) each worker takes its share of the cores, so two workers
    do not run twice as many torch threads as there are cores."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


_share_cores_between_workers()


def _tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, name: str, family: str, **kwargs):
    path = Path(tmp_path_factory.mktemp(name)) / f"{name}.safetensors"
    return path, write_tiny_checkpoint(path, family, **kwargs)


@pytest.fixture(scope="session")
def tiny_sd1_ckpt(tmp_path_factory):
    """(path, components) of a tiny SD1 .safetensors checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, "tiny_sd1", "SD1")


@pytest.fixture(scope="session")
def tiny_sd2v_ckpt(tmp_path_factory):
    """(path, components) of a tiny SD2 checkpoint with a `<stem>.yaml` saying v-prediction."""
    return _tiny_checkpoint(tmp_path_factory, "tiny_sd2v", "SD2", yaml=SD2_V_YAML, v_prediction=True)


@pytest.fixture(scope="session")
def tiny_sdxl_ckpt(tmp_path_factory):
    """(path, components) of a tiny SDXL .safetensors checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, "tiny_sdxl", "SDXL")


@pytest.fixture(scope="session")
def face_files(tmp_path_factory):
    """GFPGAN (175 MB) and CodeFormer (136 MB) files at their real sizes with random weights, and a
    small hand-set RetinaFace that sees a face where the picture is bright (tests.fixtures.tiny_faces);
    written once per session, linked into data dirs with `install_face_files`."""
    from tests.fixtures.tiny_faces import write_face_files

    return write_face_files(Path(tmp_path_factory.mktemp("faces")))


@pytest.fixture
def make_app():
    """`make_app(data_dir, *flags, start=True, loaded=False, preload=False, fast_path=False) -> App` (fp32
    unless `fast_path`) for one test.

    Each App becomes `modules.shared`'s App; after the test (passed or failed) they are shut down and
    the previous App is restored. See tests.app_support.AppFactory."""
    with app_factory() as factory:
        yield factory


@pytest.fixture(scope="module")
def make_module_app():
    """The same factory for Apps that a module's tests share (torn down after the module)."""
    with app_factory() as factory:
        yield factory


@pytest.fixture(scope="module")
def client(app):
    """A TestClient on the server webui.py builds for the module's `app` fixture."""

    from webui import build_server

    return local_client(build_server(app))


@pytest.fixture(autouse=True)
def _shared_app_is_restored():
    before = shared.running_app()
    yield
    assert shared.running_app() is before, "the test left another App in modules.shared: use make_app"
