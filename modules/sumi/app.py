"""The App: builds the services (settings, models, job queue and runner, networks, scripts,
extensions, ...), starts them and stops them; nothing else.

`webui.py` builds it from the parsed flags and hands it to the UI and the API; nothing else creates
one. Everything user-visible that went wrong at start-up is collected in `notices` for the UI.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modules.sumi.engine.accel.offload import OffloadFlags
from modules.sumi.engine.devices import DeviceConfig, select_device, xformers_available
from modules.sumi.engine.errors import EngineError
from modules.sumi.services import sysinfo
from modules.sumi.services.captioning.service import CaptionService
from modules.sumi.services.controlnet.models import ControlNetModels
from modules.sumi.services.controlnet.service import ControlNetService
from modules.sumi.services.extensions.manager import ExtensionManager
from modules.sumi.services.faces.registry import FaceRestorers
from modules.sumi.services.images.saving import MAX_FILENAME_PART_LENGTH, FilenameRules, use_filename_rules
from modules.sumi.services.jobs.generation import GenerationService
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from modules.sumi.services.jobs.queue import JobQueue
from modules.sumi.services.jobs.runner import JobRunner
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.models.a1111_view import model_view, use_line_tokenizer, use_text_encoder
from modules.sumi.services.models.checkpoints import CheckpointRegistry, VaeRegistry
from modules.sumi.services.models.hashing import HashCache
from modules.sumi.services.models.manager import ModelManager
from modules.sumi.services.models.merger import CheckpointMerger
from modules.sumi.services.networks.embeddings import EmbeddingDatabase
from modules.sumi.services.networks.files import HYPERNETWORK_EXTENSIONS, LORA_EXTENSIONS, NetworkFileRegistry
from modules.sumi.services.networks.hypernetworks import HypernetworkHandler
from modules.sumi.services.networks.lora import LoraNetwork
from modules.sumi.services.networks.lora_tools import LoraTools
from modules.sumi.services.networks.registry import ExtraNetworkRegistry
from modules.sumi.services.postprocessing.service import ExtrasService
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.scripts.loading import ScriptService
from modules.sumi.services.scripts.runner import ScriptError
from modules.sumi.services.settings.flags import startup_notices
from modules.sumi.services.settings.localizations import Localizations
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.output_defaults import anchor_output_defaults
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.settings.postprocessing_options import offer_script_choices
from modules.sumi.services.settings.secrets import (
    Credentials,
    Redactor,
    install_log_redaction,
    redacted_options,
    secret_option_values,
    secret_values,
)
from modules.sumi.services.settings.service import SettingsService
from modules.sumi.services.settings.styles import StyleDatabase
from modules.sumi.services.text.service import TextService
from modules.sumi.services.training.a1111 import A1111Training
from modules.sumi.services.training.controlnet import ControlNetTraining
from modules.sumi.services.training.finetune import FinetuneTraining
from modules.sumi.services.training.lora import LoraTraining
from modules.sumi.services.training.service import TrainingService
from modules.sumi.services.upscalers.registry import UpscalerRegistry
from modules.sumi.util.package_guard import guard_optional_packages, missing_package_hint
from modules.sumi.util.timer import Timer

log = logging.getLogger(__name__)
# Where a script's failure is an App notice: while it is imported, created, or its UI built.
SETUP_STAGES = frozenset({"import", "__init__", "show", "title", "ui"})


class App:
    """Builds the services (each an attribute) and starts and stops them; the front ends call the
    services directly: `runner` (jobs), `settings`, `models`, `text`, `scripts`, `extensions`, ..."""

    def __init__(
        self, args: argparse.Namespace, repo_root: Path | str, startup_timer: Timer | None = None
    ) -> None:
        self.args = args
        # where the start's time goes (A1111's `timer.startup_timer`; webui.main starts it first thing)
        self.startup_timer = startup_timer or Timer()
        self.startup_record: dict[str, object] | None = None  # its dump once the server is built
        # the logins (--api-auth, --gradio-auth, --gradio-auth-path); a malformed one stops the start
        self.credentials = Credentials.from_args(args)
        # secrets never leave the process: notices and every log record pass through the redactor
        self.redact = Redactor(
            lambda: secret_values(vars(self.args), self.credentials),
            # the stored values, copied without the options' lock: a log call must never wait on it
            lambda: secret_option_values(dict(self.options.data)) if hasattr(self, "options") else (),
        )
        self._stop_log_redaction = install_log_redaction(self.redact)
        self.notices: list[str] = []
        # an optional package an extension left broken (a torchvision built for another torch) is kept
        # away from transformers/diffusers; webui.main checks before they are imported, this names it
        self.broken_packages = guard_optional_packages()
        for broken in self.broken_packages:
            self.notice(broken.message())
        self.demo: Any = None  # the gradio page once built (A1111's shared.demo)
        use_filename_rules(self._filename_rules())
        self.boot_id = uuid.uuid4().hex  # tells a page waiting for a restart that the server is new
        self.restart_handler: Callable[[], None] | None = None  # set by webui.main
        self.restart_requested = False
        self.stop_handler: Callable[[bool], None] | None = None  # set by webui.main; True: no grace period
        self.paths = DataPaths.from_args(args, repo_root)
        self.paths.ensure()
        self._publish_path_flags()
        self.options = Options()
        anchor_output_defaults(self.options, self.paths.data_dir)  # extensions open opts.outdir_* as is
        for warning in self.options.load(self.paths.config_file):
            self.notice(warning)
        self.hash_cache = HashCache(self.paths.cache_file)
        no_hashing = bool(getattr(args, "no_hashing", False))
        hidden = self._list_hidden_files  # A1111's "Load models/files in hidden directories", at each scan
        self.checkpoints = CheckpointRegistry(
            self.paths.ckpt_dirs, self.hash_cache, no_hashing=no_hashing, include_hidden=hidden
        )
        self.vaes = VaeRegistry(
            self.paths.vae_dirs,
            self.paths.ckpt_dirs,
            forced_path=self.paths.vae_file,
            hash_cache=None if no_hashing else self.hash_cache,
            include_hidden=hidden,
        )
        self.devices = self._select_device()
        self.state = JobState()
        self.queue = JobQueue(self.state)
        self.models = ModelManager(
            self.checkpoints,
            self.vaes,
            self.options,
            self.devices,
            allow_unsafe_pickle=bool(args.disable_safe_unpickle),
            executor=self.queue,
            offload_flags=self._offload_flags(),
            compile_flag=bool(getattr(args, "compile", False)),
            openvino_flag=bool(getattr(args, "use_openvino", False)),
            compile_notify=self.state.set_textinfo,
        )
        # Merges go where A1111 puts them: --ckpt-dir when given, else models/Stable-diffusion.
        self.merger = CheckpointMerger(self.checkpoints, self.vaes, self.paths.ckpt_dirs[-1], self.models)
        self.callbacks = CallbackRegistry()
        self.models.on_model_loaded.append(self._model_loaded_callbacks)
        self.settings = SettingsService(
            self.options, self.paths, self.models, self.callbacks, self.notice, flags=args
        )
        # A1111: --styles-file entries (paths or globs) replace <data>/styles.csv; the first is the save target
        self.styles = StyleDatabase(
            list(getattr(args, "styles_file", None) or []) or [self.paths.styles_file]
        )
        for warning in self.styles.warnings:
            self.notice(warning)
        self.extra_networks = ExtraNetworkRegistry()
        self.card_pages: list[Any] = []  # A1111 ExtraNetworksPage objects extensions registered
        self.embeddings = EmbeddingDatabase(
            [self.paths.embeddings_dir], allow_unsafe_pickle=bool(args.disable_safe_unpickle)
        )
        self.loras = NetworkFileRegistry(
            [self.paths.lora_dir, self.paths.lycoris_dir], LORA_EXTENSIONS, include_hidden=hidden
        )
        # <data>/hypernetworks (Sumi's layout) and models/hypernetworks (A1111's default) are both read.
        hypernetwork_dirs = dict.fromkeys(
            [self.paths.hypernetwork_dir, self.paths.data_dir / "hypernetworks"]
        )
        self.hypernetworks = NetworkFileRegistry(
            hypernetwork_dirs, HYPERNETWORK_EXTENSIONS, read_metadata=False, include_hidden=hidden
        )
        block_weight_presets = [
            self.paths.lora_dir / "lbwpresets.txt",
            self.paths.extensions_dir / "sd-webui-lora-block-weight" / "scripts" / "lbwpresets.txt",
        ]
        lora = LoraNetwork(
            self.loras,
            allow_unsafe_pickle=bool(args.disable_safe_unpickle),
            block_weight_presets=block_weight_presets,
            element_presets=[path.with_name("elempresets.txt") for path in block_weight_presets],
        )
        self.extra_networks.register(lora, "lyco")
        self.options.data_labels["sd_lora"].component_args = self._lora_setting_choices
        self.lora_tools = LoraTools(
            self.checkpoints,
            self.loras,
            lora,
            self.paths.ckpt_dirs[-1],
            self.paths.lora_dir,
            allow_unsafe_pickle=bool(args.disable_safe_unpickle),
        )
        self.extra_networks.register(
            HypernetworkHandler(self.hypernetworks, allow_unsafe_pickle=bool(args.disable_safe_unpickle))
        )
        self.controlnet = self._controlnet_service()
        self.upscalers = self._upscaler_registry()
        self.faces = self._face_restorers()
        self.scripts = ScriptService(self.callbacks, repo_root, self.options, self.state)
        self.scripts.errors.notify = self._script_setup_notice
        self.extensions = ExtensionManager.from_paths(self.paths, self.options, args, self.settings.set)
        self.localizations = Localizations(
            self.paths.localizations_dir,
            lambda: [f.path for f in self.extensions.ordered_files("localizations", ".json")],
        )
        self.options.data_labels["localization"].component_args = self.localizations.setting_choices
        self.generation = GenerationService(
            self.models,
            self.options,
            self.paths,
            self.state,
            self.styles,
            self.extra_networks,
            self.embeddings,
            self.controlnet,
            self.callbacks,
            model_view=_a1111_model_view,
            nan_check=not self.args.disable_nan_check,
            settings=self.settings,
            upscalers=self.upscalers,
            faces=self.faces,
            console_progress=not getattr(self.args, "disable_console_progressbars", False),
        )
        self.runner = JobRunner(self.queue, self.generation)
        self.extras = ExtrasService(
            self.scripts.postproc,
            self.queue,
            self.state,
            self.options,
            self.paths,
            hide_dirs=lambda: bool(getattr(self.args, "hide_ui_dir_config", False)),
        )
        self.text = TextService(self.models, self.embeddings, self.options)
        use_line_tokenizer(_weak_line_tokenizer(self.text))  # `cond_stage_model.tokenize_line`
        use_text_encoder(_weak_text_encoder(self.text))  # `sd_model.get_learned_conditioning`
        self.captioning = self._caption_service()
        self.training = TrainingService(self.queue, self.state, self._training_model, self._training_sample)
        self.a1111_training = A1111Training(
            self.training,
            self.queue,
            lambda: self.models.get().sd,
            self.paths,
            self.options,
            self.embeddings,
            self.hypernetworks,
        )
        self.lora_training = LoraTraining(self.training, self.paths, self.options, self.loras)
        self.controlnet_training = ControlNetTraining(
            self.training, self.paths, self.options, self.controlnet.models
        )
        self.finetune_training = FinetuneTraining(
            self.training, self.paths, self.options, self.checkpoints.refresh
        )
        self.startup_timer.record("initialize services")

    def _training_model(self) -> tuple[Any, str, str]:
        """The selected checkpoint for a training job: (SDModel, model name, short hash)."""
        loaded = self.models.get()
        return loaded.sd, loaded.checkpoint.model_name, (loaded.checkpoint.hash or "")[:10]

    def _training_sample(self, fields: dict[str, Any]) -> Any:
        """One txt2img for a trainer's sample image, inline on the worker, nothing saved."""
        p = StableDiffusionProcessingTxt2Img(**fields, do_not_save_samples=True, do_not_save_grid=True)
        processed = self.generation.process(p)
        return processed.images[0] if processed.images else None

    def _caption_service(self) -> CaptionService:
        """DeepDanbooru and BLIP from models/, on the app's device (`--use-cpu interrogate` or `all`
        keeps them on the CPU; half precision on CUDA unless --no-half)."""
        use_cpu = set(getattr(self.args, "use_cpu", None) or [])
        on_cpu = bool(use_cpu & {"all", "interrogate"}) or not self.devices.is_cuda
        half = not on_cpu and not self.args.no_half
        captioning = CaptionService(
            self.paths.models_dir,
            self.options,
            self.queue,
            self.state,
            device=lambda: "cpu" if on_cpu else self.devices.device,
            half=half,
            allow_unsafe_pickle=bool(self.args.disable_safe_unpickle),
        )
        self.options.data_labels["interrogate_blip_model"].component_args = captioning.blip_choices
        return captioning

    def _lora_setting_choices(self) -> dict[str, Any]:
        """The choices of "Add network to prompt": None and the LoRAs found, as A1111."""
        return {"choices": ["None", *(info.name for info in self.loras.list())]}

    def _face_restorers(self) -> FaceRestorers:
        """GFPGAN / CodeFormer from their folders, on the app's device (`--use-cpu gfpgan codeformer`
        or `all` keeps them on the CPU); the model setting lists the ones found."""
        use_cpu = set(getattr(self.args, "use_cpu", None) or [])
        on_cpu = bool(use_cpu & {"all", "gfpgan", "codeformer"})
        faces = FaceRestorers(
            self.paths.gfpgan_dir,
            self.paths.codeformer_dir,
            device=lambda: "cpu" if on_cpu else self.devices.device,
            unload_after_use=lambda: bool(self.options.face_restoration_unload),
            allow_unsafe_pickle=bool(self.args.disable_safe_unpickle),
        )
        self.options.data_labels["face_restoration_model"].component_args = faces.setting_choices
        return faces

    def _publish_path_flags(self) -> None:
        """A1111's folder flags default to the folders in use, and extensions read them as such
        (`Path(shared.cmd_opts.embeddings_dir)`): fill in the ones the user did not pass."""
        p = self.paths
        for dest, path in (
            ("embeddings_dir", p.embeddings_dir),
            ("hypernetwork_dir", p.hypernetwork_dir),
            ("lora_dir", p.lora_dir),
            ("lyco_dir_backcompat", p.lycoris_dir),
            ("gfpgan_models_path", p.gfpgan_dir),
            ("codeformer_models_path", p.codeformer_dir),
            ("ui_config_file", p.ui_config_file),
            ("localizations_dir", p.localizations_dir),
            ("textual_inversion_templates_dir", p.templates_dir),
        ):
            if getattr(self.args, dest, None) is None:
                setattr(self.args, dest, str(path))
        for kind, dirs in p.upscaler_dirs:  # A1111: --esrgan-models-path defaults to models/ESRGAN, ...
            dest = f"{kind.lower()}_models_path"
            if hasattr(self.args, dest) and getattr(self.args, dest) is None:
                setattr(self.args, dest, str(dirs[0]))

    def _upscaler_registry(self) -> UpscalerRegistry:
        """None/Lanczos/Nearest and the model files of models/ESRGAN, RealESRGAN, SwinIR, DAT, HAT."""
        registry = UpscalerRegistry(
            lambda: self.state.interrupted,
            folders=self.paths.upscaler_dirs,
            setting=lambda key: getattr(self.options, key),
            device=lambda: self.devices.device,
            prefer_half=not (self.args.no_half or getattr(self.args, "upcast_sampling", False)),
            allow_unsafe_pickle=bool(self.args.disable_safe_unpickle),
        )
        registry.attach_choices(self.options.data_labels)
        return registry

    def _list_hidden_files(self) -> bool:
        return bool(getattr(self.options, "list_hidden_files", True))

    def _controlnet_service(self) -> ControlNetService:
        """models/ControlNet plus sd-webui-controlnet's own folders, for people moving from A1111."""
        extension = self.paths.extensions_dir / "sd-webui-controlnet"
        models = ControlNetModels(
            [self.paths.controlnet_dir, extension / "models"],
            cache_size=lambda: int(self.options.control_net_model_cache_size),
            allow_unsafe_pickle=bool(self.args.disable_safe_unpickle),
            include_hidden=self._list_hidden_files,
        )
        annotators = [self.paths.controlnet_dir / "annotators", extension / "annotator" / "downloads"]
        clip_vision = [self.paths.models_dir / "clip_vision"]  # ComfyUI's and Forge's folder
        return ControlNetService(models, self.options, annotators, clip_vision)

    def _model_loaded_callbacks(self, loaded) -> None:
        """Extensions' `on_model_loaded(sd_model)` get what they see as `shared.sd_model` (A1111)."""
        if self.callbacks.has("model_loaded"):
            self.callbacks.call("model_loaded", model_view(loaded))

    def _select_device(self) -> DeviceConfig:
        a = self.args
        use_cpu = "all" in (getattr(a, "use_cpu", None) or [])
        config = select_device(
            use_cpu=use_cpu,
            device_id=int(a.device_id) if a.device_id else None,
            no_half=a.no_half,
            no_half_vae=a.no_half_vae,
            precision=a.precision,
            bf16=getattr(a, "bf16", False),
            upcast_sampling=bool(getattr(a, "upcast_sampling", False)),
            opt_channelslast=bool(getattr(a, "opt_channelslast", False)),
            opt_sdp_no_mem_attention=bool(getattr(a, "opt_sdp_no_mem_attention", False)),
        )
        log.info("Precision: %s", config.reason)
        if a.xformers and not xformers_available():
            self.notice("--xformers: xformers is not installed, using PyTorch SDPA attention instead")
        elif a.xformers and not config.is_cuda:
            self.notice("--xformers: xformers needs a CUDA GPU, using PyTorch SDPA attention instead")
        elif a.xformers:
            config = dataclasses.replace(config, attention="xformers")
        return config

    def _offload_flags(self) -> OffloadFlags:
        a = self.args
        flags = OffloadFlags(
            medvram=bool(getattr(a, "medvram", False)),
            lowvram=bool(getattr(a, "lowvram", False)),
            medvram_sdxl=bool(getattr(a, "medvram_sdxl", False)),
        )
        if flags != OffloadFlags() and not self.devices.is_cuda:
            self.notice(
                "--medvram/--lowvram: the model computes on the CPU, so the parts stay in RAM and there "
                "is no VRAM to save; the offload policy still runs"
            )
        return flags

    def precision_summary(self) -> dict[str, object]:
        """The precision chosen at start-up and, once a model is loaded, what its placement did
        (the CPU size rule may keep a small model in fp32)."""
        active = self.models.active
        return {**self.devices.summary(), "model": active.sd.extra.get("precision") if active else None}

    def sysinfo(self) -> str:
        """A1111's "Download system info" text (services.sysinfo): redacted, with its checksum."""
        sources = sysinfo.SysinfoSources(
            repo_root=self.paths.repo_root,
            data_dir=self.paths.data_dir,
            extensions_dir=self.paths.extensions_dir,
            argv=sys.argv,
            config=redacted_options(self.options.as_dict()),
            extensions=self.extensions.list(with_repo_info=True),
            device=self.precision_summary(),
            loaded_models=self.models.loaded_titles(),
            notices=self.notices,
        )
        return sysinfo.sysinfo_text(sysinfo.sysinfo_dict(sources), self.redact)

    def notice(self, text: str) -> None:
        text = self.redact(text)
        log.warning(text)
        self.notices.append(text)

    # -- start-up ----------------------------------------------------------------------------------
    def startup(self) -> None:
        timer = self.startup_timer
        for note in startup_notices(self.args):  # flags that do nothing here, each named
            self.notice(note)
        self.checkpoints.refresh()
        if self.paths.ckpt_file is not None:
            self._pick_cli_checkpoint(self.paths.ckpt_file)
        timer.record("list SD models")
        self._offer_demo_model()
        timer.record("demo model")
        self._load_extensions()
        self.queue.start()
        if not getattr(self.args, "skip_load_model_at_start", False):  # else: at the first job
            self.queue.submit("load model", self._initial_load)

    def _offer_demo_model(self) -> None:
        """With no checkpoint (or only the random-weight demo an older Sumi made), install the demo model
        Sumi trained, select it, and say what it draws."""
        from modules.sumi.services.models import demo

        found = self.checkpoints.list()
        if found and not demo.is_only_the_old_demo([Path(c.filename) for c in found]):
            return
        path = demo.create_demo_checkpoint(self.paths.ckpt_dirs[0])
        controlnet = demo.create_demo_controlnet(self.paths.controlnet_dir)
        self.checkpoints.refresh()
        self.controlnet.models.refresh()
        info = self.checkpoints.match(path.name)
        current = self.checkpoints.match(self.options.sd_model_checkpoint)
        if info is not None and (current is None or current.name == demo.OLD_RANDOM_DEMO):
            self.options.set("sd_model_checkpoint", info.title)
        self.notice(
            f"No checkpoint was found, so Sumi installed its demo model ({path.name}), which it trained itself: "
            f"it draws one coloured shape at {demo.DEMO_SIZE}x{demo.DEMO_SIZE}, for example "
            f"'{demo.EXAMPLE_PROMPT}'; its canny ControlNet ({controlnet.stem}) draws the shape along an "
            f"edge map. Put real .safetensors/.ckpt checkpoints in {self.paths.ckpt_dirs[0]} "
            "and press the refresh button next to the checkpoint list."
        )

    def _load_extensions(self) -> None:
        """Run new or changed install.py files (unless --skip-install), then import every script."""
        for problem in self.extensions.problems:
            self.notice(f"Extensions: {problem}")
        timer = self.startup_timer
        if not self.args.skip_install:
            for failure in self.extensions.run_install_scripts_at_start():
                self.notice(failure)
        for conflict in self.extensions.conflicts():
            self.notice(f"Extensions: {conflict.message()}")
        timer.record("extensions' install.py")
        root = self.scripts.repo_root
        extension_files = [
            (f.path, f.extension.path if f.extension else root) for f in self.extensions.script_files()
        ]
        with timer.subcategory("load scripts"):
            files = self.scripts.builtin_files() + extension_files
            self.scripts.load(files, loaded=lambda path: timer.record(self.script_label(str(path))))
        offer_script_choices(self.options, self.scripts.postprocessing_data)

    def script_label(self, path: str) -> str:
        """A script file as the start-up profile names it: "<extension folder>/<file>" for an
        extension's, the file name for Sumi's own."""
        owner = self.scripts.extension_name(path)
        return f"{owner}/{Path(path).name}" if owner else Path(path).name

    def _script_setup_notice(self, error: ScriptError) -> None:
        """A script that failed while it was imported, created or its UI built: named, with its
        extension (Sumi goes on without that part; hook failures during jobs are the job's warnings)."""
        if error.where not in SETUP_STAGES:
            return
        owner = self.scripts.extension_name(error.script)
        who = f"Extension {owner}" if owner else "Built-in script"
        name = Path(error.script).name if Path(error.script).suffix == ".py" else error.script
        what = "failed to load" if error.where == "import" else f"failed in {error.where}()"
        text = f"{who}: {name} {what}: {error.message}"
        hint = missing_package_hint(error.message)
        if hint:
            text += f". {hint}"
        if self.redact(text) not in self.notices:  # each tab builds the scripts' UI: one notice
            self.notice(text)

    def _initial_load(self) -> None:
        """Load the selected checkpoint at start (as A1111 does) so the first image is quick."""
        try:
            self.models.get()
        except EngineError as exc:
            self.notice(f"The selected checkpoint could not be loaded: {exc}")

    def _pick_cli_checkpoint(self, path: Path) -> None:
        info = self.checkpoints.add_file(path) if path.is_file() else None
        if info is None:
            self.notice(f"--ckpt {path}: no such checkpoint file")
            return
        self.options.set("sd_model_checkpoint", info.title)

    # -- restart ------------------------------------------------------------------------------------
    def request_restart(self, delay: float = 1.0) -> bool:
        """Ask for a restart of the whole server process (webui.main stops the server, shuts the App
        down and runs the same command line again). False when nothing can restart this process (the
        App is embedded, e.g. in tests). The delay lets the reply to the request that asked go out."""
        if self.restart_handler is None:
            return False
        self.restart_requested = True
        self.state.interrupt()
        timer = threading.Timer(delay, self.restart_handler)
        timer.daemon = True
        timer.start()
        return True

    def request_stop(self, *, force: bool = False, delay: float = 0.5) -> bool:
        """Ask the server process to end (A1111's /sdapi/v1/server-stop, or server-kill with `force`:
        no grace period for open connections). The running job is interrupted first. False when
        nothing can stop this process (the App is embedded)."""
        handler = self.stop_handler
        if handler is None:
            return False
        self.state.interrupt()
        timer = threading.Timer(delay, handler, args=(force,))
        timer.daemon = True
        timer.start()
        return True

    def _filename_rules(self) -> FilenameRules:
        """--unix-filenames-sanitization and --filenames-max-length; a length under 1 is named and the
        default (128) kept."""
        unix = bool(getattr(self.args, "unix_filenames_sanitization", False))
        try:
            return FilenameRules.from_flags(unix, getattr(self.args, "filenames_max_length", None))
        except ValueError as exc:
            self.notice(f"{exc}; using {MAX_FILENAME_PART_LENGTH}")
            return FilenameRules.from_flags(unix)

    def shutdown(self) -> None:
        self.queue.stop()
        self.generation.close()
        self.scripts.close()
        self._stop_log_redaction()
        use_filename_rules(FilenameRules())


def preload_extensions(parser: argparse.ArgumentParser, argv: list[str], repo_root: Path | str) -> list[str]:
    """Let enabled extensions' preload.py add flags to `parser` before the real parse (A1111)."""
    early, _ = parser.parse_known_args(argv)
    paths = DataPaths.from_args(early, repo_root)
    options = Options()
    options.load(paths.config_file)
    return ExtensionManager.from_paths(paths, options, early).preload(parser)


def _weak_line_tokenizer(text: TextService) -> Callable[[Any, str], Any]:
    """`text.tokenize_line` without keeping the app alive (the facade's hook is process-wide)."""
    method = weakref.WeakMethod(text.tokenize_line)

    def tokenize(model: Any, line: str) -> Any:
        bound = method()
        if bound is None:
            raise RuntimeError("the app that tokenized prompts has stopped")
        return bound(line, model)

    return tokenize


def _weak_text_encoder(text: TextService) -> Callable[[Any, list[str]], Any]:
    """`text.learned_conditioning` without keeping the app alive (the facade's hook is process-wide)."""
    method = weakref.WeakMethod(text.learned_conditioning)

    def encode(model: Any, texts: list[str]) -> Any:
        bound = method()
        if bound is None:
            raise RuntimeError("the app that encoded prompts has stopped")
        return bound(texts, model)

    return encode


def _a1111_model_view(loaded: Any) -> Any:
    """`p.sd_model` as A1111 extensions know it (sd_model_hash, sd_checkpoint_info, is_sdxl, ...)."""
    return model_view(loaded)
