"""The floor plan, pinned: imports only run downhill, one `Definitions`, one reader of the environment."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeGuard

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The house, bottom floor first: a module may import its own floor and the floors below it.
FLOORS = ("transforms", "resources", "stores", "assets", "orchestration")
BESIDE = ("services", "simulator", "benchmarks")
OURS = {*FLOORS, *BESIDE, "templates", "tests"}


def modules(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _tops(node: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level package) of each of ours that `node` imports, if it is an import."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
    else:
        return []
    return [(node.lineno, top) for name in names if (top := name.split(".")[0]) in OURS]


def _is_definitions_call(node: ast.AST) -> TypeGuard[ast.Call]:
    """`Definitions(...)` or `Definitions.merge(...)`."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    owner = func.value if isinstance(func, ast.Attribute) else None
    return name == "Definitions" or (
        name == "merge" and isinstance(owner, ast.Attribute) and owner.attr == "Definitions"
    )


def _touches_environment(node: ast.AST) -> TypeGuard[ast.Attribute]:
    """`os.environ`, `os.getenv`, `os.putenv`, `os.environb`."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr in {"environ", "getenv", "putenv", "environb"}
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _imports_environment(node: ast.AST) -> TypeGuard[ast.ImportFrom]:
    """`from os import environ` or `getenv`."""
    return (
        isinstance(node, ast.ImportFrom)
        and node.module == "os"
        and any(a.name in {"environ", "getenv"} for a in node.names)
    )


@dataclass(frozen=True)
class Facts:
    """What the rules below read of a module, in the order of one walk of its tree."""

    imports: tuple[tuple[int, str], ...]
    definitions: tuple[int, ...]
    environment: tuple[int, ...]  # lines touching it, then lines importing from it


@cache
def _facts(source: str, name: str) -> Facts:
    walked = list(ast.walk(ast.parse(source, name)))
    return Facts(
        imports=tuple(found for node in walked for found in _tops(node)),
        definitions=tuple(node.lineno for node in walked if _is_definitions_call(node)),
        environment=tuple(
            [n.lineno for n in walked if _touches_environment(n)]
            + [n.lineno for n in walked if _imports_environment(n)]
        ),
    )


def facts(path: Path) -> Facts:
    """The facts of the module at `path`: each module is parsed and walked once a session for the four
    rules (keyed by its text: an edit is a new key)."""
    return _facts(path.read_text(), str(path))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every import of ours in `path`, lazy imports included."""
    yield from facts(path).imports


def upward_imports() -> list[str]:
    found = []
    for floor, package in enumerate(FLOORS):
        for path in modules(package):
            for line, top in imported(path):
                allowed = set(FLOORS[: floor + 1])
                if package == "orchestration":  # the CLI starts the services and the simulator
                    allowed |= {"services", "simulator"}
                if top not in allowed:
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return found


def test_imports_only_run_downhill() -> None:
    assert upward_imports() == []


def test_nothing_beside_the_house_is_imported_by_it_but_the_services_the_cli_starts() -> None:
    into_benchmarks = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules(*FLOORS, "services", "simulator")
        for line, top in imported(path)
        if top in {"benchmarks", "tests"}
    ]
    assert into_benchmarks == []


def definitions_calls(path: Path) -> list[int]:
    """Lines of `Definitions(...)` and `Definitions.merge(...)` calls in `path`."""
    return list(facts(path).definitions)


def test_one_definitions_in_the_code() -> None:
    calls = {
        str(path.relative_to(ROOT)): lines
        for path in modules(*FLOORS, *BESIDE)
        if (lines := definitions_calls(path))
    }
    assert list(calls) == ["orchestration/definitions.py"]
    assert len(calls["orchestration/definitions.py"]) == 1


def environment_reads(path: Path) -> list[int]:
    """Lines that touch the process environment: `os.environ`, `os.getenv`, `os.putenv`."""
    return list(facts(path).environment)


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = {
        str(path.relative_to(ROOT)): lines for path in modules(*FLOORS) if (lines := environment_reads(path))
    }
    # and the package's allocator default, written before Polars loads (orchestration/__init__.py): it
    # sets one variable for Polars, and lakemail's configuration is still read in settings.py alone
    assert set(readers) == {"orchestration/settings.py", "orchestration/__init__.py"}
    assert len(readers["orchestration/__init__.py"]) == 1


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from assets.sends import sends\n", ["transforms/x.py:1 imports assets"]),
        ("def f():\n    from orchestration import cli\n", ["transforms/x.py:2 imports orchestration"]),
        ("from transforms.schema import X\nimport polars\n", []),
    ],
)
def test_the_floor_rule_sees_upward_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, expected: list[str]
) -> None:
    for folder in FLOORS:
        (tmp_path / folder).mkdir()
    (tmp_path / "transforms" / "x.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert upward_imports() == expected


def test_the_environment_rule_sees_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "x.py"
    path.write_text("import os\nfrom os import getenv\nKEY = os.environ.get('K')\n")
    assert environment_reads(path) == [3, 2]
