"""Chaos testing for rayredis: fault injectors, a known-answer workload, and a runner that checks it.

Run ``python -m chaos.runner --seed 1 --duration 60 --faults gcs,worker``; see chaos/README.md.
"""

from __future__ import annotations

from chaos.faults import FAULTS, PLANNED, Fault, KillGcs, KillWorker, make_faults, plan_schedule

__all__ = ["FAULTS", "PLANNED", "Fault", "KillGcs", "KillWorker", "make_faults", "plan_schedule"]
