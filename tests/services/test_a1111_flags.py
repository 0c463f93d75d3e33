"""Every launch flag of A1111 1.10 is accepted, and is either honoured or named in a start-up notice.

The list is A1111's, written here from its source (commit 82a973c): modules/cmd_args.py, plus the flags
its built-in extensions add in their preload.py (Lora, LDSR, ScuNET, SwinIR). Each entry gives the
arguments a command line passes with the flag."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modules.sumi.services.settings import flags

REPO = Path(__file__).resolve().parents[2]
_BOOL = ()
_PATH = ("/tmp/x",)
A1111_FLAGS: dict[str, tuple[str, ...]] = {
    # modules/cmd_args.py, in its order
    "-f": _BOOL, "--update-all-extensions": _BOOL, "--skip-python-version-check": _BOOL,
    "--skip-torch-cuda-test": _BOOL, "--reinstall-xformers": _BOOL, "--reinstall-torch": _BOOL,
    "--update-check": _BOOL, "--test-server": _BOOL, "--log-startup": _BOOL, "--skip-prepare-environment": _BOOL,
    "--skip-install": _BOOL, "--dump-sysinfo": _BOOL, "--loglevel": ("DEBUG",), "--do-not-download-clip": _BOOL,
    "--data-dir": _PATH, "--models-dir": _PATH, "--config": _PATH, "--ckpt": ("/tmp/x.safetensors",),
    "--ckpt-dir": _PATH, "--vae-dir": _PATH, "--gfpgan-dir": _PATH, "--gfpgan-model": ("GFPGANv1.4.pth",),
    "--no-half": _BOOL, "--no-half-vae": _BOOL, "--no-progressbar-hiding": _BOOL, "--max-batch-count": ("16",),
    "--embeddings-dir": _PATH, "--textual-inversion-templates-dir": _PATH, "--hypernetwork-dir": _PATH,
    "--localizations-dir": _PATH, "--allow-code": _BOOL, "--medvram": _BOOL, "--medvram-sdxl": _BOOL,
    "--lowvram": _BOOL, "--lowram": _BOOL, "--always-batch-cond-uncond": _BOOL, "--unload-gfpgan": _BOOL,
    "--precision": ("full",), "--upcast-sampling": _BOOL, "--share": _BOOL, "--ngrok": ("token",),
    "--ngrok-region": ("us",), "--ngrok-options": ('{"basic_auth": "u:p"}',),
    "--enable-insecure-extension-access": _BOOL, "--codeformer-models-path": _PATH,
    "--gfpgan-models-path": _PATH, "--esrgan-models-path": _PATH, "--bsrgan-models-path": _PATH,
    "--realesrgan-models-path": _PATH, "--dat-models-path": _PATH, "--clip-models-path": _PATH,
    "--xformers": _BOOL, "--force-enable-xformers": _BOOL, "--xformers-flash-attention": _BOOL,
    "--deepdanbooru": _BOOL, "--opt-split-attention": _BOOL, "--opt-sub-quad-attention": _BOOL,
    "--sub-quad-q-chunk-size": ("1024",), "--sub-quad-kv-chunk-size": ("512",),
    "--sub-quad-chunk-threshold": ("80",), "--opt-split-attention-invokeai": _BOOL,
    "--opt-split-attention-v1": _BOOL, "--opt-sdp-attention": _BOOL, "--opt-sdp-no-mem-attention": _BOOL,
    "--disable-opt-split-attention": _BOOL, "--disable-nan-check": _BOOL, "--use-cpu": ("all",),
    "--use-ipex": _BOOL, "--disable-model-loading-ram-optimization": _BOOL, "--listen": _BOOL,
    "--port": ("7870",), "--show-negative-prompt": _BOOL, "--ui-config-file": ("/tmp/ui.json",),
    "--hide-ui-dir-config": _BOOL, "--freeze-settings": _BOOL, "--freeze-settings-in-sections": ("sd",),
    "--freeze-specific-settings": ("samples_save",), "--ui-settings-file": ("/tmp/c.json",),
    "--gradio-debug": _BOOL, "--gradio-auth": ("u:p",), "--gradio-auth-path": ("/tmp/auth.txt",),
    "--gradio-img2img-tool": ("color-sketch",), "--gradio-inpaint-tool": ("sketch",),
    "--gradio-allowed-path": _PATH, "--opt-channelslast": _BOOL, "--styles-file": ("/tmp/s.csv",),
    "--autolaunch": _BOOL, "--theme": ("dark",), "--use-textbox-seed": _BOOL, "--disable-console-progressbars": _BOOL,
    "--enable-console-prompts": _BOOL, "--vae-path": ("/tmp/v.safetensors",), "--disable-safe-unpickle": _BOOL,
    "--api": _BOOL, "--api-auth": ("u:p",), "--api-log": _BOOL, "--nowebui": _BOOL, "--ui-debug-mode": _BOOL,
    "--device-id": ("1",), "--administrator": _BOOL, "--cors-allow-origins": ("http://a.b",),
    "--cors-allow-origins-regex": (".*",), "--tls-keyfile": ("/tmp/k.pem",), "--tls-certfile": ("/tmp/c.pem",),
    "--disable-tls-verify": _BOOL, "--server-name": ("example.org",), "--gradio-queue": _BOOL,
    "--no-gradio-queue": _BOOL, "--skip-version-check": _BOOL, "--no-hashing": _BOOL,
    "--no-download-sd-model": _BOOL, "--subpath": ("/sd",), "--add-stop-route": _BOOL,
    "--api-server-stop": _BOOL, "--timeout-keep-alive": ("30",), "--disable-all-extensions": _BOOL,
    "--disable-extra-extensions": _BOOL, "--skip-load-model-at-start": _BOOL,
    "--unix-filenames-sanitization": _BOOL, "--filenames-max-length": ("64",), "--no-prompt-history": _BOOL,
    # extensions-builtin/*/preload.py
    "--lora-dir": _PATH, "--lyco-dir-backcompat": _PATH, "--ldsr-models-path": _PATH,
    "--scunet-models-path": _PATH, "--swinir-models-path": _PATH,
}  # fmt: skip

NOTICED = flags.NOT_YET_IMPLEMENTED | set(flags.ALWAYS_ON) | set(flags.A1111_NO_OP)


def _sources() -> str:
    """Sumi's code that reads flags: everything but the parser's definitions (flags.py's own readers,
    after `def parse_args`, count)."""
    files = [*(REPO / "modules" / "sumi").rglob("*.py"), REPO / "webui.py", *(REPO / "modules").glob("*.py")]
    texts = [p.read_text(encoding="utf-8") for p in files if p.name != "flags.py"]
    readers = Path(flags.__file__).read_text(encoding="utf-8").split("def parse_args(", 1)[1]
    return "\n".join([*texts, readers])


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def test_the_list_is_a1111s_whole_list():
    assert len(A1111_FLAGS) == 121 + 5  # cmd_args.py's add_argument calls + the built-in extensions' flags


@pytest.mark.parametrize("flag", sorted(A1111_FLAGS))
def test_every_a1111_flag_is_accepted_and_honoured_or_noticed(flag):
    ns = flags.parse_args([flag, *A1111_FLAGS[flag]])
    dest = _dest(flag)
    assert hasattr(ns, dest)
    if dest in NOTICED:
        notices = flags.startup_notices(ns)
        assert len(notices) == 1 and flag in notices[0], notices
    else:  # honoured: Sumi's code reads it
        assert re.search(rf"\.{dest}\b|[\"']{dest}[\"']", _SOURCES), f"{flag} is neither read nor noticed"
        assert flags.startup_notices(ns) == []


_SOURCES = _sources()


def test_notices_name_each_flag_that_does_nothing_and_nothing_else():
    ns = flags.parse_args(["--lowram", "--api-server-stop", "--use-textbox-seed", "--gradio-queue", "--api"])
    notices = flags.startup_notices(ns)
    assert [n.split()[0] for n in notices] == ["--lowram", "--gradio-queue"]
    assert "A1111 1.10 either" in notices[-1]
    assert flags.startup_notices(flags.parse_args([])) == []


def test_the_app_shows_the_notices_at_start(make_app, tmp_path):
    app = make_app(tmp_path, "--lowram", "--skip-version-check", start=True)
    assert any("--lowram" in n for n in app.notices)
    assert any("--skip-version-check" in n for n in app.notices)
