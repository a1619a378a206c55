"""Regenerates the protobuf and gRPC Python modules: ``python -m rayredis.protocol.codegen``."""

from __future__ import annotations

import pathlib
import re
import sys

HERE = pathlib.Path(__file__).parent
PROTO = HERE / "rayredis.proto"
#: Where the committed generated modules live.
GENERATED = HERE / "_generated"
#: Every file ``generate`` writes, relative to its output directory.
GENERATED_FILES = ("__init__.py", "rayredis_pb2.py", "rayredis_pb2.pyi", "rayredis_pb2_grpc.py")


def generate(out: pathlib.Path = GENERATED) -> None:
    """Write the modules generated from ``rayredis.proto`` into ``out`` (created if missing).

    Raises ``RuntimeError`` if protoc fails. The gRPC module's absolute import of the message
    module is rewritten to a relative one, so the package works wherever it is installed.
    """
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    (out / "__init__.py").write_text('"""Generated protobuf/gRPC modules; never edit by hand."""\n')
    rc = protoc.main(
        ["protoc", f"-I{HERE}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
         str(PROTO)]
    )
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc} on {PROTO}")
    grpc_mod = out / "rayredis_pb2_grpc.py"
    text = grpc_mod.read_text()
    text = re.sub(r"^import rayredis_pb2 as", "from . import rayredis_pb2 as", text, flags=re.M)
    grpc_mod.write_text(text)


def main() -> int:
    try:
        generate()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
