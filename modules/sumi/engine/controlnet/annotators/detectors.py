"""The network preprocessors' detectors: each scales the image to the processor resolution as the
extension does (short side, edge-padded to multiples of 64), runs its network and post-processing, and
cuts the padding off again. They return gray maps (`Preprocessor.run` makes them RGB), or a `Detection`
holding the map and the pose read (OpenPose)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from modules.sumi.engine.controlnet.annotators.anime_face import anime_face_segments, load_anime_face
from modules.sumi.engine.controlnet.annotators.depth_anything import (
    load_depth_anything_v1,
    load_depth_anything_v2,
    relative_depth,
)
from modules.sumi.engine.controlnet.annotators.depth_boost import boosted_depth
from modules.sumi.engine.controlnet.annotators.depth_merge import load_depth_merge, merge_depths
from modules.sumi.engine.controlnet.annotators.dwpose import (
    draw_animals,
    load_onnx,
    read_animals,
    read_wholebody,
)
from modules.sumi.engine.controlnet.annotators.edges import dark_lines, scribble, without_small_specks
from modules.sumi.engine.controlnet.annotators.hed import load_hed, soft_edges
from modules.sumi.engine.controlnet.annotators.leres import (
    depth_gray,
    leres_depth,
    leres_prediction,
    load_leres,
)
from modules.sumi.engine.controlnet.annotators.lineart import line_drawing, load_lineart
from modules.sumi.engine.controlnet.annotators.lineart_anime import anime_line_drawing, load_lineart_anime
from modules.sumi.engine.controlnet.annotators.manga_line import load_manga_line, manga_lines
from modules.sumi.engine.controlnet.annotators.midas import depth_map, load_midas, midas_depth, normal_map
from modules.sumi.engine.controlnet.annotators.mlsd import line_segments, load_mlsd
from modules.sumi.engine.controlnet.annotators.normal_bae import load_normal_bae, surface_normals
from modules.sumi.engine.controlnet.annotators.oneformer import (
    ADE20K,
    COCO,
    load_oneformer,
    semantic_segments,
)
from modules.sumi.engine.controlnet.annotators.openpose import (
    PoseNetworks,
    draw_people,
    pose_json,
    read_people,
)
from modules.sumi.engine.controlnet.annotators.pidinet import load_pidinet, pidinet_edges
from modules.sumi.engine.controlnet.annotators.pose_networks import load_body, load_face, load_hand
from modules.sumi.engine.controlnet.annotators.runtime import AnnotatorFiles
from modules.sumi.engine.controlnet.annotators.teed import load_teed, teed_edges
from modules.sumi.engine.controlnet.annotators.uniformer import ade20k_segments, load_uniformer
from modules.sumi.engine.controlnet.annotators.zoe import load_zoe, zoe_depth
from modules.sumi.engine.controlnet.detect_args import DetectArgs, Detection
from modules.sumi.engine.controlnet.image_fit import resize_with_pad

NetworkDetector = Callable[[np.ndarray, DetectArgs, AnnotatorFiles], np.ndarray | Detection]


def _padded(image: np.ndarray, args: DetectArgs, detect: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`detect` on the image scaled to the processor resolution and padded, the padding cut off."""
    padded = resize_with_pad(image, args.resolution)
    return padded.unpad(detect(padded.image))


def hed(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_hed: HED's edge strength."""
    return _padded(image, args, lambda x: soft_edges(files.network(load_hed), x, files.device))


def hed_safe(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_hedsafe: HED's edges cut to three levels."""
    return _padded(image, args, lambda x: soft_edges(files.network(load_hed), x, files.device, safe=True))


def scribble_hed(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """scribble_hed: bold lines along HED's strongest edges."""
    return scribble(hed(image, args, files))


def lineart(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """lineart_realistic / lineart_coarse (the same network, the file differs): white lines on black."""
    return _padded(image, args, lambda x: line_drawing(files.network(load_lineart), x, files.device))


def lineart_anime(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """lineart_anime: white lines on black from the anime U-Net."""
    return _padded(
        image, args, lambda x: anime_line_drawing(files.network(load_lineart_anime), x, files.device)
    )


def lineart_anime_denoise(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """lineart_anime_denoise: white lines on black from the manga line network (speckles and screen
    tones left out)."""
    return _padded(image, args, lambda x: manga_lines(files.network(load_manga_line), x, files.device))


def _pidinet(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles, **kind: bool) -> np.ndarray:
    return _padded(image, args, lambda x: pidinet_edges(files.network(load_pidinet), x, files.device, **kind))


def pidinet(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_pidinet: PiDiNet's edge strength."""
    return _pidinet(image, args, files)


def pidinet_safe(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_pidisafe: PiDiNet's edges cut to three levels."""
    return _pidinet(image, args, files, safe=True)


def pidinet_scribble(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """scribble_pidinet: bold lines along PiDiNet's strongest edges."""
    return scribble(_pidinet(image, args, files))


def pidinet_sketch(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """t2ia_sketch_pidi: PiDiNet's edges over one half, white on black (the T2I-Adapter sketch)."""
    return _pidinet(image, args, files, binary=True)


def teed(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_teed: TEED's edge strength, cut to `threshold_a` + 1 levels ("Safe Steps"; 0: not)."""
    steps = int(args.threshold_a)
    return _padded(image, args, lambda x: teed_edges(files.network(load_teed), x, files.device, steps))


ANYLINE_MIN_SPECK = 12  # the extension drops specks under 36 pixels of its 3-channel mask: 12 per channel


def anyline(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_anyline as sd-webui-controlnet makes it: MTEED's edges (`TEED/MTEED.pth`, TEED's network,
    `threshold_a` Safe Steps), where lineart_standard of the same picture is exactly 1 (specks under 12
    pixels aside) set to 1. The extension's uint8 "screen" blend of the two layers comes to that."""
    steps = int(args.threshold_a)

    def detect(padded: np.ndarray) -> np.ndarray:
        edges = teed_edges(files.network(load_teed), padded, files.device, steps)
        lines = dark_lines(padded, args.resolution)
        if lines.shape != edges.shape:  # a resolution that is not a multiple of 64 (the extension fails)
            lines = cv2.resize(lines, edges.shape[::-1], interpolation=cv2.INTER_NEAREST)
        faint = without_small_specks(lines == 1, ANYLINE_MIN_SPECK)
        return np.where(faint, 1, edges).astype(np.uint8)

    return _padded(image, args, detect)


def mlsd(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """mlsd: M-LSD's straight segments scoring above `threshold_a`, longer than `threshold_b`."""
    return _padded(
        image,
        args,
        lambda x: line_segments(
            files.network(load_mlsd), x, files.device, args.threshold_a, args.threshold_b
        ),
    )


def _openpose(hands: bool = False, face: bool = False, draw_body: bool = True) -> NetworkDetector:
    """An OpenPose preprocessor: bodies from file 0, hands and faces from the next files when read."""

    def detect(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> Detection:
        padded = resize_with_pad(image, args.resolution)
        networks = PoseNetworks(
            files.network(load_body, 0),
            files.network(load_hand, 1) if hands else None,
            files.network(load_face, 2 if hands else 1) if face else None,
        )
        people = read_people(networks, padded.image, files.device)
        height, width = padded.image.shape[:2]
        drawing = draw_people(people, height, width, body=draw_body, hands=hands, face=face)
        return Detection(padded.unpad(drawing), pose_json(people, height, width))

    return detect


openpose = _openpose()
openpose_hand = _openpose(hands=True)
openpose_face = _openpose(face=True)
openpose_faceonly = _openpose(face=True, draw_body=False)
openpose_full = _openpose(hands=True, face=True)


def dw_openpose_full(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> Detection:
    """DW Pose: people found by YOLOX (file 0), whole-body keypoints by RTMPose (file 1), drawn as
    openpose_full draws them; the JSON keeps pixels, as the extension's does."""
    padded = resize_with_pad(image, args.resolution)
    people = read_wholebody(files.network(load_onnx, 0), files.network(load_onnx, 1), padded.image)
    height, width = padded.image.shape[:2]
    drawing = draw_people(people, height, width, body=True, hands=True, face=True)
    return Detection(padded.unpad(drawing), pose_json(people, height, width))


def animal_openpose(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> Detection:
    """Animal pose: animals found by YOLOX (file 0), 17 AP10k keypoints by RTMPose (file 1), drawn as
    coloured limbs; the JSON lists them under "animals"."""
    padded = resize_with_pad(image, args.resolution)
    animals = read_animals(files.network(load_onnx, 0), files.network(load_onnx, 1), padded.image)
    height, width = padded.image.shape[:2]
    points = [[(x, y) for x, y, _ in animal] for animal in animals]
    return Detection(padded.unpad(draw_animals(animals, height, width)), pose_json([], height, width, points))


def depth_zoe(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """depth_zoe: ZoeDepth's metric depth, as 8-bit grey between its 2nd and 85th percentiles, near white."""
    return _padded(image, args, lambda x: zoe_depth(files.network(load_zoe), x, files.device))


def anime_face_segment(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """seg_anime_face: hair, eyes, mouth, face, skin and clothes in the extension's seven colours; the
    network reads the padded picture with its short side at 512 and the padding is cut from that (the
    extension's steps, so other resolutions keep its framing)."""
    return _padded(
        image, args, lambda x: anime_face_segments(files.network(load_anime_face), x, files.device)
    )


def uniformer_segmentation(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """seg_ufade20k: each pixel in its ADE20K class's colour (UniFormer + UPerNet)."""
    return _padded(image, args, lambda x: ade20k_segments(files.network(load_uniformer), x, files.device))


def oneformer_ade20k(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """seg_ofade20k: each pixel in its ADE20K class's colour (OneFormer, Swin-L)."""
    return _padded(
        image, args, lambda x: semantic_segments(files.network(load_oneformer), x, files.device, ADE20K)
    )


def oneformer_coco(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """seg_ofcoco: each pixel in its COCO panoptic class's colour (OneFormer, Swin-L)."""
    return _padded(
        image, args, lambda x: semantic_segments(files.network(load_oneformer), x, files.device, COCO)
    )


def normal_bae(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """normal_bae: surface normals as colours (x to red, y to green, z to blue)."""
    return _padded(image, args, lambda x: surface_normals(files.network(load_normal_bae), x, files.device))


def depth_anything(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """depth_anything: Depth Anything's relative depth, near = white."""
    return _padded(
        image, args, lambda x: relative_depth(files.network(load_depth_anything_v1), x, files.device)
    )


def depth_anything_v2(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """depth_anything_v2: Depth Anything V2's relative depth, near = white."""
    return _padded(
        image, args, lambda x: relative_depth(files.network(load_depth_anything_v2), x, files.device)
    )


def depth_midas(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """depth_midas: MiDaS DPT-Hybrid's relative depth, near = white."""
    return _padded(image, args, lambda x: depth_map(midas_depth(files.network(load_midas), x, files.device)))


def normal_midas(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """normal_midas: normals from MiDaS's depth; `threshold_a` is the background threshold."""
    return _padded(
        image,
        args,
        lambda x: normal_map(midas_depth(files.network(load_midas), x, files.device), args.threshold_a),
    )


def leres(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """depth_leres: LeReS depth, near = white; `threshold_a` removes the nearest, `threshold_b` the
    background (percent of the grey range)."""
    return _padded(
        image,
        args,
        lambda x: leres_depth(files.network(load_leres), x, files.device, args.threshold_a, args.threshold_b),
    )


def leres_boost(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """depth_leres++: LeReS boosted by double estimation and patch merging (`annotators.depth_boost`),
    the same map and thresholds as depth_leres."""

    def detect(picture: np.ndarray) -> np.ndarray:
        leres, merger, device = files.network(load_leres), files.network(load_depth_merge, 1), files.device
        depth = boosted_depth(
            picture,
            lambda x, side: leres_prediction(leres, x, device, side),
            lambda coarse, detailed: merge_depths(merger, coarse, detailed, device),
            max(picture.shape[:2]),
        )
        return depth_gray(depth, args.threshold_a, args.threshold_b)

    return _padded(image, args, detect)
