"""CPUs a process may use: affinity capped by a cgroup CPU limit (v2 or v1)."""

from __future__ import annotations

import os

import pytest

from components.common import cpus


@pytest.fixture
def cgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus, "CGROUP", tmp_path)
    return tmp_path


def test_v2_limit_caps_the_affinity(cgroup):
    (cgroup / "cpu.max").write_text("150000 100000\n")
    assert cpus.cpu_quota() == 1 and cpus.usable_cpus() == 1
    (cgroup / "cpu.max").write_text("max 100000\n")
    assert cpus.cpu_quota() is None and cpus.usable_cpus() == len(os.sched_getaffinity(0))


def test_v1_limit(cgroup):
    (cgroup / "cpu").mkdir()
    (cgroup / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (cgroup / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpus.cpu_quota() is None
    (cgroup / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    assert cpus.cpu_quota() == 4 and cpus.usable_cpus() == min(4, len(os.sched_getaffinity(0)))


def test_no_cgroup_files(cgroup):
    assert cpus.cpu_quota() is None and cpus.usable_cpus() >= 1
