"""Command-line flags, with AUTOMATIC1111's names, meanings and defaults.

`build_parser()` returns a fresh parser each call; extensions add their own flags to it from their
`preload(parser)` hook before `parse_args` runs. The parser resolves clashing option strings (a later
`add_argument("--lora-dir")` replaces ours) because A1111 extensions re-declare flags freely.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

DEFAULT_PORT = 7860
DEFAULT_API_ONLY_PORT = 7861

# Flags that are accepted but do nothing yet; the app prints a notice for each one the user passes.
NOT_YET_IMPLEMENTED = (
    frozenset(
        {
            "autolaunch",
            "theme",
            "share",
            "ngrok",
        }
    )
    | frozenset(
        # A1111 flags extensions read from `shared.cmd_opts` (or users pass); accepted, no effect in Sumi.
        {
            "allow_code",
            "no_gradio_queue",
            "gradio_debug",
            "always_batch_cond_uncond",
            "sub_quad_q_chunk_size",
            "sub_quad_kv_chunk_size",
            "sub_quad_chunk_threshold",
            "config",
            "bsrgan_models_path",
            "scunet_models_path",
            "ldsr_models_path",
            "clip_models_path",
            "tls_keyfile",
            "tls_certfile",
            "subpath",
            "administrator",
            "no_prompt_history",
            "update_check",
            "update_all_extensions",
            "reinstall_xformers",
            "reinstall_torch",
        }
    )
    | frozenset(
        # A1111 1.10 flags that would change something there and do nothing here yet.
        {
            "gfpgan_dir",
            "gfpgan_model",
            "no_progressbar_hiding",
            "lowram",
            "ngrok_options",
            "force_enable_xformers",
            "xformers_flash_attention",
            "use_ipex",
            "disable_model_loading_ram_optimization",
            "ui_debug_mode",
            "disable_tls_verify",
        }
    )
)

# A1111 1.10 flags that do nothing in A1111 either ("does not do anything"), or only steer A1111's
# launcher (launch.py); accepted so command lines keep working, with a notice saying so.
A1111_NO_OP = {
    **dict.fromkeys(
        (
            "max_batch_count", "unload_gfpgan", "ngrok_region", "deepdanbooru", "show_negative_prompt",
            "gradio_img2img_tool", "gradio_inpaint_tool", "enable_console_prompts", "gradio_queue",
            "add_stop_route",
        ),
        "does nothing in A1111 1.10 either",
    ),
    **dict.fromkeys(
        ("f", "test_server", "log_startup", "dump_sysinfo"),
        "an A1111 launcher (launch.py) flag; Sumi has no such launcher step",
    ),
}  # fmt: skip

# A1111 flags that ask for what Sumi always does; accepted so A1111 command lines keep working.
ALWAYS_ON = {
    "opt_sdp_attention": "Sumi always uses PyTorch scaled-dot-product attention (torch picks flash, "
    "memory-efficient or math kernels per call; --opt-sdp-no-mem-attention rules out memory-efficient)",
    "opt_split_attention": "Sumi always uses PyTorch scaled-dot-product attention",
    "no_download_sd_model": "Sumi never downloads a model on its own",
    "do_not_download_clip": "Sumi never downloads a model on its own",
    "opt_sub_quad_attention": "Sumi always uses PyTorch scaled-dot-product attention",
    "opt_split_attention_v1": "Sumi always uses PyTorch scaled-dot-product attention",
    "opt_split_attention_invokeai": "Sumi always uses PyTorch scaled-dot-product attention",
    "disable_opt_split_attention": "Sumi always uses PyTorch scaled-dot-product attention",
    "skip_torch_cuda_test": "Sumi runs no start-up environment checks",
    "skip_python_version_check": "Sumi runs no start-up environment checks",
    "skip_version_check": "Sumi runs no start-up environment checks",
    "skip_prepare_environment": "Sumi runs no start-up environment checks",
}


def build_parser() -> argparse.ArgumentParser:
    """A new parser holding every flag Sumi knows."""
    parser = argparse.ArgumentParser(
        prog="webui.py",
        description="Sumi: an AUTOMATIC1111-compatible Stable Diffusion WebUI.",
        conflict_handler="resolve",
        allow_abbrev=False,
    )
    _add_path_args(parser)
    _add_server_args(parser)
    _add_device_args(parser)
    _add_model_args(parser)
    _add_extension_args(parser)
    _add_compat_args(parser)
    _add_a1111_accepted_args(parser)
    return parser


def _adders(add: Callable[..., Any]) -> tuple[Callable[[str, str], Any], Callable[[str, str], Any]]:
    """(text, switch): add a flag taking a text (default None), or an on/off flag, with its help."""

    def text(flag: str, help_text: str) -> Any:
        return add(flag, type=str, default=None, help=help_text)

    def switch(flag: str, help_text: str) -> Any:
        return add(flag, action="store_true", help=help_text)

    return text, switch


def _add_path_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("folders")
    add = group.add_argument
    text = _adders(add)[0]
    text("--data-dir", "base folder for all user data (default: the install folder)")
    text("--models-dir", "base folder for models (default: <data-dir>/models)")
    text("--ckpt-dir", "extra folder with Stable Diffusion checkpoints")
    text("--vae-dir", "extra folder with VAE files")
    text("--embeddings-dir", "textual inversion folder (default: <data-dir>/embeddings)")
    text("--lora-dir", "Lora folder (default: <models-dir>/Lora)")
    text("--lyco-dir-backcompat", "LyCORIS folder kept for old setups (default: <models-dir>/LyCORIS)")
    text("--hypernetwork-dir", "hypernetwork folder (default: <models-dir>/hypernetworks)")
    text("--controlnet-dir", "ControlNet model folder (default: <models-dir>/ControlNet)")
    text(
        "--textual-inversion-templates-dir",
        "prompt templates for embedding/hypernetwork training (default: Sumi's textual_inversion_templates)",
    )
    for dest, folder in (("gfpgan_models_path", "GFPGAN"), ("codeformer_models_path", "Codeformer")):
        text(flag_name(dest), f"{folder} model folder (default: <models-dir>/{folder})")
    text("--ui-settings-file", "settings file (default: <data-dir>/config.json)")
    text("--ui-config-file", "UI defaults file (default: <data-dir>/ui-config.json)")
    text("--localizations-dir", "localization files folder (default: <data-dir>/localizations)")
    add(
        "--styles-file",
        type=str,
        action="append",
        default=[],
        help="path or glob of a styles CSV file; may be given several times",
    )


def _add_server_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    add = group.add_argument
    text, switch = _adders(add)
    add(
        "--port",
        type=int,
        default=None,
        help=f"port to serve on (default: {DEFAULT_PORT}, or {DEFAULT_API_ONLY_PORT} with --nowebui)",
    )
    switch("--listen", "serve on 0.0.0.0 so other machines on the network can connect")
    text("--server-name", "host name or address to bind (overrides --listen)")
    switch("--share", "A1111: make a public gradio.live link (Sumi makes none)")
    text("--ngrok", "A1111: ngrok auth token for a public tunnel (Sumi opens none)")
    switch("--api", "serve the HTTP API (/sdapi/v1/...) beside the web UI")
    switch("--nowebui", "serve only the HTTP API, without the web UI")
    text("--api-auth", 'HTTP Basic credentials for the API, "user:password" or "u1:p1,u2:p2"')
    switch("--api-log", "log every API request")
    text("--log-file", "also write the log to this file, rotated at 10 MB with 5 old files kept (Sumi)")
    switch("--disable-console-progressbars", "no progress bars in the console for generation jobs")
    add(
        "--max-request-body-mb",
        type=float,
        default=64,
        help="refuse (413) a request body larger than this many MB; 0 for no limit (Sumi)",
    )
    text("--gradio-auth", 'login for the web UI, "user:password" or "u1:p1,u2:p2"')
    text(
        "--gradio-auth-path",
        'file with logins for the web UI: "user:password" entries, comma-separated or one per line',
    )
    text(
        "--allowed-hosts",
        "Sumi: comma-separated host names the server answers to besides the loopback names and "
        "--server-name (the Host header is checked; --listen allows any)",
    )
    text(
        "--cors-allow-origins", "comma-separated origins (scheme://host:port) whose pages may call the server"
    )
    text("--cors-allow-origins-regex", "a regular expression for origins whose pages may call the server")
    switch("--autolaunch", "open the web UI in the system browser on start")
    add("--theme", type=str, default=None, choices=["light", "dark"], help="force the UI theme")


def _add_device_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device and precision")
    add = group.add_argument
    text, switch = _adders(add)
    text("--device-id", "CUDA device to use (its index)")
    add(
        "--use-cpu",
        nargs="+",
        type=str.lower,
        default=[],
        help='run these parts on the CPU; "all" for everything (A1111 style: --use-cpu all)',
    )
    switch("--no-half", "keep the model in 32-bit floats (also turns off the CPU bf16 fast path)")
    switch("--no-half-vae", "keep the VAE in 32-bit floats")
    switch(
        "--disable-nan-check",
        "do not check for NaN/inf in what the UNet and the VAE produce (such images come out black)",
    )
    switch(
        "--bf16", "Sumi: use bfloat16 instead of float16 on CUDA (CPUs with native bf16 use it by default)"
    )
    add(
        "--precision",
        type=str,
        choices=["full", "half", "autocast"],
        default="autocast",
        help="full: 32-bit floats everywhere (as --no-half); autocast (default): half precision where the "
        "device computes it natively; half: also on a CPU without native bf16 and for small models",
    )
    switch(
        "--upcast-sampling",
        "keep latents and the sampler in 32-bit floats with a half-precision UNet (less memory than --no-half)",
    )
    switch(
        "--opt-channelslast",
        "channels_last memory layout for the UNet and VAE (on by default on the CPU bf16 path)",
    )
    switch(
        "--opt-sdp-no-mem-attention",
        "PyTorch SDPA attention without the memory-efficient kernel (flash or math: deterministic images)",
    )
    switch("--xformers", "use xformers attention when it is installed")
    switch(
        "--medvram",
        "save VRAM: the text encoders, the UNet and the VAE each go to the GPU only while used",
    )
    switch(
        "--medvram-sdxl",
        "--medvram for SDXL models only (other models stay whole on the GPU)",
    )
    switch(
        "--lowvram",
        "save the most VRAM: as --medvram, and the UNet is streamed to the GPU one block at a time (slower)",
    )
    switch(
        "--compile",
        "Sumi: torch.compile the UNet (CUDA graphs on a GPU), once per resolution and batch; the "
        "setting 'Compile the UNet' can add the VAE decode",
    )
    switch(
        "--use-openvino",
        "Sumi (SD.Next's flag): run the UNet and the VAE decode with OpenVINO on the CPU (pip install "
        "openvino), as the setting 'Compile the UNet' choice 'OpenVINO: UNet + VAE decode'",
    )


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models")
    add = group.add_argument
    text, switch = _adders(add)
    text("--ckpt", "checkpoint file to add to the list and load at start")
    text("--vae-path", "VAE file to always use; disables the VAE settings")
    switch(
        "--disable-safe-unpickle",
        "load .ckpt/.pt files with full pickle (runs code inside them: only for files you trust)",
    )
    switch("--no-hashing", "do not compute sha256 hashes of checkpoints")


def _add_extension_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("extensions")
    add = group.add_argument
    switch = _adders(add)[1]
    switch(
        "--enable-insecure-extension-access",
        "allow installing extensions from the UI even with --listen or --share",
    )
    switch("--skip-install", "do not run extensions' install.py")
    switch("--disable-all-extensions", "load no extensions at all")
    switch("--disable-extra-extensions", "load only the built-in extensions")


def _add_compat_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("A1111 flags that Sumi always obeys")
    for dest, why in ALWAYS_ON.items():
        group.add_argument("--" + dest.replace("_", "-"), action="store_true", help=f"no effect: {why}")


def _add_a1111_accepted_args(parser: argparse.ArgumentParser) -> None:
    """A1111 flags Sumi accepts without acting on them, so command lines and extensions reading
    `shared.cmd_opts.<flag>` keep working (A1111's defaults; the models paths default to None)."""
    group = parser.add_argument_group("A1111 flags accepted without effect")
    add = group.add_argument
    for dest in (
        "allow_code", "no_gradio_queue",
        "gradio_debug",
        "always_batch_cond_uncond",
        "administrator", "no_prompt_history", "update_check", "update_all_extensions",
        "reinstall_xformers", "reinstall_torch",
    ):  # fmt: skip
        add(flag_name(dest), action="store_true", help="A1111 flag; no effect in Sumi")
    for dest in ("sub_quad_q_chunk_size", "sub_quad_kv_chunk_size", "sub_quad_chunk_threshold"):
        add(flag_name(dest), type=int, default=None, help="A1111 sub-quadratic attention; no effect in Sumi")
    for dest in (
        "config", "bsrgan_models_path",
        "scunet_models_path", "ldsr_models_path",
        "clip_models_path", "tls_keyfile", "tls_certfile", "subpath",
    ):  # fmt: skip
        add(flag_name(dest), type=str, default=None, help="A1111 flag; no effect in Sumi")
    for kind in ("ESRGAN", "RealESRGAN", "SwinIR", "DAT"):  # read next to models/<kind>
        add(
            flag_name(f"{kind.lower()}_models_path"),
            type=str,
            default=None,
            help=f"extra folder of {kind} models",
        )
    _add_a1111_more_args(group)
    _add_settings_lock_args(parser)


def _add_a1111_more_args(group: argparse._ArgumentGroup) -> None:
    """The rest of A1111 1.10's flags (modules/cmd_args.py), with A1111's types and defaults."""
    add = group.add_argument
    for dest in (
        "f", "test_server", "log_startup", "dump_sysinfo", "no_progressbar_hiding", "lowram", "unload_gfpgan",
        "force_enable_xformers", "xformers_flash_attention", "deepdanbooru", "use_ipex",
        "disable_model_loading_ram_optimization", "show_negative_prompt",
        "enable_console_prompts", "ui_debug_mode", "gradio_queue", "add_stop_route",
    ):  # fmt: skip
        add("-f" if dest == "f" else flag_name(dest), action="store_true", help=_no_effect_help(dest))
    add(
        "--use-textbox-seed",
        action="store_true",
        help="the seed fields of txt2img and img2img are text boxes, so seeds above 2**53 keep every digit",
    )
    add(
        "--api-server-stop",
        action="store_true",
        help="add the API routes /sdapi/v1/server-stop, server-restart and server-kill (behind the API login)",
    )
    add(
        "--skip-load-model-at-start",
        action="store_true",
        help="do not load the checkpoint when the server starts; the first job loads it",
    )
    add(
        "--loglevel",
        type=str,
        default=None,
        help="log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO)",
    )
    add(
        "--timeout-keep-alive",
        type=int,
        default=30,
        help="seconds an idle HTTP keep-alive connection stays open (A1111's default, 30)",
    )
    for dest in (
        "gfpgan_dir",
        "gfpgan_model",
        "ngrok_region",
        "gradio_img2img_tool",
        "gradio_inpaint_tool",
    ):
        add(flag_name(dest), type=str, default=None, help=_no_effect_help(dest))
    add(flag_name("max_batch_count"), type=int, default=None, help=_no_effect_help("max_batch_count"))
    add(
        "--unix-filenames-sanitization",
        action="store_true",
        help="file names of saved images keep every character Linux allows (only / is replaced)",
    )
    add(
        "--filenames-max-length",
        type=int,
        default=None,
        help="the longest a part of a saved image's file name taken from the job (the prompt, ...) may be "
        "(default 128)",
    )
    add("--ngrok-options", type=json.loads, default=None, help=_no_effect_help("ngrok_options"))
    add(
        "--disable-tls-verify", action="store_false", default=None, help=_no_effect_help("disable_tls_verify")
    )


def _no_effect_help(dest: str) -> str:
    return f"A1111 flag; {A1111_NO_OP.get(dest, 'no effect in Sumi yet')}"


def _add_settings_lock_args(parser: argparse.ArgumentParser) -> None:
    """A1111's flags that lock settings and confine the folders settings may name."""
    group = parser.add_argument_group("settings locks")
    add = group.add_argument
    text, switch = _adders(add)
    add(
        "--gradio-allowed-path",
        action="append",
        default=None,
        help="a folder outside the data dir that path settings (outdir_*, ...) may name; may be repeated",
    )
    switch(
        "--hide-ui-dir-config",
        "folder and file-name settings cannot be changed from the UI or the API (and are hidden)",
    )
    switch("--freeze-settings", "no setting can be changed from the UI or the API")
    text(
        "--freeze-settings-in-sections",
        'settings in these Settings sections cannot be changed, e.g. "saving-images,sd"',
    )
    text("--freeze-specific-settings", 'these settings cannot be changed, e.g. "samples_save,samples_format"')


def parse_args(
    argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None
) -> argparse.Namespace:
    """Parse `argv` (default: sys.argv[1:]) with `parser` (default: a fresh `build_parser()`)."""
    return (parser or build_parser()).parse_args(argv)


def _passed(ns: argparse.Namespace, dests: Sequence[str]) -> list[str]:
    """The dests among `dests` whose value differs from the parser default."""
    defaults = build_parser()
    return [dest for dest in dests if hasattr(ns, dest) and getattr(ns, dest) != defaults.get_default(dest)]


def flag_name(dest: str) -> str:
    """The command-line spelling of a dest: "lora_dir" -> "--lora-dir"."""
    return "--" + dest.replace("_", "-")


def not_yet_implemented_flags(ns: argparse.Namespace) -> list[str]:
    """Dests (e.g. "medvram", "lora_dir") of the flags the user passed that Sumi accepts but does not act on yet."""
    return _passed(ns, sorted(NOT_YET_IMPLEMENTED))


def startup_notices(ns: argparse.Namespace) -> list[str]:
    """One line for each passed flag that does nothing here: not built yet, always Sumi's behaviour, or
    a no-op in A1111 too. Every other flag is honoured."""
    later = [
        f"{flag_name(d)} is accepted but has no effect yet in this version of Sumi"
        for d in not_yet_implemented_flags(ns)
    ]
    no_op = [
        f"{'-f' if d == 'f' else flag_name(d)} has no effect: {A1111_NO_OP[d]}"
        for d in _passed(ns, sorted(A1111_NO_OP))
    ]
    return [*later, *(f"{note} (the flag has no effect)" for note in always_on_notes(ns)), *no_op]


def always_on_notes(ns: argparse.Namespace) -> list[str]:
    """One line for each passed A1111 flag that has no effect because Sumi always behaves that way."""
    return [f"{flag_name(dest)}: {ALWAYS_ON[dest]}" for dest in _passed(ns, sorted(ALWAYS_ON))]


def server_port(ns: argparse.Namespace) -> int:
    """The port to serve on: --port, else 7861 for an API-only server, else 7860."""
    if ns.port is not None:
        return ns.port
    return DEFAULT_API_ONLY_PORT if ns.nowebui else DEFAULT_PORT


def server_host(ns: argparse.Namespace) -> str:
    """The address to bind: --server-name, else 0.0.0.0 with --listen, else 127.0.0.1."""
    if ns.server_name:
        return ns.server_name
    return "0.0.0.0" if ns.listen else "127.0.0.1"


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", "*"})


def allowed_hosts(ns: argparse.Namespace) -> frozenset[str] | None:
    """The host names the server answers to (the Host header, without its port), or None for any.

    The loopback names, plus --server-name and each --allowed-hosts name; --listen (or a server
    name or allowed host of 0.0.0.0, :: or *) allows any, as a server on every interface must."""
    names = [getattr(ns, "server_name", None) or ""]
    names += (getattr(ns, "allowed_hosts", None) or "").split(",")
    names = [n.strip().lower().strip("[]") for n in names if n.strip()]
    if getattr(ns, "listen", False) or any(n in _ANY_ADDRESS for n in names):
        return None
    return LOOPBACK_HOSTS | frozenset(names)


def cors_origins(ns: argparse.Namespace) -> tuple[list[str], str | None]:
    """(--cors-allow-origins as a list, --cors-allow-origins-regex): the origins allowed by CORS."""
    text = getattr(ns, "cors_allow_origins", None) or ""
    return [o.strip() for o in text.split(",") if o.strip()], getattr(
        ns, "cors_allow_origins_regex", None
    ) or None
