#!/usr/bin/env python3
"""Benchmark the stack on a private emulator: deploy from zero, no-op re-run, teardown.

Usage: .venv/bin/python scripts/bench.py [--inventory inventories/emulator] [--keep-logs]

Starts its own moto server (tests/emulator.py) on a free port, runs site.yml twice and teardown.yml
once against it, and prints one measured figure per line: wall seconds, AWS API calls (request lines
of the moto access log between phases), tasks, module runs, the re-run's changed count, per-role
wall time (ansible.posix.profile_roles) and the most expensive tasks and modules. Then (unless
--no-weather) the same three phases twice more through the AWS-weather proxy (embedded_aws/weather.py):
with 80 ms per call, as a real endpoint answers, and with 80 ms and 10 % of calls throttled or 5xx;
a table gives wall time and calls of each phase in each weather, the calls per operation of the
no-op re-run and the retries the bad weather cost. Then (unless --no-images) the local runtime's image
environments (embedded_aws/image_env.py) are built into an empty cache root, cold and again warm: the
stock apache/airflow set, and the recipe (image/) on top of it. Every printed figure comes from this
run; nothing is estimated. Exit code 1 when a phase fails or a re-run changes something.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ansible_runner import BIN, base_env  # noqa: E402
from emulator import Emulator, start_emulator  # noqa: E402

from embedded_aws import image_env  # noqa: E402
from embedded_aws.weather import Weather, WeatherProxy  # noqa: E402

GOAL_DEPLOY_SECONDS = 60.0
GOAL_RERUN_PERCENT = 35.0
GOAL_RERUN_CALLS = 90
LATENCY_MS = 80.0
FAULT_RATE = 0.10
TOP_N = 12

REQUEST = re.compile(r'"(?:GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) (?!/moto-api)\S* HTTP/[\d.]+" \d{3}')
RECAP = re.compile(
    r"^\S+\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)
ROLE_LINE = re.compile(r"^(?P<role>\S+) -+ (?P<seconds>\d+\.\d+)s$", re.MULTILINE)
CHANGED_TASK = re.compile(r"^TASK \[(?P<task>.+?)\] \*+\n(?:(?!TASK \[).*\n)*?changed: ", re.MULTILINE)


@dataclass
class Phase:
    name: str
    playbook: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + sys of ansible-playbook and every module process it ran
    emulator_cpu_seconds: float | None = None  # user + sys of the moto server during the phase
    returncode: int = 0
    output: str = ""
    api_calls: int = 0
    recap: dict[str, int] = field(default_factory=dict)
    task_headers: int = 0
    role_seconds: list[tuple[str, float]] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)
    weather: dict = field(default_factory=dict)  # the proxy's calls and faults by operation, when it ran through it

    @property
    def executed_tasks(self) -> int:
        """ok + changed + failed + skipped of the recap: every task the host went through."""
        return sum(self.recap.get(key, 0) for key in ("ok", "changed", "failed", "skipped"))

    @property
    def module_runs(self) -> int:
        """Module executions (one per loop item): each starts a Python process on the controller."""
        return sum(task["runs"] for task in self.tasks if not task["controller_only"])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float | None:
    """user + sys seconds of a running process (Linux /proc), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_requests(log: Path) -> int:
    with log.open("rb") as handle:
        return sum(1 for line in handle if REQUEST.search(line.decode("utf-8", "replace")))


def settled_request_count(log: Path) -> int:
    """Request lines in the log once it stops growing (the server logs each request as it answers it)."""
    count = count_requests(log)
    for _ in range(20):
        time.sleep(0.1)
        again = count_requests(log)
        if again == count:
            return count
        count = again
    return count


@dataclass
class Bench:
    """Where the phases run: the private emulator, its log, the work directory and the playbook settings."""

    emulator: Emulator
    log: Path
    workdir: Path
    inventory: str
    extra_env: dict[str, str]
    project: Path = ROOT


def run_phase(phase: Phase, bench: Bench, proxy: WeatherProxy | None = None) -> Phase:
    """One playbook run; through `proxy` (its counts reset first) when given, else straight to the emulator."""
    log, workdir = bench.log, bench.workdir
    profile = workdir / f"{phase.name}.json"
    if proxy is not None:
        proxy.weather.reset()
    env = base_env(
        {
            **bench.emulator.env(),
            **({"AWS_ENDPOINT_URL": proxy.url} if proxy else {}),
            "ANSIBLE_CONFIG": str(bench.project / "ansible.cfg"),
            **bench.extra_env,
            "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "scripts" / "bench_callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_roles,bench_profile",
            "PROFILE_ROLES_SUMMARY_ONLY": "true",
            "BENCH_PROFILE_OUT": str(profile),
            "BENCH_MOTO_LOG": str(log),
        }
    )
    before = settled_request_count(log)
    cmd = [str(BIN / "ansible-playbook"), "-i", bench.inventory, phase.playbook]
    moto_cpu_before = process_cpu(bench.emulator.process.pid)
    cpu_before = children_cpu()
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=bench.project, env=env, capture_output=True, text=True, timeout=1800, check=False)
    phase.seconds = time.monotonic() - start
    phase.cpu_seconds = children_cpu() - cpu_before
    moto_cpu_after = process_cpu(bench.emulator.process.pid)
    if moto_cpu_before is not None and moto_cpu_after is not None:
        phase.emulator_cpu_seconds = moto_cpu_after - moto_cpu_before
    phase.returncode = proc.returncode
    phase.output = proc.stdout + proc.stderr
    phase.api_calls = settled_request_count(log) - before
    if proxy is not None:
        phase.weather = proxy.weather.stats()
    recaps = list(RECAP.finditer(phase.output))
    phase.recap = {key: int(value) for key, value in recaps[-1].groupdict().items()} if recaps else {}
    phase.task_headers = phase.output.count("\nTASK [") + phase.output.startswith("TASK [")
    recap_text = phase.output.split("ROLES RECAP", 1)[-1] if "ROLES RECAP" in phase.output else ""
    phase.role_seconds = [
        (match["role"], float(match["seconds"])) for match in ROLE_LINE.finditer(recap_text) if match["role"] != "total"
    ]
    if profile.exists():
        phase.tasks = json.loads(profile.read_text(encoding="utf-8"))["tasks"]
    (workdir / f"{phase.name}.log").write_text(phase.output, encoding="utf-8")
    return phase


def image_environment_seconds() -> list[tuple[str, float, float]]:
    """(environment, cold seconds, warm seconds) of the image environments, built into an empty cache root
    (uv's download cache stays as it is: packages are not downloaded again)."""
    cache = Path(tempfile.mkdtemp(prefix="airflow-ecs-bench-images-"))
    env = {**os.environ, "AIRFLOW_ECS_IMAGE_CACHE": str(cache)}
    version = image_env.recipe_airflow_version(image_env.RECIPE_DIR)
    figures = []
    try:
        for label, args in ((f"stock apache/airflow:{version}", ["--stock", version]), ("recipe image/", [])):
            seconds = []
            for _ in ("cold", "warm"):
                began = time.monotonic()
                subprocess.run(
                    [sys.executable, "-m", "embedded_aws.image_env", "build", *args],
                    cwd=ROOT,
                    env=env,
                    check=True,
                    capture_output=True,
                )
                seconds.append(time.monotonic() - began)
            figures.append((label, seconds[0], seconds[1]))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return figures


def line(label: str, value: object) -> None:
    print(f"{label:<54} {value}")


def print_phase(phase: Phase) -> None:
    print(f"\n== {phase.name} ({phase.playbook}) ==")
    line(f"{phase.name}: wall seconds", f"{phase.seconds:.1f}")
    line(f"{phase.name}: CPU seconds, ansible-playbook + modules", f"{phase.cpu_seconds:.1f}")
    if phase.emulator_cpu_seconds is not None:
        line(f"{phase.name}: CPU seconds, emulator", f"{phase.emulator_cpu_seconds:.1f}")
    line(f"{phase.name}: exit code", phase.returncode)
    line(f"{phase.name}: AWS API calls", phase.api_calls)
    line(f"{phase.name}: 'TASK [' headers in the output", phase.task_headers)
    if phase.recap:
        recap = ", ".join(f"{key}={value}" for key, value in phase.recap.items())
        line(f"{phase.name}: recap", recap)
        line(f"{phase.name}: tasks run (ok+changed+skipped+failed)", phase.executed_tasks)
    if phase.tasks:
        line(f"{phase.name}: module runs (one per loop item)", phase.module_runs)
        ran_module = sum(1 for task in phase.tasks if task["runs"] and not task["controller_only"])
        line(f"{phase.name}: tasks that ran a module", ran_module)
        module = sum(task["seconds"] for task in phase.tasks if not task["controller_only"])
        controller = sum(task["seconds"] for task in phase.tasks if task["controller_only"])
        line(f"{phase.name}: seconds in module tasks", f"{module:.1f}")
        line(f"{phase.name}: seconds in controller-side tasks", f"{controller:.1f}")
    for role, seconds in phase.role_seconds:
        line(f"{phase.name}: profile_roles {role} (s)", f"{seconds:.2f}")
    if phase.tasks:
        by_top: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0])
        for task in phase.tasks:
            entry = by_top[task["top_role"]]
            entry[0] += task["seconds"]
            entry[1] += 0 if task["controller_only"] else task["runs"]
            entry[2] += task["api_calls"]
        for role, (seconds, runs, calls) in sorted(by_top.items(), key=lambda item: -item[1][0]):
            line(f"{phase.name}: play role {role}", f"{seconds:.2f} s, {runs} module runs, {calls} API calls")


def print_top(phase: Phase) -> None:
    if not phase.tasks:
        return
    print(f"\n== {phase.name}: top {TOP_N} tasks by wall time ==")
    for task in sorted(phase.tasks, key=lambda task: -task["seconds"])[:TOP_N]:
        label = f"{task['top_role']} > {task['name']}"[:100]
        print(
            f"{task['seconds']:7.2f} s  {task['runs']:3d} runs  {task['api_calls']:4d} API calls  "
            f"{task['action']}  [{label}]"
        )
    print(f"\n== {phase.name}: modules by total wall time ==")
    seconds: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for task in phase.tasks:
        if task["controller_only"]:
            continue
        seconds[task["action"]] += task["seconds"]
        runs[task["action"]] += task["runs"]
        calls[task["action"]] += task["api_calls"]
    for action, total in seconds.most_common(TOP_N):
        per_run = total / runs[action] if runs[action] else 0.0
        print(f"{total:7.2f} s  {runs[action]:3d} runs  {per_run:5.2f} s/run  {calls[action]:4d} API calls  {action}")


def changed_tasks(output: str) -> list[str]:
    return sorted({match["task"] for match in CHANGED_TASK.finditer(output)})


def print_goals(phases: list[Phase]) -> bool:
    """The issue's goals against the measured figures; False when a phase failed or the re-run changed something."""
    by_name = {phase.name: phase for phase in phases}
    deploy, rerun = by_name.get("deploy"), by_name.get("rerun")
    ok = all(phase.returncode == 0 for phase in phases) and len(phases) == 3
    print("\n== goals ==")
    if deploy and deploy.returncode == 0:
        met = "met" if deploy.seconds <= GOAL_DEPLOY_SECONDS else "NOT met"
        line(f"deploy <= {GOAL_DEPLOY_SECONDS:.0f} s", f"{deploy.seconds:.1f} s: {met}")
    if deploy and rerun and rerun.returncode == 0:
        percent = 100 * rerun.seconds / deploy.seconds
        met = "met" if percent <= GOAL_RERUN_PERCENT else "NOT met"
        line(f"re-run <= {GOAL_RERUN_PERCENT:.0f} % of deploy", f"{percent:.1f} %: {met}")
        cpu_percent = 100 * rerun.cpu_seconds / deploy.cpu_seconds if deploy.cpu_seconds else 0.0
        line("re-run CPU seconds as % of deploy CPU seconds", f"{cpu_percent:.1f} %")
        # Everything creating costs here is deploy - re-run; the re-run meets the goal only when
        # re-run <= goal * (re-run + creating), i.e. re-run <= creating * goal / (1 - goal).
        creating = deploy.seconds - rerun.seconds
        share = GOAL_RERUN_PERCENT / 100
        line("deploy minus re-run (what creating costs)", f"{creating:.1f} s")
        needed = max(creating, 0.0) * share / (1 - share)
        line(f"re-run needed for {GOAL_RERUN_PERCENT:.0f} % at that cost", f"<= {needed:.1f} s")
        line("re-run changed count (must be 0)", rerun.recap.get("changed", "no recap"))
        if rerun.recap.get("changed"):
            ok = False
            for task in changed_tasks(rerun.output):
                line("re-run changed task", task)
    return ok


def run_series(bench: Bench, label: str, proxy: WeatherProxy | None = None) -> list[Phase]:
    """Deploy, re-run and teardown (stops at the first failure)."""
    phases = []
    for name, playbook in (("deploy", "site.yml"), ("rerun", "site.yml"), ("teardown", "teardown.yml")):
        phase = run_phase(Phase(name + label, playbook), bench, proxy)
        phases.append(phase)
        if phase.returncode != 0:
            print(
                f"{phase.name} failed (exit {phase.returncode}); last output:\n{phase.output[-4000:]}", file=sys.stderr
            )
            break
    return phases


def print_weather(plain: list[Phase], weathers: dict[str, list[Phase]]) -> bool:
    """Wall time and playbook API calls per phase in each weather; the goals that need latency; False on a failure."""
    print("\n== weather: wall seconds / playbook API calls (retries) ==")
    columns = {"0 ms": plain, **weathers}
    print(f"{'phase':<10}" + "".join(f"{label:>30}" for label in columns))
    ok = True
    for index, name in enumerate(("deploy", "rerun", "teardown")):
        cells = []
        for phases in columns.values():
            if index >= len(phases):
                cells.append("not run")
                continue
            phase = phases[index]
            ok = ok and phase.returncode == 0
            calls = sum(phase.weather.get("calls", {}).values()) if phase.weather else phase.api_calls
            retries = sum(phase.weather.get("faults", {}).values())
            state = "" if phase.returncode == 0 else " FAILED"
            cells.append(f"{phase.seconds:.1f} s / {calls}" + (f" ({retries})" if retries else "") + state)
        print(f"{name:<10}" + "".join(f"{cell:>30}" for cell in cells))
    slow = next(iter(weathers.values()))
    if len(slow) >= 2 and slow[1].weather:
        rerun_calls = Counter(slow[1].weather["calls"])
        print(f"\n== weather: the no-op re-run's {sum(rerun_calls.values())} calls by operation ==")
        for operation, count in rerun_calls.most_common():
            print(f"{count:5d}  {operation}")
        print("\n== weather: goals ==")
        total = sum(rerun_calls.values())
        line(
            f"no-op re-run <= {GOAL_RERUN_CALLS} API calls",
            f"{total}: {'met' if total <= GOAL_RERUN_CALLS else 'NOT met'}",
        )
        percent = 100 * slow[1].seconds / slow[0].seconds
        met = "met" if percent <= GOAL_RERUN_PERCENT else "NOT met"
        line(f"re-run <= {GOAL_RERUN_PERCENT:.0f} % of deploy at {LATENCY_MS:.0f} ms", f"{percent:.1f} %: {met}")
    for label, phases in weathers.items():
        rerun = phases[1] if len(phases) > 1 else None
        if rerun is not None and rerun.recap.get("changed"):
            line(f"re-run changed count ({label}, must be 0)", rerun.recap["changed"])
            ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inventory", default="inventories/emulator")
    parser.add_argument("--keep-logs", action="store_true", help="keep the moto log and playbook outputs")
    parser.add_argument(
        "--project",
        type=Path,
        default=ROOT,
        help="checkout to benchmark (default: this one), e.g. an unpacked `git archive HEAD`",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every playbook run, e.g. ANSIBLE_PIPELINING=true (repeatable)",
    )
    parser.add_argument(
        "--no-weather", action="store_true", help="skip the runs through the weather proxy (80 ms, then faults)"
    )
    parser.add_argument("--no-images", action="store_true", help="skip the image environment build figures")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)

    workdir = Path(tempfile.mkdtemp(prefix="airflow-ecs-bench-"))
    log = workdir / "moto.log"
    load_before = os.getloadavg()
    emulator = start_emulator(log)
    bench = Bench(emulator, log, workdir, args.inventory, extra_env, args.project.resolve())
    phases: list[Phase] = []
    weathers: dict[str, list[Phase]] = {}
    try:
        phases = run_series(bench, "")
        if not args.no_weather and all(phase.returncode == 0 for phase in phases):
            for label, weather in (
                (f"{LATENCY_MS:.0f} ms", Weather(LATENCY_MS)),
                (f"{LATENCY_MS:.0f} ms + {FAULT_RATE:.0%} faults", Weather(LATENCY_MS, FAULT_RATE, seed=2026)),
            ):
                proxy = WeatherProxy(emulator.url, weather)
                try:
                    weathers[label] = run_series(bench, f" ({label})", proxy)
                finally:
                    proxy.close()
    finally:
        emulator.stop()
    images = [] if args.no_images else image_environment_seconds()
    load_after = os.getloadavg()

    print("== machine ==")
    line("CPU cores", os.cpu_count())
    line("load average (1 min) before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}")
    line("emulator", f"moto_server on {emulator.url} (private, stopped)")
    line("project", bench.project)
    line("inventory", args.inventory)
    for name, value in extra_env.items():
        line("extra environment", f"{name}={value}")
    for phase in phases:
        print_phase(phase)

    ok = print_goals(phases)
    for phase in phases:
        print_top(phase)
    if weathers:
        ok = print_weather(phases, weathers) and ok
    if images:
        print("\n== local runtime: image environments (empty cache root; the recipe's builds on the stock one) ==")
        for label, cold, warm in images:
            line(f"{label}: cold / warm seconds", f"{cold:.1f} / {warm:.2f}")

    if args.keep_logs or not ok:
        print(f"\nlogs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
