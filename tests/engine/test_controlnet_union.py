"""ControlNet Union (xinsir's ++ / promax, diffusers layout): the file loads into diffusers'
ControlNetUnionModel and gives its residuals for each control type; the type comes from the unit or,
as in the extension's UI, from the preprocessor's kind."""

from __future__ import annotations

import pytest
import torch
from diffusers import ControlNetUnionModel

from modules.sumi.engine.controlnet.control import controlnet_residuals
from modules.sumi.engine.controlnet.models import load_controlnet
from modules.sumi.engine.errors import InvalidRequestError, ModelLoadError
from modules.sumi.services.controlnet.units import union_control_type, union_type_index
from tests.fixtures.tiny_controlnets import controlnet_inputs, save_state_dict, tiny_controlnet, tiny_union


@pytest.fixture(scope="module")
def union(tmp_path_factory):
    unet = tiny_controlnet("SDXL")["unet"]
    model = tiny_union(unet, 11)
    path = tmp_path_factory.mktemp("union") / "controlnet-union-sdxl-1.0-promax.safetensors"
    save_state_dict(path, {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()})
    return model, unet, path


def _theirs(model: ControlNetUnionModel, inputs: dict, kind: int) -> list[torch.Tensor]:
    kinds = torch.zeros(1, model.config["num_control_type"])
    kinds[:, kind] = 1
    with torch.no_grad():
        down, mid = model(
            inputs["sample"],
            inputs["timestep"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
            controlnet_cond=[inputs["controlnet_cond"]],
            control_type=kinds,
            control_type_idx=[kind],
            added_cond_kwargs=inputs["added_cond_kwargs"],
            return_dict=False,
        )
    return [*down, mid]


def _ours(model, inputs: dict, kind: int) -> list[torch.Tensor]:
    with torch.no_grad():
        return controlnet_residuals(
            model,
            inputs["sample"],
            inputs["timestep"],
            inputs["encoder_hidden_states"],
            inputs["controlnet_cond"],
            inputs["added_cond_kwargs"],
            union_type=kind,
        )


def test_a_union_file_loads_and_gives_diffusers_residuals_for_each_control_type(union):
    model, unet, path = union
    loaded = load_controlnet(path, base_unet=unet, expected_family="SDXL")
    assert isinstance(loaded.model, ControlNetUnionModel) and loaded.family == "SDXL"
    inputs = controlnet_inputs(model)
    found = {}
    for kind in (0, 3):
        ours = _ours(loaded.model, inputs, kind)
        for a, b in zip(ours, _theirs(model, inputs, kind), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        found[kind] = ours
    assert any(
        (a - b).abs().max() > 1e-4 for a, b in zip(found[0], found[3], strict=True)
    )  # the type matters


def test_a_union_model_refuses_a_control_type_it_does_not_have(union):
    model, unet, path = union
    loaded = load_controlnet(path, base_unet=unet)
    inputs = controlnet_inputs(model)
    with pytest.raises(InvalidRequestError, match="control types 0..5"):
        _ours(loaded.model, inputs, 7)


def test_an_sd1_union_file_is_refused_with_a_message(tmp_path):
    unet = tiny_controlnet("SD1")["unet"]
    state = {k: v.contiguous() for k, v in tiny_controlnet("SD1")["controlnet"].state_dict().items()}
    state["task_embedding"] = torch.zeros(6, 320)
    path = save_state_dict(tmp_path / "union_sd15.safetensors", state)
    with pytest.raises(ModelLoadError, match="only SDXL ones"):
        load_controlnet(path, base_unet=unet)


def test_the_control_type_comes_from_the_unit_or_the_preprocessor_kind():
    assert union_type_index("Unknown", ("Canny",)) == 3  # Hard Edge
    assert union_type_index("Unknown", ("Lineart",)) == 3
    assert union_type_index("Unknown", ("SoftEdge",)) == 2
    assert union_type_index("Unknown", ("OpenPose",)) == 0
    assert union_type_index("Unknown", ("Tile",)) == 6
    assert union_type_index("Depth", ("Canny",)) == 1  # the unit's own type wins
    assert union_type_index("Unknown", ("Shuffle",)) is None
    assert union_control_type("hard edge", "unit") == "Hard Edge"
    assert union_control_type("canny", "unit") == "Hard Edge"
    with pytest.raises(InvalidRequestError, match="union_control_type|must be one of"):
        union_control_type("Sparkles", "ControlNet unit 0: union_control_type")
