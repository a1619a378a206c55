"""Regenerates the protobuf and gRPC Python modules: ``python -m rayredis.protocol.codegen``."""

from __future__ import annotations

import pathlib
import re
import sys


def main() -> int:
    from grpc_tools import protoc

    here = pathlib.Path(__file__).parent
    out = here / "_generated"
    out.mkdir(exist_ok=True)
    (out / "__init__.py").write_text('"""Generated protobuf/gRPC modules; never edit by hand."""\n')
    rc = protoc.main(
        ["protoc", f"-I{here}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
         str(here / "rayredis.proto")]
    )
    grpc_mod = out / "rayredis_pb2_grpc.py"
    text = grpc_mod.read_text()
    text = re.sub(r"^import rayredis_pb2 as", "from . import rayredis_pb2 as", text, flags=re.M)
    grpc_mod.write_text(text)
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
