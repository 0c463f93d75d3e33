"""Loading ControlNet model files into diffusers `ControlNetModel`s.

Formats: lllyasviel `.pth`/`.safetensors` (`control_model.*`, prefix optional), "diff" ControlNets
(deltas to the base UNet), diffusers single files and diffusers folders (`config.json` beside
`diffusion_pytorch_model.safetensors`/`.bin`). Sizes are read from the weight shapes, so non-standard
(tiny) models load; what the weights do not hold follows the family rules of `families.base`:

- family: `label_emb` (size conditioning) -> SDXL; else context width 1024 -> SD2, 768 -> SD1, other
  widths (tiny models): linear `proj_in` -> SD2, convolutional -> SD1.
- heads: SD1 8 heads, SD2/SDXL head dim 64 (the families' `default_heads`).
- SDXL size-embedding width (not in a ControlNet's weights): the base UNet's when given, else 256 as
  in every released SDXL model.
- "shuffle" in the file name: the residuals are averaged over the image (global average pooling), as
  in sd-webui-controlnet; the model's `global_pool_conditions` is set so its forward does it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import ControlNetModel, ControlNetUnionModel, UNet2DConditionModel
from torch import Tensor

from modules.sumi.engine import ldm_export
from modules.sumi.engine.controlnet.ip_adapter import (
    IPAdapterNetwork,
    build_ip_adapter,
    ip_adapter_shape,
    is_ip_adapter,
)
from modules.sumi.engine.controlnet.keys import (
    HINT_KEY,
    ControlNetFile,
    count,
    file_names,
    parse_controlnet_file,
)
from modules.sumi.engine.controlnet.lllite import LLLiteNetwork, build_lllite, is_lllite
from modules.sumi.engine.controlnet.style_adapter import (
    StyleAdapterNetwork,
    build_style_adapter,
    is_style_adapter,
)
from modules.sumi.engine.controlnet.t2i_adapter import (
    T2IAdapterNetwork,
    adapter_family_of,
    build_t2i_adapter,
    is_t2i_adapter,
)
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.families import get_family
from modules.sumi.engine.families.base import norm_groups
from modules.sumi.engine.files import check_keys, check_shapes, from_config, load_weights, read_state_dict

StateDict = dict[str, Tensor]
CONTEXT_DIMS = {"SD1": 768, "SD2": 1024, "SDXL": 2048}  # text embedding width of the real models
SDXL_SIZE_CONDITIONS = 6  # original size, crop top-left, target size: (h, w) each
SDXL_SIZE_EMBED_DIM = 256
FOLDER_WEIGHTS = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.fp16.bin",
)


@dataclass
class LoadedControlNet:
    """A ControlNet ready to run (eval mode, no gradients) and what the denoiser needs to know of it.

    `family` uses SDModel.family's names ("SD1", "SD2", "SDXL"); `hint_channels` is the number of
    channels of the control image; `global_average_pooling` marks shuffle models.
    """

    model: (
        ControlNetModel
        | ControlNetUnionModel
        | T2IAdapterNetwork
        | IPAdapterNetwork
        | StyleAdapterNetwork
        | LLLiteNetwork
    )
    family: str
    source: str
    hint_channels: int
    global_average_pooling: bool = False


# -- public API -----------------------------------------------------------------------------------


def detect_controlnet_family(state_dict: Mapping[str, Tensor], source: str = "") -> str:
    """The family ("SD1", "SD2" or "SDXL") of a ControlNet state dict in any file layout.

    ModelLoadError (saying what the file looks like instead) if it is not a ControlNet.
    """
    if is_style_adapter(state_dict):
        return _context_family(int(state_dict["proj"].shape[1]), "SD1")
    if is_lllite(state_dict):
        return build_lllite(state_dict, source or "this file").family
    if is_t2i_adapter(state_dict):
        return adapter_family_of(state_dict, source or "this file")
    if is_ip_adapter(state_dict):
        shape = ip_adapter_shape(state_dict, source or "this file")
        if shape.family is None:
            raise ModelLoadError(f"{source}: an IP-Adapter for {shape.context_dim}-wide text embeddings")
        return shape.family
    if CONTROL_LORA_KEY in state_dict:
        return _control_lora_family(state_dict, source or "this file")
    return _family(parse_controlnet_file(state_dict, source or "this file").ldm)


def _control_lora_family(state_dict: Mapping[str, Tensor], source: str) -> str:
    """A Control-LoRA's family from its size conditioning or its text width (the `attn2.to_k` LoRA)."""
    if any(k.startswith("label_emb.") for k in state_dict):
        return "SDXL"
    widths = {
        int(v.shape[1])
        for k, v in state_dict.items()
        if k.endswith("attn2.to_k.down") or k.endswith("attn2.to_k.weight")
    }
    for family, width in CONTEXT_DIMS.items():
        if width in widths:
            return family
    raise ModelLoadError(f"{source}: a Control-LoRA whose model family cannot be told from its weights")


def load_controlnet(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    allow_unsafe_pickle: bool = False,
    base_unet: UNet2DConditionModel | None = None,
    expected_family: str | None = None,
) -> LoadedControlNet:
    """Load a ControlNet file or diffusers folder (ModelLoadError / UnsafeFileError for any problem).

    `base_unet` is the loaded checkpoint's UNet: required for "diff" ControlNets (their weights are
    differences to it); for SDXL ControlNets it also gives the size-embedding width.
    `expected_family` refuses a ControlNet of another family before anything is built.
    """
    path = Path(path)
    if path.is_dir():
        model, family = _load_folder(path, dtype, allow_unsafe_pickle)
        _check_family(path, family, expected_family)
    else:
        state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
        if is_style_adapter(state):
            return _load_style_adapter(state, path, dtype, device, expected_family)
        if is_lllite(state):
            return _load_lllite(state, path, dtype, device, expected_family)
        if is_t2i_adapter(state):
            return _load_adapter(state, path, dtype, device, expected_family)
        if is_ip_adapter(state):
            return _load_ip_adapter(state, path, dtype, device, expected_family)
        if CONTROL_LORA_KEY in state:
            _check_family(path, _control_lora_family(state, str(path)), expected_family)
            state = control_lora_weights(state, base_unet, str(path))
        file = parse_controlnet_file(state, str(path))
        _check_family(path, _family(file.ldm), expected_family)
        model, family = _load_file(file, str(path), dtype, base_unet)
    pooling = "shuffle" in path.stem.lower() or bool(model.config["global_pool_conditions"])
    if pooling and not model.config["global_pool_conditions"]:
        model.register_to_config(global_pool_conditions=True)
    torch.nn.Module.to(model, device=device)  # not ModelMixin.to: no keep-in-fp32 warning
    return LoadedControlNet(
        model=model,
        family=family,
        source=str(path),
        hint_channels=int(model.config["conditioning_channels"]),
        global_average_pooling=pooling,
    )


def _load_adapter(
    state: dict[str, Tensor], path: Path, dtype: torch.dtype, device: torch.device | str, expected: str | None
) -> LoadedControlNet:
    adapter = build_t2i_adapter(state, str(path))
    family = "SDXL" if adapter.shape.sdxl else "SD1"
    if expected == "SD2" and family == "SD1":
        family = "SD2"  # the SD1 adapters' features fit SD2's encoder widths as well
    _check_family(path, family, expected)
    adapter.to(device=device, dtype=dtype)
    return LoadedControlNet(
        model=adapter, family=family, source=str(path), hint_channels=adapter.shape.in_channels
    )


def _load_ip_adapter(
    state: dict[str, Tensor], path: Path, dtype: torch.dtype, device: torch.device | str, expected: str | None
) -> LoadedControlNet:
    """An IP-Adapter; its family is its text width's (a width no released model has fits by its layers,
    checked against the UNet when a unit uses it)."""
    adapter = build_ip_adapter(state, str(path))
    family = adapter.shape.family or expected or "SD1"
    _check_family(path, family, expected)
    adapter.to(device=device, dtype=dtype)
    return LoadedControlNet(model=adapter, family=family, source=str(path), hint_channels=3)


def _load_lllite(
    state: dict[str, Tensor], path: Path, dtype: torch.dtype, device: torch.device | str, expected: str | None
) -> LoadedControlNet:
    """A ControlNet-LLLite; an SD1 one fits SD2 as well (it patches only attention inputs)."""
    network = build_lllite(state, str(path))
    family = network.family
    if expected == "SD2" and family == "SD1":
        family = "SD2"
    _check_family(path, family, expected)
    network.to(device=device, dtype=dtype)
    return LoadedControlNet(model=network, family=family, source=str(path), hint_channels=3)


def _context_family(width: int, default: str) -> str:
    """The family whose text embeddings are `width` wide (a width no released model has: `default`)."""
    return next((family for family, w in CONTEXT_DIMS.items() if w == width), default)


def _load_style_adapter(
    state: dict[str, Tensor], path: Path, dtype: torch.dtype, device: torch.device | str, expected: str | None
) -> LoadedControlNet:
    """The T2I style adapter: its tokens are as wide as the text it joins (checked against the UNet)."""
    adapter = build_style_adapter(state, str(path))
    family = _context_family(adapter.context_dim, expected or "SD1")
    _check_family(path, family, expected)
    adapter.to(device=device, dtype=dtype)
    return LoadedControlNet(model=adapter, family=family, source=str(path), hint_channels=3)


CONTROL_LORA_KEY = "lora_controlnet"
_UNET_PARTS = ("input_blocks.", "middle_block.", "time_embed.", "label_emb.")


def control_lora_weights(
    state: Mapping[str, Tensor], base_unet: UNet2DConditionModel | None, source: str
) -> dict[str, Tensor]:
    """A Control-LoRA (Stability AI's `control-lora-*-rank*.safetensors`) as a whole ControlNet in
    lllyasviel names: the loaded checkpoint's UNet encoder, the file's full tensors over it (hint block,
    zero convolutions, norms, ...), and each `<layer>.up` / `<layer>.down` pair added to that layer's
    weight as `up @ down` (ComfyUI's and sd-webui-controlnet's reading)."""
    if base_unet is None:
        raise ModelLoadError(
            f"{source}: this is a Control-LoRA: it holds only changes to a Stable Diffusion UNet, so it can "
            "only be loaded together with a checkpoint"
        )
    base = ldm_export.unet_to_ldm(base_unet.state_dict(), base_unet.config, prefix="")
    weights = {k: v.detach().to("cpu", torch.float32) for k, v in base.items() if k.startswith(_UNET_PARTS)}
    pairs: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        if key == CONTROL_LORA_KEY:
            continue
        layer, _, part = key.rpartition(".")
        if part in ("up", "down"):
            pairs.setdefault(layer, {})[part] = value
        else:
            weights[key] = value
    for layer, pair in pairs.items():
        target = f"{layer}.weight"
        if set(pair) != {"up", "down"} or target not in weights:
            raise ModelLoadError(
                f"{source}: Control-LoRA layer {layer!r} has no matching UNet weight or misses up/down"
            )
        delta = pair["up"].float().flatten(1) @ pair["down"].float().flatten(1)
        if delta.numel() != weights[target].numel():
            raise ModelLoadError(
                f"{source}: Control-LoRA layer {layer!r} does not fit the loaded checkpoint's UNet "
                f"({tuple(delta.shape)} against {tuple(weights[target].shape)}); is it for another model family?"
            )
        weights[target] = weights[target].float() + delta.reshape(weights[target].shape)
    return weights


def check_compatible(controlnet: LoadedControlNet, model_family: str, context_dim: int) -> None:
    """ModelLoadError unless the ControlNet fits a checkpoint of `model_family` with `context_dim` text width."""
    name = Path(controlnet.source).name
    if isinstance(controlnet.model, StyleAdapterNetwork):
        if controlnet.model.context_dim != context_dim:
            raise ModelLoadError(
                f"T2I style adapter '{name}' makes {controlnet.model.context_dim}-wide tokens; the loaded "
                f"checkpoint's text is {context_dim} wide"
            )
        return
    if isinstance(controlnet.model, IPAdapterNetwork):
        _check_family(Path(controlnet.source), controlnet.family, model_family)
        if controlnet.model.shape.context_dim != context_dim:
            raise ModelLoadError(
                f"IP-Adapter '{name}' expects {controlnet.model.shape.context_dim}-wide text embeddings; "
                f"the loaded checkpoint gives {context_dim}"
            )
        return
    if isinstance(controlnet.model, (T2IAdapterNetwork, LLLiteNetwork)):
        if controlnet.family != model_family and {controlnet.family, model_family} != {"SD1", "SD2"}:
            _check_family(Path(controlnet.source), controlnet.family, model_family)
        return
    _check_family(Path(controlnet.source), controlnet.family, model_family)
    width = int(controlnet.model.config["cross_attention_dim"])
    if _has_cross_attention(controlnet.model) and width != context_dim:
        raise ModelLoadError(
            f"ControlNet '{name}' expects {width}-wide text embeddings; the loaded checkpoint gives {context_dim}"
        )


def _check_family(path: Path, family: str, expected: str | None) -> None:
    if expected is not None and family != expected:
        raise ModelLoadError(
            f"ControlNet '{path.name}' is for {family}; the loaded checkpoint is {expected}. "
            f"Choose an {expected} ControlNet or switch the checkpoint."
        )


# -- single files -----------------------------------------------------------------------------------


UNION_KEY = "task_embedding"  # xinsir's ControlNet Union (++ / promax), diffusers layout


def union_control_types(controlnet: LoadedControlNet) -> int | None:
    """How many control types a Union model takes; None for any other ControlNet."""
    model = controlnet.model
    return int(model.config["num_control_type"]) if isinstance(model, ControlNetUnionModel) else None


def _load_union(
    file: ControlNetFile, source: str, dtype: torch.dtype, base_unet: UNet2DConditionModel | None
) -> tuple[ControlNetUnionModel, str]:
    """A ControlNet Union file into diffusers' `ControlNetUnionModel` (SDXL: its control types are
    embedded with the size conditioning's projection)."""
    family = _family(file.ldm)
    if family != "SDXL":
        raise ModelLoadError(f"{source}: a ControlNet Union model for {family}; only SDXL ones are supported")
    config = infer_controlnet_config(file.ldm, family, source, base_unet)
    tasks = file.weights[UNION_KEY]
    config.update(
        num_control_type=int(tasks.shape[0]),
        num_trans_channel=int(tasks.shape[1]),
        num_trans_layer=count(file.weights, r"transformer_layes\.(\d+)\."),
        num_proj_channel=int(file.weights["spatial_ch_projs.weight"].shape[0]),
    )
    config.pop("mid_block_type", None)
    with torch.device("meta"):
        model = from_config(ControlNetUnionModel, config)
    load_weights(model, file.weights, "ControlNet Union", source, dtype)
    return model, family


def _load_file(
    file: ControlNetFile, source: str, dtype: torch.dtype, base_unet: UNet2DConditionModel | None
) -> tuple[ControlNetModel, str]:
    if UNION_KEY in file.weights:
        return _load_union(file, source, dtype, base_unet)  # type: ignore[return-value]
    family = _family(file.ldm)
    config = infer_controlnet_config(file.ldm, family, source, base_unet)
    with torch.device("meta"):  # this thread only, unlike accelerate's init_empty_weights
        model = from_config(ControlNetModel, config)
    expected = model.state_dict()
    names = file_names(list(expected), config, file)
    check_keys(set(names.values()), set(file.weights), "ControlNet", source)
    check_shapes({names[k]: v for k, v in expected.items()}, file.weights, "ControlNet", source)
    weights = _add_base(file, base_unet, source) if file.difference else file.weights
    load_weights(model, {k: weights[names[k]] for k in expected}, "ControlNet", source, dtype)
    return model, family


def _family_rule(size_conditioning: bool, context_dim: int | None, linear_projection: bool) -> str:
    """See the module docstring."""
    if size_conditioning:
        return "SDXL"
    if context_dim in CONTEXT_DIMS.values():
        return next(f for f, width in CONTEXT_DIMS.items() if width == context_dim)
    return "SD2" if linear_projection else "SD1"


def _family(ldm: Mapping[str, Tensor]) -> str:
    """The family of lllyasviel weights (names without prefix)."""
    to_k, proj_in = _attention_weights(ldm)
    return _family_rule(
        "label_emb.0.0.weight" in ldm or "label_emb.0.0.bias" in ldm,
        int(to_k.shape[1]) if to_k is not None else None,
        proj_in is not None and proj_in.ndim == 2,
    )


def _attention_weights(ldm: Mapping[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
    """The first cross-attention key projection and transformer proj_in (None without attention)."""
    to_k = next((v for k, v in ldm.items() if k.endswith("attn2.to_k.weight")), None)
    proj_in = next((v for k, v in ldm.items() if k.endswith(".proj_in.weight")), None)
    return to_k, proj_in


def _need(ldm: Mapping[str, Tensor], key: str, source: str) -> Tensor:
    if key not in ldm:
        raise ModelLoadError(f"{source}: missing ControlNet weight {key}")
    return ldm[key]


def infer_controlnet_config(
    ldm: Mapping[str, Tensor], family: str, source: str, base_unet: UNet2DConditionModel | None = None
) -> dict:
    """A diffusers ControlNetModel config from lllyasviel weights (keys without prefix)."""
    in_channels = _need(ldm, "input_blocks.0.0.weight", source).shape[1]
    levels, layers = _levels(ldm, source)
    first = [1 + i * (layers + 1) for i in range(levels)]
    channels = [int(_need(ldm, f"input_blocks.{b}.0.out_layers.3.weight", source).shape[0]) for b in first]
    attention = [f"input_blocks.{b}.1.proj_in.weight" in ldm for b in first]
    to_k, proj_in = _attention_weights(ldm)
    config = {
        "in_channels": int(in_channels),
        "conditioning_channels": int(ldm[HINT_KEY].shape[1]),
        "conditioning_embedding_out_channels": _hint_channels(ldm, source),
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "mid_block_type": "UNetMidBlock2DCrossAttn"
        if "middle_block.1.proj_in.weight" in ldm
        else "UNetMidBlock2D",
        "block_out_channels": channels,
        "layers_per_block": layers,
        "transformer_layers_per_block": _depths(ldm, first, attention, source),
        "norm_num_groups": norm_groups(channels),
        "cross_attention_dim": int(to_k.shape[1]) if to_k is not None else CONTEXT_DIMS[family],
        "use_linear_projection": proj_in is not None and proj_in.ndim == 2,
        "attention_head_dim": get_family(family).default_heads(channels),
    }
    if family == "SDXL":
        config.update(_sdxl_config(ldm, source, base_unet))
    return config


def _levels(ldm: Mapping[str, Tensor], source: str) -> tuple[int, int]:
    """(resolution levels, layers per level) from the input block and downsampler counts."""
    n_inputs = count(ldm, r"input_blocks\.(\d+)\.")
    n_down = sum(f"input_blocks.{i}.0.op.weight" in ldm for i in range(n_inputs))
    layers, leftover = divmod(n_inputs - 1 - n_down, n_down + 1)
    if leftover or layers < 1:
        raise ModelLoadError(
            f"{source}: cannot read the ControlNet layout ({n_inputs} input blocks, {n_down} downsamplers)"
        )
    return n_down + 1, layers


def _hint_channels(ldm: Mapping[str, Tensor], source: str) -> list[int]:
    """The hint encoder widths: conv 0, then pairs (same width, stride-2 to the next width), then out."""
    convs = count(ldm, r"input_hint_block\.(\d+)\.weight") // 2 + 1
    pairs, odd = divmod(convs - 2, 2)
    if odd or pairs < 0:
        raise ModelLoadError(f"{source}: cannot read the ControlNet hint encoder ({convs} convolutions)")
    widths = [int(ldm[HINT_KEY].shape[0])]
    widths += [int(_need(ldm, f"input_hint_block.{4 * i + 4}.weight", source).shape[0]) for i in range(pairs)]
    return widths


def _depths(
    ldm: Mapping[str, Tensor], first: list[int], attention: list[bool], source: str
) -> int | list[int]:
    """Transformer depth per level; diffusers gives the middle block the last level's depth."""
    depths = [
        count(ldm, rf"input_blocks\.{b}\.1\.transformer_blocks\.(\d+)\.") if a else 1
        for b, a in zip(first, attention, strict=True)
    ]
    middle = count(ldm, r"middle_block\.1\.transformer_blocks\.(\d+)\.")
    if middle and not attention[-1]:
        depths[-1] = middle
    elif middle and depths[-1] != middle:
        raise ModelLoadError(
            f"{source}: the ControlNet's middle block has {middle} transformer layers but its last level "
            f"{depths[-1]}; diffusers cannot build that layout"
        )
    return depths[0] if len(set(depths)) == 1 else depths


def _sdxl_config(ldm: Mapping[str, Tensor], source: str, base_unet: UNet2DConditionModel | None) -> dict:
    """SDXL's size conditioning: label_emb's input = pooled text width + 6 size embeddings."""
    adm_in = int(_need(ldm, "label_emb.0.0.weight", source).shape[1])
    time_dim = SDXL_SIZE_EMBED_DIM
    if base_unet is not None and base_unet.config.get("addition_time_embed_dim"):
        if base_unet.config["projection_class_embeddings_input_dim"] != adm_in:
            raise ModelLoadError(
                f"{source}: the ControlNet's size conditioning takes {adm_in} inputs but the loaded "
                f"checkpoint's UNet gives {base_unet.config['projection_class_embeddings_input_dim']}"
            )
        time_dim = int(base_unet.config["addition_time_embed_dim"])
    elif adm_in <= SDXL_SIZE_CONDITIONS * time_dim:
        raise ModelLoadError(
            f"{source}: cannot tell this SDXL ControlNet's size-embedding width ({adm_in} conditioning "
            "inputs); load it with the checkpoint's UNet (base_unet)"
        )
    return {
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": time_dim,
        "projection_class_embeddings_input_dim": adm_in,
    }


def _has_cross_attention(model: torch.nn.Module) -> bool:
    return any(name.endswith("attn2") for name, _ in model.named_modules())


# -- "diff" ControlNets -----------------------------------------------------------------------------


def _add_base(file: ControlNetFile, base_unet: UNet2DConditionModel | None, source: str) -> StateDict:
    """Weights the base UNet also has are stored as differences to it: add the base back (in fp32)."""
    if base_unet is None:
        raise ModelLoadError(
            f"{source}: this is a 'diff' ControlNet: its weights are differences to a Stable Diffusion "
            "UNet, so it can only be loaded together with a checkpoint (base_unet)"
        )
    base = ldm_export.unet_to_ldm(base_unet.state_dict(), base_unet.config, prefix=file.prefix)
    shared = {k: base[k] for k in file.weights if k in base}
    check_shapes(shared, file.weights, "diff ControlNet (against the loaded checkpoint's UNet)", source)
    out = dict(file.weights)
    for key, value in shared.items():
        out[key] = file.weights[key].float() + value.detach().to("cpu", torch.float32)
    return out


# -- diffusers folders ------------------------------------------------------------------------------


def _load_folder(path: Path, dtype: torch.dtype, allow_unsafe_pickle: bool) -> tuple[ControlNetModel, str]:
    """A diffusers ControlNet folder: its config.json (read here, never from the hub) and weights."""
    config = _read_config(path / "config.json")
    weights = next((path / name for name in FOLDER_WEIGHTS if (path / name).is_file()), None)
    if weights is None:
        raise ModelLoadError(f"{path}: a diffusers ControlNet folder needs {' or '.join(FOLDER_WEIGHTS[:2])}")
    state_dict = read_state_dict(weights, allow_unsafe_pickle=allow_unsafe_pickle)
    try:
        with torch.device("meta"):
            model = from_config(ControlNetModel, config)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path / 'config.json'}: not a usable ControlNet config ({exc})") from exc
    load_weights(model, state_dict, "ControlNet", weights, dtype)
    return model, _config_family(model.config)


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path.parent}: not a ControlNet folder (no config.json)") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a readable JSON config ({exc})") from exc
    if not isinstance(config, dict) or config.get("_class_name", "ControlNetModel") != "ControlNetModel":
        what = config.get("_class_name") if isinstance(config, dict) else type(config).__name__
        raise ModelLoadError(f"{path}: describes a {what}, not a ControlNetModel")
    return config


def _config_family(config) -> str:
    """The family rule, read from a diffusers config."""
    return _family_rule(
        config.addition_embed_type == "text_time",
        int(config.cross_attention_dim),
        bool(config.use_linear_projection),
    )
