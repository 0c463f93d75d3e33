"""The network preprocessors' detectors: each scales the image to the processor resolution as the
extension does (short side, edge-padded to multiples of 64), runs its network and post-processing, and
cuts the padding off again."""

from __future__ import annotations

import numpy as np

from modules.sumi.engine.controlnet.annotators.edges import scribble
from modules.sumi.engine.controlnet.annotators.hed import HedNetwork, load_hed, soft_edges
from modules.sumi.engine.controlnet.annotators.lineart import LineartNetwork, line_drawing, load_lineart
from modules.sumi.engine.controlnet.annotators.lineart_anime import (
    LineartAnimeNetwork,
    anime_line_drawing,
    load_lineart_anime,
)
from modules.sumi.engine.controlnet.annotators.pidinet import PiDiNetwork, load_pidinet, pidinet_edges
from modules.sumi.engine.controlnet.annotators.runtime import AnnotatorFiles
from modules.sumi.engine.controlnet.annotators.teed import TeedNetwork, load_teed, teed_edges
from modules.sumi.engine.controlnet.detect_args import DetectArgs
from modules.sumi.engine.controlnet.image_fit import resize_with_pad


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _hed_edges(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles, safe: bool) -> np.ndarray:
    padded = resize_with_pad(image, args.resolution)
    network = files.network(load_hed)
    assert isinstance(network, HedNetwork)
    return padded.unpad(soft_edges(network, padded.image, files.device, safe=safe))


def hed(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_hed: HED's edge strength."""
    return _gray_to_rgb(_hed_edges(image, args, files, safe=False))


def hed_safe(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_hedsafe: HED's edges cut to three levels."""
    return _gray_to_rgb(_hed_edges(image, args, files, safe=True))


def scribble_hed(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """scribble_hed: bold lines along HED's strongest edges."""
    return _gray_to_rgb(scribble(_hed_edges(image, args, files, safe=False)))


def lineart(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """lineart_realistic / lineart_coarse (the same network, the file differs): white lines on black."""
    padded = resize_with_pad(image, args.resolution)
    network = files.network(load_lineart)
    assert isinstance(network, LineartNetwork)
    return _gray_to_rgb(padded.unpad(line_drawing(network, padded.image, files.device)))


def lineart_anime(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """lineart_anime: white lines on black from the anime U-Net."""
    padded = resize_with_pad(image, args.resolution)
    network = files.network(load_lineart_anime)
    assert isinstance(network, LineartAnimeNetwork)
    return _gray_to_rgb(padded.unpad(anime_line_drawing(network, padded.image, files.device)))


def _pidinet_edges(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles, **kind: bool) -> np.ndarray:
    padded = resize_with_pad(image, args.resolution)
    network = files.network(load_pidinet)
    assert isinstance(network, PiDiNetwork)
    return padded.unpad(pidinet_edges(network, padded.image, files.device, **kind))


def pidinet(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_pidinet: PiDiNet's edge strength."""
    return _gray_to_rgb(_pidinet_edges(image, args, files))


def pidinet_safe(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_pidisafe: PiDiNet's edges cut to three levels."""
    return _gray_to_rgb(_pidinet_edges(image, args, files, safe=True))


def pidinet_scribble(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """scribble_pidinet: bold lines along PiDiNet's strongest edges."""
    return _gray_to_rgb(scribble(_pidinet_edges(image, args, files)))


def pidinet_sketch(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """t2ia_sketch_pidi: PiDiNet's edges over one half, white on black (the T2I-Adapter sketch)."""
    return _gray_to_rgb(_pidinet_edges(image, args, files, binary=True))


def teed(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """softedge_teed: TEED's edge strength, cut to `threshold_a` + 1 levels ("Safe Steps"; 0: not)."""
    padded = resize_with_pad(image, args.resolution)
    network = files.network(load_teed)
    assert isinstance(network, TeedNetwork)
    return _gray_to_rgb(padded.unpad(teed_edges(network, padded.image, files.device, int(args.threshold_a))))
