"""Layering rules: server processes load no driver code or numpy, and no module hides an import in a function."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rayredis
from rayredis._private import worker_context

PACKAGE = Path(__file__).resolve().parents[2] / "rayredis"

#: What the GCS and raylet processes never use (the driver API, the worker runtime, numpy).
DRIVER_ONLY = ("rayredis.api", "rayredis.actor", "rayredis.remote_function", "rayredis.worker.core_worker",
               "numpy")

#: Modules (relative to the package) whose function-level ``import rayredis...`` is tolerated for now.
ALLOWED_FUNCTION_IMPORTS: set[str] = set()


def _loaded_after_import(*modules: str) -> set[str]:
    code = (f"import sys\nimport {', '.join(modules)}\n"
            f"print(__import__('json').dumps(sorted(m for m in {DRIVER_ONLY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("server", ["rayredis.raylet.server", "rayredis.gcs.server"])
def test_server_processes_do_not_import_the_driver_api_or_numpy(server: str) -> None:
    assert _loaded_after_import("rayredis.raylet", "rayredis.gcs", server) == set()


def test_the_check_sees_driver_modules() -> None:
    # The probe itself works: importing the public API does load what the servers must not.
    assert _loaded_after_import("rayredis.api") == set(DRIVER_ONLY)


def _function_level_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every ``import rayredis...``/``from rayredis...`` inside a function body."""
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "rayredis"]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level > 0 or module.split(".")[0] == "rayredis":
                    found.append((node.lineno, "." * node.level + module))
    return sorted(set(found))


def _package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_generated" not in p.relative_to(PACKAGE).parts)


def test_scan_finds_function_level_imports() -> None:
    tree = ast.parse("def f():\n    from rayredis.api import init\n    import rayredis.actor\n"
                     "    async def g():\n        from . import x\n    import os\n")
    assert _function_level_imports(tree) == [(2, "rayredis.api"), (3, "rayredis.actor"), (5, ".")]


def test_no_function_level_rayredis_imports() -> None:
    offenders = {}
    for path in _package_modules():
        rel = path.relative_to(PACKAGE).as_posix()
        found = _function_level_imports(ast.parse(path.read_text(), str(path)))
        if found and rel not in ALLOWED_FUNCTION_IMPORTS:
            offenders[rel] = found
    assert offenders == {}, "import at module level (TYPE_CHECKING for type-only cycles), or move the code"


def test_get_worker_auto_initialises_through_the_public_init(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray's behaviour: the first API call of a driver that never called init() connects it.
    connected = object()
    calls = []

    def fake_init() -> None:
        calls.append(1)
        monkeypatch.setattr(worker_context, "global_worker", connected)

    monkeypatch.setattr(worker_context, "global_worker", None)
    monkeypatch.setattr(rayredis, "init", fake_init, raising=False)
    assert worker_context.get_worker() is connected
    assert worker_context.get_worker() is connected
    assert calls == [1]
