"""The house rules, read from the code itself: no import cycles, imports that point down the floors
(``ae_lab/core`` at the bottom, the entrypoints in ``ae_lab/run`` on top), no file over 300 lines,
and importing a module defines things and does nothing else.

The modules are found by walking ``ae_lab/``, ``scripts/`` and ``hydra_plugins/ae_lab/``, so a
module added anywhere there is held to the same rules without naming it here. Imports are read
with ``ast`` wherever they stand (in functions too, and under ``TYPE_CHECKING``): an import a
function makes late is still an edge of the house.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 300
CORE = "ae_lab.core"
RUN = "ae_lab.run"
# programs, on top of every floor like ae_lab/run: they may import the entrypoints
TOP = ("ae_lab.eval", "ae_lab.__main__", "scripts")


def module_files(*patterns: str) -> dict[str, Path]:
    """Every module under the given globs of the checkout, by its dotted name."""
    found = {}
    for pattern in patterns:
        for path in sorted(REPO.glob(pattern)):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = module_files("ae_lab/**/*.py", "scripts/*.py")
PLUGINS = module_files("hydra_plugins/ae_lab/**/*.py")


def imported(name: str, path: Path, module_level: bool = False) -> set[str]:
    """The dotted names a module's imports reach, relative ones made absolute; with
    ``module_level``, only those run as it is imported (not those inside functions or classes)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes: Iterable[ast.AST] = ast.walk(tree)
    if module_level:
        nodes = _module_level(tree.body)
    out: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package[: len(package) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def _module_level(body: list[ast.stmt]) -> Iterable[ast.AST]:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _module_level(getattr(node, field, []))


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Who imports whom among ``modules``; a module's import of its own package is left out."""
    return {
        name: {
            m
            for m in imported(name, path)
            if m in modules and m != name and not name.startswith(m + ".")
        }
        for name, path in modules.items()
    }


def package(name: str) -> str:
    """The package a module belongs to for the package-level rules: ``ae_lab.<package>``; a module
    directly under ``ae_lab/`` or in ``scripts/`` stands for itself."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "ae_lab" and len(parts) > 2 else name


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles a depth-first walk meets, each as the path that closes it."""
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                found.append([*stack[stack.index(v) :], v])
            elif not state.get(v):
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(edges):
        if not state.get(u):
            visit(u)
    return found


def in_package(name: str, pkg: str) -> bool:
    return name == pkg or name.startswith(pkg + ".")


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    return graph(MODULES)


def test_the_walk_finds_the_floors_and_the_entrypoints():
    # the rules below hold of nothing if the walk finds nothing
    for name in (CORE, "ae_lab.core.errors", RUN, "ae_lab.run.cli", *TOP[:2]):
        assert name in MODULES
    assert "hydra_plugins.ae_lab" in PLUGINS


def test_no_module_imports_one_that_imports_it_back(imports):
    found = [" -> ".join(c) for c in cycles(imports)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_ground_floor_imports_nothing_of_ae_lab_above_it(imports):
    above = {
        f"{m} imports {v}"
        for m, vs in imports.items()
        if in_package(m, CORE)
        for v in vs
        if in_package(v, "ae_lab") and not in_package(v, CORE)
    }
    assert not above, "ae_lab/core imports from above it:\n" + "\n".join(sorted(above))


def test_only_the_entrypoints_import_the_entrypoints(imports):
    below = {
        f"{m} imports {v}"
        for m, vs in imports.items()
        if not in_package(m, RUN) and not any(in_package(m, top) for top in TOP)
        for v in vs
        if in_package(v, RUN)
    }
    assert not below, "imports of ae_lab/run from below it:\n" + "\n".join(sorted(below))


def test_no_package_imports_one_that_imports_it(imports):
    packages: dict[str, set[str]] = {}
    for m, vs in imports.items():
        packages.setdefault(package(m), set()).update(
            package(v) for v in vs if package(v) != package(m)
        )
    found = [" -> ".join(c) for c in cycles(packages)]
    assert not found, "package cycles:\n" + "\n".join(found)


def test_no_file_of_ae_lab_is_over_300_lines():
    long = {
        f"{path.relative_to(REPO)}: {n} lines"
        for path in MODULES.values()
        if path.is_relative_to(REPO / "ae_lab")
        and (n := len(path.read_text().splitlines(keepends=True))) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines:\n" + "\n".join(sorted(long))


# Runs in a fresh interpreter: imports the libraries the modules import as they load, notes what
# a module could change, then imports the modules one by one (each after those it imports) and
# reports what each changed, with the modules of ae_lab it loaded. The libraries go first because
# what they do as they load (Lightning adds its loggers' handlers and sets an environment
# variable) is theirs, not ae_lab's.
PROBE = """
import importlib, json, logging, os, sys, warnings
modules, libraries = json.loads(sys.stdin.read())
for name in libraries:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # "from x import function": x is imported, the function is no module
import torch
from omegaconf.basecontainer import BaseContainer

LOGGERS = ("", "lightning", "lightning.pytorch", "lightning.fabric")
OURS = ("ae_lab", "hydra_plugins.ae_lab")
ENV_WRITES = ("os.putenv", "os.unsetenv")

def state():
    def logger(name):
        lg = logging.getLogger(name)
        handlers = [(type(h).__name__, h.level, id(h)) for h in lg.handlers]
        return [lg.level, lg.propagate, lg.disabled, handlers]

    return {
        "OmegaConf resolvers": sorted(BaseContainer._resolvers),
        "warnings.filters": [repr(f) for f in warnings.filters],
        "loggers (level, propagate, disabled, handlers)": {n or "root": logger(n) for n in LOGGERS},
        "os.environ": dict(os.environ),
        "os.environ writes": list(writes),
        "torch threads": [torch.get_num_threads(), torch.get_num_interop_threads()],
        "torch matmul precision": torch.get_float32_matmul_precision(),
    }

# a write of the value the variable has already (this test's process, which has imported ae_lab,
# passes its environment on) shows only as the write
writes = []
sys.addaudithook(lambda event, args: event in ENV_WRITES and writes.append([event, *args]))

def changes(old, new):
    if isinstance(old, dict) and isinstance(new, dict):  # the entries that changed, not all
        return {k: [old.get(k), new.get(k)] for k in {*old, *new} if old.get(k) != new.get(k)}
    return [old, new]

changed = {}
before, loaded = state(), set(sys.modules)
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as err:
        changed[name] = {"import failed": repr(err)}
        continue
    after = state()
    diff = {k: changes(before[k], after[k]) for k in after if after[k] != before[k]}
    if diff:
        ours = sorted(m for m in set(sys.modules) - loaded if m.startswith(OURS))
        changed[f"{name} (loading {', '.join(ours)})"] = diff
    before, loaded = after, set(sys.modules)
print(json.dumps(changed, default=str))
"""


def import_order(modules: dict[str, Path]) -> list[str]:
    """The modules, each after every module that importing it loads (its packages, what they and
    it import as they load), so that a change is put down to the module that made it; modules
    that load each other (a package whose ``__init__`` imports its modules) come together."""
    needs = {
        name: {m for m in imported(name, path, True) if m in modules and m != name}
        for name, path in modules.items()
    }
    for name in modules:
        parts = name.split(".")
        needs[name] |= {".".join(parts[:i]) for i in range(1, len(parts))} & modules.keys()

    def loads(name: str) -> set[str]:
        done, todo = set(), [name]
        while todo:
            m = todo.pop()
            if m not in done:
                done.add(m)
                todo.extend(needs[m])
        return done

    size = {name: len(loads(name)) for name in modules}
    return sorted(modules, key=lambda name: (size[name], name))


def libraries(modules: dict[str, Path]) -> list[str]:
    """What the modules import as they load from outside ae_lab, in the order they name it."""
    names = dict.fromkeys(
        m
        for name, path in modules.items()
        for m in sorted(imported(name, path, module_level=True))
        if m and not m.startswith(("__future__", "ae_lab", "hydra_plugins.ae_lab"))
    )
    return list(names)


def test_importing_any_module_changes_nothing_in_the_process():
    modules = {n: p for n, p in {**MODULES, **PLUGINS}.items() if not n.startswith("scripts")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        input=json.dumps([import_order(modules), libraries(modules)]),  # names, on no command line
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    changed = json.loads(proc.stdout.splitlines()[-1])
    report = [
        f"importing {name} changed {what}: {diff}"
        for name, diffs in changed.items()
        for what, diff in diffs.items()
    ]
    assert not report, "\n".join(report)


SETUP = """
import json, warnings
from omegaconf import OmegaConf
from ae_lab.run import process

names = ("run_name", "ae_lab_data_root", "ae_lab_image_shape", "ae_lab_help")
seen = [[OmegaConf.has_resolver(n) for n in names]]
process.setup()
once = list(warnings.filters)
process.setup()
seen += [[OmegaConf.has_resolver(n) for n in names], once == warnings.filters]
print(json.dumps(seen))
"""


def test_the_commands_setup_registers_the_resolvers_and_may_run_again():
    """What importing no longer does, the commands' (and the task functions') setup does: in a
    launcher's job it runs again, to the same effect."""
    proc = subprocess.run(
        [sys.executable, "-c", SETUP], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after, same = json.loads(proc.stdout.splitlines()[-1])
    assert not any(before) and all(after) and same
