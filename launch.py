"""A1111's `launch` module, for extensions' install.py (and scripts that call `launch.is_installed`).

Same names and meanings as A1111's `launch` / `launch_utils`: `is_installed`, `run_pip`, `run`,
`git_clone`, `git_tag`, `commit_hash`, `repo_dir`, `args`, `python`, `git`, `index_url`,
`dir_repos`, `check_run_python`, `run_python`, `run_extension_installer`. Importing it is cheap (no
torch). Running this file does not start Sumi: use `python webui.py`.

Differences from A1111, on purpose:
* `run_pip("install ...")` pins the installed versions of the core packages (torch, xformers,
  numpy, diffusers, transformers, gradio, pydantic, safetensors, ...; see
  `modules.sumi.services.extensions.pins`) and torchvision at the release built for this torch
  with a pip constraints file; `run("... pip ...")` gets the same file in PIP_CONSTRAINT. A
  requirement for another version of a core package ("transformers<5") is left out of the pip
  command, printed and reported (Extensions tab, notices); the rest installs. Only when nothing is
  left does `run_pip` skip pip (and return ""). `SUMI_ALLOW_CORE_PACKAGE_CHANGES=1` lifts the pins.
  `--prefer-binary` and `INDEX_URL` are only added to commands that accept them (A1111 adds them to
  `uninstall` too, which pip rejects).
* `git_tag()` answers the A1111 release whose extension API Sumi follows ("v1.10.1"), because
  extensions compare it with A1111 versions to pick a code path.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import os
import shlex
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

script_path = str(Path(__file__).resolve().parent)
if script_path not in sys.path:
    sys.path.insert(0, script_path)

from modules.sumi.services.settings import flags as cmd_args  # noqa: E402  (after making the Sumi root importable)
from modules.sumi.util.version import A1111_API_VERSION  # noqa: E402

python = sys.executable
git = os.environ.get("GIT", "git")
index_url = os.environ.get("INDEX_URL", "")
dir_repos = "repositories"
default_command_live = os.environ.get("WEBUI_LAUNCH_LIVE_OUTPUT") == "1"
_PIP_INSTALL_COMMANDS = ("install", "download", "wheel")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    """Sumi's flags from `argv`; unknown flags are ignored and a bad command line gives the defaults."""
    parser = cmd_args.build_parser()
    argv = [a for a in argv if a not in ("-h", "--help")]
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return parser.parse_known_args(argv)[0]
        except SystemExit:
            return parser.parse_known_args([])[0]


args = _parse_args(sys.argv[1:])


def is_installed(package: str) -> bool:
    """True if a distribution or an importable module of that name exists (A1111)."""
    try:
        importlib.metadata.distribution(package)
        return True
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    try:
        return importlib.util.find_spec(package) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def run(
    command: str,
    desc: str | None = None,
    errdesc: str | None = None,
    custom_env: dict[str, str] | None = None,
    live: bool = default_command_live,
) -> str:
    """Run a shell command; its output (empty when `live`). RuntimeError with the output on failure (A1111)."""
    if desc is not None:
        print(desc, flush=True)
    env = dict(os.environ if custom_env is None else custom_env)
    kwargs: dict = {"args": command, "shell": True, "env": env, "encoding": "utf8", "errors": "ignore"}
    if not live:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if "pip" not in command:
        result = subprocess.run(**kwargs)
    else:  # a pip started through the shell keeps the core packages too (PIP_CONSTRAINT)
        from modules.sumi.services.extensions.install import constrained_env, constraints_file

        with constraints_file() as constraints:
            kwargs["env"] = constrained_env(env, constraints)
            result = subprocess.run(**kwargs)
    if result.returncode != 0:
        bits = [
            f"{errdesc or 'Error running command'}.",
            f"Command: {command}",
            f"Error code: {result.returncode}",
        ]
        if result.stdout:
            bits.append(f"stdout: {result.stdout}")
        if result.stderr:
            bits.append(f"stderr: {result.stderr}")
        raise RuntimeError("\n".join(bits))
    return result.stdout or ""


def run_pip(command: str, desc: str | None = None, live: bool = default_command_live) -> str | None:
    """`python -m pip <command>`; nothing with --skip-install. Core packages stay at their versions:
    a requirement for another version of one is left out of the command (and reported, see
    `modules.sumi.services.extensions.conflicts`), the rest installs under the constraints file."""
    if getattr(args, "skip_install", False):
        return None
    from modules.sumi.services.extensions import conflicts
    from modules.sumi.services.extensions.install import constraints_file, protecting
    from modules.sumi.services.extensions.pins import core_pins

    extension = os.environ.get(conflicts.EXTENSION_ENV, "")
    pins = core_pins() if protecting() else {}
    parsed = conflicts.parse_pip_args(command)
    if pins and (parsed.requirement_positions or parsed.requirement_files):
        refused = conflicts.conflicts_in(parsed.requirements, pins, extension, "install.py: launch.run_pip")
        for path in parsed.requirement_files:
            refused += conflicts.conflicts_in(
                conflicts.requirement_lines(path), pins, extension, f"install.py: pip -r {path.name}"
            )
        conflicts.record(refused)
        direct = [c.asked for c in refused if c.asked in parsed.requirements]
        for c in refused:
            what = "is not installed" if c.asked in direct else f"({c.source}) conflicts: pip will refuse it"
            print(f"Sumi keeps {c.package} {c.kept.lstrip('=')}: {c.asked} {what}.", flush=True)
        if direct:
            if len(direct) == len(parsed.requirement_positions) and not parsed.requirement_files:
                return ""
            command = parsed.without(direct)
    words = command.split()
    extra = ""
    with constraints_file() as constraints:
        if words and words[0] in _PIP_INSTALL_COMMANDS:
            extra = " --prefer-binary" + (f" --index-url {index_url}" if index_url else "")
            if constraints is not None:
                extra += f' -c "{constraints}"'
        try:
            return run(
                f'"{python}" -m pip {command}{extra}',
                desc=f"Installing {desc}",
                errdesc=f"Couldn't install {desc}",
                live=live,
            )
        except RuntimeError as e:
            conflicts.record(conflicts.conflicts_from_pip_output(str(e), pins, extension))
            raise


def check_run_python(code: str) -> bool:
    """True if `python -c code` exits with 0."""
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def run_python(code: str, desc: str | None = None, errdesc: str | None = None) -> str:
    """`python -c code` through `run` (A1111's old helper)."""
    return run(f'"{python}" -c {shlex.quote(code)}', desc, errdesc)


def _git(directory: str, command: list[str], errdesc: str, live: bool = False) -> str:
    result = subprocess.run(
        [git, "-C", directory, *command], capture_output=not live, text=True, encoding="utf8", errors="ignore"
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{errdesc}.\nCommand: git -C {directory} {' '.join(command)}\nError code: {result.returncode}\n"
            f"stdout: {result.stdout or ''}\nstderr: {result.stderr or ''}"
        )
    return result.stdout or ""


def git_clone(url: str, dir: str, name: str, commithash: str | None = None) -> None:
    """Clone `url` into `dir` (or, if it exists, move it to `commithash`), as A1111's launch does."""
    if os.path.exists(dir):
        if commithash is None:
            return
        if _git(dir, ["rev-parse", "HEAD"], f"Couldn't determine {name}'s hash").strip() == commithash:
            return
        if (
            _git(dir, ["config", "--get", "remote.origin.url"], f"Couldn't read {name}'s origin").strip()
            != url
        ):
            _git(dir, ["remote", "set-url", "origin", url], f"Failed to set {name}'s origin URL")
        _git(dir, ["fetch"], f"Couldn't fetch {name}")
        _git(dir, ["checkout", commithash], f"Couldn't checkout commit {commithash} for {name}")
        return
    print(f"Cloning {name} into {dir}...", flush=True)
    result = subprocess.run(
        [git, "clone", "--config", "core.filemode=false", "--", url, dir],
        capture_output=True, text=True, encoding="utf8", errors="ignore",
    )  # fmt: skip
    if result.returncode != 0:
        shutil.rmtree(dir, ignore_errors=True)
        raise RuntimeError(
            f"Couldn't clone {name}.\nCommand: git clone {url} {dir}\nError code: {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    if commithash is not None:
        _git(dir, ["checkout", commithash], f"Couldn't checkout {name}'s hash: {commithash}")


def repo_dir(name: str) -> str:
    return os.path.join(script_path, dir_repos, name)


@lru_cache
def commit_hash() -> str:
    """Sumi's git commit, or "<none>"."""
    try:
        out = subprocess.check_output(
            [git, "-C", script_path, "rev-parse", "HEAD"], stderr=subprocess.DEVNULL
        )
        return out.decode().strip()
    except Exception:
        return "<none>"


@lru_cache
def git_tag() -> str:
    """The A1111 version whose extension API Sumi provides (extensions compare it with "v1.6" etc.)."""
    return A1111_API_VERSION


def run_extension_installer(extension_dir: str) -> None:
    """Run `<extension_dir>/install.py` and print its output; a failure is printed, not raised (A1111)."""
    from modules.sumi.services.extensions.install import (
        InstallScriptError,
        forwarded_flags,
        run_python_script,
        tail,
    )

    script = Path(extension_dir) / "install.py"
    if not script.is_file():
        return
    output, code = run_python_script(
        script, Path(extension_dir), forwarded_flags(args), extension=Path(extension_dir).name
    )
    if output.strip():
        print(output.rstrip())
    if code != 0:
        print(InstallScriptError(f"Error running install.py for extension {extension_dir}:\n{tail(output)}"))


if __name__ == "__main__":
    print(
        "launch.py is a helper for extensions' install.py; start Sumi with: python webui.py", file=sys.stderr
    )
    sys.exit(2)
