"""The arrows of the architecture, read from the code's own imports (nothing is run).

edges (api, web, cli, worker) -> services -> db -> domain. The domain imports only itself and
the standard library; services import no web framework and none of api, web, cli, notify,
edge or realtime; the web never imports the API; no two modules import each other, however
indirectly; only the unit of work commits; no module past 600 lines; at most 8 modules at the
package root. `breaches()` answers every rule broken; the tests below run it on the real tree
and on small planted trees, so a checker that finds nothing is itself checked.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: Third-party and framework roots no service may import.
WEB_FRAMEWORKS = frozenset({"fastapi", "starlette", "uvicorn", "sse_starlette", "jinja2"})
#: dealroom packages above the services.
ABOVE_SERVICES = ("api", "web", "cli", "notify", "edge", "realtime", "demo", "app", "worker")
#: Where `.commit()` may be called: the one commit path.
COMMITTERS = frozenset({"dealroom.services.uow"})
MAX_LINES = 600
MAX_ROOT_MODULES = 8


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    is_package: bool
    #: dealroom modules imported, resolved to modules that exist.
    imports: set[str] = field(default_factory=set)
    #: Top-level names of other packages imported.
    external: set[str] = field(default_factory=set)
    commits: list[int] = field(default_factory=list)


def read_tree(src: Path) -> dict[str, Module]:
    root = src / "dealroom"
    modules: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.relative_to(root).parts:
            continue  # Alembic's revisions and env.py are generated around its own API
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        lines = len(path.read_text().splitlines())
        modules[".".join(parts)] = Module(".".join(parts), path, lines, is_package)
    for module in modules.values():
        _read_imports(module, modules)
    return modules


def _read_imports(module: Module, modules: dict[str, Module]) -> None:
    tree = ast.parse(module.path.read_text(), str(module.path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        # Imports under `if TYPE_CHECKING:` count too: they show a dependency all the same.
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")
                if not module.is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from dealroom.x import y` may name the module dealroom.x.y
            children = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            targets.update(children or [target])
            if len(children) < len(node.names):
                targets.add(target)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "commit"
            and not node.args
        ):
            module.commits.append(node.lineno)
    for target in targets:
        if target == "dealroom" or target.startswith("dealroom."):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module.name:
                module.imports.add(target)
        elif target:
            module.external.add(target.split(".")[0])


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _edges(modules: dict[str, Module], name: str) -> set[str]:
    """Imports that make a cycle: a package's face importing its own children, and a child
    importing its package's face, are not dependencies between two modules."""
    module = modules[name]
    return {
        d
        for d in module.imports
        if not (module.is_package and d.startswith(name + "."))
        and not (modules[d].is_package and name.startswith(d + "."))
    }


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(_edges(modules, start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(_edges(modules, child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def breaches(src: Path = SRC) -> list[str]:
    modules = read_tree(src)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    out: list[str] = []
    for name, module in sorted(modules.items()):
        layer = _layer(name)
        if layer == "domain":
            outside = {d for d in module.imports if _layer(d) != "domain"}
            foreign = module.external - stdlib
            if outside or foreign:
                out.append(f"{name}: the domain imports {sorted(outside | foreign)}")
        if layer == "services":
            frameworks = module.external & WEB_FRAMEWORKS
            above = {d for d in module.imports if _layer(d) in ABOVE_SERVICES}
            if frameworks or above:
                out.append(f"{name}: a service imports {sorted(frameworks | above)}")
        if layer == "db":
            above = {d for d in module.imports if _layer(d) not in ("db", "domain", "config")}
            if above:
                out.append(f"{name}: the database layer imports {sorted(above)}")
        if layer == "web":
            api = {d for d in module.imports if _layer(d) == "api"}
            if api:
                out.append(f"{name}: the web imports the API {sorted(api)}")
        if module.commits and name not in COMMITTERS:
            out.append(f"{name}: commits (line {module.commits[0]}) outside the unit of work")
        if module.lines > MAX_LINES:
            out.append(f"{name}: {module.lines} lines (at most {MAX_LINES})")
    for component in cycles(modules):
        out.append("import cycle: " + " -> ".join(component))
    root = sorted(n for n, mod in modules.items() if n.count(".") == 1 and not mod.is_package)
    if len(root) > MAX_ROOT_MODULES:
        out.append(f"{len(root)} modules at the package root (at most {MAX_ROOT_MODULES}): {root}")
    return out


def test_the_tree_keeps_every_arrow() -> None:
    assert breaches() == []


# --- the checker itself, on planted trees -------------------------------------------------


def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for rel, text in {"dealroom/__init__.py": "", **files}.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(src).parents:
            init = src / parent / "__init__.py"
            if parent.parts and not init.exists():
                init.write_text("")
        path.write_text(text)
    return src


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"dealroom/domain/engine.py": "import sqlalchemy\n"},
            "dealroom.domain.engine: the domain imports ['sqlalchemy']",
        ),
        (
            {
                "dealroom/domain/engine.py": "from dealroom.services import deals\n",
                "dealroom/services/deals.py": "",
            },
            "dealroom.domain.engine: the domain imports ['dealroom.services.deals']",
        ),
        (
            {"dealroom/services/deals.py": "from fastapi import Request\n"},
            "dealroom.services.deals: a service imports ['fastapi']",
        ),
        (
            {
                "dealroom/services/deals.py": "from dealroom.notify import email\n",
                "dealroom/notify/email.py": "",
            },
            "dealroom.services.deals: a service imports ['dealroom.notify.email']",
        ),
        (
            {
                "dealroom/web/pages.py": "from dealroom.api.deps import UoW\n",
                "dealroom/api/deps.py": "UoW = 1\n",
            },
            "dealroom.web.pages: the web imports the API ['dealroom.api.deps']",
        ),
        (
            {"dealroom/notify/email.py": "def send(session):\n    session.commit()\n"},
            "dealroom.notify.email: commits (line 2) outside the unit of work",
        ),
        (
            {
                "dealroom/domain/rules.py": "from dealroom.domain import engine\n",
                "dealroom/domain/engine.py": "from dealroom.domain import quotes\n",
                "dealroom/domain/quotes.py": "from . import rules\n",
            },
            "import cycle: dealroom.domain.engine -> dealroom.domain.quotes -> dealroom.domain.rules",
        ),
        (
            {"dealroom/services/deals.py": "x = 1\n" * 601},
            "dealroom.services.deals: 601 lines (at most 600)",
        ),
        (
            {f"dealroom/m{i}.py": "" for i in range(9)},
            "9 modules at the package root (at most 8): ['dealroom.m0', 'dealroom.m1', "
            "'dealroom.m2', 'dealroom.m3', 'dealroom.m4', 'dealroom.m5', 'dealroom.m6', "
            "'dealroom.m7', 'dealroom.m8']",
        ),
    ],
    ids=[
        "domain-3rd-party",
        "domain-up",
        "service-web",
        "service-notify",
        "web-api",
        "commit",
        "cycle",
        "long-module",
        "crowded-root",
    ],
)
def test_a_planted_breach_is_found(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    assert breaches(plant(tmp_path, files)) == [expected]


def test_a_clean_planted_tree_has_no_breach(tmp_path: Path) -> None:
    src = plant(
        tmp_path,
        {
            "dealroom/domain/engine.py": "from datetime import datetime\nfrom . import rules\n",
            "dealroom/domain/rules.py": "import decimal\n",
            "dealroom/services/deals.py": "from dealroom.domain import engine\nimport sqlalchemy\n",
            "dealroom/services/uow.py": "def commit(s):\n    s.commit()\n",
            "dealroom/web/pages.py": "from dealroom.edge.uow import UoW\nimport fastapi\n",
            "dealroom/edge/uow.py": "from dealroom.services import uow\n",
            "dealroom/cli/__init__.py": "from dealroom.cli import server\n",
            "dealroom/cli/server.py": "from dealroom import cli\n",
        },
    )
    assert breaches(src) == []
