"""The pure core never imports the web framework or the ORM; one module owns each heavy library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
CORE = ("routing", "scheduling", "replan")
FORBIDDEN_IN_CORE = {"fastapi", "starlette", "sqlalchemy", "alembic", "app.api", "app.store"}
#: Library -> the only package allowed to import it.
OWNERS = {"vroom": "app/scheduling", "osmnx": "app/routing", "osmium": "app/routing"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("package", CORE)
def test_core_imports_neither_web_framework_nor_orm(package: str) -> None:
    offenders = [
        f"{path.relative_to(APP.parent)} imports {name}"
        for path in sorted((APP / package).rglob("*.py"))
        for name in _imports(path)
        if any(_is_under(name, bad) for bad in FORBIDDEN_IN_CORE)
    ]
    assert offenders == []


def test_each_heavy_library_has_one_owner() -> None:
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        rel = path.relative_to(APP.parent).as_posix()
        for name in _imports(path):
            for lib, owner in OWNERS.items():
                if _is_under(name, lib) and not rel.startswith(owner + "/"):
                    offenders.append(f"{rel} imports {lib}")
    assert offenders == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from fastapi import APIRouter\nimport sqlalchemy.orm\n", encoding="utf-8")
    assert {"fastapi", "sqlalchemy.orm"} <= _imports(bad)
