"""What the category A, C and B-light extensions of `reference/extension_ecosystem.md` (39 of 58) use
from A1111: the data in `a1111_surface.json`, loaded as sets.

The JSON is written by `tools/scan_a1111_surface.py` from the extensions' sources at the commits it
names (its docstring gives the method and what is left out on purpose). Rescan after adding an
extension to the "extensions" table:

    python tools/scan_a1111_surface.py --a1111 A1111_CHECKOUT --extensions FOLDER_OF_EXTENSIONS
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

DATA = Path(__file__).with_name("a1111_surface.json")

Users = dict[str, set[str]]  # name -> the extensions that use it


@dataclass(frozen=True)
class Surface:
    extensions: dict[str, tuple[str, str]]  # name -> (category, "owner/repo@commit" scanned)
    modules: Users  # modules imported (`import` / `from ... import`)
    names: dict[str, Users]  # module -> {name read from it -> extensions}
    opts: Users  # `shared.opts.<name>`: methods and A1111's built-in setting keys
    state: Users  # `shared.state.<name>`
    cmd_opts: Users  # `shared.cmd_opts.<name>`: A1111 flags
    sd_model: Users  # `shared.sd_model.<name>`
    model_hijack: Users  # `sd_hijack.model_hijack.<name>`
    model_data: Users  # `sd_models.model_data.<name>`
    script_runner_txt2img: Users  # `scripts.scripts_txt2img.<name>`
    script_runner_img2img: Users  # `scripts.scripts_img2img.<name>`
    p_attrs: Users  # `p.<name>` on any processing object
    p_txt2img_attrs: Users  # `p.<name>` only txt2img processing objects have (hires fix)
    p_img2img_attrs: Users  # `p.<name>` only img2img processing objects have
    extension_options: Users  # `shared.opts.<name>` an extension registers itself (not checked)
    extension_flags: Users  # `shared.cmd_opts.<name>` from an extension's preload.py (not checked)


def load(path: Path = DATA) -> Surface:
    """Read a surface JSON file (this folder's by default); unknown or missing tables are an error."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    document.pop("about", None)
    expected = {f.name for f in fields(Surface)}
    if set(document) != expected:
        raise ValueError(f"{path}: tables {sorted(document)}, expected {sorted(expected)}")
    values = {}
    for name, table in document.items():
        if name == "extensions":
            values[name] = {ext: (entry["category"], entry["source"]) for ext, entry in table.items()}
        elif name == "names":
            values[name] = {module: _users(names) for module, names in table.items()}
        else:
            values[name] = _users(table)
    return Surface(**values)


def _users(table: dict[str, list[str]]) -> Users:
    return {name: set(extensions) for name, extensions in table.items()}
