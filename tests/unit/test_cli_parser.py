"""The ``rayredis`` argument parser: the state verbs and the Ray flags ``start`` accepts."""

from __future__ import annotations

import pytest

from rayredis.cli.main import build_parser


def test_state_verbs_parse_rays_options() -> None:
    args = build_parser().parse_args(["list", "actors", "--filter", "state=ALIVE", "-f", "name!=x", "--limit", "5",
                                      "--format", "yaml"])
    assert (args.resource, args.filter, args.limit, args.format) == ("actors", ["state=ALIVE", "name!=x"], 5, "yaml")
    args = build_parser().parse_args(["logs", "--actor-id", "ab", "--tail", "-1", "--follow", "--err"])
    assert (args.actor_id, args.tail, args.follow, args.err, args.filename) == ("ab", -1, True, True, None)
    assert build_parser().parse_args(["summary", "objects"]).resource == "objects"
    assert build_parser().parse_args(["get", "placement-group", "cd"]).id == "cd"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["list", "gizmos"])


def test_start_accepts_rays_common_flags() -> None:
    args = build_parser().parse_args(["start", "--head", "--dashboard-host", "0.0.0.0", "--dashboard-port", "8265",
                                      "--include-dashboard", "false", "--disable-usage-stats"])
    assert args.head and args.include_dashboard is False and args.dashboard_port == 8265
    with pytest.raises(SystemExit):
        build_parser().parse_args(["start", "--head", "--include-dashboard", "maybe"])
