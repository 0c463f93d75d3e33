"""Face identity for IP-Adapter FaceID: InsightFace's buffalo_l ONNX files run with OpenCV and give the
boxes, landmarks, aligned crop and embedding insightface itself gives on the same files (its SCRFD,
norm_crop and ArcFaceONNX, through onnxruntime); a FaceID adapter's job equals diffusers' load_ip_adapter
with the same face embedding, a FaceID Plus one with the same face and CLIP hidden states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.controlnet.annotators.dwpose import load_onnx
from modules.sumi.engine.controlnet.clip_vision import ClipImageFeatures
from modules.sumi.engine.controlnet.insightface import (
    aligned_face,
    detect_faces,
    face_embedding,
    largest_face_embedding,
)
from modules.sumi.engine.controlnet.ip_adapter import (
    ImagePromptUnit,
    build_ip_adapter,
    face_plus_tokens,
    face_tokens,
)
from modules.sumi.engine.errors import InvalidRequestError
from tests.engine.pipeline_reference import ip_adapter_pipeline, pipeline_call, two_image_request
from tests.fixtures.tiny_insightface import face_picture, write_buffalo_l
from tests.fixtures.tiny_ip_adapter import CLIP_PROJECTION, CLIP_WIDTH, _projection, ip_adapter_state


@pytest.fixture(scope="module")
def buffalo(tmp_path_factory):
    return write_buffalo_l(tmp_path_factory.mktemp("insightface"))


def _reference(buffalo):
    pytest.importorskip("onnxruntime")
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD
    from insightface.utils import face_align

    return (
        SCRFD(model_file=str(buffalo / "det_10g.onnx")),
        ArcFaceONNX(model_file=str(buffalo / "w600k_r50.onnx")),
        face_align,
    )


def test_faces_landmarks_crops_and_embeddings_equal_insightface(buffalo):
    scrfd, arcface, face_align = _reference(buffalo)
    bgr = np.ascontiguousarray(face_picture()[:, :, ::-1])
    boxes, landmarks = detect_faces(load_onnx(buffalo / "det_10g.onnx"), bgr)
    expected_boxes, expected_landmarks = scrfd.detect(bgr, input_size=(640, 640))
    assert len(boxes) >= 2
    np.testing.assert_allclose(boxes, expected_boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(landmarks, expected_landmarks, rtol=1e-5, atol=1e-3)
    recognizer = load_onnx(buffalo / "w600k_r50.onnx")
    for points in landmarks[:3]:
        crop = aligned_face(bgr, points)
        expected_crop = face_align.norm_crop(bgr, landmark=points, image_size=112)
        assert np.abs(crop.astype(int) - expected_crop.astype(int)).max() <= 1
        embedding = face_embedding(recognizer, expected_crop)
        reference = arcface.get_feat(expected_crop).reshape(-1)
        np.testing.assert_allclose(embedding, reference / np.linalg.norm(reference), rtol=1e-4, atol=1e-5)
        assert abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-5


def test_the_largest_face_is_described_and_no_face_is_a_clear_error(buffalo):
    detector, recognizer = load_onnx(buffalo / "det_10g.onnx"), load_onnx(buffalo / "w600k_r50.onnx")
    picture = face_picture()
    boxes, landmarks = detect_faces(detector, np.ascontiguousarray(picture[:, :, ::-1]))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    largest = int(np.argmax(areas))
    expected = face_embedding(
        recognizer, aligned_face(np.ascontiguousarray(picture[:, :, ::-1]), landmarks[largest])
    )
    np.testing.assert_array_equal(largest_face_embedding(detector, recognizer, picture), expected)
    dark = np.full((128, 128, 3), 20, np.uint8)
    with pytest.raises(InvalidRequestError, match="found no face"):
        largest_face_embedding(detector, recognizer, dark)


_request = two_image_request


def test_a_faceid_job_equals_diffusers_load_ip_adapter_with_the_same_face(model):
    state = ip_adapter_state(model.unet, "faceid", seed=5)
    adapter = build_ip_adapter(state, "ip-adapter-faceid_sd15.bin")
    assert adapter.shape.kind == "faceid" and adapter.shape.reads_faces
    face = torch.nn.functional.normalize(
        torch.randn(1, 512, generator=torch.Generator().manual_seed(3)), dim=-1
    )
    tokens, negative = face_tokens(adapter, face)
    ours = engine.generate(
        model, _request([ImagePromptUnit(adapter, tokens, negative, weight=0.8)]), progress_bar=False
    ).latents
    pipe = ip_adapter_pipeline(model, _request(), state, 0.8)
    embeds = torch.cat([torch.zeros(2, 1, 512), face.expand(2, 512)[:, None]])  # negative rows, then positive
    expected = pipe(**pipeline_call(model, _request()), ip_adapter_image_embeds=[embeds]).images
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=5e-4)
    plain = engine.generate(model, _request(), progress_bar=False).latents
    assert (ours - plain).abs().max() > 1e-3
    with pytest.raises(InvalidRequestError, match="choose the ip-adapter_face_id preprocessor"):
        adapter.tokens(None)  # pyright: ignore[reportArgumentType]


def _face(seed: int = 3) -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(1, 512, generator=torch.Generator().manual_seed(seed)), dim=-1
    )


def _clip_states(seed: int = 4, width: int = CLIP_WIDTH) -> ClipImageFeatures:
    g = torch.Generator().manual_seed(seed)
    return ClipImageFeatures(
        image_embeds=torch.randn(1, CLIP_PROJECTION, generator=g),
        penultimate=torch.randn(1, 257, width, generator=g),
        zero_image_embeds=torch.zeros(1, CLIP_PROJECTION),
        zero_penultimate=torch.randn(1, 257, width, generator=g),
    )


def test_a_faceid_plus_job_equals_diffusers_with_the_same_face_and_clip_states(model):
    state = ip_adapter_state(model.unet, "faceid_plus", seed=6)
    adapter = build_ip_adapter(state, "ip-adapter-faceid-plus_sd15.bin")
    assert adapter.shape.kind == "faceid_plus" and not adapter.shape.shortcut
    face, clip = _face(), _clip_states()
    tokens, negative = face_plus_tokens(adapter, face, clip)
    ours = engine.generate(
        model, _request([ImagePromptUnit(adapter, tokens, negative, weight=0.7)]), progress_bar=False
    ).latents
    pipe = ip_adapter_pipeline(model, _request(), state, 0.7)
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]  # diffusers' documented recipe
    states = [clip.zero_penultimate] * 2 + [clip.penultimate] * 2  # negative rows, then positive
    projection.clip_embeds = torch.cat(states)[:, None]
    projection.shortcut = False
    embeds = torch.cat([torch.zeros(1, 1, 512), face[:, None]])  # per prompt: the pipeline repeats it
    expected = pipe(**pipeline_call(model, _request()), ip_adapter_image_embeds=[embeds]).images
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=5e-4)
    other = face_plus_tokens(adapter, face, _clip_states(seed=9))[0]
    assert (other - tokens).abs().max() > 1e-3  # the picture's CLIP states count, not only the face
    with pytest.raises(InvalidRequestError, match="choose the ip-adapter_face_id_plus preprocessor"):
        face_tokens(adapter, face)
    with pytest.raises(InvalidRequestError, match="choose the ip-adapter_face_id_plus preprocessor"):
        adapter.tokens(clip)
    plain_faceid = build_ip_adapter(ip_adapter_state(model.unet, "faceid", 1), "ip-adapter-faceid_sd15.bin")
    with pytest.raises(InvalidRequestError, match="ip-adapter_face_id_plus is for FaceID Plus"):
        face_plus_tokens(plain_faceid, face, clip)


def test_faceid_plus_v2_adds_the_face_tokens_to_the_resampler_output():
    """v2 (told by "v2" in the name, as the extension) is ProjModelFaceIdPlus with shortcut: the face
    MLP's normalised tokens plus the resampler's output; released files have both as wide as the text."""
    width = 64
    state = {
        f"image_proj.{k}": v
        for k, v in _projection(
            "faceid_plus", width, 4, torch.Generator().manual_seed(2), CLIP_WIDTH, CLIP_PROJECTION, width
        ).items()
    }
    state["ip_adapter.1.to_k_ip.weight"] = state["ip_adapter.1.to_v_ip.weight"] = torch.zeros(width, width)
    v1 = build_ip_adapter(state, "ip-adapter-faceid-plus_sd15.bin")
    v2 = build_ip_adapter(state, "ip-adapter-faceid-plusv2_sd15.bin")
    assert v2.shape.shortcut and not v1.shape.shortcut
    faces = torch.cat([_face(1), _face(2)])
    clip = _clip_states()
    clip = ClipImageFeatures(
        image_embeds=clip.image_embeds.expand(2, -1),
        penultimate=torch.cat([clip.penultimate, clip.penultimate.flip(1)]),
        zero_image_embeds=clip.zero_image_embeds,
        zero_penultimate=clip.zero_penultimate,
    )
    tokens_v1, negative_v1 = face_plus_tokens(v1, faces, clip)
    tokens_v2, negative_v2 = face_plus_tokens(v2, faces, clip)
    projection = v1.image_proj
    with torch.no_grad():
        face_tokens_ = projection.norm(
            projection.proj(torch.cat([faces, torch.zeros(1, 512)])).reshape(-1, 4, width)
        )
    torch.testing.assert_close(tokens_v2, tokens_v1 + face_tokens_[:2])
    torch.testing.assert_close(negative_v2, negative_v1 + face_tokens_[2:])
    assert tokens_v1.shape == (2, 4, width)
    with pytest.raises(InvalidRequestError, match="one face per picture"):
        face_plus_tokens(v1, faces[:1], clip)
    with pytest.raises(InvalidRequestError, match="64-wide CLIP hidden states; the image encoder gives 32"):
        face_plus_tokens(v1, faces, _clip_states(width=32))


def test_the_faceid_preprocessor_has_no_map_to_preview():
    from modules.sumi.engine.controlnet.image_fit import PreprocessorError
    from modules.sumi.engine.controlnet.preprocessors import get_preprocessor

    with pytest.raises(PreprocessorError, match="into a face identity .* nothing to preview"):
        get_preprocessor("ip-adapter_face_id").analyse(face_picture())
    with pytest.raises(
        PreprocessorError, match="face identity and CLIP image features .* nothing to preview"
    ):
        get_preprocessor("ip-adapter_face_id_plus").analyse(face_picture())
