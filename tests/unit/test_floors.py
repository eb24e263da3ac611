"""The floor plan, pinned: imports only run downhill, one `Definitions`, one reader of the environment."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The house, bottom floor first: a module may import its own floor and the floors below it.
FLOORS = ("transforms", "resources", "stores", "assets", "orchestration")
BESIDE = ("services", "simulator", "benchmarks")
OURS = {*FLOORS, *BESIDE, "templates", "tests"}


def modules(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


@cache
def _nodes(source: str, name: str) -> tuple[ast.AST, ...]:
    return tuple(ast.walk(ast.parse(source, name)))


def nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of the module at `path`, parsed once a session for the rules below (keyed by its text)."""
    return _nodes(path.read_text(), str(path))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every import of ours in `path`, lazy imports included."""
    for node in nodes(path):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in OURS:
                yield node.lineno, top


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
    lines = []
    for node in nodes(path):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            if name == "Definitions" or (
                name == "merge" and isinstance(owner, ast.Attribute) and owner.attr == "Definitions"
            ):
                lines.append(node.lineno)
    return lines


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
    walked = nodes(path)
    lines = [
        node.lineno
        for node in walked
        if isinstance(node, ast.Attribute)
        and node.attr in {"environ", "getenv", "putenv", "environb"}
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]
    lines += [
        node.lineno
        for node in walked
        if isinstance(node, ast.ImportFrom)
        and node.module == "os"
        and any(a.name in {"environ", "getenv"} for a in node.names)
    ]
    return lines


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
