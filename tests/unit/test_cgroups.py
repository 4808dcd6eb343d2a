"""embedded_aws.cgroups: the local runtime holds a task to Fargate's CPU and memory limits, on this machine's
real control groups (root and a writable cgroup v2 or v1 hierarchy; skipped elsewhere, saying why)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from embedded_aws import cgroups
from embedded_aws.processes import Processes

PYTHON = sys.executable


@pytest.fixture
def limits(tmp_path: Path):
    runtime_dir = tmp_path / "runtime"
    runtime_dir.mkdir()
    made = cgroups.Limits(runtime_dir)
    if made.available is None:
        pytest.skip(made.status)
    yield made
    cgroups.sweep(runtime_dir)


def start(tmp_path: Path, cgroup: cgroups.Cgroup, code: str):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    return Processes(tmp_path / "procs").start("main", [PYTHON, "-c", code], env, tmp_path, cgroup=cgroup)


def test_a_container_that_outgrows_its_memory_is_killed_by_the_oom_killer(limits, tmp_path: Path) -> None:
    task = limits.task("oom", cpu_units=1024, memory_mib=512)
    container = task.child("main")
    container.limit(memory_mib=64)
    proc = start(tmp_path, container, "b = bytearray(200 << 20); print('survived')")
    assert proc.wait(30) == -9  # SIGKILL: ECS reports 137
    assert container.oom_kills() == 1
    assert "survived" not in proc.tail()


def test_the_task_memory_limit_holds_a_container_without_its_own(limits, tmp_path: Path) -> None:
    container = limits.task("task-oom", cpu_units=1024, memory_mib=96).child("main")
    container.limit(reservation_mib=32)  # a soft limit only: the task's hard limit is what kills
    proc = start(tmp_path, container, "b = bytearray(200 << 20)")
    assert proc.wait(30) == -9
    assert container.oom_kills() == 1


def test_a_container_within_its_memory_runs_to_its_end(limits, tmp_path: Path) -> None:
    container = limits.task("fits", cpu_units=1024, memory_mib=512).child("main")
    container.limit(memory_mib=256)
    proc = start(tmp_path, container, "b = bytearray(100 << 20); print('done')")
    assert proc.wait(30) == 0 and container.oom_kills() == 0


def test_a_cpu_bound_container_is_held_to_its_task_cpu_units(limits, tmp_path: Path) -> None:
    container = limits.task("busy", cpu_units=256, memory_mib=512).child("main")  # 0.25 vCPU
    proc = start(tmp_path, container, "while True: pass")
    try:
        time.sleep(1)
        began, used = time.monotonic(), container.cpu_seconds()
        time.sleep(4)
        vcpu = (container.cpu_seconds() - used) / (time.monotonic() - began)
    finally:
        proc.stop(1)
    assert 0.15 < vcpu < 0.35, vcpu


def test_the_program_joins_its_cgroup_before_it_starts_with_its_environment_unchanged(limits, tmp_path: Path) -> None:
    container = limits.task("env", cpu_units=256, memory_mib=512).child("main")
    code = "print(open('/proc/self/environ').read().split(chr(0))); print(open('/proc/self/cgroup').read())"
    proc = start(tmp_path, container, code)
    assert proc.wait(30) == 0
    environ, *groups = proc.tail().splitlines()
    assert sorted(environ.strip("[]").replace("'", "").split(", ")) == [
        "",
        f"HOME={tmp_path}",
        f"PATH={os.environ['PATH']}",
    ]
    joined = [line for line in groups if line.endswith("/env/main")]
    assert len(joined) == len(container.dirs), groups  # memory and CPU (v1: and cpuacct), from its first instruction


def test_a_missing_program_fails_as_exec_would_without_starting_anything(limits, tmp_path: Path) -> None:
    container = limits.task("missing", cpu_units=256, memory_mib=512).child("main")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    with pytest.raises(FileNotFoundError):
        Processes(tmp_path / "procs").start("main", ["no-such-binary"], env, tmp_path, cgroup=container)


def test_sweep_removes_the_cgroups_of_a_run_with_what_still_runs_in_them(limits, tmp_path: Path) -> None:
    task = limits.task("left", cpu_units=256, memory_mib=512)
    container = task.child("main")
    proc = start(tmp_path, container, "import time; time.sleep(600)")
    time.sleep(0.5)
    runtime_dir = limits.record.parent / limits.record.name.removesuffix("-cgroups.json")
    cgroups.sweep(runtime_dir)
    assert proc.wait(10) == -9
    assert not task.exists() and not limits.available.exists() and not limits.record.exists()


def test_a_new_run_removes_what_a_killed_run_left(limits, tmp_path: Path) -> None:
    left = limits.task("killed-run", cpu_units=256, memory_mib=512)
    again = cgroups.Limits(tmp_path / "runtime")
    assert not left.exists() and again.available is not None and again.available.exists()


def test_without_usable_cgroups_the_runtime_says_so_and_runs_without_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    monkeypatch.setattr(cgroups, "MOUNTS", mounts)
    made = cgroups.Limits(tmp_path / "runtime")
    assert made.available is None and made.task("t", 256, 512) is None
    assert made.status == (
        "task CPU and memory limits not enforced (tasks run without limits): "
        "no cgroup v2 with the memory and cpu controllers, no cgroup v1 memory hierarchy"
    )
