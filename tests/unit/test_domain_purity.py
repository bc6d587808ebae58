"""The domain is pure: stdlib and dealroom only (STYLE.md, convention 1)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "src" / "dealroom" / "domain"
ALLOWED = set(sys.stdlib_module_names) | {"dealroom"}


def imported_roots(folder: Path) -> dict[str, set[str]]:
    """Top-level module names imported anywhere in the folder's modules, by file."""
    out: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        roots: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
        out[path.name] = roots
    return out


def test_domain_folder_has_modules_to_check():
    assert len(imported_roots(DOMAIN)) >= 5


@pytest.mark.parametrize("module", sorted(imported_roots(DOMAIN)))
def test_domain_module_imports_only_stdlib_and_dealroom(module):
    outside = imported_roots(DOMAIN)[module] - ALLOWED
    assert not outside, f"{module} imports {sorted(outside)}"


def test_domain_never_imports_database_web_or_validation_libraries():
    everything = set().union(*imported_roots(DOMAIN).values())
    assert not {"sqlalchemy", "fastapi", "pydantic", "starlette", "psycopg"} & everything


def test_import_walker_sees_relative_and_nested_imports(tmp_path):
    (tmp_path / "m.py").write_text(
        "import os.path\nfrom . import x\nfrom json import loads\n"
        "def f():\n    import sqlalchemy.orm\n",
        encoding="utf-8",
    )
    assert imported_roots(tmp_path) == {"m.py": {"os", "json", "sqlalchemy"}}
