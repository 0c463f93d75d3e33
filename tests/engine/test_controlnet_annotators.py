"""Annotator networks run from the user's weight files and give controlnet-aux's maps (the library
sd-webui-controlnet's annotators were published as), through the preprocessors' own sizing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from modules.sumi.engine.controlnet.annotators.runtime import AnnotatorRuntime, NetworkCache
from modules.sumi.engine.controlnet.image_fit import PreprocessorError
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from tests.engine.aux_reference import (
    aux_depth_merger,
    aux_module,
    aux_module_without_torchvision,
    aux_openpose,
)
from tests.fixtures.tiny_annotators import (
    POSE_PARTS,
    edge_photo,
    faint_drawing,
    flat_scene,
    pose_picture,
    write_depth_merge,
    write_hed,
    write_leres,
    write_lineart,
    write_lineart_anime,
    write_mlsd,
    write_normal_bae,
    write_openpose,
    write_pidinet,
    write_teed,
)


@pytest.fixture(scope="module")
def annotators(tmp_path_factory) -> Path:
    """An annotator folder holding HED, PiDiNet, TEED, M-LSD, both lineart files and the anime U-Net, random
    weights in the published layouts."""
    folder = tmp_path_factory.mktemp("annotators")
    write_hed(folder)
    write_lineart(folder, "sk_model.pth", seed=1)
    write_lineart(folder, "sk_model2.pth", seed=2)
    write_lineart_anime(folder, seed=3)
    write_pidinet(folder, seed=4)
    write_teed(folder, seed=5)
    write_mlsd(folder, seed=6)
    return folder


def _reference_hed(folder: Path):
    module = aux_module("hed")
    network = module.ControlNetHED_Apache2()
    network.load_state_dict(torch.load(folder / "hed" / "ControlNetHED.pth", weights_only=True))
    return module.HEDdetector(network.float().eval())


@pytest.mark.parametrize("safe", [False, True])
def test_hed_soft_edges_equal_controlnet_aux_on_an_image_the_size_of_the_resolution(annotators, safe):
    image = edge_photo(128, 192)
    label = "softedge_hedsafe" if safe else "softedge_hed"
    ours = get_preprocessor(label).run(image, 128, annotator_dir=annotators)
    theirs = _reference_hed(annotators)(image, 128, 128, safe=safe, output_type="np")
    assert len(np.unique(ours)) > (2 if safe else 40)  # the random weights draw a real map
    np.testing.assert_array_equal(ours, theirs)


def test_hed_pads_to_multiples_of_64_and_cuts_the_padding_off_as_the_extension(annotators):
    image = edge_photo(100, 150)
    padded = np.pad(image, [(0, 28), (0, 42), (0, 0)], mode="edge")
    theirs = _reference_hed(annotators)(padded, 128, 128, output_type="np")[:100, :150]
    np.testing.assert_array_equal(
        get_preprocessor("softedge_hed").run(image, 100, annotator_dir=annotators), theirs
    )


def test_scribble_hed_is_controlnet_aux_nms_of_the_soft_edges_blurred_and_thresholded(annotators):
    image = edge_photo(100, 150)
    soft = get_preprocessor("softedge_hed").run(image, 100, annotator_dir=annotators)[:, :, 0]
    lines = cv2.GaussianBlur(aux_module("util").nms(soft, 127, 3.0), (0, 0), 3.0)
    expected = np.where(lines > 4, 255, 0).astype(np.uint8)
    ours = get_preprocessor("scribble_hed").run(image, 100, annotator_dir=annotators)
    assert 0 < (ours == 255).mean() < 0.9
    np.testing.assert_array_equal(ours[:, :, 0], expected)


def test_a_network_is_loaded_once_and_again_when_its_file_changes(annotators, tmp_path):
    cache = NetworkCache()
    runtime = AnnotatorRuntime(cache=cache)
    first = get_preprocessor("softedge_hed").run(
        edge_photo(64, 64), 64, annotator_dir=annotators, runtime=runtime
    )
    get_preprocessor("softedge_hedsafe").run(
        edge_photo(64, 64), 64, annotator_dir=annotators, runtime=runtime
    )
    assert len(cache) == 1
    copy = tmp_path / "hed"
    copy.mkdir()
    state = torch.load(annotators / "hed" / "ControlNetHED.pth", weights_only=True)
    state["block1.projection.bias"] += 3.0
    torch.save(state, copy / "ControlNetHED.pth")
    changed = get_preprocessor("softedge_hed").run(
        edge_photo(64, 64), 64, annotator_dir=tmp_path, runtime=runtime
    )
    assert len(cache) == 2 and not np.array_equal(first, changed)


def test_a_file_that_is_not_the_network_is_refused_naming_it_and_its_keys(tmp_path):
    (tmp_path / "hed").mkdir()
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "hed" / "ControlNetHED.pth")
    with pytest.raises(PreprocessorError, match=r"'softedge_hed' cannot use ControlNetHED.pth: .*missing"):
        get_preprocessor("softedge_hed").run(edge_photo(64, 64), annotator_dir=tmp_path)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    (tmp_path / "hed").mkdir()
    torch.save({"weights": torch.zeros(1), "hook": Path("x")}, tmp_path / "hed" / "ControlNetHED.pth")
    with pytest.raises(PreprocessorError, match="cannot use ControlNetHED.pth"):
        get_preprocessor("softedge_hed").run(edge_photo(64, 64), annotator_dir=tmp_path)


def _reference_lineart(folder: Path):
    module = aux_module("lineart")
    networks = []
    for name in ("sk_model.pth", "sk_model2.pth"):
        network = module.Generator(3, 1, 3)
        network.load_state_dict(torch.load(folder / "lineart" / name, weights_only=True))
        networks.append(network.eval())
    return module.LineartDetector(*networks)


@pytest.mark.parametrize("coarse", [False, True])
def test_lineart_equals_controlnet_aux_and_coarse_uses_its_own_file(annotators, coarse):
    image = edge_photo(128, 192)
    ours = get_preprocessor("lineart_coarse" if coarse else "lineart_realistic").run(
        image, 128, annotator_dir=annotators
    )
    theirs = _reference_lineart(annotators)(
        image, coarse=coarse, detect_resolution=128, image_resolution=128, output_type="np"
    )
    assert len(np.unique(ours)) > 40
    np.testing.assert_array_equal(ours, theirs)
    other = get_preprocessor("lineart_realistic" if coarse else "lineart_coarse").run(
        image, 128, annotator_dir=annotators
    )
    assert not np.array_equal(ours, other)


def test_lineart_pads_to_multiples_of_64_and_cuts_the_padding_off(annotators):
    image = edge_photo(100, 150)
    padded = np.pad(image, [(0, 28), (0, 42), (0, 0)], mode="edge")
    theirs = _reference_lineart(annotators)(
        padded, detect_resolution=128, image_resolution=128, output_type="np"
    )
    ours = get_preprocessor("lineart_realistic").run(image, 100, annotator_dir=annotators)
    np.testing.assert_array_equal(ours, theirs[:100, :150])


def test_lineart_anime_equals_controlnet_aux_at_a_size_it_scales_to_256(annotators):
    import functools

    module = aux_module("lineart_anime")
    norm = functools.partial(torch.nn.InstanceNorm2d, affine=False, track_running_stats=False)
    network = module.UnetGenerator(3, 1, 8, 64, norm_layer=norm, use_dropout=False)
    state = torch.load(annotators / "lineart_anime" / "netG.pth", weights_only=True)
    network.load_state_dict({k.replace("module.", ""): v for k, v in state.items()})
    image = edge_photo(128, 192)
    theirs = module.LineartAnimeDetector(network.eval())(
        image, detect_resolution=128, image_resolution=128, output_type="np"
    )
    ours = get_preprocessor("lineart_anime").run(image, 128, annotator_dir=annotators)
    assert len(np.unique(ours)) > 40
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("label", "options"),
    [
        ("softedge_pidinet", {}),
        ("softedge_pidisafe", {"safe": True}),
        ("scribble_pidinet", {"scribble": True}),
        ("t2ia_sketch_pidi", {"apply_filter": True}),
    ],
)
def test_pidinet_preprocessors_equal_controlnet_aux(annotators, label, options):
    module = aux_module("pidi")
    network = module.pidinet()
    state = torch.load(annotators / "pidinet" / "table5_pidinet.pth", weights_only=True)["state_dict"]
    network.load_state_dict({k.replace("module.", ""): v for k, v in state.items()})
    image = edge_photo(128, 192)
    theirs = module.PidiNetDetector(network.eval())(image, 128, 128, output_type="np", **options)
    ours = get_preprocessor(label).run(image, 128, annotator_dir=annotators)
    assert len(np.unique(ours)) > (40 if not options else 1)  # a real map, not one grey
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("safe_steps", [0, 5, 10])
def test_teed_equals_controlnet_aux_with_its_safe_steps(annotators, safe_steps):
    module = aux_module("teed")
    network = module.TED()
    network.load_state_dict(torch.load(annotators / "TEED" / "7_model.pth", weights_only=True))
    image = edge_photo(128, 192)
    theirs = module.TEEDdetector(network.eval())(image, 128, safe_steps=safe_steps, output_type="np")
    ours = get_preprocessor("softedge_teed").run(image, 128, safe_steps, annotator_dir=annotators)
    assert len(np.unique(ours)) > (40 if safe_steps == 0 else 1)  # a real map, not one grey
    np.testing.assert_array_equal(ours, theirs)


def _reference_mlsd(folder: Path):
    module = aux_module("mlsd")
    network = module.MobileV2_MLSD_Large()
    network.load_state_dict(torch.load(folder / "mlsd" / "mlsd_large_512_fp32.pth", weights_only=True))
    return module.MLSDdetector(network.eval())


@pytest.mark.parametrize(("value", "distance"), [(0.1, 0.1), (0.1, 15.0), (0.7, 0.1), (0.95, 0.1)])
def test_mlsd_segments_equal_controlnet_aux_with_its_value_and_distance_thresholds(
    annotators, value, distance
):
    image = edge_photo(128, 192)
    theirs = _reference_mlsd(annotators)(image, value, distance, 128, 128, output_type="np")
    ours = get_preprocessor("mlsd").run(image, 128, value, distance, annotator_dir=annotators)
    np.testing.assert_array_equal(ours, theirs)
    loosest = get_preprocessor("mlsd").run(image, 128, 0.1, 0.1, annotator_dir=annotators)
    assert 0.05 < (loosest == 255).mean() < 0.5  # random weights draw segments, not a blank or a fill
    assert (ours <= loosest).all()  # a stricter threshold only removes segments


def test_mlsd_pads_to_multiples_of_64_and_cuts_the_padding_off(annotators):
    image = edge_photo(100, 150)
    padded = np.pad(image, [(0, 28), (0, 42), (0, 0)], mode="edge")
    theirs = _reference_mlsd(annotators)(padded, 0.1, 0.1, 128, 128, output_type="np")[:100, :150]
    np.testing.assert_array_equal(get_preprocessor("mlsd").run(image, 100, annotator_dir=annotators), theirs)


@pytest.fixture(scope="module")
def openpose_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("openpose_annotators")
    write_openpose(folder)
    return folder


def _reference_openpose(folder: Path):
    module = aux_openpose()
    files = folder / "openpose"
    return module.OpenposeDetector(
        module.Body(str(files / "body_pose_model.pth")),
        module.Hand(str(files / "hand_pose_model.pth")),
        module.Face(str(files / "facenet.pth")),
    )


LEFT_WRIST = 7
ONE_HANDED = (LEFT_WRIST,)  # no left wrist: no left hand is looked for


@pytest.fixture(scope="module")
def full_pose(openpose_dir):
    """openpose_full on the dot person without its left wrist, Sumi's and controlnet-aux's: each hand
    runs the full-size hand network at four scales (368 pixels x 0.5 to 2 whatever the hand's size),
    the slow part, so the person has one hand and this is done once."""
    picture = pose_picture(missing=ONE_HANDED)
    ours = get_preprocessor("openpose_full").analyse(picture, 384, annotator_dir=openpose_dir)
    (theirs,) = _reference_openpose(openpose_dir).detect_poses(picture, True, True)
    assert theirs.left_hand is None and theirs.right_hand is not None
    return ours, theirs


def _count(drawing: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((drawing == colour).all(axis=-1).sum())


@pytest.mark.parametrize(
    ("label", "options"),
    [
        ("openpose", {}),
        ("openpose_face", {"include_face": True}),
        ("openpose_faceonly", {"include_body": False, "include_face": True}),
    ],
)
def test_openpose_body_and_face_variants_draw_controlnet_aux_s_figure_pixel_for_pixel(
    openpose_dir, label, options
):
    image = pose_picture()
    theirs = _reference_openpose(openpose_dir)(image, 384, 384, output_type="np", **options)
    ours = get_preprocessor(label).run(image, 384, annotator_dir=openpose_dir)
    np.testing.assert_array_equal(ours, theirs)
    assert (_count(ours, (255, 0, 0)) > 0) == options.get("include_body", True)  # the nose's dot
    assert (_count(ours, (255, 255, 255)) > 0) == ("include_face" in options)  # face landmarks


def test_openpose_full_draws_controlnet_aux_s_body_hands_and_face(full_pose):
    ours, theirs = full_pose
    expected = aux_openpose().draw_poses([theirs], 384, 384)
    np.testing.assert_array_equal(ours.map, expected)
    body_only = aux_openpose().draw_poses([theirs], 384, 384, draw_hand=False, draw_face=False)
    assert _count(ours.map, (0, 0, 255)) > _count(body_only, (0, 0, 255))  # hand joints
    assert _count(ours.map, (255, 255, 255)) > 0  # face landmarks


def test_openpose_hand_draws_the_body_and_hands_without_reading_the_face(openpose_dir, full_pose):
    _, theirs = full_pose  # controlnet-aux's hands do not depend on the face
    picture = pose_picture(missing=ONE_HANDED)
    ours = get_preprocessor("openpose_hand").analyse(picture, 384, annotator_dir=openpose_dir)
    np.testing.assert_array_equal(ours.map, aux_openpose().draw_poses([theirs], 384, 384, draw_face=False))
    (person,) = ours.pose["people"]
    assert person["face_keypoints_2d"] is None
    assert person["hand_right_keypoints_2d"] == [
        v for p in theirs.right_hand for v in (float(p.x), float(p.y), 1.0)
    ]


def test_a_part_missing_from_the_picture_is_zero_in_the_json_and_the_rest_is_read(openpose_dir):
    found = get_preprocessor("openpose").analyse(pose_picture(missing=(7,)), 384, annotator_dir=openpose_dir)
    (person,) = found.pose["people"]
    body = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
    assert (body[7] == 0).all() and (np.delete(body, 7, axis=0)[:, 2] == 1.0).all()


def test_openpose_reads_the_person_in_the_picture_and_returns_openpose_json(full_pose):
    ours, theirs = full_pose
    assert ours.pose is not None
    assert (ours.pose["canvas_width"], ours.pose["canvas_height"]) == (384, 384)
    (person,) = ours.pose["people"]
    body = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
    seen = np.delete(body, LEFT_WRIST, axis=0)
    assert (body[LEFT_WRIST] == 0).all() and (seen[:, 2] == 1.0).all()  # the missing part is zeros
    # every part drawn, within a few pixels
    np.testing.assert_allclose(seen[:, :2] * 384, np.delete(POSE_PARTS, LEFT_WRIST, axis=0), atol=8)
    assert person["hand_left_keypoints_2d"] is None  # no wrist, no hand (as controlnet-aux)
    assert len(person["hand_right_keypoints_2d"]) == 21 * 3

    def flat(points) -> list[float]:
        return [v for p in points for v in ((0.0, 0.0, 0.0) if p is None else (float(p.x), float(p.y), 1.0))]

    for key, points in (
        ("pose_keypoints_2d", theirs.body.keypoints),
        ("hand_right_keypoints_2d", theirs.right_hand),
        ("face_keypoints_2d", theirs.face),
    ):
        assert person[key] == flat(points), key


def test_openpose_json_of_a_picture_without_people_is_empty(openpose_dir):
    found = get_preprocessor("openpose").analyse(
        np.zeros((128, 192, 3), np.uint8), 128, annotator_dir=openpose_dir
    )
    assert found.pose == {"people": [], "animals": [], "canvas_height": 128, "canvas_width": 192}
    assert not found.map.any()


def test_openpose_pads_to_multiples_of_64_and_cuts_the_padding_off(openpose_dir):
    image = pose_picture()[:, 20:350]  # 384 x 330
    padded = np.pad(image, [(0, 0), (0, 54), (0, 0)], mode="edge")
    theirs = _reference_openpose(openpose_dir)(padded, 384, 384, output_type="np", include_face=True)
    ours = get_preprocessor("openpose_face").run(image, 330, annotator_dir=openpose_dir)
    np.testing.assert_array_equal(ours, theirs[:, :330])


def test_openpose_needs_only_the_files_of_what_it_reads(openpose_dir, tmp_path):
    (tmp_path / "openpose").mkdir()
    body = (openpose_dir / "openpose" / "body_pose_model.pth").read_bytes()
    (tmp_path / "openpose" / "body_pose_model.pth").write_bytes(body)
    assert get_preprocessor("openpose").run(pose_picture(), 384, annotator_dir=tmp_path).any()
    with pytest.raises(PreprocessorError, match=r"needs openpose/facenet.pth in .*Download it from"):
        get_preprocessor("openpose_face").run(pose_picture(), 384, annotator_dir=tmp_path)
    with pytest.raises(PreprocessorError, match=r"needs openpose/hand_pose_model.pth, openpose/facenet.pth"):
        get_preprocessor("openpose_full").run(pose_picture(), 384, annotator_dir=tmp_path)


@pytest.mark.parametrize("safe_steps", [0, 2])
def test_anyline_is_mteed_edges_with_the_extension_s_lineart_layer_of_the_same_picture(tmp_path, safe_steps):
    from skimage import morphology

    write_teed(tmp_path, seed=7, name="MTEED.pth")
    module = aux_module("teed")
    network = module.TED()
    network.load_state_dict(torch.load(tmp_path / "TEED" / "MTEED.pth", weights_only=True))
    image = faint_drawing()
    edges = module.TEEDdetector(network.eval())(image, 128, safe_steps=safe_steps, output_type="np")
    # sd-webui-controlnet's Anyline, step by step: lineart_standard of the same picture, its pixels at
    # 0..1 as a 3-channel mask, specks under 36 (3-D, 6-connected) removed, "screen"-blended in uint8.
    lineart = get_preprocessor("lineart_standard").run(image, 128)
    layer = np.where((lineart >= 0) & (lineart <= 1), lineart, 0)
    layer = layer * morphology.remove_small_objects(layer.astype(bool), min_size=36, connectivity=1)
    mask = layer.astype(bool)
    expected = edges * (~mask) + (1 - (1 - layer) * (1 - edges)) * mask
    ours = get_preprocessor("softedge_anyline").run(image, 128, safe_steps, annotator_dir=tmp_path)
    np.testing.assert_array_equal(ours, expected)
    assert (ours[:, :, 0] == 1).sum() == 171  # the faint line; its six dots are specks and dropped


def test_anyline_at_a_resolution_that_is_not_a_multiple_of_64_still_gives_a_map(tmp_path):
    """The extension fails there (its two layers come out at different sizes); Sumi fits them."""
    write_teed(tmp_path, seed=7, name="MTEED.pth")
    ours = get_preprocessor("softedge_anyline").run(faint_drawing(), 100, annotator_dir=tmp_path)
    assert ours.shape == (100, 150, 3)


def test_normal_bae_equals_controlnet_aux_s_network_through_the_extension_s_steps(tmp_path):
    import types

    path = write_normal_bae(tmp_path, seed=8)
    network_module = aux_module_without_torchvision("normalbae.nets.NNET")
    args = types.SimpleNamespace(architecture="BN", sampling_ratio=0.4, importance_ratio=0.7)
    network = network_module.NNET(args)
    state = torch.load(path, weights_only=True)["model"]
    network.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    image = edge_photo(100, 150)
    padded = np.pad(image, [(0, 28), (0, 42), (0, 0)], mode="edge")
    # sd-webui-controlnet's NormalBaeDetector.__call__ on the padded picture (torchvision's Normalize
    # written out), then the padding cut off.
    pixels = torch.from_numpy(padded).float() / 255.0
    pixels = pixels.permute(2, 0, 1)[None]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        normal = network.eval()((pixels - mean) / std)[0][-1][:, :3]
    normal = ((normal + 1) * 0.5).clip(0, 1)[0].permute(1, 2, 0).numpy()
    expected = (normal * 255.0).clip(0, 255).astype(np.uint8)[:100, :150]
    ours = get_preprocessor("normal_bae").run(image, 100, annotator_dir=tmp_path)
    np.testing.assert_array_equal(ours, expected)
    assert len(np.unique(ours.reshape(-1, 3), axis=0)) > 100  # a real map, not one colour


@pytest.fixture(scope="module")
def leres_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("leres")
    write_leres(folder, seed=9)
    write_depth_merge(folder, width=8, seed=4)
    return folder


@pytest.mark.parametrize(("near", "background"), [(0, 0), (30, 0), (0, 40), (20, 30)])
def test_depth_leres_equals_controlnet_aux_with_its_near_and_background_cuts(leres_dir, near, background):
    module = aux_module_without_torchvision("leres")
    network = aux_module_without_torchvision("leres.leres.multi_depth_model_woauxi").RelDepthModel(
        "resnext101"
    )
    state = torch.load(leres_dir / "leres" / "res101.pth", weights_only=True)["depth_model"]
    network.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    image = edge_photo(100, 150)
    padded = np.pad(image, [(0, 28), (0, 42), (0, 0)], mode="edge")
    theirs = module.LeresDetector(network.eval(), None)(
        padded, near, background, False, 128, 128, output_type="np"
    )
    ours = get_preprocessor("depth_leres").run(image, 100, near, background, annotator_dir=leres_dir)
    np.testing.assert_array_equal(ours, theirs[:100, :150])
    assert len(np.unique(ours)) > (40 if near == background == 0 else 5)


def test_depth_leres_plus_plus_equals_controlnet_aux_boost_from_the_published_files(leres_dir):
    module = aux_module_without_torchvision("leres")
    network = aux_module_without_torchvision("leres.leres.multi_depth_model_woauxi").RelDepthModel(
        "resnext101"
    )
    state = torch.load(leres_dir / "leres" / "res101.pth", weights_only=True)["depth_model"]
    network.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    merger = aux_depth_merger(torch.load(leres_dir / "leres" / "latest_net_G.pth", weights_only=True))
    image = flat_scene(192, 300, seed=2)
    padded = np.pad(image, [(0, 0), (0, 20), (0, 0)], mode="edge")
    theirs = module.LeresDetector(network.eval(), merger)(padded, 20, 30, True, 192, 192, output_type="np")
    ours = get_preprocessor("depth_leres++").run(image, 192, 20, 30, annotator_dir=leres_dir)
    np.testing.assert_array_equal(ours, theirs[:, :300])
    assert len(np.unique(ours)) > 5
    plain = get_preprocessor("depth_leres").run(image, 192, 20, 30, annotator_dir=leres_dir)
    assert np.abs(ours.astype(int) - plain).mean() > 5  # the boost is not plain LeReS


def test_depth_leres_plus_plus_names_the_merging_network_when_only_leres_is_there(tmp_path):
    (tmp_path / "leres").mkdir()
    (tmp_path / "leres" / "res101.pth").write_bytes(b"x")
    with pytest.raises(PreprocessorError, match=r"needs leres/latest_net_G.pth in"):
        get_preprocessor("depth_leres++").run(edge_photo(64, 64), annotator_dir=tmp_path)
