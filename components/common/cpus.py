"""How many CPUs this process may use: its affinity, capped by the container's CPU limit.

In a Kubernetes pod the affinity still lists every core of the node; the limit is a cgroup quota.
Threads beyond it wait on each other (throttling) and slow the work down."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def cpu_quota() -> int | None:
    """CPUs granted by the container's cgroup (a pod's CPU limit), when one is set."""
    try:
        quota, period = (CGROUP / "cpu.max").read_text().split()[:2]  # cgroup v2
        return None if quota == "max" else max(1, int(int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota = int((CGROUP / "cpu" / "cpu.cfs_quota_us").read_text())  # cgroup v1
        period = int((CGROUP / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else max(1, quota // period)
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    cores = len(os.sched_getaffinity(0))
    quota = cpu_quota()
    return cores if quota is None else min(cores, quota)
