"""The Redis key tables in docs/architecture.md are what docs/gen_key_table.py makes of keys.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "gen_key_table.py"


def _gen_key_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_key_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_architecture_key_tables_match_keys_py() -> None:
    gen = _gen_key_table()
    doc = gen.DOC.read_text()
    assert gen.replace_tables(doc, gen.render()) == doc, (
        "docs/architecture.md's key tables are stale; run `python docs/gen_key_table.py --write`")


def test_every_key_function_has_a_row() -> None:
    gen = _gen_key_table()
    tables = gen.render()
    for name, fn in gen._key_functions():
        pattern = gen._pattern(fn)
        assert f"| `{pattern}` |" in tables, name


def test_replace_tables_touches_only_the_tables() -> None:
    gen = _gen_key_table()
    doc = ("# T\n\n## Redis key schema\n\nintro\n\n| Key | old |\n|---|\n\n| Channel | old |\n\nafter\n\n"
           "## Next\n\n| x |\n")
    out = gen.replace_tables(doc, "| Key | new |\n")
    assert out == "# T\n\n## Redis key schema\n\nintro\n\n| Key | new |\n\nafter\n\n## Next\n\n| x |\n"
