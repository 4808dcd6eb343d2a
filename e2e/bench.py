"""`python -m e2e.bench`: cold start to the first successful DAG run, then a 50-task fan-out, Celery vs Local.

1. Deploy to a private emulator (timed, not part of the cold start) and upload the fan-out DAG
   (tests/e2e/dags/fanout_bench.py) to the DAG bucket next to the deployed DAGs.
2. Cold start: PostgreSQL + RabbitMQ up, migrate, the six services healthy, books_etl triggered
   and successful (the same steps as `python -m e2e`).
3. fanout_bench through the deployed Celery configuration (scheduler -> RabbitMQ -> worker).
4. The same DAG under LocalExecutor: the worker and the scheduler stop, and a scheduler starts
   with the scheduler's task definition environment plus AIRFLOW__CORE__EXECUTOR=LocalExecutor
   (the only change, and only here).
Prints every figure and the Celery / Local ratio. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path

from e2e.procs import PeakMemory, Proc
from e2e.runner import ROOT, SERVICE_ORDER, E2ERun, StepFailed, log, summary

FANOUT_DAG = ROOT / "tests" / "e2e" / "dags" / "fanout_bench.py"
FANOUT_ID = "fanout_bench"


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


class Bench:
    def __init__(self, runs: int, emulator_url: str | None) -> None:
        self.runs = runs
        self.e2e = E2ERun(emulator_url=emulator_url, artifacts=ROOT / "artifacts" / "e2e-bench")
        self.figures: dict[str, object] = {}

    def upload_fanout_dag(self) -> None:
        env = self.e2e.local("dag-processor").container.environment
        bundle = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])[0]["kwargs"]
        key = bundle.get("prefix", "") + FANOUT_DAG.name
        self.e2e.client("s3").put_object(Bucket=bundle["bucket_name"], Key=key, Body=FANOUT_DAG.read_bytes())
        log(f"uploaded {FANOUT_DAG.name} to s3://{bundle['bucket_name']}/{key}")

    def fanout(self, label: str, memory_of: Proc) -> list[float]:
        times = []
        for attempt in range(1, self.runs + 1):
            start = time.monotonic()
            with PeakMemory(memory_of) as memory:
                run = self.e2e.run_dag(FANOUT_ID, {}, timeout=900, guard_schedule=False)
            wall = time.monotonic() - start
            if run["state"] != "success":
                raise RuntimeError(f"{FANOUT_ID} under {label} ended {run['state']}")
            inside = _seconds(run.get("start_date"), run.get("end_date"))
            log(
                f"  {label} fan-out #{attempt}: {wall:.1f} s trigger to success "
                f"(run start to end {inside:.1f} s), peak memory of {memory_of.name}: {memory.peak:.0f} MiB"
            )
            times.append(inside if inside is not None else wall)
            self.figures[f"{label} peak MiB"] = round(max(memory.peak, float(self.figures.get(f"{label} peak MiB", 0))))
        return times

    def health_check_cost(self) -> None:
        """CPU seconds (user + system, with children) and wall seconds of one run of each health check."""
        for name in ["rabbitmq", *SERVICE_ORDER]:
            local = self.e2e.local(name)
            if not local.health_check:
                continue
            start = time.monotonic()
            proc = subprocess.Popen(
                ["sh", "-c", local.health_check],
                env=local.env,
                cwd=local.env.get("AIRFLOW_HOME") or local.env["HOME"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
            self.figures[f"health check {name} (CPU s / wall s)"] = f"{cpu:.1f} / {time.monotonic() - start:.1f}"

    def switch_to_local_executor(self) -> Proc:
        """Stop the Celery worker and the scheduler; start a scheduler with LocalExecutor, else identical."""
        self.e2e.procs.stop("worker")
        self.e2e.procs.stop("scheduler")
        local = self.e2e.local("scheduler")
        env = {**local.env, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
        cwd = Path(local.env["AIRFLOW_HOME"])
        return self.e2e.procs.start("scheduler-local", ["airflow", "scheduler"], env, cwd, stop_timeout=20)

    def run(self) -> int:
        e2e = self.e2e
        e2e.artifacts.mkdir(parents=True, exist_ok=True)
        try:
            e2e.prepare()
            e2e.step("upload fan-out DAG", self.upload_fanout_dag)
            cold = time.monotonic()
            e2e.boot()
            e2e.step("books_etl run", e2e.run_books_etl)
            self.figures["cold start to first successful run (s)"] = round(time.monotonic() - cold, 1)
            e2e.step("health check cost", self.health_check_cost)
            celery = e2e.step("fan-out celery", lambda: self.fanout("CeleryExecutor", e2e.started["worker"]))
            scheduler = e2e.step("switch to LocalExecutor", self.switch_to_local_executor)
            local = e2e.step("fan-out local", lambda: self.fanout("LocalExecutor", scheduler))
            c, lo = statistics.median(celery), statistics.median(local)
            self.figures.update(
                {
                    "fan-out CeleryExecutor (s)": round(c, 1),
                    "fan-out LocalExecutor (s)": round(lo, 1),
                    "Celery / Local": round(c / lo, 2),
                }
            )
        except StepFailed:
            pass
        finally:
            e2e.stop()
        print(summary(e2e.result), flush=True)
        print("\n=== benchmark ===", flush=True)
        print(f"  deploy (site.yml on the emulator): {e2e.result.timings.get('deploy', 0):.1f} s")
        for name, value in self.figures.items():
            print(f"  {name}: {value}")
        return 1 if e2e.result.errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="fan-out runs per executor (the median is compared)")
    parser.add_argument("--emulator-url", help="use an emulator where site.yml was already deployed")
    args = parser.parse_args(argv)
    return Bench(args.runs, args.emulator_url).run()


if __name__ == "__main__":
    raise SystemExit(main())
