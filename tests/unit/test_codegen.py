"""The committed protobuf/gRPC modules are exactly what ``rayredis.protocol.codegen`` generates.

Needs grpcio-tools, which the ``test`` extra installs.
"""

from __future__ import annotations

from pathlib import Path

from rayredis.protocol import codegen


def test_generated_modules_match_the_proto(tmp_path: Path) -> None:
    codegen.generate(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert written == sorted(codegen.GENERATED_FILES)
    for name in codegen.GENERATED_FILES:
        fresh = (tmp_path / name).read_text()
        committed = (codegen.GENERATED / name).read_text()
        assert fresh == committed, (
            f"rayredis/protocol/_generated/{name} is stale; run `python -m rayredis.protocol.codegen`")
