"""InstantID: antelopev2's face identity (the picture scaled to 512 and padded first, the largest face,
unnormalised) equals insightface's FaceAnalysis on the same files; the keypoint map draws that face's
five landmarks; a job with the InstantID IP-Adapter and its ControlNet reading the adapter's face tokens
as its text equals diffusers' ControlNet pipeline with the same adapter loaded and the ControlNet given
those tokens (what InstantID's own pipeline does)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

from modules.sumi.engine import generate as engine
from modules.sumi.engine.controlnet.annotators.dwpose import load_onnx
from modules.sumi.engine.controlnet.annotators.runtime import AnnotatorFiles, AnnotatorRuntime
from modules.sumi.engine.controlnet.control import ControlUnit
from modules.sumi.engine.controlnet.detect_args import DetectArgs
from modules.sumi.engine.controlnet.image_fit import resize_with_pad
from modules.sumi.engine.controlnet.insightface import largest_face
from modules.sumi.engine.controlnet.instant_id import (
    KEYPOINT_COLOURS,
    draw_face_keypoints,
    face_keypoints,
    instant_id_embedding,
)
from modules.sumi.engine.controlnet.ip_adapter import ImagePromptUnit, build_ip_adapter, face_tokens
from modules.sumi.engine.errors import InvalidRequestError
from tests.engine.pipeline_reference import ip_adapter_pipeline, pipeline_call, two_image_request
from tests.fixtures.tiny_insightface import face_picture, write_antelopev2
from tests.fixtures.tiny_ip_adapter import ip_adapter_state
from tests.fixtures.tiny_models import jitter

SIZE = 64


@pytest.fixture(scope="module")
def antelopev2(tmp_path_factory):
    return write_antelopev2(tmp_path_factory.mktemp("antelopev2"))


def _padded_bgr(picture: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(resize_with_pad(picture, 512).image[:, :, ::-1])


def test_the_identity_equals_insightfaces_face_analysis_on_the_padded_picture(antelopev2):
    pytest.importorskip("onnxruntime")
    from insightface.app import FaceAnalysis

    analysis = FaceAnalysis(name=str(antelopev2), allowed_modules=["detection", "recognition"])
    analysis.prepare(ctx_id=-1, det_size=(640, 640))
    picture = face_picture()
    faces = analysis.get(_padded_bgr(picture))
    assert len(faces) >= 2  # the largest is used, as the extension's pick_largest_face
    largest = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    detector, recognizer = (
        load_onnx(antelopev2 / "scrfd_10g_bnkps.onnx"),
        load_onnx(antelopev2 / "glintr100.onnx"),
    )
    ours = instant_id_embedding(detector, recognizer, picture)
    np.testing.assert_allclose(ours, largest.embedding, rtol=1e-4, atol=1e-4)
    assert abs(float(np.linalg.norm(ours)) - 1.0) > 1e-3  # unnormalised, as InstantID reads it
    with pytest.raises(InvalidRequestError, match="found no face in the picture; InstantID needs one"):
        instant_id_embedding(detector, recognizer, np.full((96, 96, 3), 20, np.uint8))


def test_the_keypoint_map_draws_the_largest_faces_landmarks(antelopev2):
    picture = face_picture()
    runtime = AnnotatorRuntime()
    files = AnnotatorFiles("instant_id_face_keypoints", (antelopev2 / "scrfd_10g_bnkps.onnx",), runtime)
    drawn = face_keypoints(picture, DetectArgs(512, -1, -1, 0), files)
    assert drawn.shape == (512, 640, 3)  # short side at the resolution, the padding cut off
    landmarks = largest_face(load_onnx(antelopev2 / "scrfd_10g_bnkps.onnx"), _padded_bgr(picture))
    for (x, y), colour in zip(landmarks, KEYPOINT_COLOURS, strict=True):
        assert tuple(drawn[int(y), int(x)]) == colour  # a full-strength disc on each landmark
    assert drawn[:40].max() == 0 and drawn[:, -60:].max() == 0  # black away from the face


def test_limbs_join_the_eyes_and_mouth_corners_to_the_nose_at_60_percent():
    landmarks = np.array([[30.0, 30.0], [98.0, 30.0], [64.0, 64.0], [34.0, 100.0], [94.0, 100.0]])
    drawn = draw_face_keypoints(landmarks, 128, 128)
    for outer in (0, 1, 3, 4):  # halfway to the nose, in the outer point's colour
        x, y = (landmarks[outer] + landmarks[2]) / 2
        assert tuple(drawn[int(y), int(x)]) == tuple(int(c * 0.6) for c in KEYPOINT_COLOURS[outer])
        x, y = landmarks[outer]
        assert tuple(drawn[int(y), int(x) + 8]) == KEYPOINT_COLOURS[outer]  # inside its disc (radius 10)
    assert drawn[5, 64].max() == 0 and drawn[64, 5].max() == 0  # between the limbs: black
    assert draw_face_keypoints(landmarks - 1000, 64, 64).max() == 0  # off the picture: nothing, no error


_request = two_image_request


def test_an_instant_id_job_equals_diffusers_with_the_controlnet_reading_the_face_tokens(model):
    state = ip_adapter_state(model.unet, "instantid", seed=8)
    adapter = build_ip_adapter(state, "ip-adapter_instant_id_sdxl.bin")
    assert adapter.shape.kind == "instantid" and adapter.shape.reads_faces and not adapter.shape.reads_clip
    identity = torch.randn(1, 512, generator=torch.Generator().manual_seed(5)) * 20  # unnormalised
    tokens, negative = face_tokens(adapter, identity)
    assert tokens.shape == (1, 16, 32)
    controlnet = jitter(ControlNetModel.from_unet(model.unet), 3).eval()
    keypoints = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    units = [
        ImagePromptUnit(adapter, tokens, negative, weight=0.8),
        ControlUnit(controlnet, keypoints, weight=0.9, context_tokens=(tokens, negative)),
    ]
    ours = engine.generate(model, _request(units), progress_bar=False).latents

    pipeline = (StableDiffusionControlNetPipeline, {"controlnet": controlnet})
    pipe = ip_adapter_pipeline(model, _request(), state, 0.8, pipeline)
    face_rows = torch.cat([negative, negative, tokens, tokens])  # diffusers: negative rows first

    def face_tokens_as_text(module, args, kwargs):
        return args, {**kwargs, "encoder_hidden_states": face_rows}

    hook = controlnet.register_forward_pre_hook(face_tokens_as_text, with_kwargs=True)
    try:
        embeds = torch.cat(
            [torch.zeros(1, 1, 1, 512), identity[None, None]]
        )  # per prompt; [rows, images, 1, 512]
        expected = pipe(
            **pipeline_call(model, _request()),
            image=keypoints,
            controlnet_conditioning_scale=0.9,
            ip_adapter_image_embeds=[embeds],
        ).images
    finally:
        hook.remove()
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=5e-4)
    text_read = engine.generate(
        model, _request([units[0], ControlUnit(controlnet, keypoints, weight=0.9)]), progress_bar=False
    ).latents
    assert (ours - text_read).abs().max() > 1e-3  # the ControlNet really reads the face, not the prompt
