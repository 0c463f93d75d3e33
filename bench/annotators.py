"""ControlNet annotator costs: each network preprocessor on a 512x512 picture, Sumi beside controlnet-aux
(the library the extension's annotators were published as) on the same weights.

    python bench/annotators.py                 # every network annotator, real-size random weights
    python bench/annotators.py --only softedge_hed depth_leres

Weights are random in the published layouts at their real sizes (the OpenPose body network is the test
suite's dot-person reader, so hands and faces are found and their networks run); a network's speed does
not depend on its values. "cold" is the first call (file read and network built), "warm" the median of
three later calls; controlnet-aux is timed warm on the same padded picture.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import median_seconds  # noqa: E402

from modules.sumi.engine.controlnet.annotators.depth_anything import DepthAnythingNetwork, DepthAnythingShape  # noqa: E402
from modules.sumi.engine.controlnet.annotators.runtime import AnnotatorRuntime, NetworkCache  # noqa: E402
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor  # noqa: E402
from tests.fixtures import tiny_annotators as files  # noqa: E402
from tests.fixtures.tiny_oneformer import PUBLISHED_LAYOUT, write_tiny_oneformer  # noqa: E402

SIZE = 512


def _write_all(folder: Path) -> None:
    files.write_hed(folder)
    files.write_pidinet(folder)
    files.write_teed(folder)
    files.write_teed(folder, name="MTEED.pth")
    files.write_lineart(folder, "sk_model.pth")
    files.write_lineart_anime(folder)
    files.write_mlsd(folder)
    files.write_openpose(folder)
    files.write_normal_bae(folder)
    files.write_leres(folder)
    files.write_depth_merge(folder, width=64)
    torch.manual_seed(0)
    vitl = DepthAnythingShape(1024, 24, 37 * 37, 256, (256, 512, 1024, 1024), (4, 11, 17, 23))
    path = folder / "depth_anything_v2" / "depth_anything_v2_vitl.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in DepthAnythingNetwork(vitl).state_dict().items()}, path)
    _write_midas(folder)
    _write_zoe(folder)
    files.write_manga_line(folder)
    files.write_uniformer(folder, widths=(64, 128, 320, 512), depths=(3, 4, 8, 3), channels=512)
    write_tiny_oneformer(folder, PUBLISHED_LAYOUT)  # the published Swin-L size


def _write_midas(folder: Path) -> None:
    """dpt_hybrid-midas-501f0c75.pt's layout needs timm's ViT-R50 to build (a test-only package)."""
    try:
        from tests.engine.aux_reference import aux_midas_network
    except ImportError:
        return
    try:
        network = aux_midas_network()
    except ImportError:  # no timm: depth_midas says its file is missing
        return
    (folder / "midas").mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), folder / "midas" / "dpt_hybrid-midas-501f0c75.pt")


def _write_zoe(folder: Path) -> None:
    """ZoeD_M12_N.pt at its real size (BEiT-L/16: 1024 wide, 16 heads), built by controlnet-aux's code
    (timm's BEiT, a test-only package)."""
    try:
        from tests.engine.aux_reference import aux_zoe_network

        network = aux_zoe_network(width=1024, heads=16)
    except ImportError:  # no timm: depth_zoe says its file is missing
        return
    (folder / "zoedepth").mkdir(parents=True, exist_ok=True)
    torch.save({"model": network.state_dict()}, folder / "zoedepth" / "ZoeD_M12_N.pt")


def _aux_zoe(folder: Path) -> dict[str, Callable[[np.ndarray], object]]:
    """controlnet-aux's ZoeDepth on the same file, with the extension's map steps."""
    path = folder / "zoedepth" / "ZoeD_M12_N.pt"
    if not path.is_file():
        return {}
    from tests.engine.aux_reference import aux_zoe_network

    network = aux_zoe_network(width=1024, heads=16)
    network.load_state_dict(torch.load(path, weights_only=True)["model"])

    def detect(picture: np.ndarray) -> np.ndarray:
        depth = network.infer(torch.from_numpy(picture).float().permute(2, 0, 1)[None] / 255.0)[0, 0].numpy()
        low, high = np.percentile(depth, 2), np.percentile(depth, 85)
        return (((1.0 - (depth - low) / (high - low)) * 255.0).clip(0, 255)).astype(np.uint8)

    return {"depth_zoe": detect}


def _aux_detectors(folder: Path) -> dict[str, Callable[[np.ndarray], object]]:
    """controlnet-aux's detectors on the same files, called as the extension sizes pictures."""
    from tests.engine.aux_reference import (
        aux_depth_merger,
        aux_module,
        aux_module_without_torchvision,
        aux_openpose,
    )

    def loaded(network, path: Path, key: str | None = None, strip: str = ""):
        state = torch.load(path, weights_only=True)
        state = state[key] if key else state
        network.load_state_dict({k.removeprefix(strip): v for k, v in state.items()})
        return network.eval()

    hed = aux_module("hed")
    pidi = aux_module("pidi")
    lineart = aux_module("lineart")
    teed = aux_module("teed")
    mlsd = aux_module("mlsd")
    pose = aux_openpose()
    leres = aux_module_without_torchvision("leres")
    rel_depth = aux_module_without_torchvision("leres.leres.multi_depth_model_woauxi").RelDepthModel
    hed_detector = hed.HEDdetector(loaded(hed.ControlNetHED_Apache2(), folder / "hed" / "ControlNetHED.pth"))
    pidi_network = loaded(pidi.pidinet(), folder / "pidinet" / "table5_pidinet.pth", "state_dict", "module.")
    line_network = loaded(lineart.Generator(3, 1, 3), folder / "lineart" / "sk_model.pth")
    pose_files = folder / "openpose"
    openpose = pose.OpenposeDetector(
        pose.Body(str(pose_files / "body_pose_model.pth")),
        pose.Hand(str(pose_files / "hand_pose_model.pth")),
        pose.Face(str(pose_files / "facenet.pth")),
    )
    leres_network = loaded(rel_depth("resnext101"), folder / "leres" / "res101.pth", "depth_model", "module.")
    merger = aux_depth_merger(torch.load(folder / "leres" / "latest_net_G.pth", weights_only=True))
    midas = {}
    if (folder / "midas" / "dpt_hybrid-midas-501f0c75.pt").is_file():
        from tests.engine.aux_reference import aux_midas_detector, aux_midas_network

        network = aux_midas_network()
        network.load_state_dict(
            torch.load(folder / "midas" / "dpt_hybrid-midas-501f0c75.pt", weights_only=True)
        )
        detector = aux_midas_detector(network)
        midas["depth_midas"] = lambda x: detector(
            x, detect_resolution=SIZE, image_resolution=SIZE, output_type="np"
        )
    return (
        midas
        | _aux_zoe(folder)
        | _aux_mediapipe_face()
        | {
            "softedge_hed": lambda x: hed_detector(x, SIZE, SIZE, output_type="np"),
            "softedge_pidinet": lambda x: pidi.PidiNetDetector(pidi_network)(x, SIZE, SIZE, output_type="np"),
            "softedge_teed": lambda x: teed.TEEDdetector(loaded(teed.TED(), folder / "TEED" / "7_model.pth"))(
                x, SIZE, output_type="np"
            ),
            "lineart_realistic": lambda x: lineart.LineartDetector(line_network, line_network)(
                x, detect_resolution=SIZE, image_resolution=SIZE, output_type="np"
            ),
            "mlsd": lambda x: mlsd.MLSDdetector(
                loaded(mlsd.MobileV2_MLSD_Large(), folder / "mlsd" / "mlsd_large_512_fp32.pth")
            )(x, 0.1, 0.1, SIZE, SIZE, output_type="np"),
            "openpose": lambda x: openpose(x, SIZE, SIZE, output_type="np"),
            "openpose_full": lambda x: openpose(
                x, SIZE, SIZE, include_hand=True, include_face=True, output_type="np"
            ),
            "depth_leres": lambda x: leres.LeresDetector(leres_network, None)(
                x, 0, 0, False, SIZE, SIZE, output_type="np"
            ),
            "depth_leres++": lambda x: leres.LeresDetector(leres_network, merger)(
                x, 0, 0, True, SIZE, SIZE, output_type="np"
            ),
        }
    )


def _aux_mediapipe_face() -> dict[str, Callable[[np.ndarray], object]]:
    """The extension's mediapipe_face annotator (controlnet-aux's copy), when mediapipe is installed."""
    import importlib.util

    if importlib.util.find_spec("mediapipe") is None:
        return {}
    from modules.sumi.engine.controlnet.annotators.mediapipe_face import find_faces
    from modules.sumi.engine.controlnet.image_fit import resize_with_pad
    from tests.engine.aux_reference import aux_module

    find_faces(np.zeros((64, 64, 3), np.uint8), 1, 0.5)  # imports mediapipe as Sumi does
    annotate = aux_module("mediapipe_face.mediapipe_face_common").generate_annotation

    def detect(picture: np.ndarray) -> np.ndarray:
        padded = resize_with_pad(picture, SIZE)
        return padded.unpad(annotate(padded.image, 1, 0.5))

    return {"mediapipe_face": detect}


def _picture(label: str) -> np.ndarray:
    if label == "mediapipe_face":  # a real face: scikit-image's bundled astronaut photograph
        import skimage
        from PIL import Image

        return np.asarray(Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB"))
    if label.startswith("openpose"):
        return cv2.resize(files.pose_picture(), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    return files.edge_photo(SIZE, SIZE)


LABELS = (
    "softedge_hed",
    "softedge_pidinet",
    "softedge_teed",
    "softedge_anyline",
    "lineart_realistic",
    "lineart_anime",
    "lineart_anime_denoise",
    "mlsd",
    "openpose",
    "openpose_full",
    "normal_bae",
    "depth_leres",
    "depth_leres++",
    "depth_midas",
    "depth_anything_v2",
    "depth_zoe",
    "seg_ufade20k",
    "seg_ofade20k",
    "mediapipe_face",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=list(LABELS))
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        _write_all(folder)
        aux = _aux_detectors(folder)
        print(
            f"device: {device}, picture {SIZE}x{SIZE}, torch {torch.__version__}, threads {torch.get_num_threads()}"
        )
        print("| preprocessor | Sumi cold (s) | Sumi warm (s) | controlnet-aux warm (s) |")
        print("|---|---|---|---|")
        for label in options.only:
            runtime = AnnotatorRuntime(device, NetworkCache(lambda: 4))
            picture = _picture(label)
            preprocessor = get_preprocessor(label)

            def run(preprocessor=preprocessor, picture=picture, runtime=runtime) -> None:
                preprocessor.run(picture, SIZE, annotator_dir=folder, runtime=runtime)

            start = time.perf_counter()
            run()
            cold = time.perf_counter() - start
            warm = median_seconds(run, device, runs=options.runs, warmup=False)
            theirs = "n/a"
            if label in aux and device.type == "cpu":
                detect = aux[label]
                seconds = median_seconds(
                    lambda detect=detect, picture=picture: detect(picture), device, runs=options.runs
                )
                theirs = f"{seconds:.2f}"
            print(f"| `{label}` | {cold:.2f} | {warm:.2f} | {theirs} |", flush=True)


if __name__ == "__main__":
    main()
