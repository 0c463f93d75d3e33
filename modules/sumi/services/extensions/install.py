"""Git and install.py work behind `modules.extensions.ExtensionManager`.

Git runs as a subprocess (no GitPython) with `GIT_TERMINAL_PROMPT=0` (a private or mistyped URL fails
at once instead of waiting for a password nobody can type), `protocol.ext.allow=never`, `--` before
user-given URLs, and a timeout. Every failure is an `ExtensionError` quoting git's own message.

`install.py` runs in a subprocess with this Python, its folder as working directory, the Sumi root on
`PYTHONPATH` (so `import launch` works) and Sumi's command-line flags (paths made absolute, passwords
left out) in its `sys.argv`, so `launch.args` and `modules.paths` see the same folders as the app.
`PIP_CONSTRAINT` pins the installed versions of the core packages (`pins.PROTECTED_PACKAGES`, and
torchvision at the release built for this torch): an extension that needs another torch gets a pip
error in its output instead of a silently changed torch. What an extension asked for that Sumi does
not give it (`conflicts.Conflict`: from `launch.run_pip`'s arguments and pip's resolver output) is
kept in cache.json (section "sumi-extension-conflicts") until its install.py runs again, for the
Extensions tab, the start-up notices and /sdapi/v1/extensions. `SUMI_ALLOW_CORE_PACKAGE_CHANGES=1`
lifts the pins.

A1111 runs every install.py at every start. Sumi runs it at start only when it is new or anything it
may depend on changed since its last successful run: install.py, requirements*.txt, the checked-out
commit, or the Python interpreter (a digest kept in cache.json, section "sumi-extension-installers").
A failed run is forgotten, so it runs again at the next start.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modules.sumi.services.extensions import conflicts as pip_conflicts
from modules.sumi.services.extensions.conflicts import Conflict
from modules.sumi.services.extensions.extras_fallback import install_without_conflicting_extras
from modules.sumi.services.extensions.model import Extension, ExtensionError
from modules.sumi.services.extensions.pins import (  # noqa: F401  (PROTECTED_PACKAGES: re-exported)
    PROTECTED_PACKAGES,
    constraint_lines,
    core_pins,
)
from modules.sumi.services.settings.paths import REPO_ROOT
from modules.sumi.services.settings.secrets import is_secret_name
from modules.sumi.util.atomic import write_json_atomic

log = logging.getLogger(__name__)

GIT = os.environ.get("GIT", "git")
GIT_TIMEOUT = 600.0
INSTALL_TIMEOUT = 600.0
TAIL_LINES = 40
SUMMARY_ERRORS = 6  # pip's ERROR: lines shown in a failure's message
_PIP_ERROR = re.compile(r"^(?:std(?:err|out): )?(ERROR: .*)")  # launch.run_pip prefixes pip's streams
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception): ")
RECORD_SECTION = "sumi-extension-installers"
CONFLICTS_SECTION = "sumi-extension-conflicts"
_PATH_FLAGS = frozenset({"ckpt", "lyco_dir_backcompat"})
_records_lock = threading.Lock()


class InstallScriptError(ExtensionError):
    """install.py failed; `output` is everything it printed."""

    def __init__(self, message: str, output: str = "", extension: str | None = None) -> None:
        super().__init__(message)
        self.output = output
        self.extension = extension


# --- git -----------------------------------------------------------------------------------------


def git(args: Sequence[str], action: str = "git", timeout: float = GIT_TIMEOUT) -> str:
    """Run `git <args>`; its stdout, or ExtensionError("<action> failed: <git's message>")."""
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    cmd = [GIT, "-c", "protocol.ext.allow=never", *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
            stdin=subprocess.DEVNULL, env=env, timeout=timeout,
        )  # fmt: skip
    except FileNotFoundError:
        raise ExtensionError(f"{action} failed: git is not installed (or not on PATH; set GIT)") from None
    except subprocess.TimeoutExpired:
        raise ExtensionError(f"{action} failed: git did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}")[-2000:]
        raise ExtensionError(f"{action} failed: {message}")
    return proc.stdout


def normalize_git_url(url: str | None) -> str:
    """A1111's rule (drop every ".git") plus: no trailing slash; a local path or file:// URL -> absolute path."""
    if not url:
        return ""
    url = url.strip()
    local = url[len("file://") :] if url.startswith("file://") else url
    if "://" not in local and Path(local).expanduser().exists():
        url = str(Path(local).expanduser().resolve())
    return url.replace(".git", "").rstrip("/\\")


def dirname_from_url(url: str) -> str:
    """The folder name for `url`: its last path component with every ".git" removed (A1111)."""
    last = re.split(r"[/\\:]", url.strip().rstrip("/\\"))[-1]
    return last.replace(".git", "")


def _check_dirname(name: str) -> None:
    if not name or name in (".", "..") or re.search(r"[/\\\x00]", name) or name.startswith("-"):
        raise ExtensionError(f"Not a usable folder name for an extension: {name!r}")


def _is_local(url: str) -> bool:
    return "://" not in url and Path(url).expanduser().exists()


def clone_extension(
    url: str,
    extensions_dir: Path,
    tmp_root: Path,
    branch: str | None = None,
    dirname: str | None = None,
    installed_remotes: Sequence[str | None] = (),
) -> Path:
    """Clone `url` into `tmp_root/<dir>`, then move it to `extensions_dir/<dir>`; the new folder.

    Refuses an existing folder or a URL already installed. On any failure nothing is left in
    `extensions_dir` or `tmp_root`.
    """
    url = (url or "").strip()
    if not url:
        raise ExtensionError("No URL specified")
    if url.startswith("-"):
        raise ExtensionError(f"Not a git URL: {url!r}")
    branch = (branch or "").strip() or None
    if branch and branch.startswith("-"):
        raise ExtensionError(f"Not a branch name: {branch!r}")
    dirname = (dirname or "").strip() or dirname_from_url(url)
    _check_dirname(dirname)
    target = extensions_dir / dirname
    if target.exists():
        raise ExtensionError(f"Extension directory already exists: {target}")
    if any(normalize_git_url(r) == normalize_git_url(url) for r in installed_remotes if r):
        raise ExtensionError(f"Extension with this URL is already installed: {url}")

    source = str(Path(url).expanduser()) if _is_local(url) else url
    tmp = tmp_root / dirname
    _rmtree(tmp)
    try:
        tmp_root.mkdir(parents=True, exist_ok=True)
        cmd = ["clone"] + ([] if _is_local(url) else ["--filter=blob:none"])
        cmd += ["--branch", branch] if branch else []
        git(
            [*cmd, "--", source, str(tmp)],
            action=f"Cloning {url}" + (f" (branch {branch})" if branch else ""),
        )
        if (tmp / ".gitmodules").is_file():
            git(
                ["-C", str(tmp), "submodule", "update", "--init", "--recursive"], action="Updating submodules"
            )
        extensions_dir.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise ExtensionError(f"Extension directory already exists: {target}")
        _move(tmp, target)
    except OSError as e:
        raise ExtensionError(f"Could not install into {target}: {e}") from e
    finally:
        _rmtree(tmp)
        with contextlib.suppress(OSError):
            tmp_root.rmdir()  # only if empty
    return target


def _move(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`; across file systems (docker volumes) copy, and remove a half-made copy."""
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "already exists", str(dst)) from None
        try:
            shutil.copytree(src, dst, symlinks=True)
        except BaseException:
            _rmtree(dst)
            raise


def _rmtree(path: Path) -> None:
    def make_writable(func: Any, p: str, _exc: Any) -> None:  # git makes pack files read-only (Windows)
        with contextlib.suppress(OSError):
            os.chmod(p, stat.S_IWRITE)
            func(p)

    if not path.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable)
    else:
        shutil.rmtree(path, onerror=make_writable)


def _remote_name(path: Path) -> str | None:
    remotes = git(["-C", str(path), "remote"], action="Listing remotes").split()
    return "origin" if "origin" in remotes else (remotes[0] if remotes else None)


def read_repo_info(ext: Extension) -> Extension:
    """Fill `remote`, `branch`, `commit_hash`, `commit_date`, `version`; None/"" where not a git checkout."""
    ext.remote = ext.branch = ext.commit_hash = ext.commit_date = None
    ext.version = ""
    if (ext.path / ".git").exists():  # never let git find an enclosing repository
        where = ["-C", str(ext.path)]
        try:
            sha, date = git([*where, "log", "-1", "--format=%H %ct"], action=f"Reading {ext.name}").split()
            ext.commit_hash, ext.commit_date, ext.version = sha, int(date), sha[:8]
            with contextlib.suppress(ExtensionError):  # fails on a detached HEAD
                ext.branch = git([*where, "symbolic-ref", "--short", "-q", "HEAD"]).strip() or None
            remote = _remote_name(ext.path)
            if remote:
                ext.remote = git([*where, "remote", "get-url", remote], action="Reading the remote").strip()
        except (ExtensionError, ValueError) as e:
            log.warning("Failed reading extension data from git repository (%s): %s", ext.name, e)
    ext.have_info_from_repo = True
    return ext


def check_updates(ext: Extension) -> str:
    """Set `status` ("new commits", "behind HEAD", "latest", "unknown (...)") and `can_update`; returns status.

    "new commits": the remote branch moved since the last fetch (A1111's dry-run fetch; we ask with
    `git ls-remote`). "behind HEAD": fetched but not checked out. Also sets `remote_commit_hash`,
    `remote_commit_date` and `remote_commits_ahead`; to read the remote commit's date its objects are
    fetched into FETCH_HEAD only (`--refmap=`): the branch, the remote-tracking refs and the files stay.
    """
    ext.can_update = False
    ext.remote_commit_hash = ext.remote_commit_date = ext.remote_commits_ahead = None
    if not ext.remote:
        ext.status = "unknown"
        raise ExtensionError(
            f"Extension {ext.name} is not a git repository with a remote; it cannot be updated"
        )
    if not ext.branch:
        ext.status = "unknown (not on a branch)"
        return ext.status
    where = ["-C", str(ext.path)]
    remote = _remote_name(ext.path) or "origin"
    ref = f"refs/heads/{ext.branch}"
    try:
        lines = git(
            [*where, "ls-remote", remote, ref], action=f"Checking {ext.name} for updates"
        ).splitlines()
        remote_sha = next((ln.split()[0] for ln in lines if ln.split()[1:] == [ref]), None)
        if remote_sha is None:
            raise ExtensionError(
                f"Checking {ext.name} for updates failed: {remote} has no branch {ext.branch}"
            )
    except ExtensionError:
        ext.status = "unknown (remote error)"
        raise
    try:
        tracking = git([*where, "rev-parse", "--verify", "-q", f"refs/remotes/{remote}/{ext.branch}"]).strip()
    except ExtensionError:
        tracking = None
    head = git([*where, "rev-parse", "HEAD"], action=f"Reading {ext.name}").strip()
    if remote_sha != tracking:
        ext.status = "new commits"
    elif head != tracking:
        ext.status = "behind HEAD"
    else:
        ext.status = "latest"
    ext.can_update = ext.status != "latest"
    ext.remote_commit_hash = remote_sha
    _read_remote_commit(ext, remote, ref, head)
    return ext.status


def _has_commit(path: Path, sha: str) -> bool:
    try:
        git(["-C", str(path), "cat-file", "-e", f"{sha}^{{commit}}"])
    except ExtensionError:
        return False
    return True


def _read_remote_commit(ext: Extension, remote: str, ref: str, head: str) -> None:
    """Fill `remote_commit_date` and `remote_commits_ahead` for `ext.remote_commit_hash` (a failure leaves None)."""
    sha = ext.remote_commit_hash
    if not sha:
        return
    where = ["-C", str(ext.path)]
    try:
        if not _has_commit(ext.path, sha):
            git(
                [*where, "fetch", "--quiet", "--no-tags", "--refmap=", remote, ref],
                action=f"Fetching {ext.name}",
            )
        ext.remote_commit_date = int(git([*where, "log", "-1", "--format=%ct", sha]).strip())
        ext.remote_commits_ahead = int(git([*where, "rev-list", "--count", f"{head}..{sha}"]).strip())
    except (ExtensionError, ValueError) as e:
        log.warning("Could not read the remote commit %s of %s: %s", sha[:8], ext.name, e)


_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")


def checkout_commit(ext: Extension, commit: str) -> Extension:
    """Put the extension's files at `commit` (A1111's restore: `git reset --hard <commit>` on the current
    branch; local changes are lost). The commit is fetched from the remotes only when it is not here."""
    if not _SHA.match(commit or ""):
        raise ExtensionError(f"Restoring {ext.name}: {commit!r} is not a commit hash")
    if not (ext.path / ".git").exists():
        raise ExtensionError(f"Restoring {ext.name}: it is not a git repository")
    where = ["-C", str(ext.path)]
    if not _has_commit(ext.path, commit):
        if not _remote_name(ext.path):
            raise ExtensionError(f"Restoring {ext.name}: commit {commit[:8]} is not in the repository")
        git([*where, "fetch", "--all", "--quiet"], action=f"Fetching {ext.name}")
        if not _has_commit(ext.path, commit):
            raise ExtensionError(f"Restoring {ext.name}: commit {commit[:8]} is in none of its remotes")
    git([*where, "reset", "--quiet", "--hard", commit], action=f"Restoring {ext.name} to {commit[:8]}")
    if (ext.path / ".gitmodules").is_file():
        git(
            [*where, "submodule", "update", "--init", "--recursive"],
            action=f"Updating submodules of {ext.name}",
        )
    return read_repo_info(ext)


def has_local_changes(ext: Extension) -> bool:
    """True when the extension's git work tree has uncommitted changes (a restore would discard them)."""
    if not (ext.path / ".git").exists():
        return False
    try:
        return bool(git(["-C", str(ext.path), "status", "--porcelain", "--untracked-files=no"]).strip())
    except ExtensionError:
        return False


def update_repo(ext: Extension) -> Extension:
    """`git fetch --all` then `git reset --hard <remote>/<branch>` (A1111; local changes are lost)."""
    if not ext.remote:
        raise ExtensionError(
            f"Extension {ext.name} is not a git repository with a remote; it cannot be updated"
        )
    if not ext.branch:
        raise ExtensionError(
            f"Extension {ext.name} is not on a branch (detached at {ext.version}); check out a branch to update it"
        )
    where = ["-C", str(ext.path)]
    remote = _remote_name(ext.path) or "origin"
    git([*where, "fetch", "--all"], action=f"Fetching updates for {ext.name}")
    git([*where, "reset", "--hard", f"refs/remotes/{remote}/{ext.branch}"], action=f"Updating {ext.name}")
    if (ext.path / ".gitmodules").is_file():
        git(
            [*where, "submodule", "update", "--init", "--recursive"],
            action=f"Updating submodules of {ext.name}",
        )
    read_repo_info(ext)
    ext.can_update, ext.status = False, "latest"
    return ext


# --- install.py ----------------------------------------------------------------------------------


def core_constraints() -> list[str]:
    """pip constraint lines: the installed version of each of PROTECTED_PACKAGES, and torchvision at
    the release built for this torch (see `pins`)."""
    return constraint_lines()


def protecting() -> bool:
    """False only with SUMI_ALLOW_CORE_PACKAGE_CHANGES=1 (the user lifted the pins)."""
    return os.environ.get("SUMI_ALLOW_CORE_PACKAGE_CHANGES") != "1"


@contextlib.contextmanager
def constraints_file() -> Iterator[Path | None]:
    """A temporary pip constraints file of `core_constraints()` (None with SUMI_ALLOW_CORE_PACKAGE_CHANGES=1)."""
    if not protecting():
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="sumi-constraints-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(core_constraints()) + "\n")
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def pip_constraint_value(constraints: Path) -> str:
    """How to name `constraints` in PIP_CONSTRAINT, which pip splits at whitespace: a path with a
    space in it (a Windows user folder) goes as a file: URL, which pip also reads."""
    text = str(constraints)
    return constraints.resolve().as_uri() if re.search(r"\s", text) else text


def constrained_env(env: dict[str, str], constraints: Path | None) -> dict[str, str]:
    """`env` plus our constraints file in PIP_CONSTRAINT and UV_CONSTRAINT (after any the user set):
    install.py files that run `uv pip install` (adetailer does) are held to the same pins."""
    env = dict(env)
    if constraints is not None:
        env["PIP_CONSTRAINT"] = " ".join(
            p for p in (env.get("PIP_CONSTRAINT", ""), pip_constraint_value(constraints)) if p
        )
        env["UV_CONSTRAINT"] = " ".join(p for p in (env.get("UV_CONSTRAINT", ""), str(constraints)) if p)
    return env


def forwarded_flags(args: Any) -> list[str]:
    """Sumi's flags from `args` that differ from the defaults, as argv (absolute paths, no passwords)."""
    if not isinstance(args, argparse.Namespace):
        return []
    from modules.sumi.services.settings.flags import build_parser

    argv: list[str] = []
    for action in build_parser()._actions:
        dest = action.dest
        if not action.option_strings or is_secret_name(dest) or not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if value is None or value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:
            argv.append(flag)
            continue
        values = [str(v) for v in (value if isinstance(value, list) else [value])]
        if dest in _PATH_FLAGS or dest.endswith(("_dir", "_file", "_path")):
            values = [os.path.abspath(os.path.expanduser(v)) for v in values]
        if action.nargs in ("+", "*"):
            argv += [flag, *values]
        else:
            for v in values:
                argv += [flag, v]
    return argv


def tail(output: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def failure_summary(output: str) -> str:
    """What a failed install.py's message shows of its output when pip said why: the script's exception,
    pip's `ERROR:` lines and the pins it could not meet ("The user requested (constraint) ..."); else the
    last TAIL_LINES lines. A pip resolution failure is otherwise dozens of "X depends on Y" lines that hide
    its reason."""
    lines = [line.rstrip() for line in output.rstrip().splitlines()]
    errors = [m.group(1) for m in map(_PIP_ERROR.match, lines) if m]
    if not errors:
        return tail(output)
    raised = [line for line in lines if _EXCEPTION.match(line)][:1]
    pins = [line.strip() for line in lines if "The user requested (constraint)" in line]
    return "\n".join(dict.fromkeys(raised + errors[:SUMMARY_ERRORS] + pins[:SUMMARY_ERRORS]))


def run_python_script(
    script: Path,
    cwd: Path,
    argv: Sequence[str] = (),
    timeout: float = INSTALL_TIMEOUT,
    extension: str = "",
    report: Path | None = None,
) -> tuple[str, int | None]:
    """Run `script` with this Python the way install.py runs; (stdout+stderr, exit code or None on timeout).

    Every pip it starts sees the constraints file (PIP_CONSTRAINT); `launch.run_pip` there writes the
    conflicts it finds to `report`, naming `extension`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    env[pip_conflicts.EXTENSION_ENV] = extension
    env.pop(pip_conflicts.REPORT_ENV, None)
    if report is not None:
        env[pip_conflicts.REPORT_ENV] = str(report)
    with constraints_file() as constraints:
        env = constrained_env(env, constraints)
        proc = subprocess.Popen(
            [sys.executable, str(script), *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=os.name == "posix",
        )  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            _kill(proc)
            out, _ = proc.communicate()
            code = None
    return out.decode("utf-8", errors="replace"), code


def _kill(proc: subprocess.Popen) -> None:
    """Stop the script and whatever it started (pip) — its whole process group on POSIX."""
    with contextlib.suppress(OSError):
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()


def run_installer(ext: Extension, cache_file: Path, args: Any, timeout: float = INSTALL_TIMEOUT) -> str:
    """Run `ext`'s install.py; its output. InstallScriptError (with the output's tail) when it fails."""
    script = ext.path / "install.py"
    if not script.is_file():
        return ""
    fd, report_name = tempfile.mkstemp(prefix="sumi-pip-report-", suffix=".jsonl")
    os.close(fd)
    report = Path(report_name)
    try:
        output, code = run_python_script(
            script, ext.path, forwarded_flags(args), timeout, extension=ext.name, report=report
        )
        found = pip_conflicts.read_report(report)
    finally:
        report.unlink(missing_ok=True)
    if protecting():
        found += pip_conflicts.conflicts_from_pip_output(output, core_pins(), ext.name)
        if code != 0:
            output, code, left_out = _again_without_conflicting_extras(ext, args, timeout, output, code)
            if left_out:  # the same packages, said better
                found = [c for c in found if c.package not in {o.package for o in left_out}] + left_out
    records = _InstallRecords(cache_file)
    records.put_conflicts(ext.key, pip_conflicts.unique(found))
    if code != 0:
        records.put(ext.key, None)
        why = f"exit code {code}" if code is not None else f"stopped after {timeout:.0f} s"
        raise InstallScriptError(
            f"install.py of extension {ext.name} failed ({why}):\n{failure_summary(output)}",
            output=output,
            extension=ext.name,
        )
    records.put(ext.key, installer_digest(ext))
    return output


def _again_without_conflicting_extras(
    ext: Extension, args: Any, timeout: float, output: str, code: int | None
) -> tuple[str, int | None, list[Conflict]]:
    """install.py failed because pip could not install an optional extra under Sumi's pins: install the
    same packages without it, then run install.py once more (it finds them in place)."""
    installed, left_out, pip_output = install_without_conflicting_extras(
        output, core_pins(), ext.name, _pip_install
    )
    if not left_out:
        return output, code, []
    for c in left_out:
        log.warning("%s", c.message())
    if not installed:
        return output + "\n" + pip_output, code, left_out
    again, code = run_python_script(
        ext.path / "install.py", ext.path, forwarded_flags(args), timeout, ext.name
    )
    note = "Sumi installed the requirements without the extras above; install.py ran again:\n"
    return output + "\n" + note + again, code, left_out


def _pip_install(requirements: list[str]) -> subprocess.CompletedProcess:
    """`pip install requirements` in this interpreter under the core-package constraints."""
    with constraints_file() as constraints:
        return subprocess.run(
            [sys.executable, "-m", "pip", "install", *requirements],
            env=constrained_env(dict(os.environ), constraints),
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
        )


def recorded_conflicts(cache_file: Path) -> dict[str, list[Conflict]]:
    """Extension key -> the conflicts its last install.py run reported (kept in cache.json)."""
    return _InstallRecords(cache_file).conflicts()


def installer_digest(ext: Extension) -> str:
    """What a past install.py run depended on: install.py, requirements*.txt, the commit, the interpreter."""
    h = hashlib.sha256()
    for path in [ext.path / "install.py", *sorted(ext.path.glob("requirements*.txt"))]:
        with contextlib.suppress(OSError):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    if (ext.path / ".git").exists():
        with contextlib.suppress(ExtensionError):
            h.update(git(["-C", str(ext.path), "rev-parse", "HEAD"]).strip().encode())
    h.update(f"\0{sys.executable}\0{sys.version}".encode())
    return h.hexdigest()


def run_installers_at_start(
    extensions: list[Extension], cache_file: Path, args: Any, force: bool = False
) -> list[str]:
    """install.py of each non-built-in extension that is new or changed (all with `force`); failure messages."""
    records = _InstallRecords(cache_file)
    failures = []
    for ext in extensions:
        if ext.is_builtin or not (ext.path / "install.py").is_file():
            continue
        if not force and records.get(ext.key) == installer_digest(ext):
            continue
        log.info("Running install.py of extension %s", ext.name)
        try:
            output = run_installer(ext, cache_file, args)
            if output.strip():
                log.info("install.py of extension %s:\n%s", ext.name, output.rstrip())
        except InstallScriptError as e:
            log.error("%s\nThe whole output of its install.py:\n%s", e, e.output.rstrip())
            failures.append(str(e))
        except ExtensionError as e:
            log.error("%s", e)
            failures.append(str(e))
    return failures


class _InstallRecords:
    """The digest of each extension's last successful install.py run, in cache.json."""

    def __init__(self, cache_file: Path) -> None:
        self.cache_file = Path(cache_file)

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.cache_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None  # unreadable: leave it to the hash cache, which backs it up
        return data if isinstance(data, dict) else None

    def get(self, key: str) -> str | None:
        section = (self._read() or {}).get(RECORD_SECTION)
        return section.get(key) if isinstance(section, dict) else None

    def conflicts(self) -> dict[str, list[Conflict]]:
        """Extension key -> the conflicts its last install.py run reported."""
        section = (self._read() or {}).get(CONFLICTS_SECTION)
        if not isinstance(section, dict):
            return {}
        found = {}
        for key, items in section.items():
            if isinstance(items, list):
                found[str(key)] = [c for c in map(Conflict.from_json, items) if c is not None]
        return found

    def put_conflicts(self, key: str, found: list[Conflict]) -> None:
        """Replace what the extension's previous install.py run reported."""
        with _records_lock:
            data = self._read()
            if data is None:
                return
            section = data.get(CONFLICTS_SECTION)
            section = section if isinstance(section, dict) else {}
            if not found and key not in section:
                return
            if found:
                section[key] = [c.to_json() for c in found]
            else:
                section.pop(key, None)
            data[CONFLICTS_SECTION] = section
            self._write(data)

    def put(self, key: str, digest: str | None) -> None:
        with _records_lock:
            data = self._read()
            if data is None:
                return
            section = data.get(RECORD_SECTION)
            if not isinstance(section, dict):
                section = {}
            if digest is None and key not in section:
                return
            if digest is None:
                section.pop(key)
            else:
                section[key] = digest
            data[RECORD_SECTION] = section
            self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        try:
            write_json_atomic(self.cache_file, data)
        except OSError as e:
            log.warning("Could not write %s: %s", self.cache_file, e)
