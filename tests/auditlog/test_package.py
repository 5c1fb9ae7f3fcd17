"""The package surface: an explicit, sorted ``__all__`` that names only real objects, every
module documents what it owns and must never do, and the core imports no shell and no I/O."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import fiumatch.auditlog as auditlog

PACKAGE = Path(auditlog.__file__).parent
FORBIDDEN = {"os", "io", "socket", "sqlite3", "time", "datetime", "random", "secrets",
             "pathlib", "subprocess", "asyncio", "httpx", "fastapi", "logging", "tempfile"}


def test_all_is_sorted_and_complete() -> None:
    assert auditlog.__all__ == sorted(auditlog.__all__, key=lambda n: (not n.isupper(), n))
    for name in auditlog.__all__:
        assert getattr(auditlog, name) is not None
    for info in pkgutil.iter_modules([str(PACKAGE)]):
        module = importlib.import_module(f"fiumatch.auditlog.{info.name}")
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{info.name}.{name}"


def test_modules_are_pure_and_documented() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        doc = ast.get_docstring(tree)
        assert doc, path.name
        if path.name not in ("__init__.py", "errors.py"):
            assert "must never" in doc or "never" in doc, path.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
                if node.module and node.module.startswith("fiumatch."):
                    assert node.module.startswith(("fiumatch.auditlog", "fiumatch.errors")), (
                        path.name, node.module)
            else:
                continue
            assert not roots & FORBIDDEN, (path.name, roots & FORBIDDEN)
