"""What a job's outcome depends on besides its input files, given to Snakemake as params so that a change
reruns the job (and what depends on it), and nothing else: the code a stage runs, the versions of a format's
libraries, the state of a user's image folder.

The code of a stage is what its script imports inside this package, followed statically (`ast`, nothing is
imported): the import closure of the stage's script, plus, for a per-format stage, the format's backend
module and what that imports. `fmtbench.backends` reaches backends by name at run time, so one format's
closure holds no other backend: a change to one backend reruns that format only. Importing a submodule runs
its packages' `__init__`, so those count too. Each module counts by its code without docstrings and comments
(the `ast.dump` of its parse, docstrings removed; positions are not dumped): a docstring, a comment or a blank
line reruns nothing. The digest is of the dump, so another Python version (another AST) reruns everything once.
A stage's `code` param lists each module with its digest, so Snakemake's reason for a rerun names the module.

Light on purpose (no torch): the Snakefile calls this for every job on every invocation. What a parse found is kept
in `.snakemake/` of the working directory (`CACHE`), per file by its path, modification time and size and per
Python version, so a run that changed nothing parses nothing.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from fmtbench import atomic, backends, versions

PACKAGE = __name__.partition(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = PACKAGE_DIR.parent / "scripts"
# The script each stage's rule runs (rules/*.smk `script:`): scripts/ holds one adapter per rule, named after it.
STAGE_SCRIPTS = {stage: f"{stage}.py" for stage in ("model", "images", "reference", "export", "benchmark", "report")}

# hex characters of a module's digest in a stage's `code` param: enough to tell its versions apart, short enough
# for Snakemake's rerun reason to stay readable
DIGEST_CHARS = 8
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
CACHE = Path(".snakemake") / "fmtbench-code.json"
_parsed: dict[Path, tuple[tuple[int, int], str, frozenset[str]]] = {}
_hashes: dict[tuple, tuple[tuple, str]] = {}
_cache = {"loaded": False, "dirty": False}


def _python() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def _load_cache() -> None:
    """What earlier invocations parsed (CACHE), once per process; an unreadable or other Python's cache is ignored."""
    if _cache["loaded"]:
        return
    _cache["loaded"] = True
    try:
        saved = json.loads(CACHE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(saved, dict) or saved.get("python") != _python():
        return
    for path, (mtime_ns, size, digest, imported) in saved.get("files", {}).items():
        _parsed.setdefault(Path(path), ((mtime_ns, size), digest, frozenset(imported)))


def _save_cache() -> None:
    """Writes CACHE where something new was parsed (and Snakemake's folder is there: nothing is made for it)."""
    if not _cache["dirty"] or not CACHE.parent.is_dir():
        return
    files = {str(path): [stamp[0], stamp[1], digest, sorted(imported)]
             for path, (stamp, digest, imported) in _parsed.items()}
    try:
        with atomic.atomic_path(CACHE) as temporary:
            Path(temporary).write_text(json.dumps({"python": _python(), "files": files}), encoding="utf-8")
    except OSError:
        return  # a read-only working directory: parse again next time
    _cache["dirty"] = False


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, _DOCUMENTED) and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str):
            node.body = node.body[1:]
    return tree


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a `from ... import` names, relative imports resolved against `module`."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _imported(tree: ast.Module, module: str, is_package: bool) -> frozenset[str]:
    """Every name an import statement of the module (at any depth: in functions too) could be a module of this
    package by: `from a import b` may import module `a.b` or an attribute of `a`; `_file` tells them apart."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return frozenset(name for name in names if name == PACKAGE or name.startswith(PACKAGE + "."))


def _parse(path: Path, module: str) -> tuple[str, frozenset[str]]:
    """(digest of the module's code without docstrings and comments, the package modules it may import);
    parsed once per version of the file."""
    _load_cache()
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _parsed.get(path)
    if cached and cached[0] == stamp:
        return cached[1], cached[2]
    tree = ast.parse(path.read_bytes(), filename=str(path))
    imported = _imported(tree, module, path.name == "__init__.py")
    digest = hashlib.sha256(ast.dump(_without_docstrings(tree)).encode()).hexdigest()
    _parsed[path] = (stamp, digest, imported)
    _cache["dirty"] = True
    return digest, imported


def _file(module: str) -> Path | None:
    """The source file of a module of this package, or None (an attribute, not a module)."""
    base = PACKAGE_DIR.joinpath(*module.split(".")[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _with_packages(module: str) -> list[str]:
    """A module and the packages whose `__init__` importing it runs."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def _closure(roots: Iterable[tuple[str, Path]]) -> dict[str, Path]:
    """module name -> file: the roots and every package module they import, directly or not."""
    found: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        module, path = todo.pop()
        if module in found:
            continue
        found[module] = path
        for imported in _parse(path, module)[1]:
            todo += [(name, file) for name in _with_packages(imported) if name not in found and (file := _file(name))]
    return found


def stage_modules(stage: str, format_name: str | None = None) -> dict[str, Path]:
    """What a stage runs: its script (as `scripts/<name>`) and the package modules in its import closure, plus,
    for a per-format stage, the format's backend module (inside the package or not, `backend_modules`) and its
    closure."""
    script = STAGE_SCRIPTS[stage]
    roots = [(f"scripts/{script}", SCRIPTS_DIR / script)]
    if format_name is not None:
        module = backends.module_name(format_name)
        roots.append((module, _file(module) if module.startswith(PACKAGE + ".") else backends.source_file(format_name)))
    return dict(sorted(_closure(roots).items()))


def _stamps(files: Iterable[Path]) -> tuple:
    return tuple((path, path.stat().st_mtime_ns, path.stat().st_size) for path in files)


def code_hash(stage: str, format_name: str | None = None) -> str:
    """The code a stage runs (see the module's docstring) as `module:digest` per module, sorted and comma-separated
    (`report.render:1a2b3c4d, scripts/report.py:5e6f7a8b, …`; a module of this package without its `fmtbench.`,
    DIGEST_CHARS hex characters of its digest): given as the rule's `code` param, so that Snakemake's reason for a
    rerun ("Params have changed … before: … now: …") shows which module changed. Snakemake's own code trigger sees
    only the script file, by its modification time. Kept per process until one of the files changes (the Snakefile
    asks once per job)."""
    key = (stage, format_name, backends.module_name(format_name) if format_name else None)
    cached = _hashes.get(key)
    if not (cached and cached[0] == _stamps(path for path, _, _ in cached[0])):
        modules = stage_modules(stage, format_name)
        text = ", ".join(f"{module.removeprefix(PACKAGE + '.')}:{_parse(path, module)[0][:DIGEST_CHARS]}"
                         for module, path in modules.items())
        _hashes[key] = (_stamps(modules.values()), text)
    _save_cache()  # also when nothing new was hashed: a first run hashes before Snakemake makes its folder
    return _hashes[key][1]


def library_versions(format_name: str) -> dict[str, str]:
    """The versions of the distributions a format declares (SPEC.libraries)."""
    return versions.versions(backends.spec(format_name).libraries)


def images_fingerprint(folder: str | None) -> str:
    """Names, sizes and mtimes of a user's image folder, so added or changed files rerun the study."""
    if not folder:
        return "generated"
    digest = hashlib.sha256()
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            stat = os.stat(os.path.join(root, name))
            digest.update(f"{root}/{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
