"""A1111's `modules.launch_utils`: the same helpers as the root `launch` module, which install.py files
and extensions use (`git_tag`, `is_installed`, `run_pip`, `run`, `commit_hash`, ...)."""

from __future__ import annotations

from launch import (  # noqa: F401
    args,
    commit_hash,
    dir_repos,
    git,
    git_clone,
    git_tag,
    index_url,
    is_installed,
    python,
    repo_dir,
    run,
    run_extension_installer,
    run_pip,
)
