"""Services sit under the edges and under delivery: no web framework, no edge, and not
dealroom.notify, which imports them (STYLE.md's arrows; docs/adr/0005-vocabulary.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "src" / "dealroom" / "services"
ABOVE = ("fastapi", "starlette", "dealroom.api", "dealroom.web", "dealroom.cli",
         "dealroom.edge", "dealroom.notify", "dealroom.worker")  # fmt: skip


def imported(path: Path) -> set[str]:
    """Every absolute module name the file imports, at any depth (a function's own
    imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def above(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in ABOVE)


MODULES = sorted(str(p.relative_to(SERVICES)) for p in SERVICES.rglob("*.py"))


def test_the_services_folder_has_modules_to_check() -> None:
    assert len(MODULES) >= 10


@pytest.mark.parametrize("module", MODULES)
def test_a_service_imports_nothing_from_the_layers_above_it(module: str) -> None:
    found = sorted(name for name in imported(SERVICES / module) if above(name))
    assert not found, f"services/{module} imports {found}"


def test_the_import_reader_sees_imports_inside_functions_and_from_packages(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.py").write_text(
        "from dealroom import notify\ndef f():\n    from dealroom.notify.email import send_due\n",
        encoding="utf-8",
    )
    names = imported(tmp_path / "m.py")
    assert {"dealroom.notify", "dealroom.notify.email"} <= names
    assert above("dealroom.notify")
    assert not above("dealroom.notifications")
