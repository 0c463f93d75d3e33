"""ControlNet for a job: units in, engine units (models + sized control images), maps and infotext out.

For each enabled unit: run its preprocessor at the processor resolution (or the pixel-perfect one),
bring the map to the generation size by the unit's resize mode, load its model for the active
checkpoint, and describe it in the infotext (`ControlNet 0: "Module: canny, ..."`). Everything is
checked before sampling starts, so a bad unit fails the job without touching the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine.controlnet.annotators.runtime import AnnotatorRuntime, NetworkCache
from modules.sumi.engine.controlnet.colorfix import ColorFixUnit
from modules.sumi.engine.controlnet.control import ControlModel, ControlUnit
from modules.sumi.engine.controlnet.detect_args import Detection
from modules.sumi.engine.controlnet.image_fit import (
    fit_to_target,
    inpaint_blend_mask,
    pixel_perfect_resolution,
    to_control_tensor,
    to_inpaint_tensor,
)
from modules.sumi.engine.controlnet.ip_adapter import (
    INSTANT_ID_NAMES,
    ImagePromptUnit,
    IPAdapterNetwork,
    check_block_weights,
    check_fits,
)
from modules.sumi.engine.controlnet.lllite import LLLiteNetwork, LLLiteUnit, check_lllite_fits
from modules.sumi.engine.controlnet.models import LoadedControlNet, union_control_types
from modules.sumi.engine.controlnet.preprocessors import Preprocessor, get_preprocessor
from modules.sumi.engine.controlnet.reference import ReferenceUnit
from modules.sumi.engine.controlnet.revision import RevisionUnit, noise_augmented
from modules.sumi.engine.controlnet.style_adapter import StyleAdapterNetwork
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.generate import ControlUnitKind
from modules.sumi.engine.model import SDModel
from modules.sumi.services.controlnet.detections import DetectionCache, picture_key
from modules.sumi.services.controlnet.image_prompt import ImagePrompts
from modules.sumi.services.controlnet.lama import LAMA_PREPROCESSOR, LamaFill, latents_of
from modules.sumi.services.controlnet.models import ControlNetFile, ControlNetModels
from modules.sumi.services.controlnet.units import UNION_CONTROL_TYPES, ControlNetUnit, union_type_index
from modules.sumi.services.settings.options import Options


@dataclass
class InpaintBlend:
    """`inpaint_only`'s post-processing: each generated image becomes `mask * image + (1 - mask) *
    control image` (sd-webui-controlnet's post-processor, run on the batch before A1111's overlay)."""

    images: list[np.ndarray]  # the control images at the generation size, HxWx3 uint8
    masks: list[np.ndarray]  # HxW float32 in 0..1: where the generated pixels stay

    def apply(self, image: Image.Image, index: int) -> Image.Image | None:
        """The blended image, or None when the image is not at the generation size (the extension
        logs that and leaves the image as it is)."""
        i = index if index < len(self.images) else 0
        raw, mask = self.images[i], self.masks[min(i, len(self.masks) - 1)]
        if (image.height, image.width) != raw.shape[:2]:
            return None
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        m = mask[:, :, None]
        blended = m * pixels + (1.0 - m) * raw.astype(np.float32)
        return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


@dataclass
class PreparedControl:
    units: list[ControlUnitKind] = field(default_factory=list)
    detected_maps: list[Image.Image] = field(default_factory=list)  # appended to the job's images
    # (preprocessor, map) to write into the detected-maps folder (`control_net_detectmap_autosaving`)
    maps_to_save: list[tuple[str, Image.Image]] = field(default_factory=list)
    infotext: dict[str, str] = field(default_factory=dict)
    blends: list[InpaintBlend] = field(default_factory=list)  # inpaint_only units, in unit order
    noise_x0: torch.Tensor | None = None  # inpaint_only+lama: the filled image's latents (the last unit's)

    def post_process(self, images: list[Image.Image]) -> tuple[list[Image.Image], list[str]]:
        """The batch's images after every unit's post-processing, and warnings for those skipped."""
        warnings: list[str] = []
        out = list(images)
        for blend in self.blends:
            for i, image in enumerate(out):
                blended = blend.apply(image, i)
                if blended is None:
                    warnings.append(
                        "ControlNet inpaint_only: the image is not at the generation size; "
                        "the blend with the control image was skipped"
                    )
                else:
                    out[i] = blended
        return out, list(dict.fromkeys(warnings))


@dataclass
class Target:
    width: int
    height: int
    batch_size: int
    seed: int = 0
    hires_pass: bool = False  # the second pass of a hires-fix job (reference units: style fidelity 0)
    image_seed: int = 0  # the job's seed alone (the picture depends on it; `seed` adds the subseed)


class ControlNetService:
    def __init__(
        self,
        models: ControlNetModels,
        options: Options,
        annotator_dirs: Sequence[Path],
        clip_vision_dirs: Sequence[Path] = (),
    ):
        self.models = models
        self.options = options
        self.annotator_dirs = [Path(d) for d in annotator_dirs]
        self.lama = LamaFill(lambda: self.annotator_dir, models.allow_unsafe_pickle)
        # annotator networks kept as the ControlNet models are (the extension's cache size setting)
        self.annotator_cache = NetworkCache(lambda: int(self.options.control_net_model_cache_size))
        self.detections = DetectionCache()
        self.image_prompts = ImagePrompts(
            lambda: self.annotator_dir,
            clip_vision_dirs,
            self.annotator_cache,
            lambda: models.allow_unsafe_pickle,
        )

    @property
    def annotator_dir(self) -> Path:
        """The first annotator folder that exists (models/ControlNet/annotators by default)."""
        return next((d for d in self.annotator_dirs if d.is_dir()), self.annotator_dirs[0])

    def prepare(self, units: Sequence[ControlNetUnit], sd: SDModel, target: Target) -> PreparedControl:
        prepared = PreparedControl()
        for index, unit in enumerate(units):
            if unit.enabled:
                for part in _unfolded(unit, index):
                    self._prepare_unit(index, part, sd, target, prepared)
        return prepared

    def _prepare_unit(
        self, index: int, unit: ControlNetUnit, sd: SDModel, target: Target, prepared: PreparedControl
    ) -> None:
        where = f"ControlNet unit {index}"
        if not unit.images:
            raise InvalidRequestError(f"{where} is enabled but has no image; upload one or disable the unit")
        if len(unit.images) not in (1, target.batch_size) and unit.input_mode != "merge":
            raise InvalidRequestError(
                f"{where}: {len(unit.images)} images for a batch of {target.batch_size}; give 1 or {target.batch_size}"
            )
        preprocessor = _preprocessor(unit.module, where)
        if preprocessor.reference:  # no model: the extension ignores the unit's model for these
            _refuse_level_settings(unit, f"{where} ({preprocessor.name})")
            self._prepare_reference(index, unit, preprocessor, sd, target, prepared)
            return
        if preprocessor.revision:  # no model either
            _refuse_level_settings(unit, f"{where} ({preprocessor.name})")
            self._prepare_revision(index, unit, preprocessor, sd, target, prepared)
            return
        file = self.models.find(unit.model)
        if file is None:
            raise InvalidRequestError(f"{where} is enabled but no model is selected")
        if preprocessor.image_encoder is not None:
            self._prepare_image_prompt(index, unit, preprocessor, file, sd, prepared)
            return
        masks = self._masks(preprocessor, unit, where)
        images, detector = unit.images, preprocessor
        if preprocessor.name == LAMA_PREPROCESSOR:  # LaMa fills the masked part, then inpaint_only
            images, masks = self.lama.filled(
                preprocessor, unit, masks, (target.width, target.height), sd.device
            )
            detector = _preprocessor("inpaint_only", where)
        maps = [self.detect_for_target(detector, unit, image, target, sd.device) for image in images]
        if preprocessor.name == LAMA_PREPROCESSOR:
            prepared.noise_x0 = latents_of(sd, maps)
        loaded = self.models.load(file, sd)
        if isinstance(loaded.model, LLLiteNetwork):
            self._prepare_lllite(
                index, unit, preprocessor, loaded.model, file.name, maps, sd, target, prepared
            )
            return
        model = _control_model(loaded, file.name, where)
        union_type = _union_type(loaded, unit, preprocessor, file.name, where)
        if masks:
            masks = [self._fit_mask(mask, unit, image, target) for mask, image in _pairs(masks, images)]
            tensors = [to_inpaint_tensor(m, k, sd.device, sd.dtype) for m, k in _pairs(maps, masks)]
            if preprocessor.post_blend:
                sigma = int(self.options.data.get("control_net_inpaint_blur_sigma", 7))
                prepared.blends.append(InpaintBlend(maps, [inpaint_blend_mask(k, sigma) for k in masks]))
        else:
            tensors = [to_control_tensor(m, sd.device, sd.dtype) for m in maps]
        try:
            engine_unit = ControlUnit(
                model,
                torch.cat(tensors),
                weight=unit.weight,
                guidance_start=unit.guidance_start,
                guidance_end=unit.guidance_end,
                control_mode=unit.control_mode,
                global_average_pooling=loaded.global_average_pooling,
                low_vram=unit.low_vram or sd.offloaded,  # follows --medvram
                down_block_types=tuple(sd.unet.config["down_block_types"]),
                union_type=union_type,
                advanced_weighting=tuple(unit.advanced_weighting) if unit.advanced_weighting else None,
                region_mask=region_mask_tensor(unit.effective_region_mask, sd.device),
                context_tokens=_instant_id_tokens(file.name, prepared),
            )
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"{where}: {exc}") from exc
        prepared.units.append(engine_unit)
        if preprocessor.color_fix:
            prepared.units.append(_color_fix_unit(unit, preprocessor, latents_of(sd, maps), target))
        unit.model = file.name
        unit.module = preprocessor.name
        self._describe(index, unit, preprocessor, _shown(maps, masks), prepared)

    def _prepare_lllite(
        self,
        index: int,
        unit: ControlNetUnit,
        preprocessor: Preprocessor,
        network: LLLiteNetwork,
        name: str,
        maps: list[np.ndarray],
        sd: SDModel,
        target: Target,
        prepared: PreparedControl,
    ) -> None:
        """A ControlNet-LLLite unit: checked against the UNet; left out of a hires pass (the extension
        does not run LLLite there)."""
        where = f"ControlNet unit {index}"
        _refuse_level_settings(unit, f"{where} (ControlNet-LLLite)")
        try:
            check_lllite_fits(network, sd.unet, name)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"{where}: {exc}") from exc
        if not target.hires_pass:
            image = torch.cat([to_control_tensor(m, sd.device, sd.dtype) for m in maps])
            prepared.units.append(
                LLLiteUnit(network, image, unit.weight, unit.guidance_start, unit.guidance_end)
            )
        unit.model = name
        unit.module = preprocessor.name
        self._describe(index, unit, preprocessor, maps, prepared)

    def _prepare_reference(
        self,
        index: int,
        unit: ControlNetUnit,
        preprocessor: Preprocessor,
        sd: SDModel,
        target: Target,
        prepared: PreparedControl,
    ) -> None:
        """A reference unit: its picture at the generation size (by the resize mode), as VAE latents,
        and the style fidelity as the extension applies it."""
        maps = [self.detect_for_target(preprocessor, unit, image, target, sd.device) for image in unit.images]
        fidelity = min(1.0, max(0.0, preprocessor.resolve(-1, unit.threshold_a).threshold_a))
        if sd.is_sdxl:
            fidelity = fidelity**3.0  # the extension: SDXL's attention steering is unstable
        if unit.control_mode == "ControlNet is more important":
            fidelity = 1.0
        elif unit.control_mode == "My prompt is more important" or target.hires_pass:
            fidelity = 0.0
        prepared.units.append(
            ReferenceUnit(
                latents_of(sd, maps),
                preprocessor.name,
                weight=unit.weight,
                style_fidelity=fidelity,
                guidance_start=unit.guidance_start,
                guidance_end=unit.guidance_end,
            )
        )
        unit.module = preprocessor.name
        self._describe(index, unit, preprocessor, maps, prepared)

    def _prepare_revision(
        self,
        index: int,
        unit: ControlNetUnit,
        preprocessor: Preprocessor,
        sd: SDModel,
        target: Target,
        prepared: PreparedControl,
    ) -> None:
        """A Revision unit: its pictures' CLIP ViT-bigG image embeddings, noise-augmented with the job's seed."""
        where = f"ControlNet unit {index}"
        if not sd.is_sdxl:
            raise InvalidRequestError(
                f"{where}: preprocessor '{preprocessor.label}' only supports SDXL; the loaded model is {sd.family}"
            )
        path = self.image_prompts.encoder_for(preprocessor, None, sd.device, where)
        embeds = self.image_prompts.features(path, unit, sd.device, where).image_embeds.cpu()
        if unit.input_mode == "merge":
            embeds = embeds.mean(dim=0, keepdim=True)
        level = preprocessor.resolve(-1, unit.threshold_a).threshold_a
        generator = torch.Generator().manual_seed(target.image_seed & 0xFFFFFFFF)
        prepared.units.append(
            RevisionUnit(
                noise_augmented(embeds, level, generator),
                weight=unit.weight,
                ignore_prompt=preprocessor.name == "revision_ignore_prompt",
                guidance_start=unit.guidance_start,
                guidance_end=unit.guidance_end,
            )
        )
        unit.module = preprocessor.name
        self._describe(index, unit, preprocessor, [], prepared)

    def _prepare_image_prompt(
        self,
        index: int,
        unit: ControlNetUnit,
        preprocessor: Preprocessor,
        file: ControlNetFile,
        sd: SDModel,
        prepared: PreparedControl,
    ) -> None:
        """An IP-Adapter unit: the adapter, checked against the UNet, and its picture's image tokens."""
        where = f"ControlNet unit {index}"
        loaded = self.models.load(file, sd)
        adapter = loaded.model
        if isinstance(adapter, StyleAdapterNetwork):
            _refuse_level_settings(unit, f"{where} (the T2I style adapter)")
            prepared.units.append(
                self.image_prompts.style_unit(unit, preprocessor, adapter, sd.device, where)
            )
        elif isinstance(adapter, IPAdapterNetwork):
            try:
                check_fits(adapter, sd.unet, file.name)
                if unit.advanced_weighting:
                    check_block_weights(unit.advanced_weighting, sd.unet)
            except InvalidRequestError as exc:
                raise InvalidRequestError(f"{where}: {exc}") from exc
            if unit.advanced_weighting and min(unit.advanced_weighting) < 0:
                raise InvalidRequestError(
                    f"{where}: an IP-Adapter's advanced_weighting takes weights from 0 (the extension drops "
                    "negative ones); use 0 to leave a block out"
                )
            region = region_mask_tensor(unit.effective_region_mask, sd.device)
            prepared.units.append(
                self.image_prompts.unit(unit, preprocessor, adapter, sd.device, where, region)
            )
        else:
            raise InvalidRequestError(
                f"{where}: '{preprocessor.label}' makes CLIP image features for an IP-Adapter or the T2I style "
                f"adapter; '{file.name}' is neither"
            )
        unit.model = file.name
        unit.module = preprocessor.name
        self._describe(index, unit, preprocessor, [], prepared)

    @staticmethod
    def _masks(preprocessor: Preprocessor, unit: ControlNetUnit, where: str) -> list[np.ndarray]:
        if not preprocessor.uses_mask:
            return []
        if not unit.masks:
            raise InvalidRequestError(
                f"{where}: preprocessor '{preprocessor.label}' needs a mask: draw one on the unit's image, "
                'send `mask` (or `image: {"image": ..., "mask": ...}`), or use it in img2img inpaint '
                "without an image of its own"
            )
        if len(unit.masks) not in (1, len(unit.images)):
            raise InvalidRequestError(f"{where}: {len(unit.masks)} masks for {len(unit.images)} images")
        return unit.masks

    @staticmethod
    def _fit_mask(mask: np.ndarray, unit: ControlNetUnit, image: np.ndarray, target: Target) -> np.ndarray:
        """The mask brought to its image's size, then to the generation size as the map is; with
        Resize and Fill the padding is masked (the extension's outpainting with inpaint units)."""
        if mask.shape[:2] != image.shape[:2]:
            resized = Image.fromarray(mask).resize((image.shape[1], image.shape[0]), Image.Resampling.LANCZOS)
            mask = np.asarray(resized)
        gray = np.repeat(mask[:, :, None], 3, axis=2)
        return np.ascontiguousarray(
            fit_to_target(gray, target.width, target.height, unit.resize_mode, fill=255)[:, :, 0]
        )

    def _describe(self, index: int, unit: ControlNetUnit, preprocessor: Preprocessor, maps, prepared) -> None:
        text = unit.infotext()
        if text is not None:
            prepared.infotext[f"ControlNet {index}"] = text
        if not unit.save_detected_map or preprocessor.name == "none":
            return
        pictures = [Image.fromarray(m) for m in maps]
        if not self.options.control_net_no_detectmap:
            prepared.detected_maps.extend(pictures)
        if self.options.control_net_detectmap_autosaving:
            prepared.maps_to_save.extend((preprocessor.name, picture) for picture in pictures)

    def annotator_runtime(self, device: torch.device | str | None = None) -> AnnotatorRuntime:
        """Where annotator networks run: the job's device, else (previews) the GPU when there is one."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return AnnotatorRuntime(torch.device(device), self.annotator_cache, self.models.allow_unsafe_pickle)

    def detect_for_target(
        self,
        preprocessor: Preprocessor,
        unit: ControlNetUnit,
        image: np.ndarray,
        target: Target,
        device: torch.device | None = None,
    ) -> np.ndarray:
        """The unit's control map at the generation size."""
        resolution, exact = unit.processor_res, False
        if unit.pixel_perfect:
            raw = (image.shape[0], image.shape[1])
            resolution = pixel_perfect_resolution(raw, (target.height, target.width), unit.resize_mode)
            exact = True
        runtime = self.annotator_runtime(device)
        settings = (resolution, unit.threshold_a, unit.threshold_b, exact, target.seed)
        detected = self._analyse(preprocessor, image, settings, runtime).map
        return fit_to_target(detected, target.width, target.height, unit.resize_mode)

    def _analyse(
        self,
        preprocessor: Preprocessor,
        image: np.ndarray,
        settings: tuple[float, float, float, bool, int],
        runtime: AnnotatorRuntime,
    ) -> Detection:
        """The preprocessor's detection, from the cache when this picture went through it with the same
        settings, weight files and device (the seed counts only for random preprocessors)."""
        resolution, threshold_a, threshold_b, exact, seed = settings
        files = tuple((str(p), p.stat().st_mtime_ns) for p in preprocessor.weight_files(self.annotator_dir))
        args = preprocessor.resolve(resolution, threshold_a, threshold_b)
        key = (
            picture_key(image),
            preprocessor.name,
            (args.resolution, args.threshold_a, args.threshold_b, resolution if exact else None),
            seed if preprocessor.random else None,
            files,
            str(runtime.device),
        )
        return self.detections.get_or_detect(
            key,
            lambda: preprocessor.analyse(
                image,
                resolution,
                threshold_a,
                threshold_b,
                annotator_dir=self.annotator_dir,
                seed=seed,
                exact_resolution=exact,
                runtime=runtime,
            ),
        )

    def detect(
        self,
        module: str,
        images: Sequence[np.ndarray],
        processor_res: float = -1,
        threshold_a: float = -1,
        threshold_b: float = -1,
        exact_resolution: bool = False,
    ) -> list[Detection]:
        """Run a preprocessor on images at their own size (`/controlnet/detect`, the UI preview): each
        map, with the OpenPose JSON for pose preprocessors; `exact_resolution` takes a pixel-perfect
        resolution as given."""
        preprocessor = _preprocessor(module, "ControlNet detect")
        runtime = self.annotator_runtime()
        settings = (processor_res, threshold_a, threshold_b, exact_resolution, 0)
        return [self._analyse(preprocessor, image, settings, runtime) for image in images]


def _control_model(loaded: LoadedControlNet, name: str, where: str) -> ControlModel:
    """The model of a unit fed by a control map; IP-Adapters and the style adapter read CLIP features
    instead, which a map preprocessor cannot give them."""
    model = loaded.model
    if isinstance(model, IPAdapterNetwork):
        raise InvalidRequestError(
            f"{where}: '{name}' is an IP-Adapter; it reads the picture through a CLIP vision "
            "preprocessor: choose ip-adapter-auto (or ip-adapter_clip_h / ip-adapter_clip_g)"
        )
    if isinstance(model, StyleAdapterNetwork):
        raise InvalidRequestError(
            f"{where}: '{name}' is the T2I style adapter; it reads the picture through "
            "t2ia_style_clipvision (CLIP ViT-L/14)"
        )
    assert not isinstance(model, LLLiteNetwork)  # LLLite units are prepared on their own path
    return model


def _union_type(
    loaded: LoadedControlNet, unit: ControlNetUnit, preprocessor: Preprocessor, name: str, where: str
) -> int | None:
    """A ControlNet Union model's control type for the unit (None for other models)."""
    kinds = union_control_types(loaded)
    if kinds is None:
        return None
    union_type = union_type_index(unit.union_control_type, preprocessor.tags)
    if union_type is None:
        raise InvalidRequestError(
            f"{where}: '{name}' is a ControlNet Union model; set union_control_type "
            f"({', '.join(UNION_CONTROL_TYPES)}) or pick a preprocessor of one of those kinds"
        )
    if union_type >= kinds:
        raise InvalidRequestError(
            f"{where}: '{name}' takes control types 0..{kinds - 1} "
            f"({', '.join(UNION_CONTROL_TYPES[:kinds])}); {UNION_CONTROL_TYPES[union_type]} needs a "
            "promax model"
        )
    return union_type


def region_mask_tensor(mask: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    """An effective region mask (HxW uint8) as [1, 1, H, W] in 0..1 on the device, float32 (as the
    extension keeps it); None for none."""
    if mask is None:
        return None
    return torch.tensor(mask, dtype=torch.float32, device=device)[None, None] / 255.0


def _refuse_level_settings(unit: ControlNetUnit, what: str) -> None:
    """Reference and style units have no levels to weight and no region to limit (the extension
    refuses a region mask for them too): a clear error instead of a setting that does nothing."""
    if unit.advanced_weighting:
        raise InvalidRequestError(
            f"{what}: advanced_weighting works with ControlNets, T2I-Adapters and IP-Adapters"
        )
    if unit.effective_region_mask is not None:
        raise InvalidRequestError(
            f"{what}: effective_region_mask works with ControlNets, T2I-Adapters and IP-Adapters"
        )


def _color_fix_unit(
    unit: ControlNetUnit, preprocessor: Preprocessor, latents: torch.Tensor, target: Target
) -> ColorFixUnit:
    """tile_colorfix(+sharp)'s colour fix beside its ControlNet: Variation (threshold_a, doubled in a hires
    pass as the extension) and Sharpness (threshold_b) with the extension's defaulting."""
    args = preprocessor.resolve(-1, unit.threshold_a, unit.threshold_b)
    variation = int(args.threshold_a) * (2 if target.hires_pass else 1)
    return ColorFixUnit(
        latents,
        variation,
        weight=unit.weight,
        sharpness=args.threshold_b if preprocessor.threshold_b is not None else None,
        guidance_start=unit.guidance_start,
        guidance_end=unit.guidance_end,
    )


def _instant_id_tokens(name: str, prepared: PreparedControl) -> tuple[torch.Tensor, torch.Tensor] | None:
    """InstantID's ControlNet (told by its name, as the extension tells it) reads the face tokens of the
    InstantID IP-Adapter unit just before it instead of the prompt; None for other ControlNets."""
    if not any(n in name.lower() for n in INSTANT_ID_NAMES):
        return None
    previous = prepared.units[-1] if prepared.units else None
    if not isinstance(previous, ImagePromptUnit) or previous.adapter.shape.kind != "instantid":
        raise InvalidRequestError(
            f"{name} is InstantID's ControlNet; it reads the face tokens of an InstantID IP-Adapter "
            "unit, which must come right before it (unit n: instant_id_face_embedding with "
            "ip-adapter_instant_id_sdxl, unit n+1: instant_id_face_keypoints with this model)"
        )
    return previous.tokens, previous.negative


def _unfolded(unit: ControlNetUnit, index: int) -> list[ControlNetUnit]:
    """The extension's Multi-Inputs ("merge"): an IP-Adapter unit keeps its pictures (their image
    tokens are averaged); any other unit becomes one unit per picture, each with weight / n."""
    if unit.input_mode != "merge" or len(unit.images) < 2:
        return [dataclasses.replace(unit, input_mode="simple")] if unit.input_mode == "merge" else [unit]
    preprocessor = _preprocessor(unit.module, f"ControlNet unit {index}")
    if preprocessor.feeds_ip_adapter:
        return [unit]
    share = unit.weight / len(unit.images)
    masks = unit.masks
    return [
        dataclasses.replace(
            unit,
            images=[image],
            masks=[masks[min(i, len(masks) - 1)]] if masks else [],
            weight=share,
            input_mode="simple",
        )
        for i, image in enumerate(unit.images)
    ]


def _shown(maps: list[np.ndarray], masks: list[np.ndarray]) -> list[np.ndarray]:
    """The detected maps as shown: with a mask, RGBA with the masked part half transparent (the
    extension's `visualize_inpaint_mask`)."""
    if not masks:
        return maps
    return [np.dstack([m, 255 - k // 2]) for m, k in _pairs(maps, masks)]


def _pairs(first: list, second: list) -> list[tuple]:
    """Pair two per-image lists where either may hold a single shared entry."""
    n = max(len(first), len(second))
    return [(first[min(i, len(first) - 1)], second[min(i, len(second) - 1)]) for i in range(n)]


def _preprocessor(module: str, where: str) -> Preprocessor:
    try:
        return get_preprocessor(module or "none")
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{where}: {exc}") from exc
