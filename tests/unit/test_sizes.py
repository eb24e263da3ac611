"""Small modules, short functions: no module over 300 lines and no function over 60, in the
house and beside it (benchmarks and tests aside)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("transforms", "resources", "stores", "assets", "orchestration", "services", "simulator")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def modules(root: Path) -> Iterator[Path]:
    for folder in FOLDERS:
        yield from sorted((root / folder).rglob("*.py"))


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function and method in `tree`, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            yield name, (node.end_lineno or node.lineno) - node.lineno + 1
            yield from functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def oversized(root: Path) -> dict[str, int]:
    """`path` (a module) or `path::name` (a function) -> its lines, for each one over its limit."""
    found: dict[str, int] = {}
    for path in modules(root):
        source = path.read_text()
        relative = path.relative_to(root).as_posix()
        if (lines := len(source.splitlines())) > MAX_MODULE_LINES:
            found[relative] = lines
        for name, lines in functions(ast.parse(source, str(path))):
            if lines > MAX_FUNCTION_LINES:
                found[f"{relative}::{name}"] = lines
    return found


def test_no_module_over_300_lines_and_no_function_over_60() -> None:
    assert oversized(ROOT) == {}


def _function(name: str, body_lines: int, indent: str = "") -> str:
    """Source of a function spanning 1 + `body_lines` lines."""
    return f"{indent}def {name}():\n" + f"{indent}    x = 1\n" * body_lines


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n" * 300, {}),
        ("x = 1\n" * 301, {"transforms/x.py": 301}),
        (_function("fits", 59), {}),
        (_function("too_long", 60), {"transforms/x.py::too_long": 61}),
        (_function("f", 2) + "async " + _function("g", 60), {"transforms/x.py::g": 61}),
        ("class C:\n" + _function("method", 60, "    "), {"transforms/x.py::C.method": 61}),
        (
            "def outer():\n" + _function("inner", 60, "    "),
            {"transforms/x.py::outer": 62, "transforms/x.py::outer.inner": 61},
        ),
    ],
)
def test_the_size_rule_sees_long_modules_and_functions(
    tmp_path: Path, source: str, expected: dict[str, int]
) -> None:
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "transforms" / "x.py").write_text(source)
    assert oversized(tmp_path) == expected
