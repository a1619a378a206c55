"""Configuration defaults and RAYREDIS_* environment overrides."""

from __future__ import annotations

import dataclasses

import pytest

from rayredis import config
from rayredis.config import Config


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for f in dataclasses.fields(Config):
        if f.name != "temp_dir":
            monkeypatch.delenv("RAYREDIS_" + f.name.upper(), raising=False)


def test_defaults() -> None:
    cfg = Config.from_env()
    assert cfg.node_death_timeout_s == 3.0
    assert cfg.gcs_lease_s == 3.0
    assert cfg.cluster_gone_timeout_s == 30.0
    assert cfg.num_redis_shards == 2
    assert cfg.log_level == "INFO"


def test_env_override_float(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "10")
    cfg = Config.from_env()
    assert cfg.node_death_timeout_s == 10.0
    assert isinstance(cfg.node_death_timeout_s, float)
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "0.25")
    assert Config.from_env().node_death_timeout_s == 0.25


def test_gcs_lease_and_cluster_gone_timeout_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_GCS_LEASE_S", "1.5")
    monkeypatch.setenv("RAYREDIS_CLUSTER_GONE_TIMEOUT_S", "4")
    cfg = Config.from_env()
    assert (cfg.gcs_lease_s, cfg.cluster_gone_timeout_s) == (1.5, 4.0)


def test_env_override_int_and_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_NUM_REDIS_SHARDS", "5")
    monkeypatch.setenv("RAYREDIS_LOG_LEVEL", "DEBUG")
    cfg = Config.from_env()
    assert cfg.num_redis_shards == 5 and isinstance(cfg.num_redis_shards, int)
    assert cfg.log_level == "DEBUG"


def test_bad_float_value_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "soon")
    with pytest.raises(ValueError) as ei:
        Config.from_env()
    msg = str(ei.value)
    assert "RAYREDIS_NODE_DEATH_TIMEOUT_S='soon'" in msg
    assert "float" in msg
    assert "unset it" in msg


def test_bad_int_value_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_NUM_REDIS_SHARDS", "2.5")
    with pytest.raises(ValueError) as ei:
        Config.from_env()
    assert "RAYREDIS_NUM_REDIS_SHARDS='2.5'" in str(ei.value)
    assert "int" in str(ei.value)


def test_explicit_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "10")
    assert Config.from_env(node_death_timeout_s=2.0).node_death_timeout_s == 2.0
    assert Config.from_env(node_death_timeout_s=None).node_death_timeout_s == 10.0  # None = not given


def test_frozen_and_replace() -> None:
    cfg = Config.from_env()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.node_death_timeout_s = 1.0  # type: ignore[misc]
    other = cfg.replace(node_death_timeout_s=1.0)
    assert other.node_death_timeout_s == 1.0
    assert cfg.node_death_timeout_s == 3.0


def test_get_config_reads_env_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_config", None)
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "7")
    first = config.get_config()
    assert first.node_death_timeout_s == 7.0
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "8")
    assert config.get_config() is first


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_UNIT_TEST_SECRET", "s3cret")
    assert config.secret_from_env("UNIT_TEST_SECRET") == "s3cret"
    monkeypatch.setenv("RAYREDIS_UNIT_TEST_SECRET", "")
    assert config.secret_from_env("UNIT_TEST_SECRET") is None
    monkeypatch.delenv("RAYREDIS_UNIT_TEST_SECRET")
    assert config.secret_from_env("UNIT_TEST_SECRET") is None
