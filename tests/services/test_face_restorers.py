"""The face restorer registry: GFPGAN / CodeFormer found in A1111's folders (or the flags' folders),
loaded with spandrel from files in the real layouts, restoring only the face; clear messages naming
the file and folder when weights are missing."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.faces.registry import FaceRestorationUnavailable, FaceRestorers
from modules.sumi.services.settings.flags import build_parser
from modules.sumi.services.settings.paths import DataPaths
from tests.engine.test_faces import grey_with_square
from tests.fixtures.tiny_faces import install_face_files


def registry(data_dir) -> FaceRestorers:
    return FaceRestorers(data_dir / "models" / "GFPGAN", data_dir / "models" / "Codeformer")


def changed_pixels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0


def test_the_flags_move_the_folders(tmp_path):
    args = build_parser().parse_args(
        [
            "--data-dir",
            str(tmp_path),
            "--gfpgan-models-path",
            str(tmp_path / "g"),
            "--codeformer-models-path",
            "/x/cf",
        ]
    )
    paths = DataPaths.from_args(args, tmp_path)
    assert paths.gfpgan_dir == tmp_path / "g" and str(paths.codeformer_dir) == "/x/cf"
    default = DataPaths.from_args(argparse.Namespace(data_dir=str(tmp_path)), tmp_path)
    assert default.gfpgan_dir == tmp_path / "models" / "GFPGAN"
    assert default.codeformer_dir == tmp_path / "models" / "Codeformer"


def test_nothing_installed_lists_nothing_and_says_which_file_goes_where(tmp_path):
    faces = registry(tmp_path)
    assert faces.entries() == [] and faces.setting_choices() == {"choices": ["CodeFormer", "GFPGAN"]}
    with pytest.raises(FaceRestorationUnavailable) as raised:
        faces.restore(np.zeros((8, 8, 3), np.uint8), "GFPGAN")
    assert "GFPGANv1.4.pth" in str(raised.value) and str(tmp_path / "models" / "GFPGAN") in str(raised.value)
    assert "codeformer-v0.1.0.pth" in (faces.problem(None) or "")
    with pytest.raises(InvalidRequestError, match="'RestoreFormer' not found"):
        faces.find("RestoreFormer")


def test_a_restorer_without_the_detector_names_the_detector_file(tmp_path, face_files):
    install_face_files(tmp_path, face_files, ("GFPGAN",))
    faces = registry(tmp_path)
    assert faces.names() == ["GFPGAN"] and faces.problem("CodeFormer") is not None
    problem = faces.problem("GFPGAN") or ""
    assert "detection_Resnet50_Final.pth" in problem and str(tmp_path / "models" / "GFPGAN") in problem
    with pytest.raises(FaceRestorationUnavailable, match="detection_Resnet50_Final.pth"):
        faces.restore(grey_with_square(), "GFPGAN")


def test_files_dropped_in_are_listed_without_a_restart(tmp_path, face_files):
    faces = registry(tmp_path)
    assert faces.names() == []
    install_face_files(tmp_path, face_files)
    assert faces.names() == ["CodeFormer", "GFPGAN"]
    assert [e.folder.name for e in faces.entries()] == ["Codeformer", "GFPGAN"]
    assert faces.find("gfpgan").path.name == "GFPGANv1.4.pth"


def test_a_file_of_another_architecture_is_a_clear_error(tmp_path, face_files):
    install_face_files(tmp_path, face_files, ("detector",))
    folder = tmp_path / "models" / "Codeformer"
    folder.mkdir(parents=True)
    (folder / "codeformer-v0.1.0.pth").symlink_to(face_files["GFPGAN"])
    with pytest.raises(InvalidRequestError, match="GFPGAN model, not CodeFormer"):
        registry(tmp_path).restore(grey_with_square(), "CodeFormer")


@pytest.fixture(scope="module")
def installed(tmp_path_factory, face_files):
    data = tmp_path_factory.mktemp("faces-data")
    install_face_files(data, face_files)
    return registry(data)


def test_gfpgan_restores_the_face_and_leaves_the_rest(installed):
    image = grey_with_square()
    result = installed.restore(image, "GFPGAN")
    assert len(result.faces) == 1 and result.image.shape == image.shape
    changed = changed_pixels(result.image, image)
    assert changed.any() and changed.mean() < 0.6
    assert not changed[:, :150].any() and not changed[480:].any()  # far from the face: untouched


def test_codeformer_weight_is_its_fidelity_argument(installed):
    image = grey_with_square()
    strong = installed.restore(image, "CodeFormer", weight=0.0).image
    faithful = installed.restore(image, "CodeFormer", weight=1.0).image
    assert changed_pixels(strong, image).any() and not np.array_equal(strong, faithful)
    assert np.array_equal(strong[:, :150], image[:, :150])
