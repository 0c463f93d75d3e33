"""Scan A1111 extensions' Python sources for what they use from A1111; write tests/compat/a1111_surface.json.

    python tools/scan_a1111_surface.py --a1111 A1111_CHECKOUT --extensions FOLDER [-o OUT.json]

FOLDER holds one sub-folder per extension, named as in the index (`--index`, by default the JSON file
being written: its "extensions" table gives each extension's category and the `owner/repo@commit` its
sources must be checked out at: `git clone https://github.com/<owner/repo> FOLDER/<name>` then
`git -C FOLDER/<name> checkout <commit>`). A1111_CHECKOUT is A1111 v1.10.1 (`82a973c`), which says what exists
in A1111: its modules, their top-level names, the attributes of its processing classes, its settings
and its flags. Only sources are read (no code is run). The coverage test
(tests/compat/test_a1111_import_coverage.py) checks every module and name in the JSON against Sumi.

The method, that of reference/extension_ecosystem.md (on its 39 A, C and B-light extensions this
reproduces tests/compat/a1111_surface.json exactly): every `.py` file of an extension (test folders
excluded) is read with `ast`:
* imports, anywhere in a file and inside `try:` too (A1111 takes that branch): `import modules.X
  [as y]`, `from modules import X`, `from modules.X import Y` (a module when A1111 has
  `modules/X/Y.py`, else the name Y read from `modules.X`), `from modules.X import *`, `import launch`,
  `from launch import Y`. `modules` lists the modules named by import statements;
* every attribute chain rooted at an imported name: `shared.opts.samples_format` reads `opts` from
  `modules.shared`, then the setting `samples_format`; after `import modules`,
  `modules.images.save_image` reads `save_image` from `modules.images`. The chain's last attribute
  does not count where it is assigned (`shared.opts.x = 1` reads `shared.opts` only); nor do
  `getattr(x, "name")` / `hasattr(...)`, which extensions use for what may be missing;
* the next attribute of the objects extensions reach into (`OBJECT_TABLES`: `shared.opts.X`,
  `shared.state.X`, `shared.cmd_opts.X`, `shared.sd_model.X`, `sd_hijack.model_hijack.X`,
  `sd_models.model_data.X`, `scripts.scripts_txt2img.X` / `scripts_img2img.X`);
* `p.X` (the conventional name of a processing object) where X is an attribute of A1111's
  `StableDiffusionProcessing` (`p_attrs`), or only of its txt2img or img2img subclass.

Checked against A1111 v1.10.1, and left out where it lacks them: modules it does not have (SD.Next /
Forge fallbacks such as `modules.postprocess`), names read through a module that its file does not
define (other forks' names such as `shared.log`, names added after 1.10 such as `paths.Prioritize`,
local variables that shadow a module such as `images.append`), names read through an old module
name A1111 keeps importable (`modules.generation_parameters_copypaste`), dunders, and `p.X` that are
not processing attributes (adetailer's `p._ad_*`). A name an extension imports counts even where
A1111 lacks it: that import would fail. Settings and flags A1111 does not define are extensions' own:
`extension_options` (registered in an `on_ui_settings`) and `extension_flags` (from a `preload.py`,
or another extension's): recorded, not checked.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "tests" / "compat" / "a1111_surface.json"

# (module, name) -> the table of that object's attributes
OBJECT_TABLES = {
    ("modules.shared", "opts"): "opts",
    ("modules.shared", "state"): "state",
    ("modules.shared", "cmd_opts"): "cmd_opts",
    ("modules.shared", "sd_model"): "sd_model",
    ("modules.sd_hijack", "model_hijack"): "model_hijack",
    ("modules.sd_models", "model_data"): "model_data",
    ("modules.scripts", "scripts_txt2img"): "script_runner_txt2img",
    ("modules.scripts", "scripts_img2img"): "script_runner_img2img",
}
# name -> extensions, per table (besides "extensions", "modules" and the per-module "names")
TABLES = (
    "opts",
    "state",
    "cmd_opts",
    "sd_model",
    "model_hijack",
    "model_data",
    "script_runner_txt2img",
    "script_runner_img2img",
    "p_attrs",
    "p_txt2img_attrs",
    "p_img2img_attrs",
    "extension_options",
    "extension_flags",
)
TEST_FOLDERS = {"test", "tests"}
ABOUT = (
    "What these extensions use from A1111, from their sources at the commits under 'extensions'. "
    "Written by tools/scan_a1111_surface.py, whose docstring gives the method. Each table maps a name "
    "to the extensions that use it ('names': module -> name -> extensions)."
)
ROOT_MODULES = ("modules", "launch")  # what counts as A1111 (not ldm, sgm, k_diffusion, ...)


# -- what A1111 has ------------------------------------------------------------------------------------


@dataclass
class A1111:
    """What exists in an A1111 checkout, read from its sources."""

    modules: set[str] = field(default_factory=set)  # "modules.shared", "modules.api", "launch", ...
    names: dict[str, set[str]] = field(default_factory=dict)  # module -> its top-level names
    processing: dict[str, set[str]] = field(default_factory=dict)  # "base" / "txt2img" / "img2img"
    options: set[str] = field(default_factory=set)  # Options' attributes and the built-in setting keys
    flags: set[str] = field(default_factory=set)  # argparse dests of A1111's (and built-ins') flags

    @classmethod
    def read(cls, root: Path) -> A1111:
        ref = cls()
        aliases: set[str] = set()
        for path in sorted((root / "modules").rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            tree = _parse(path)
            ref.modules.update(_packages(module))
            ref.names.setdefault(module, set()).update(top_level_names(tree))
            aliases.update(module_aliases(tree))
        # Old names kept importable (`modules.generation_parameters_copypaste`) are modules, but the
        # names read through them are not resolved (as in the reference scan): only imports count.
        ref.modules.update(aliases)
        ref.modules.add("launch")
        ref.names["launch"] = top_level_names(_parse(root / "launch.py"))
        for module in ref.modules:  # a package's sub-modules are names of it
            parent, _, last = module.rpartition(".")
            if parent:
                ref.names.setdefault(parent, set()).add(last)
        ref.processing = processing_attributes(_parse(root / "modules" / "processing.py"))
        ref.options = options_attributes(_parse(root / "modules" / "options.py"))
        sources = [*(root / "modules").rglob("*.py"), *(root / "extensions-builtin").rglob("*.py")]
        for path in sources:
            tree = _parse(path)
            ref.options |= builtin_option_keys(tree)
            ref.flags |= flag_dests(tree)
        return ref

    def is_module(self, name: str) -> bool:
        return name in self.modules


def _packages(module: str) -> Iterator[str]:
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8-sig", errors="replace"), str(path))
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def _top_statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements at module level, also inside if/try/with/for blocks (not inside defs or classes)."""
    for node in body:
        yield node
        for name in ("body", "orelse", "finalbody"):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from _top_statements(getattr(node, name, []))
        for handler in getattr(node, "handlers", []):
            yield from _top_statements(handler.body)


def module_aliases(tree: ast.Module) -> Iterator[str]:
    """`sys.modules["modules.old_name"] = sys.modules[__name__]`: the old names a module answers to."""
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript)):
            continue
        for target in node.targets:
            if (
                isinstance(target, ast.Subscript)
                and ast.unparse(target.value) == "sys.modules"
                and ast.unparse(node.value) == "sys.modules[__name__]"
                and isinstance(target.slice, ast.Constant)
            ):
                yield target.slice.value


def _target_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _target_names(element)


def top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in _top_statements(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_target_names(target))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.For):
            names.update(_target_names(node.target))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    names.discard("*")
    return names


def _class_attributes(cls: ast.ClassDef) -> set[str]:
    """Fields, class attributes, methods and properties, and every `self.X = ...` in its methods."""
    attrs: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            attrs.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                attrs.update(_target_names(target))
        elif isinstance(node, ast.AnnAssign):
            attrs.update(_target_names(node.target))
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                attrs.add(target.attr)
    return attrs


def processing_attributes(tree: ast.Module) -> dict[str, set[str]]:
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    base = _class_attributes(classes["StableDiffusionProcessing"])
    return {
        "base": base,
        "txt2img": _class_attributes(classes["StableDiffusionProcessingTxt2Img"]) - base,
        "img2img": _class_attributes(classes["StableDiffusionProcessingImg2Img"]) - base,
    }


def options_attributes(tree: ast.Module) -> set[str]:
    return next(
        _class_attributes(node)
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "Options"
    )


def builtin_option_keys(tree: ast.Module) -> set[str]:
    """The keys of the dicts given to `options_section(...)` (A1111's built-in settings)."""
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) == "options_section":
            for arg in node.args[1:]:
                if isinstance(arg, ast.Dict):
                    keys.update(k.value for k in arg.keys if isinstance(k, ast.Constant))
    return keys


def flag_dests(tree: ast.Module) -> set[str]:
    """The dests of `parser.add_argument("--flag", ...)` calls."""
    dests: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) == "add_argument":
            dest = next((k.value for k in node.keywords if k.arg == "dest"), None)
            if isinstance(dest, ast.Constant):
                dests.add(dest.value)
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
                    dests.add(arg.value[2:].replace("-", "_"))
                    break
    return dests


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


# -- what one extension uses --------------------------------------------------------------------------------


@dataclass
class Uses:
    """What one extension reads from A1111, before the tables are filtered by what A1111 has."""

    modules: set[str] = field(default_factory=set)  # named in import statements
    imported: set[tuple[str, str]] = field(default_factory=set)  # (module, name) from `from m import n`
    read: set[tuple[str, str]] = field(default_factory=set)  # (module, name) at the head of a chain
    objects: set[tuple[str, str]] = field(default_factory=set)  # (table, attribute)
    p_attrs: set[str] = field(default_factory=set)


class FileScanner(ast.NodeVisitor):
    """Collects one file's imports from A1111 and the attribute chains rooted at them."""

    def __init__(self, ref: A1111, uses: Uses) -> None:
        self.ref, self.uses = ref, uses
        self.aliases: dict[str, tuple[str, str | None]] = {}  # local name -> (module, name or None)

    def scan(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):  # imports first, wherever they are: uses may come before them
            if isinstance(node, ast.Import):
                self._import(node)
            elif isinstance(node, ast.ImportFrom):
                self._import_from(node)
        self.visit(tree)

    def _import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] not in ROOT_MODULES:
                continue
            self.uses.modules.update(m for m in _packages(alias.name) if m != "modules")
            if alias.asname:
                self.aliases[alias.asname] = (alias.name, None)
            else:
                root = alias.name.split(".")[0]
                self.aliases[root] = (root, None)

    def _import_from(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or module.split(".")[0] not in ROOT_MODULES:
            return
        for alias in node.names:
            if alias.name == "*":
                self.uses.modules.add(module)
                continue
            local = alias.asname or alias.name
            full = f"{module}.{alias.name}"
            if self.ref.is_module(full) or module == "modules":
                self.uses.modules.add(full)
                self.aliases[local] = (full, None)
            else:
                self.uses.modules.add(module)
                self.uses.imported.add((module, alias.name))
                self.aliases[local] = (module, alias.name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = _chain(node)
        if chain is None:
            self.generic_visit(node)
            return
        if not isinstance(node.ctx, ast.Load):  # `shared.opts.x = ...` reads shared.opts, writes x
            chain = chain[:-1]
        self._use(chain)

    def _use(self, chain: list[str]) -> None:
        root, *attrs = chain
        if root == "p" and attrs:
            self.uses.p_attrs.add(attrs[0])
        if root not in self.aliases or not attrs:
            return
        module, name = self.aliases[root]
        if name is None:  # a module: go down through its sub-modules
            while attrs and self.ref.is_module(f"{module}.{attrs[0]}"):
                module = f"{module}.{attrs.pop(0)}"
            if not attrs or module == "modules":
                return
            name = attrs.pop(0)
            self.uses.read.add((module, name))
        table = OBJECT_TABLES.get((module, name))
        if table and attrs:
            self.uses.objects.add((table, attrs[0]))


def _chain(node: ast.Attribute) -> list[str] | None:
    """`a.b.c` -> ["a", "b", "c"]; None when the chain does not start at a plain name."""
    parts = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return [current.id, *reversed(parts)]


def python_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*.py")):
        if not TEST_FOLDERS & set(path.relative_to(folder).parts[:-1]):
            yield path


def scan_extension(folder: Path, ref: A1111) -> Uses:
    uses = Uses()
    for path in python_files(folder):
        FileScanner(ref, uses).scan(_parse(path))
    return uses


# -- the tables ---------------------------------------------------------------------------------------------


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def surface(
    extensions: Mapping[str, Mapping[str, str]], folder: Path, ref: A1111, about: str = ABOUT
) -> dict:
    """The JSON document for `extensions` (name -> {"category", "source"}), scanned in `folder/<name>`."""
    modules: dict[str, set[str]] = defaultdict(set)
    names: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    tables: dict[str, dict[str, set[str]]] = {table: defaultdict(set) for table in TABLES}
    for extension in extensions:
        uses = scan_extension(folder / extension, ref)
        for module in uses.modules:
            if ref.is_module(module):
                modules[module].add(extension)
        # An imported name counts even where A1111 lacks it (the import would fail); a name read
        # through a module only where A1111's file defines it (the rest are other forks' names,
        # guarded, or local variables that shadow a module).
        read = {(m, n) for m, n in uses.read if n in ref.names.get(m, ())}
        for module, name in uses.imported | read:
            if ref.is_module(module) and not _dunder(name):
                names[module][name].add(extension)
        for table, attr in uses.objects:
            if _dunder(attr):
                continue
            if table == "opts" and attr not in ref.options:
                table = "extension_options"
            elif table == "cmd_opts" and attr not in ref.flags:
                table = "extension_flags"
            tables[table][attr].add(extension)
        for attr in uses.p_attrs:
            for kind, table in (
                ("base", "p_attrs"),
                ("txt2img", "p_txt2img_attrs"),
                ("img2img", "p_img2img_attrs"),
            ):
                if attr in ref.processing[kind]:
                    tables[table][attr].add(extension)
    document = {
        "about": about,
        "extensions": {name: dict(extensions[name]) for name in sorted(extensions)},
        "modules": _sorted(modules),
        "names": {module: _sorted(names[module]) for module in sorted(names)},
    }
    document.update({table: _sorted(tables[table]) for table in TABLES})
    return document


def _sorted(table: Mapping[str, set[str]]) -> dict[str, list[str]]:
    return {name: sorted(table[name]) for name in sorted(table)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a1111", type=Path, required=True, help="an A1111 v1.10.1 checkout")
    parser.add_argument("--extensions", type=Path, required=True, help="a folder of extension folders")
    parser.add_argument(
        "--index", type=Path, default=DEFAULT_JSON, help="JSON whose 'extensions' table to scan"
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    index = json.loads(args.index.read_text(encoding="utf-8"))
    extensions = index["extensions"]
    missing = [name for name in extensions if not (args.extensions / name).is_dir()]
    if missing:
        parser.error(f"no folder in {args.extensions} for: {', '.join(missing)}")
    document = surface(extensions, args.extensions, A1111.read(args.a1111), index.get("about", ABOUT))
    args.output.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.output}: {len(document['modules'])} modules of {len(extensions)} extensions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
