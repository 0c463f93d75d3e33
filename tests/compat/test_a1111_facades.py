"""The A1111 modules extensions import beyond the core eight (devices, sd_models, sd_samplers, sd_hijack,
call_queue, ui_components, infotext_utils, ...), driven by extension-style code against a live App."""

from __future__ import annotations

import base64
import copy
import importlib
import io
import shutil
import threading

import gradio as gr
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from modules import shared
from modules.processing import StableDiffusionProcessingTxt2Img

DEMO_WIDTH = 64  # the demo model's CLIP hidden size

FACADES = [
    "modules.call_queue",
    "modules.devices",
    "modules.errors",
    "modules.generation_parameters_copypaste",
    "modules.hashes",
    "modules.infotext_utils",
    "modules.lowvram",
    "modules.paths",
    "modules.paths_internal",
    "modules.safe",
    "modules.sd_hijack",
    "modules.sd_hijack_unet",
    "modules.sd_hijack_utils",
    "modules.sd_models",
    "modules.sd_samplers",
    "modules.sd_samplers_common",
    "modules.sd_schedulers",
    "modules.sd_vae",
    "modules.shared",
    "modules.ui_common",
    "modules.ui_components",
]

# Written the way the B-light extensions of reference/extension_ecosystem.md are (tagcomplete,
# prompt-all-in-one, deforum, SadTalker, adetailer): module-level imports of A1111 internals, helpers
# that list models/samplers/embeddings, a settings option, a tab handler wrapped for the GPU queue.
B_LIGHT_EXTENSION = """
import threading

import gradio as gr

from modules import devices, lowvram, paths, script_callbacks, sd_models, sd_samplers, sd_schedulers, sd_vae, shared
from modules.call_queue import wrap_gradio_gpu_call
from modules.infotext_utils import parse_generation_parameters
from modules.sd_hijack import model_hijack
from modules.ui_common import create_refresh_button
from modules.ui_components import FormRow, InputAccordion, ToolButton


def list_models():
    return sorted(info.title for info in sd_models.checkpoints_list.values())


def current_model():
    return shared.sd_model.sd_checkpoint_info.title


def model_kind():
    m = shared.sd_model
    return "sdxl" if m.is_sdxl else "sd2" if m.is_sd2 else "sd1" if m.is_sd1 else "?"


def list_samplers():
    return [s.name for s in sd_samplers.samplers], [s.label for s in sd_schedulers.schedulers]


def list_embeddings():
    db = model_hijack.embedding_db
    db.load_textual_inversion_embeddings(force_reload=True)
    return {name: e.shape for name, e in db.word_embeddings.items()}, sorted(db.skipped_embeddings)


def token_count(text):
    return model_hijack.get_prompt_lengths(text)


def on_ui_settings():
    section = ("b_light", "B-light")
    shared.opts.add_option(
        "b_light_limit",
        shared.OptionInfo(7, "Result limit", gr.Slider, {"minimum": 1, "maximum": 20, "step": 1}, section=section)
        .info("how many results"),
    )


def free_vram():
    lowvram.send_everything_to_cpu()
    devices.torch_gc()


def run_job(id_task, text):
    with devices.autocast():
        params = parse_generation_parameters(text)
    if params["Steps"] == "0":
        raise ValueError("zero steps")
    return " ".join([params["Steps"], threading.current_thread().name, shared.state.job]), "<p>done</p>"


def ui():
    with gr.Blocks() as tab:
        with FormRow():
            model = gr.Dropdown(choices=list_models(), label="Model")
            create_refresh_button(model, sd_models.list_models, lambda: {"choices": list_models()}, "b_light_refresh")
            ToolButton("x", elem_id="b_light_tool")
        with InputAccordion(False, label="Enable", elem_id="b_light_enable") as enabled:
            text = gr.Textbox(label="Infotext")
        out = gr.Textbox()
        html = gr.HTML()
        go = gr.Button("Go")
        go.click(wrap_gradio_gpu_call(run_job, extra_outputs=[None, ""]), inputs=[text, text], outputs=[out, html])
    return tab, enabled


script_callbacks.on_ui_settings(on_ui_settings)
"""


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("facades"), "--nowebui", loaded=True)


@pytest.fixture(scope="module")
def ext(app):
    namespace: dict = {}
    exec(compile(B_LIGHT_EXTENSION, "extensions/b-light/scripts/b_light.py", "exec"), namespace)
    return namespace


def _txt2img(app, **kwargs):
    p = StableDiffusionProcessingTxt2Img(
        prompt="a fox", steps=2, width=64, height=64, seed=3, sampler_name="Euler", do_not_save_samples=True
    )
    for key, value in kwargs.items():
        setattr(p, key, value)
    return app.runner.txt2img(p)


@pytest.mark.parametrize("name", FACADES)
def test_every_facade_imports(name):
    assert importlib.import_module(name) is not None


def test_old_infotext_module_name_is_the_same_module():
    from modules import generation_parameters_copypaste, infotext_utils

    assert generation_parameters_copypaste is infotext_utils


def test_extension_lists_checkpoints_and_reads_the_model(app, ext):
    title = app.checkpoints.list()[0].title
    assert ext["list_models"]() == [title]
    assert ext["current_model"]() == title
    assert ext["model_kind"]() == "sd1"
    from modules import sd_models

    model = shared.sd_model
    assert model is shared.sd_model is sd_models.model_data.sd_model
    assert model.sd_model_hash == app.models.active.checkpoint.shorthash
    assert model.sd_model_checkpoint == app.models.active.checkpoint.filename
    assert model.cond_stage_key == "txt" and model.parameterization == "eps"
    assert model.model.diffusion_model is app.models.active.sd.unet  # stand-ins hold Sumi's modules
    assert model.first_stage_model is app.models.active.sd.vae
    assert list(model.cond_stage_model.parameters())
    assert model.family == "SD1"  # anything else is Sumi's SDModel


def test_sd_models_functions(app):
    from modules import sd_models

    info = app.checkpoints.list()[0]
    assert sd_models.get_closet_checkpoint_match(info.name_for_extra) is info
    assert sd_models.checkpoint_aliases[info.name] is info
    # supermerger hashes the infos it is given before it writes a merge's metadata
    assert sd_models.checkpoints_list[info.title].calculate_shorthash() == info.shorthash
    assert sd_models.select_checkpoint() is info
    assert sd_models.checkpoint_tiles() == [info.title]
    assert sd_models.model_hash(info.filename) == info.legacy_hash
    assert sd_models.model_hash("/no/such/file") == "NOFILE"
    assert sd_models.model_path == str(app.paths.ckpt_dirs[0])
    assert sd_models.reload_model_weights().sd_checkpoint_info is info
    assert sd_models.CheckpointInfo(info.filename).name == info.name


def test_a_merge_loaded_from_a_state_dict_as_supermerger_does_becomes_the_in_memory_model(app):
    """supermerger deep-copies a CheckpointInfo, renames the copy and loads its merged state dict with
    `load_model(info, already_loaded_state_dict=...)`: the merge is the active model, in memory."""
    from modules import sd_models

    first = app.checkpoints.list()[0]
    fake = copy.deepcopy(first)
    fake.name_for_extra, fake.sha256 = "merge_a_b", "ab" * 32
    fake.title = "merge_a_b.safetensors [abababab]"
    fake.ids = ["merge_a_b"]  # a list where Sumi has a method: the copy only
    assert first.title != fake.title and callable(first.ids) and first.sha256 != fake.sha256
    state = sd_models.read_state_dict(first.filename)
    try:
        model = sd_models.load_model(fake, already_loaded_state_dict=state)
        assert model.sd_checkpoint_info.name == "merge_a_b (in memory)"
        assert app.models.active.checkpoint.name == "merge_a_b (in memory)"
        assert _txt2img(app).images
    finally:
        sd_models.reload_model_weights(info=first)


def test_reloading_another_checkpoint_switches_to_it(app, tmp_path):
    from modules import sd_models

    first = app.checkpoints.list()[0]
    copy = app.paths.ckpt_dirs[0] / "copy.safetensors"
    shutil.copy(first.filename, copy)
    try:
        sd_models.list_models()
        other = sd_models.get_closet_checkpoint_match("copy")
        assert sd_models.reload_model_weights(info=other).sd_checkpoint_info is other
        assert shared.sd_model.sd_checkpoint_info is other
        assert shared.opts.sd_model_checkpoint == other.title  # Sumi's setting follows the loaded model
        assert _txt2img(app).images
        assert app.models.active.checkpoint is other
    finally:
        sd_models.reload_model_weights(info=first)
        copy.unlink()
        sd_models.list_models()


def test_freeing_vram_then_generating_works(app, ext):
    before = _txt2img(app).images[0].tobytes()
    ext["free_vram"]()
    shared.sd_model = None  # what some extensions do; moves the model off the GPU
    from modules import sd_models

    sd_models.unload_model_weights()
    assert _txt2img(app).images[0].tobytes() == before


def test_samplers_and_schedulers(ext):
    from modules import sd_samplers, sd_schedulers

    samplers, schedulers = ext["list_samplers"]()
    assert samplers[:2] == ["DPM++ 2M", "DPM++ SDE"] and "Euler a" in samplers
    assert "Karras" in schedulers and sd_schedulers.schedulers_map["karras"].label == "Karras"
    assert sd_schedulers.schedulers_map["Polyexponential"].default_rho == 1.0
    assert sd_schedulers.schedulers_map["normal"].need_inner_model
    assert sd_samplers.get_sampler_and_scheduler("DPM++ 3M SDE Karras", None) == ("DPM++ 3M SDE", "Karras")
    euler_a = sd_samplers.find_sampler_config("k_euler_a")
    assert euler_a.name == "Euler a" and "k_euler_a" in euler_a.aliases and euler_a.options["uses_ensd"]
    assert sd_samplers.samplers_map["k_dpmpp_2m"] == "DPM++ 2M"
    assert sd_samplers.all_samplers_map["Heun"].total_steps(10) == 20
    assert sd_samplers.samplers_for_img2img == sd_samplers.samplers
    assert sd_samplers.visible_sampler_names() == samplers
    assert sd_samplers.find_sampler_config("no such sampler") is None
    assert sd_samplers.get_sampler_and_scheduler("DPM++ 2M Karras", None) == ("DPM++ 2M", "Automatic")
    sampler = sd_samplers.create_sampler("Euler", shared.sd_model)  # tests/compat/test_cfg_denoiser.py
    assert sampler.name == "Euler" and sampler.model_wrap_cfg.sampler is sampler


def test_embedding_db_lists_usable_and_skipped_embeddings(app, ext):
    folder = app.paths.embeddings_dir
    save_file({"emb_params": torch.randn(2, DEMO_WIDTH)}, str(folder / "fits.safetensors"))
    save_file({"emb_params": torch.randn(1, 128)}, str(folder / "too-wide.safetensors"))
    usable, skipped = ext["list_embeddings"]()
    assert usable == {"fits": DEMO_WIDTH} and skipped == ["too-wide"]
    emb = __import__("modules.sd_hijack").sd_hijack.model_hijack.embedding_db.word_embeddings["fits"]
    assert emb.vectors == 2 and emb.vec.shape == (2, DEMO_WIDTH) and emb.filename.endswith("fits.safetensors")


def test_prompt_lengths_are_the_token_counter(app, ext):
    assert ext["token_count"]("a cat") == (2, 75)
    assert ext["token_count"](" ".join(["cat"] * 80)) == (80, 150)
    assert ext["token_count"]("") == app.text.count_tokens("")


def test_hijack_calls_are_harmless(app):
    from modules import sd_hijack

    hijack = sd_hijack.model_hijack
    hijack.hijack(shared.sd_model)
    hijack.undo_hijack(shared.sd_model)
    hijack.apply_optimizations()
    hijack.clear_comments()
    assert hijack.comments == [] and hijack.clip is shared.sd_model.cond_stage_model


def test_option_added_from_on_ui_settings_is_readable(app, ext):
    app.callbacks.call("ui_settings")
    opts = shared.opts
    assert opts.b_light_limit == 7 and opts.data["b_light_limit"] == 7
    assert "how many results" in opts.data_labels["b_light_limit"].comment_after
    opts.set("b_light_limit", 9)
    assert opts.b_light_limit == 9
    assert shared.options_section(("s", "S"), {"k": shared.OptionInfo(1)})["k"].section == ("s", "S")


def test_input_accordion_in_blocks_is_a_bool_input(ext):
    tab, enabled = ext["ui"]()
    assert isinstance(enabled, gr.Checkbox) and enabled.value is False
    assert enabled.accordion.elem_id == "b_light_enable" and enabled.elem_id == "b_light_enable-checkbox"
    config = tab.get_config_file()
    by_id = {c["id"]: c for c in config["components"]}
    assert by_id[enabled._id]["type"] == "checkbox" and by_id[enabled._id]["props"]["visible"] == "hidden"
    accordion = by_id[enabled.accordion._id]
    assert accordion["type"] == "accordion" and accordion["props"]["open"] is False
    events = {(tuple(t[1] for t in d["targets"]), d.get("js")) for d in config["dependencies"]}
    assert (("expand",), "() => true") in events and (("collapse",), "() => false") in events
    assert enabled.preprocess(True) is True
    tool = next(c for c in config["components"] if c["props"].get("elem_id") == "b_light_tool")
    assert tool["type"] == "button" and "tool" in tool["props"]["elem_classes"]


def test_refresh_button_rescans_and_updates_choices(app, ext):
    tab, _ = ext["ui"]()
    button = next(b for b in tab.blocks.values() if getattr(b, "elem_id", None) == "b_light_refresh")
    refresh = next(f.fn for f in tab.fns.values() if f.targets and f.targets[0][0] == button._id)
    update = refresh()
    assert update["choices"] == ext["list_models"]()


def test_wrap_gradio_gpu_call_runs_on_the_queue_and_reports_errors(app, ext):
    from modules.call_queue import wrap_gradio_gpu_call

    wrapped = wrap_gradio_gpu_call(ext["run_job"], extra_outputs=[None, ""])
    text, html = wrapped("task(abc)", "a cat\nSteps: 12, Sampler: Euler, Seed: 1")
    assert text == "12 sumi-gpu-worker task(abc)"
    assert html.startswith("<p>done</p><div class='performance'>") and "Time taken" in html
    assert threading.current_thread().name != "sumi-gpu-worker"
    failed = wrapped("task(x)", "a cat\nSteps: 0, Sampler: Euler, Seed: 1")
    assert failed[:2] == (None, "") and failed[2] == "<div class='error'>ValueError: zero steps</div>"
    default = wrap_gradio_gpu_call(ext["run_job"])("task(y)", "a cat\nSteps: 0, Sampler: Euler, Seed: 1")
    assert len(default) == 3 and "ValueError" in default[2]


def test_wrapped_calls_from_inside_a_job_run_inline(app):
    from modules.call_queue import queue_lock, wrap_queued_call

    inner = wrap_queued_call(lambda: threading.current_thread().name)
    assert inner() == "sumi-gpu-worker"
    assert app.queue.run("outer", inner) == "sumi-gpu-worker"  # no deadlock
    with queue_lock, queue_lock:  # holds the worker; re-entrant
        assert app.queue.pending() == [] and app.queue.current.name == "extension (queue_lock)"
    assert app.queue.run("after", lambda: 1) == 1


def test_devices_on_cpu(app):
    from modules import devices

    devices.torch_gc()
    assert devices.device == app.devices.device == devices.cpu
    assert devices.dtype == devices.dtype_unet == torch.float32 and devices.dtype_vae == torch.float32
    assert devices.get_optimal_device().type in ("cpu", "cuda", "mps")
    assert devices.get_device_for("interrogate") == devices.device_interrogate
    assert devices.has_mps() in (True, False)
    x = torch.ones(2)
    with devices.autocast(), devices.without_autocast():
        assert devices.cond_cast_unet(x) is x
    with pytest.raises(devices.NansException):
        devices.test_for_nans(torch.full((2,), float("nan")), "unet")


def test_lowvram_reports_and_sets_the_offload_state_as_a1111(app):
    from modules import lowvram

    lowvram.send_everything_to_cpu()
    assert lowvram.is_enabled(shared.sd_model) is False and lowvram.is_needed(shared.sd_model) is False
    try:
        lowvram.setup_for_low_vram(shared.sd_model, True)
        assert lowvram.is_enabled(shared.sd_model) is True and shared.sd_model.lowvram is True
        assert shared.sd_model.extra["offload"] == "med"
        assert _txt2img(app).images
    finally:
        lowvram.apply(shared.sd_model)  # back to what the flags say (none)
    assert lowvram.is_enabled(shared.sd_model) is False
    with pytest.raises(ValueError, match="shared.sd_model"):
        lowvram.setup_for_low_vram(object(), False)


def test_paths_follow_the_app(app):
    from modules import paths, paths_internal

    assert paths.models_path == paths_internal.models_path == str(app.paths.models_dir)
    assert paths.data_path == paths_internal.data_path == shared.data_path == str(app.paths.data_dir)
    assert paths_internal.extensions_dir == str(app.paths.extensions_dir)
    assert paths.script_path == paths_internal.script_path == str(app.paths.repo_root)
    assert paths.sd_configs_path == paths_internal.sd_configs_path
    from modules.paths_internal import default_sd_model_file, extensions_builtin_dir  # noqa: F401


def test_sd_vae(app):
    from modules import sd_vae

    vae = app.paths.vae_dirs[0] / "mine.vae.safetensors"
    save_file(app.models.active.baked_vae, str(vae))
    try:
        sd_vae.refresh_vae_list()
        assert sd_vae.vae_dict == {"mine.vae.safetensors": str(vae)}
        assert sd_vae.loaded_vae_file is None and sd_vae.base_vae is None
        sd_vae.reload_vae_weights(vae_file=str(vae))
        assert sd_vae.loaded_vae_file == str(vae) and sd_vae.base_vae is app.models.active.baked_vae
        sd_vae.reload_vae_weights()  # back to what the settings say
        assert sd_vae.loaded_vae_file is None
    finally:
        vae.unlink()
        sd_vae.refresh_vae_list()


def test_shared_names_extensions_read(app):
    args = shared.cmd_opts
    assert args.lowvram is False and args.medvram is False and args.api is False and args.listen is False
    assert args.hide_ui_dir_config is False and args.no_half_vae is False and args.ckpt_dir is None
    assert args.no_half is True  # the suite runs fp32: tests/app_support.py passes --no-half
    assert args.data_dir == str(app.paths.data_dir) and args.sub_quad_q_chunk_size is None
    # A1111's folder flags hold the folders in use when not passed (extensions build paths from them)
    assert args.lora_dir == str(app.paths.lora_dir) and args.lyco_dir_backcompat == str(app.paths.lycoris_dir)
    assert args.embeddings_dir == str(app.paths.embeddings_dir)
    assert args.hypernetwork_dir == str(app.paths.hypernetwork_dir)
    assert shared.list_checkpoint_tiles() == [app.checkpoints.list()[0].title]
    shared.refresh_checkpoints()
    shared.reload_hypernetworks()
    assert shared.hypernetworks == {} and shared.hide_dirs == {"visible": True}
    shared.total_tqdm.updateTotal(3)
    shared.total_tqdm.clear()
    assert [u.name for u in shared.sd_upscalers] == ["None", "Lanczos", "Nearest"]  # no model files here
    assert shared.batch_cond_uncond is True
    assert shared.opts.data["samples_format"] == shared.opts.samples_format
    assert list(shared.walk_files(str(app.paths.ckpt_dirs[0]), [".safetensors"]))
    assert shared.demo is None  # until the UI is built


def test_shared_state_methods(app):
    state = shared.state
    state.begin()
    state.job_count = 4
    state.sampling_steps = 10
    state.sampling_step = 3
    state.textinfo = "working"
    state.interrupted = True
    assert state.interrupted and state.dict()["job_count"] == 4
    state.interrupted = False
    state.skip()
    assert state.skipped
    state.nextjob()
    assert state.job_no == 1 and not state.skipped
    image = Image.new("RGB", (8, 8))
    state.assign_current_image(image)
    assert state.current_image is image
    state.end()
    state.interrupt()
    assert state.interrupted
    state.interrupted = False


def test_infotext_utils(app):
    from modules import infotext_utils as iu

    params = iu.parse_generation_parameters(
        "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler, Size: 512x768"
    )
    assert params["Prompt"] == "a cat" and params["Size-1"] == "512" and params["Steps"] == "20"
    assert iu.unquote(iu.quote("a, b")) == "a, b"
    buffer = io.BytesIO()
    Image.new("RGB", (4, 2)).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert iu.image_from_url_text(url).size == (4, 2)
    assert iu.image_from_url_text([{"image": {"path": url}}]).size == (4, 2)
    with pytest.raises(ValueError, match="refusing"):
        iu.image_from_url_text("/etc/passwd")
    assert iu.create_override_settings_dict(["Clip skip: 2"]) == {"CLIP_stop_at_last_layers": 2}
    iu.reset()
    with gr.Blocks() as demo:
        prompt, steps, width = gr.Textbox(), gr.Number(20), gr.Number(512)
        iu.add_paste_fields("txt2img", None, [(prompt, "Prompt"), (steps, "Steps"), (width, "Size-1")])
        source = gr.Textbox()
        buttons = iu.create_buttons(["txt2img", "img2img"])
        iu.bind_buttons(buttons, None, source)
        iu.connect_paste_params_buttons()
    targets = {d["targets"][0][0] for d in demo.get_config_file()["dependencies"]}
    assert buttons["txt2img"]._id in targets  # img2img registered no fields: its button stays inert
    paste = next(f.fn for f in demo.fns.values() if f.fn and f.fn.__name__ == "paste_func")
    assert paste(params["Prompt"] + "\nSteps: 31, Sampler: Euler, Size: 640x512") == ["a cat", 31.0, 640.0]
    assert iu.registered_param_bindings == []


def test_errors_report_and_run(capsys):
    from modules import errors

    try:
        raise RuntimeError("broken thing")
    except RuntimeError:
        errors.report("Extension failed\nsecond line", exc_info=True)
    err = capsys.readouterr().err
    assert "*** Extension failed" in err and "*** second line" in err and "RuntimeError: broken thing" in err
    errors.run(lambda: 1 / 0, "dividing")
    assert "dividing: ZeroDivisionError" in capsys.readouterr().err
    errors.display(ValueError("x"), "task")
    errors.print_error_explanation("why\nit failed")
    assert errors.get_exceptions()


def test_hashes_use_the_apps_cache(app):
    from modules import hashes

    info = app.checkpoints.list()[0]
    assert hashes.sha256_from_cache(info.filename, info.cache_key) == info.sha256
    assert (
        hashes.sha256(info.filename, info.cache_key) == info.sha256 == hashes.calculate_sha256(info.filename)
    )
    assert len(hashes.sha256(info.filename, "lora/x", use_addnet_hash=True)) == 64


def test_safe_load_refuses_code_in_pickles(tmp_path):
    from modules import safe

    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(safe.load(path)["w"], torch.ones(2))
    torch.save({"f": print}, path)
    with pytest.raises(Exception, match="(?i)weights"):
        safe.load(path)
    with safe.Extra(lambda module, name: None):
        pass


def test_process_images_from_an_extension_tab_runs_on_the_worker(app):
    from modules import processing, script_callbacks

    threads = []

    def record(params):
        threads.append(threading.current_thread().name)

    script_callbacks.on_cfg_denoiser(record)
    try:
        p = StableDiffusionProcessingTxt2Img(
            prompt="a fox",
            steps=2,
            width=64,
            height=64,
            seed=3,
            sampler_name="Euler",
            do_not_save_samples=True,
        )
        assert processing.process_images(p).images
    finally:
        script_callbacks.remove_callbacks_for_function(record)
    assert threads and set(threads) == {"sumi-gpu-worker"}
