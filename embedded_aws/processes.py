"""Local processes in their own process groups, stopped by pid, with a sweep for anything that escaped."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from embedded_aws.cgroups import Cgroup


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    popen: subprocess.Popen
    stop_timeout: float = 30.0
    stop_signal: int = signal.SIGTERM
    signal_group: bool = True  # the stop signal to the whole process group, or to the leader alone
    cgroup: Cgroup | None = None  # where it runs, under its limits (cgroups.py)
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(deque(log, maxlen=lines))
        except OSError:
            return ""

    def describe_failure(self, lines: int = 40) -> str:
        return (
            f"--- {self.name} (pid {self.pid}, exit {self.returncode}) ---\n"
            f"command: {self.argv}\n"
            f"last {lines} log lines ({self.log_path}):\n{self.tail(lines)}"
        )

    def signal_stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                if self.signal_group:
                    os.killpg(self.pid, self.stop_signal)
                else:
                    os.kill(self.pid, self.stop_signal)

    def finish_stop(self, deadline: float) -> None:
        """Wait for the leader until `deadline` (monotonic), then SIGKILL whatever is left of the group."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Children may outlive the leader: the group goes in any case.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def stop(self, timeout: float | None = None) -> None:
        """Signal the whole process group, wait up to `timeout`, then SIGKILL the group."""
        self.signal_stop()
        self.finish_stop(time.monotonic() + (self.stop_timeout if timeout is None else timeout))


class Processes:
    """Starts processes under `root` (logs in root/logs) and stops them all, newest first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        *,
        user: str | None = None,
        stop_timeout: float = 30.0,
        stop_signal: int = signal.SIGTERM,
        signal_group: bool = True,
        cgroup: Cgroup | None = None,
    ) -> Proc:
        """`cgroup`: the process joins it before its program starts (Cgroup.wrap)."""
        if cgroup is not None and shutil.which(argv[0], path=env.get("PATH", os.defpath)) is None:
            # what exec would say, before the shell that joins the cgroup runs it
            code = errno.EACCES if os.sep in argv[0] and os.path.exists(argv[0]) else errno.ENOENT
            raise OSError(code, os.strerror(code), argv[0])
        log_path = self.logs / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
        try:
            popen = subprocess.Popen(
                cgroup.wrap(argv, env) if cgroup is not None else argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                group=user,
            )
        finally:
            log.close()
        proc = Proc(name, argv, env, cwd, log_path, popen, stop_timeout, stop_signal, signal_group, cgroup)
        self.procs.append(proc)
        return proc

    def get(self, name: str) -> Proc:
        return next(p for p in reversed(self.procs) if p.name == name)

    def stop(self, name: str, timeout: float | None = None) -> None:
        self.get(name).stop(timeout)

    def stop_together(self, procs: list[Proc]) -> None:
        """Signal every group at once, then wait for each within its own stop timeout."""
        start = time.monotonic()
        for proc in procs:
            proc.signal_stop()
        for proc in procs:
            proc.finish_stop(start + proc.stop_timeout)

    def sweep(self) -> list[int]:
        """Kill (by pid) any process left whose environment or command line points under `root`."""
        return kill_leftovers(str(self.root))


def leftovers(marker: str) -> list[int]:
    """Pids of processes whose environment, command line or working directory mentions `marker` (a run directory).

    The working directory counts because setproctitle (Airflow, Celery) overwrites the memory that
    /proc/<pid>/environ and cmdline show.
    """
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            cwd = os.readlink(f"/proc/{entry}/cwd").encode()
        except OSError:
            continue
        if needle in environ or needle in cmdline or cwd.startswith(needle):
            found.append(int(entry))
    return found


def kill_leftovers(marker: str, grace: float = 5.0) -> list[int]:
    pids = leftovers(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return pids


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def group_pss_mb(proc: Proc) -> float:
    """Proportional set size (MiB) of every process in `proc`'s process group."""
    return groups_usage({proc.pid})[proc.pid][0]


def groups_usage(groups: set[int]) -> dict[int, tuple[float, float]]:
    """(PSS in MiB, CPU seconds used so far) of each process group in `groups`, from one pass over /proc.
    CPU time counts the live processes and the children they have waited for, as a cgroup's usage does."""
    usage = dict.fromkeys(groups, (0.0, 0.0))
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pgid = int(fields[2])
            if pgid not in usage:
                continue
            pss = next(
                int(line.split()[1])
                for line in (entry / "smaps_rollup").read_text().splitlines()
                if line.startswith("Pss:")
            )
            cpu = sum(int(value) for value in fields[11:15]) / ticks  # utime stime cutime cstime
        except (OSError, ValueError, IndexError, StopIteration):
            continue
        memory, seconds = usage[pgid]
        usage[pgid] = (memory + pss / 1024, seconds + cpu)
    return usage


class PeakMemory:
    """Samples the PSS of a process group once a second; `peak` in MiB."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1):
            self.peak = max(self.peak, group_pss_mb(self.proc))

    def __enter__(self) -> PeakMemory:
        self.peak = group_pss_mb(self.proc)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
