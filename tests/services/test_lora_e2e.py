"""`<lora:...>` through the API: applied to the live model, hashed, restored exactly after the job."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from modules.sumi.engine.checkpoint import load_checkpoint
from tests.app_support import generate
from tests.fixtures.tiny_models import tiny_sdxl
from tests.fixtures.tiny_networks import write_lora

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("lora"), "--nowebui")
    demo = load_checkpoint(app.checkpoints.list()[0].filename)
    components = {"family": "SD1", "unet": demo.unet, "text_encoders": [s.model for s in demo.text_encoders]}
    write_lora(app.paths.lora_dir / "style_a.safetensors", components, seed=1, output_name="stylish")
    write_lora(app.paths.lora_dir / "style_b.safetensors", components, seed=2)
    write_lora(app.paths.lora_dir / "xl_only.safetensors", tiny_sdxl())
    app.loras.refresh()
    return app


def _generate(client, prompt: str) -> tuple[bytes, dict]:
    return generate(client, BODY, prompt)


def _weights(app) -> list:
    return [p.detach().clone() for p in app.models.active.sd.unet.parameters()]


def test_lora_changes_the_image_and_a_job_without_it_is_bit_identical_to_before(app, client):
    before, _ = _generate(client, "a fox")
    weights_before = _weights(app)
    with_lora, info = _generate(client, "a fox <lora:style_a:1>")
    assert with_lora != before
    assert 'Lora hashes: "style_a: ' in info["infotexts"][0]
    after, _ = _generate(client, "a fox")
    assert after == before
    assert all((a == b).all() for a, b in zip(weights_before, _weights(app), strict=True))


def test_alias_multipliers_and_lyco(app, client):
    zero, _ = _generate(client, "a fox <lora:stylish:0>")
    plain, _ = _generate(client, "a fox")
    assert zero == plain
    by_alias, _ = _generate(client, "a fox <lora:stylish:1>")
    by_lyco, _ = _generate(client, "a fox <lyco:style_a:1>")
    assert by_alias == by_lyco != plain
    te_only, _ = _generate(client, "a fox <lora:style_a:1:0>")
    assert te_only not in (plain, by_alias)


def test_two_loras_compose(app, client):
    a, _ = _generate(client, "a fox <lora:style_a:1>")
    b, _ = _generate(client, "a fox <lora:style_b:1>")
    both, _ = _generate(client, "a fox <lora:style_a:1> <lora:style_b:1>")
    assert both not in (a, b)


def test_unknown_and_wrong_family_loras_warn_and_change_nothing(app, client):
    plain, _ = _generate(client, "a fox")
    missing, info = _generate(client, "a fox <lora:nope:1>")
    assert missing == plain and any("Lora not found: nope" in w for w in info["warnings"])
    wrong, info = _generate(client, "a fox <lora:xl_only:1>")
    assert wrong == plain and any("SDXL" in w for w in info["warnings"])


def test_loras_are_listed(client):
    names = {item["name"] for item in client.get("/sdapi/v1/loras").json()}
    assert {"style_a", "style_b", "xl_only"} <= names


def test_an_interrupted_job_with_a_lora_leaves_no_trace(app, client):
    import threading
    import time

    before, _ = _generate(client, "a fox")
    done = {}

    def long_job():
        done["r"] = client.post(
            "/sdapi/v1/txt2img", json={**BODY, "prompt": "a fox <lora:style_a:1>", "steps": 150, "width": 128}
        )

    worker = threading.Thread(target=long_job)
    worker.start()
    deadline = time.time() + 60
    while app.state.snapshot().sampling_step < 2 and time.time() < deadline:
        time.sleep(0.02)
    client.post("/sdapi/v1/interrupt")
    worker.join(60)
    assert done["r"].status_code == 200
    after, _ = _generate(client, "a fox")
    assert after == before


def test_the_next_job_with_the_same_lora_rewrites_no_weight_and_disabled_networks_restore_them(app, client):
    plain, _ = _generate(client, "a fox")
    first, _ = _generate(client, "a fox <lora:style_a:1>")
    patcher = app.models.active.sd.extra["lora_patcher"]
    touched: list[str] = []
    patch, restore = patcher._patch_layer, patcher._restore_layer
    patcher._patch_layer = lambda key, deltas: (touched.append(key), patch(key, deltas))
    patcher._restore_layer = lambda key: (touched.append(key), restore(key))
    try:
        again, _ = _generate(client, "a fox <lora:style_a:1>")
        assert again == first and touched == []
        body = {**BODY, "prompt": "a fox <lora:style_a:1>", "disable_extra_networks": True}
        response = client.post("/sdapi/v1/txt2img", json=body)
        assert response.status_code == 200 and touched  # no network wanted: the deltas came out
    finally:
        del patcher._patch_layer, patcher._restore_layer
    assert patcher.patched_layers == set()
    after, _ = _generate(client, "a fox")
    assert after == plain


def test_embeddings_bundled_in_a_lora_file_work_while_it_is_in_the_prompt(app, client):
    """kohya's pivotal tuning saves `bundle_emb.<name>.string_to_param.*` beside the LoRA (A1111 1.7+)."""
    vectors = torch.randn(2, 64, generator=torch.Generator().manual_seed(3))
    clash = torch.randn(1, 64, generator=torch.Generator().manual_seed(4))
    tensors = load_file(app.paths.lora_dir / "style_a.safetensors")
    tensors["bundle_emb.pivot.string_to_param.*"] = vectors
    tensors["bundle_emb.clashing.string_to_param.*"] = clash
    save_file(tensors, str(app.paths.lora_dir / "bundled.safetensors"))
    save_file({"emb_params": vectors}, str(app.paths.embeddings_dir / "same-as-pivot.safetensors"))
    save_file({"emb_params": -clash}, str(app.paths.embeddings_dir / "clashing.safetensors"))
    app.loras.refresh()
    plain, _ = _generate(client, "a fox pivot")
    bundled, info = _generate(client, "a fox pivot <lora:bundled:0>")
    from_file, _ = _generate(client, "a fox same-as-pivot <lora:bundled:0>")
    assert bundled == from_file != plain
    assert "pivot: " in info["infotexts"][0].split("TI hashes:")[1]
    folder_wins, _ = _generate(client, "a fox clashing <lora:bundled:0>")
    assert folder_wins == _generate(client, "a fox clashing <lora:style_a:0>")[0]
    assert _generate(client, "a fox pivot")[0] == plain  # gone with the LoRA


def test_block_weights_scale_each_block_of_the_lora(app, client):
    plain, _ = _generate(client, "a fox")
    lora, _ = _generate(client, "a fox <lora:style_a:1>")
    te_only, _ = _generate(client, "a fox <lora:style_a:1:0>")
    ones, base_only = ",".join(["1"] * 26), ",".join(["1"] + ["0"] * 25)
    assert _generate(client, f"a fox <lora:style_a:1:lbw={ones}>")[0] == lora
    assert _generate(client, "a fox <lora:style_a:1:lbw=NONE>")[0] == plain
    assert _generate(client, f"a fox <lora:style_a:1:w={base_only}>")[0] == te_only  # BASE: the text encoder
    out_only, info = _generate(
        client, "a fox <lora:style_a:1:lbw=" + ",".join(["1"] + ["0"] * 13 + ["1"] * 12) + ">"
    )
    assert out_only not in (plain, lora, te_only)
    assert "lbw=" in info["infotexts"][0] and 'Lora hashes: "style_a: ' in info["infotexts"][0]


def test_block_weight_presets_come_from_lbwpresets_txt_and_the_older_positional_form_works(app, client):
    out_only = ",".join(["1"] + ["0"] * 13 + ["1"] * 12)
    (app.paths.lora_dir / "lbwpresets.txt").write_text(f"# mine\nOUTONLY:{out_only}\n", encoding="utf-8")
    listed, _ = _generate(client, f"a fox <lora:style_a:1:lbw={out_only}>")
    assert _generate(client, "a fox <lora:style_a:1:lbw=OUTONLY>")[0] == listed
    assert (
        _generate(client, "a fox <lora:style_a:1:OUTONLY>")[0] == listed
    )  # sd-webui-lora-block-weight's old form


def test_bad_block_weights_warn_and_leave_the_lora_out(app, client):
    plain, _ = _generate(client, "a fox")
    image, info = _generate(client, "a fox <lora:style_a:1:lbw=1,2,3>")
    assert image == plain
    assert any("style_a" in w and "block weights '1,2,3'" in w for w in info["warnings"])


def test_start_and_stop_limit_the_unet_deltas_to_those_steps_and_keep_the_text_encoders(app, client):
    lora, _ = _generate(client, "a fox <lora:style_a:1>")
    te_only, _ = _generate(client, "a fox <lora:style_a:1:0>")
    assert _generate(client, "a fox <lora:style_a:1:stop=1>")[0] == te_only  # 2 steps: none before step 1
    assert _generate(client, "a fox <lora:style_a:1:start=3>")[0] == te_only
    assert _generate(client, "a fox <lora:style_a:1:step=1-3>")[0] == lora
    second_only, _ = _generate(client, "a fox <lora:style_a:1:start=2>")
    first_only, _ = _generate(client, "a fox <lora:style_a:1:stop=2>")
    assert len({second_only, first_only, lora, te_only}) == 4
    assert _generate(client, "a fox <lora:style_a:1>")[0] == lora  # nothing left over


@pytest.mark.parametrize("tag", ["start=0", "stop=x", "step=3", "start=3:stop=2"])
def test_bad_step_windows_warn_and_leave_the_lora_out(app, client, tag):
    plain, _ = _generate(client, "a fox")
    image, info = _generate(client, f"a fox <lora:style_a:1:{tag}>")
    assert image == plain and any(w.startswith("Lora style_a:") for w in info["warnings"])


def test_element_weights_set_the_layers_they_name(app, client):
    lora, _ = _generate(client, "a fox <lora:style_a:1>")
    te_only, _ = _generate(client, "a fox <lora:style_a:1:0>")
    (app.paths.lora_dir / "elempresets.txt").write_text(
        "UNETOFF:NOT BASE::0\n\nALLON:::1\n\nNOATTN1::attn1:0", encoding="utf-8"
    )
    assert _generate(client, "a fox <lora:style_a:1:lbwe=ALLON>")[0] == lora
    assert _generate(client, "a fox <lora:style_a:1:lbwe=UNETOFF>")[0] == te_only  # every UNet layer off
    assert (
        _generate(client, "a fox <lora:style_a:1:lbw=NONE:lbwe=ALLON>")[0] == lora
    )  # lbwe= comes after lbw=
    no_attn1, _ = _generate(client, "a fox <lora:style_a:1:lbwe=NOATTN1>")
    assert no_attn1 not in (lora, te_only)
    deep, _ = _generate(client, "a fox <lora:style_a:1:lbwe=ATTNDEEPOFF>")  # the extension's built-in preset
    assert deep != lora


def test_an_unknown_element_preset_warns_and_applies_the_lora_without_it(app, client):
    lora, _ = _generate(client, "a fox <lora:style_a:1>")
    image, info = _generate(client, "a fox <lora:style_a:1:lbwe=NOSUCH>")
    assert image == lora
    assert any("element weight preset 'NOSUCH' is not in elempresets.txt" in w for w in info["warnings"])


def _with_settings(client, prompt: str, **settings) -> tuple[bytes, dict]:
    return generate(client, {**BODY, "override_settings": settings}, prompt)


def test_add_network_to_prompt_applies_the_lora_to_every_job_at_the_default_multiplier(app, client):
    """A1111's Settings > Extra Networks > "Add network to prompt" (opt sd_lora)."""
    plain, _ = _generate(client, "a fox")
    tagged, _ = _generate(client, "a fox <lora:style_a:0.5>")
    added, info = _with_settings(client, "a fox", sd_lora="style_a", extra_networks_default_multiplier=0.5)
    assert added == tagged != plain
    assert info["infotexts"][0].startswith("a fox<lora:style_a:0.5>\n")  # the infotext says what ran
    assert 'Lora hashes: "style_a: ' in info["infotexts"][0]
    # a prompt that names it keeps its own weight; an unknown name or "None" adds nothing
    own, info = _with_settings(client, "a fox <lora:style_a:0.5>", sd_lora="style_a")
    assert own == tagged and info["infotexts"][0].count("<lora:style_a") == 1
    for name in ("nothing_of_that_name", "None"):
        same, info = _with_settings(client, "a fox", sd_lora=name)
        assert same == plain and "<lora:" not in info["infotexts"][0]
    # a prompt may turn it off for one job the way A1111's does: disable_extra_networks
    body = {
        **BODY,
        "prompt": "a fox",
        "override_settings": {"sd_lora": "style_a"},
        "disable_extra_networks": True,
    }
    assert client.post("/sdapi/v1/txt2img", json=body).status_code == 200
    after, _ = _generate(client, "a fox")
    assert after == plain
