"""The test suite's own rule: shared helpers live in tests/helpers.py and fixtures in conftest.py; no module
imports a test module or conftest (pytest loads conftest itself; importing it twice makes two copies)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):  # walk, not body: imports inside functions count too
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            if node.module == "tests":
                names.extend(f"tests.{alias.name}" for alias in node.names)
    return names


def test_no_module_imports_a_test_module_or_conftest() -> None:
    offenders = {
        f"{path.name} imports {name}"
        for path in sorted(TESTS.glob("*.py"))
        for name in imported_modules(path)
        if name == "tests.conftest" or name.startswith("tests.test_")
    }
    assert not offenders, "move the shared helper to tests/helpers.py: " + "; ".join(sorted(offenders))


def test_the_rule_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from tests.test_end_to_end import send_soap\n    from tests import conftest\n")
    assert imported_modules(sample) == ["tests.test_end_to_end", "tests", "tests.conftest"]
