"""Fargate's CPU and memory limits for the local runtime's tasks, enforced with Linux control groups.

As Fargate runs a task: one cgroup per task with the task's `memory` as its hard limit (no swap) and its
`cpu` units as a CPU quota (1024 units = one vCPU per 100 ms period), and inside it one cgroup per
container with the container's `memory` as its hard limit, `memoryReservation` as its soft limit
(Docker's --memory-reservation: memory.low on cgroup v2, the soft limit on v1) and `cpu` units as its
relative weight (Docker's CpuShares). The kernel's OOM killer acts inside them, so a container that
outgrows its limit is killed here as on AWS (exit 137, ECS's reason OOM_REASON).

cgroup v2 (a unified /sys/fs/cgroup with the memory and cpu controllers) is used when present; otherwise
the v1 hierarchies of memory, cpu and cpuacct (a machine booted in hybrid mode). A process joins its
container's cgroup before it executes its program (`wrap`), so nothing runs outside the limits. The
runtime's cgroups live under one directory per runtime directory, recorded beside it, so a run that was
killed leaves nothing the next run and `stop` do not remove (`sweep`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu", "cpuacct")
MOUNTS = Path("/proc/self/mounts")
OWN = Path("/proc/self/cgroup")
# Joins the cgroups named by the first $1 arguments, then executes the rest: the program starts inside them.
JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"'


@dataclass(frozen=True)
class Cgroup:
    """One cgroup: a directory per hierarchy (one on v2; memory, cpu and cpuacct on v1)."""

    version: int
    dirs: tuple[Path, ...]

    def child(self, name: str) -> Cgroup:
        if self.version == 2:
            _enable_controllers(self.dirs[0])
        made = tuple(d / name for d in self.dirs)
        for directory in made:
            directory.mkdir(exist_ok=True)
        return Cgroup(self.version, made)

    def _dir(self, controller: str) -> Path:
        return self.dirs[0] if self.version == 2 else self.dirs[V1_CONTROLLERS.index(controller)]

    def limit(self, *, memory_mib: int = 0, reservation_mib: int = 0, cpu_units: int = 0, shares: int = 0) -> None:
        """memory_mib: hard limit, no swap; reservation_mib: soft limit; cpu_units: quota; shares: weight."""
        memory, cpu = self._dir("memory"), self._dir("cpu")
        if self.version == 2:
            if memory_mib:
                _write(memory / "memory.max", memory_mib << 20)
                _write(memory / "memory.swap.max", 0)
            if reservation_mib:
                _write(memory / "memory.low", reservation_mib << 20)
            if cpu_units:
                _write(cpu / "cpu.max", f"{cpu_units * PERIOD_US // 1024} {PERIOD_US}")
            if shares:  # runc's conversion of CpuShares to cpu.weight
                _write(cpu / "cpu.weight", 1 + ((max(shares, 2) - 2) * 9999) // 262142)
            return
        if memory_mib:
            _write(memory / "memory.limit_in_bytes", memory_mib << 20)
            if (memory / "memory.memsw.limit_in_bytes").exists():  # memory + swap = memory: no swap
                _write(memory / "memory.memsw.limit_in_bytes", memory_mib << 20)
            _write(memory / "memory.swappiness", 0)
        if reservation_mib:
            _write(memory / "memory.soft_limit_in_bytes", reservation_mib << 20)
        if cpu_units:
            _write(cpu / "cpu.cfs_period_us", PERIOD_US)
            _write(cpu / "cpu.cfs_quota_us", cpu_units * PERIOD_US // 1024)
        if shares:
            _write(cpu / "cpu.shares", max(shares, 2))

    def wrap(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """argv run by a shell that first joins this cgroup (the program never runs outside it). The shell
        exports PWD, which the program must not get when its environment has none."""
        script = JOIN if "PWD" in env else f"unset PWD; {JOIN}"
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        return ["/bin/sh", "-c", script, "sh", str(len(procs)), *procs, *argv]

    def oom_kills(self) -> int:
        """Processes of this cgroup the OOM killer ended (its own limit's or an ancestor's)."""
        memory = self._dir("memory")
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return _keyed(memory / name).get("oom_kill", 0)

    def cpu_seconds(self) -> float:
        """CPU time its processes used."""
        if self.version == 2:
            return _keyed(self.dirs[0] / "cpu.stat").get("usage_usec", 0) / 1e6
        return int(_read(self._dir("cpuacct") / "cpuacct.usage") or 0) / 1e9

    def remove(self) -> None:
        """Kill what still runs in it (and below), then remove it."""
        for directory in self.dirs:
            _remove_tree(directory)

    def exists(self) -> bool:
        return any(d.exists() for d in self.dirs)

    def report(self) -> dict:
        return {"version": self.version, "dirs": [str(d) for d in self.dirs]}

    @classmethod
    def from_report(cls, report: dict) -> Cgroup:
        return cls(report["version"], tuple(Path(d) for d in report["dirs"]))


class Limits:
    """The runtime's cgroups: `task()` makes one per task under this runtime's own directory.

    `available` is None when the machine has no usable cgroups; `status` says which are used, or why not,
    in one line.
    """

    def __init__(self, runtime_dir: Path) -> None:
        self.record = record_path(runtime_dir)
        self.available: Cgroup | None = None
        name = "airflow-ecs-" + hashlib.sha256(str(runtime_dir).encode()).hexdigest()[:12]
        try:
            parent = detect()
            sweep(runtime_dir)
            base = Cgroup(parent.version, tuple(d / name for d in parent.dirs))
            self.record.write_text(json.dumps(base.report()))
            self.available = parent.child(name)
        except (OSError, Unavailable) as exc:
            self.status = f"task CPU and memory limits not enforced (tasks run without limits): {exc}"
            return
        controllers = "memory, cpu" if base.version == 2 else ", ".join(V1_CONTROLLERS)
        self.status = f"task CPU and memory limits enforced: cgroup v{base.version} ({controllers}), {base.dirs[0]}"

    def task(self, task_id: str, cpu_units: int, memory_mib: int) -> Cgroup | None:
        if self.available is None:
            return None
        cgroup = self.available.child(task_id)
        cgroup.limit(memory_mib=memory_mib, cpu_units=cpu_units)
        return cgroup


class Unavailable(Exception):
    pass


def record_path(runtime_dir: Path) -> Path:
    """Beside the runtime directory (which the agent empties at start): the cgroups to sweep."""
    return runtime_dir.parent / f"{runtime_dir.name}-cgroups.json"


def sweep(runtime_dir: Path) -> None:
    """Remove the cgroups a run in `runtime_dir` made (with anything still running in them)."""
    record = record_path(runtime_dir)
    try:
        recorded = Cgroup.from_report(json.loads(record.read_text()))
    except (OSError, ValueError, KeyError):
        return
    recorded.remove()
    record.unlink(missing_ok=True)


def detect() -> Cgroup:
    """Where this process may make cgroups with limits: the v2 root, or on v1 its own cgroup in each hierarchy
    (so the tasks stay inside whatever limits this process runs under)."""
    mounts = [line.split() for line in MOUNTS.read_text().splitlines()]
    for _, point, fstype, *_ in mounts:
        if fstype == "cgroup2" and point == "/sys/fs/cgroup":
            root = Path(point)
            missing = {"memory", "cpu"} - set(_read(root / "cgroup.controllers").split())
            if not missing:
                _enable_controllers(root)
                return Cgroup(2, (root,))
    own = {}
    for line in OWN.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            own[controller] = path.lstrip("/")
    dirs = []
    for controller in V1_CONTROLLERS:
        point = next(
            (p for _, p, fstype, options, *_ in mounts if fstype == "cgroup" and controller in options.split(",")),
            None,
        )
        if point is None or controller not in own:
            raise Unavailable(f"no cgroup v2 with the memory and cpu controllers, no cgroup v1 {controller} hierarchy")
        directory = Path(point) / own[controller]
        if not os.access(directory, os.W_OK):
            raise Unavailable(f"{directory} is not writable")
        dirs.append(directory)
    return Cgroup(1, tuple(dirs))


def _enable_controllers(directory: Path) -> None:
    """v2: the children of `directory` get the memory and cpu controllers (pids too, when offered)."""
    offered = set(_read(directory / "cgroup.controllers").split())
    enabled = set(_read(directory / "cgroup.subtree_control").split())
    wanted = ({"memory", "cpu", "pids"} & offered) - enabled
    if wanted:
        _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted)))


def _remove_tree(directory: Path, timeout: float = 5.0) -> None:
    if not directory.is_dir():
        return
    for child in [p for p in directory.iterdir() if p.is_dir()]:
        _remove_tree(child, timeout)
    deadline = time.monotonic() + timeout
    while True:
        pids = [int(p) for p in _read(directory / "cgroup.procs").split()]
        if not pids:
            break
        if (directory / "cgroup.kill").exists():
            _write(directory / "cgroup.kill", 1)
        else:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        # a cgroup is busy for a moment after its last process died: retry
        for _ in range(int(timeout / 0.05)):
            try:
                directory.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)


def _keyed(path: Path) -> dict[str, int]:
    values = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: object) -> None:
    path.write_text(str(value))
