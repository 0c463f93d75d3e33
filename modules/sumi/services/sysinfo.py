"""System information for bug reports: A1111's "Download system info" (`/internal/sysinfo`).

A JSON text with A1111's keys (Platform, Python, Version, Commit, paths, Commandline, Torch env info,
Exceptions, CPU, RAM, Extensions, Environment, Config, Packages) and Sumi's own (Device, Loaded models,
Notices). Secrets never appear in it: the settings come masked, only a short list of environment
variables is read, and the whole text goes through the App's redactor (which also masks the values of
--api-auth, --gradio-auth and secret settings wherever they appear, in the command line included).

The "Checksum" field lets whoever reads a report see whether it was edited by hand: it is the SHA-256 of
the text with the checksum itself replaced by a placeholder (`check` recomputes it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modules.sumi.services.settings.secrets import without_userinfo
from modules.sumi.util.logs import recent_exceptions
from modules.sumi.util.version import VERSION

CHECKSUM_PLACEHOLDER = "sumi-sysinfo-checksum-placeholder"
_CHECKSUM_FIELD = re.compile(r'"Checksum": "([0-9a-f]{64})"')
# Environment variables that change how Sumi, torch or pip behave; nothing else is read.
ENVIRONMENT_KEYS = (
    "COMMANDLINE_ARGS",
    "CUDA_VISIBLE_DEVICES",
    "GRADIO_ANALYTICS_ENABLED",
    "HF_HUB_OFFLINE",
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
    "PYTHONPATH",
    "PYTORCH_CUDA_ALLOC_CONF",
    "REQS_FILE",
    "TORCH_COMMAND",
    "TORCH_INDEX_URL",
    "TRANSFORMERS_OFFLINE",
    "XFORMERS_PACKAGE",
)


@dataclass
class SysinfoSources:
    """What the App knows about itself that goes into the report (everything else is read here)."""

    repo_root: Path
    data_dir: Path
    extensions_dir: Path
    argv: Sequence[str]
    config: Mapping[str, Any]  # the settings, secrets already masked
    extensions: Sequence[Any]  # A1111's Extension fields: name, path, version, branch, remote, enabled
    device: Mapping[str, Any] = field(default_factory=dict)
    loaded_models: Sequence[str] = ()
    notices: Sequence[str] = ()


def sysinfo_dict(sources: SysinfoSources) -> dict[str, Any]:
    return {
        "Platform": platform.platform(),
        "Python": platform.python_version(),
        "Version": VERSION,
        "Commit": git_commit(sources.repo_root),
        "Script path": str(sources.repo_root),
        "Data path": str(sources.data_dir),
        "Extensions dir": str(sources.extensions_dir),
        "Checksum": CHECKSUM_PLACEHOLDER,
        "Commandline": list(sources.argv),
        "Torch env info": torch_env_info(),
        "Exceptions": recent_exceptions(),
        "CPU": cpu_info(),
        "RAM": ram_info(),
        "Device": dict(sources.device),
        "Loaded models": list(sources.loaded_models),
        "Notices": list(sources.notices),
        "Extensions": _extensions(sources.extensions, enabled=True),
        "Inactive extensions": _extensions(sources.extensions, enabled=False),
        "Environment": {k: os.environ[k] for k in ENVIRONMENT_KEYS if k in os.environ},
        "Config": dict(sources.config),
        "Packages": packages(),
    }


def sysinfo_text(info: Mapping[str, Any], redact: Callable[[str], str]) -> str:
    """The report as indented JSON, redacted, then its checksum filled in."""
    text = redact(json.dumps(info, ensure_ascii=False, indent=4, default=str))
    return text.replace(CHECKSUM_PLACEHOLDER, _digest(text), 1)


def check(text: str) -> bool:
    """The report's checksum matches its text (it was not edited after it was written)."""
    found = _CHECKSUM_FIELD.search(text)
    if found is None:
        return False
    original = text[: found.start(1)] + CHECKSUM_PLACEHOLDER + text[found.end(1) :]
    return _digest(original) == found.group(1)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def git_commit(repo_root: Path) -> str:
    """The checked-out commit, read from the .git folder (no git process), or "<none>"."""
    head_file = repo_root / ".git" / "HEAD"
    try:
        head = head_file.read_text(encoding="utf-8").strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        ref_file = repo_root / ".git" / ref
        if ref_file.is_file():
            return ref_file.read_text(encoding="utf-8").strip()
        packed = (repo_root / ".git" / "packed-refs").read_text(encoding="utf-8")
        for line in packed.splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return "<none>"


@functools.cache
def torch_env_info() -> dict[str, Any] | str:
    """PyTorch's own environment report (versions, CUDA, cuDNN, GPUs, CPU), multi-line values as lists.

    Read once per process: it runs pip, lscpu and nvidia-smi (seconds), and none of it changes while the
    server runs."""
    try:
        import torch.utils.collect_env as collect_env

        info = collect_env.get_env_info()._asdict()
    except (Exception, subprocess.SubprocessError) as exc:  # it runs a few tools; any may be missing
        return f"could not read: {exc}"
    return {k: str(v).splitlines() if "\n" in str(v) else v for k, v in info.items()}


def cpu_info() -> dict[str, Any]:
    import psutil

    flags = _cpu_flags()
    return {
        "model": _cpu_model() or platform.processor(),
        "count logical": psutil.cpu_count(logical=True),
        "count physical": psutil.cpu_count(logical=False),
        # what decides Sumi's CPU fast path (docs/performance/cpu-fast.md)
        "bf16 and matrix instructions": sorted(
            flags & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni"}
        ),
    }


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _cpu_model() -> str:
    for line in _cpuinfo_lines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return ""


def _cpu_flags() -> set[str]:
    for line in _cpuinfo_lines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def ram_info() -> dict[str, str]:
    import psutil

    memory = psutil.virtual_memory()
    names = ("total", "used", "free", "available", "active", "inactive", "buffers", "cached", "shared")
    return {n: pretty_bytes(getattr(memory, n)) for n in names if getattr(memory, n, 0)}


def pretty_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f}{unit}"
        count /= 1024
    raise AssertionError("unreachable")


def packages() -> list[str]:
    """name==version of every installed distribution, sorted (without starting pip)."""
    found = {
        f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions() if d.metadata["Name"]
    }
    return sorted(found, key=str.lower)


def _extensions(extensions: Sequence[Any], *, enabled: bool) -> list[dict[str, Any]]:
    return [
        {
            "name": e.name,
            "path": str(e.path),
            "version": getattr(e, "version", ""),
            "branch": getattr(e, "branch", None),
            "remote": without_userinfo(getattr(e, "remote", None)),
        }
        for e in extensions
        if not getattr(e, "is_builtin", False) and bool(e.enabled) == enabled
    ]
