"""A1111's face restoration modules for extensions (ReActor, roop, wav2lip): `shared.face_restorers`,
`face_restoration.restore_faces`, `gfpgan_model.gfpgan_fix_faces`, `codeformer_model.codeformer`, and
`face_restoration_utils.CommonFaceRestoration` subclassed by an extension."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules import codeformer_model, face_restoration, face_restoration_utils, gfpgan_model, shared
from tests.engine.test_faces import grey_with_square
from tests.fixtures.tiny_faces import install_face_files


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory, face_files):
    data = tmp_path_factory.mktemp("data")
    install_face_files(data, face_files)
    return make_module_app(data, "--nowebui", start=False)


def test_the_installed_restorers_are_one_live_list(app):
    restorers = shared.face_restorers
    assert [r.name() for r in restorers] == ["CodeFormer", "GFPGAN"]
    assert all(isinstance(r, face_restoration.FaceRestoration) for r in restorers)
    assert shared.face_restorers is restorers and shared.face_restorers[0] is restorers[0]
    assert codeformer_model.codeformer is restorers[0] and gfpgan_model.gfpgan_face_restorer is restorers[1]

    class Mine(face_restoration.FaceRestoration):
        def name(self) -> str:
            return "Mine"

    mine = Mine()
    shared.face_restorers.append(mine)  # what an extension may do
    try:
        assert [r.name() for r in shared.face_restorers] == ["CodeFormer", "GFPGAN", "Mine"]
    finally:
        shared.face_restorers.remove(mine)


def test_codeformer_restore_takes_a1111s_weight_argument(app):
    image = grey_with_square()
    restored = codeformer_model.codeformer.restore(image, w=0.3)
    assert restored.shape == image.shape and restored.dtype == np.uint8
    changed = np.abs(restored.astype(int) - image).max(axis=2) > 0
    assert changed.any() and not changed[:, :150].any()


class IdentityRestorer(face_restoration_utils.CommonFaceRestoration):
    """An extension's restorer: its own network, Sumi's detection and paste-back."""

    def name(self) -> str:
        return "Identity"

    def get_device(self):
        return torch.device("cpu")

    def load_net(self) -> torch.nn.Module:
        return torch.nn.Identity()

    def restore(self, np_image):
        return self.restore_with_helper(np_image, lambda x: -self.net(x))


def test_an_extensions_common_face_restoration_runs_on_sumis_helper(app, tmp_path):
    image = grey_with_square()
    restored = IdentityRestorer(str(tmp_path)).restore(image)
    changed = np.abs(restored.astype(int) - image).max(axis=2) > 0
    assert changed.any() and changed.mean() < 0.6 and not changed[:, :150].any()
    tensor = face_restoration_utils.bgr_image_to_rgb_tensor(np.zeros((2, 2, 3), np.float64) + [0.1, 0.2, 0.3])
    assert tensor.shape == (3, 2, 2) and torch.allclose(tensor[:, 0, 0], torch.tensor([0.3, 0.2, 0.1]))
    back = face_restoration_utils.rgb_tensor_to_bgr_image(tensor * 2 - 1, min_max=(-1, 1))
    assert np.allclose(back[0, 0], [0.1, 0.2, 0.3], atol=1e-6)


def test_restore_faces_follows_the_model_setting(app):
    image = np.zeros((4, 4, 3), np.uint8)  # no face: comes back as it was, through the chosen restorer
    app.options.face_restoration_model = "GFPGAN"
    try:
        assert np.array_equal(face_restoration.restore_faces(image), image)
    finally:
        app.options.face_restoration_model = "CodeFormer"
