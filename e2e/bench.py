"""`python -m e2e.bench`: `make deploy` to the UI, first books_etl, then a 50-task fan-out, Celery vs Local.

1. `make deploy` on the emulator from zero: site.yml with the local runtime, then the UI healthy behind
   the ALB listener (each timed; their sum is the deploy-to-UI figure), then books_etl (the first
   successful run after the UI is up).
2. A rolling upgrade under load: upgrade_bench (60 tasks of 10 s, no retries) is triggered, then
   site.yml deploys a new image tag, which rolls every Airflow service (two api-servers, scheduler,
   dag-processor, triggerer, worker with its warm shutdown, flower) while the run goes on; the UI's
   health endpoint is probed through the ALB listener every 0.5 s. Figures: task instances lost (not
   successful), the longest UI outage and the share of probes answered.
3. fanout_bench (tests/e2e/dags/fanout_bench.py, uploaded to the DAG bucket by the bench only)
   through the deployed Celery configuration (scheduler -> RabbitMQ -> worker).
4. The same DAG under LocalExecutor, switched the way a user would on ECS: a scheduler task definition
   revision with AIRFLOW__CORE__EXECUTOR=LocalExecutor (the only change) rolled out by the service,
   and the worker service scaled to 0.
Prints every figure and the Celery / Local ratio, then tears down. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import requests

from e2e.runner import CLUSTER, ROOT, E2ERun, StepFailed, log, summary
from embedded_aws.processes import PeakMemory, leftovers

FANOUT_DAG = ROOT / "tests" / "e2e" / "dags" / "fanout_bench.py"
FANOUT_ID = "fanout_bench"
UPGRADE_DAG = ROOT / "tests" / "e2e" / "dags" / "upgrade_bench.py"
UPGRADE_ID = "upgrade_bench"
# A new recipe (image/ with a changed Dockerfile): a new image built and every Airflow service rolled onto it.
UPGRADE_NOTE = "# upgraded by e2e/bench.py\n"


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


class Bench:
    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.e2e = E2ERun(artifacts=ROOT / "artifacts" / "e2e-bench")
        self.figures: dict[str, object] = {}

    def upload_dag(self, path: Path) -> None:
        env = self.e2e.environment("scheduler")  # its task runs the dag-processor too (same environment)
        bundle = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])[0]["kwargs"]
        key = bundle.get("prefix", "") + path.name
        self.e2e.client("s3").put_object(Bucket=bundle["bucket_name"], Key=key, Body=path.read_bytes())
        log(f"uploaded {path.name} to s3://{bundle['bucket_name']}/{key}")

    def upgrade_under_load(self) -> None:
        """upgrade_bench runs while site.yml rolls every Airflow service onto a new image tag."""
        from ansible_runner import run_playbook, upgraded_recipe  # noqa: PLC0415 - tests/ is on sys.path once e2e.runner is imported

        e2e = self.e2e
        api = e2e.api or e2e.login()
        api.wait_for_dag(UPGRADE_ID, timeout=240)
        probe = HealthProbe(f"{e2e.result.ui_url}/api/v2/monitor/health")
        probe.start()
        run = api.trigger(UPGRADE_ID, {})
        api.set_paused(UPGRADE_ID, False)
        time.sleep(5)  # the first tasks are running
        began = time.monotonic()
        # The playbook's own DAG bucket sync would remove the bench's DAG: ship it again from a copy.
        play = run_playbook(
            "site.yml",
            e2e.deployer_env,
            extra_vars={
                "images_recipe_dir": str(upgraded_recipe(e2e.run_dir / "recipe", UPGRADE_NOTE)),
                "dags_source_dir": str(e2e.dag_folder(UPGRADE_ID)),
            },
        )
        upgrade_seconds = time.monotonic() - began
        if play.returncode != 0:
            raise RuntimeError(f"the upgrade failed (exit {play.returncode}):\n{play.output[-4000:]}")
        finished = api.wait_for_run(UPGRADE_ID, run["dag_run_id"], timeout=900)
        probe.stop()
        instances = api.task_instances(UPGRADE_ID, run["dag_run_id"])
        states = Counter(ti["state"] for ti in instances)
        self.figures.update(
            {
                "rolling upgrade under load: upgrade (s)": round(upgrade_seconds, 1),
                "rolling upgrade under load: task instances lost": len(instances) - states["success"],
                "rolling upgrade under load: task instance states": dict(states),
                "rolling upgrade under load: run": finished["state"],
                "rolling upgrade under load: UI probes answered": f"{probe.answered}/{probe.sent}",
                "rolling upgrade under load: longest UI outage (s)": round(probe.longest_outage, 1),
            }
        )
        api.set_paused(UPGRADE_ID, True)

    def service_leader(self, service: str) -> SimpleNamespace:
        """The first process of the service's running task (its process group), for PeakMemory."""
        directory = str(self.e2e.task_directory(service))
        for pid in sorted(leftovers(directory)):
            with open(f"/proc/{pid}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[2]) == pid:
                    return SimpleNamespace(pid=pid, name=service)
        raise LookupError(f"no process group leader in {directory}")

    def fanout(self, label: str, service: str) -> list[float]:
        times = []
        for attempt in range(1, self.runs + 1):
            leader = self.service_leader(service)
            start = time.monotonic()
            with PeakMemory(leader) as memory:
                run = self.e2e.run_dag(FANOUT_ID, {}, timeout=900, guard_schedule=False)
            wall = time.monotonic() - start
            if run["state"] != "success":
                raise RuntimeError(f"{FANOUT_ID} under {label} ended {run['state']}")
            inside = _seconds(run.get("start_date"), run.get("end_date"))
            log(
                f"  {label} fan-out #{attempt}: {wall:.1f} s trigger to success "
                f"(run start to end {inside:.1f} s), peak memory of {service}: {memory.peak:.0f} MiB"
            )
            times.append(inside if inside is not None else wall)
            self.figures[f"{label} peak MiB"] = round(max(memory.peak, float(self.figures.get(f"{label} peak MiB", 0))))
        return times

    def switch_to_local_executor(self) -> None:
        """A scheduler revision with LocalExecutor rolled out by ECS; the worker service scaled to 0."""
        ecs = self.e2e.client("ecs")
        service = ecs.describe_services(cluster=CLUSTER, services=[f"{CLUSTER}-scheduler"])["services"][0]
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        container = definition["containerDefinitions"][0]
        container["environment"] = [
            e for e in container.get("environment", []) if e["name"] != "AIRFLOW__CORE__EXECUTOR"
        ] + [{"name": "AIRFLOW__CORE__EXECUTOR", "value": "LocalExecutor"}]
        keys = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions",
                "requiresCompatibilities", "cpu", "memory")  # fmt: skip
        revision = ecs.register_task_definition(**{k: definition[k] for k in keys if k in definition})
        ecs.update_service(cluster=CLUSTER, service=f"{CLUSTER}-worker", desiredCount=0)
        arn = revision["taskDefinition"]["taskDefinitionArn"]
        ecs.update_service(cluster=CLUSTER, service=f"{CLUSTER}-scheduler", taskDefinition=arn)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            current = ecs.describe_services(cluster=CLUSTER, services=[f"{CLUSTER}-scheduler"])["services"][0]
            deployments = current["deployments"]
            if len(deployments) == 1 and deployments[0]["rolloutState"] == "COMPLETED" and deployments[0][
                    "taskDefinition"] == arn:  # fmt: skip
                return
            time.sleep(2)
        raise TimeoutError("the LocalExecutor scheduler revision did not roll out within 300 s")

    def run(self) -> int:
        e2e = self.e2e
        e2e.artifacts.mkdir(parents=True, exist_ok=True)
        try:
            e2e.boot()
            self.figures["make deploy to every service steady and the UI healthy (s)"] = round(
                e2e.result.timings["deploy"] + e2e.result.timings["steady"], 1
            )
            e2e.step("books_etl run", e2e.run_books_etl)
            self.figures["first books_etl after the UI is up (s)"] = round(e2e.result.timings["books_etl run"], 1)
            # Zero workers when it is triggered: the autoscaling starts one (on AWS add Fargate's ~30-60 s start).
            self.figures["books_etl trigger to the first worker running, from zero workers (s)"] = (
                e2e.result.scale_out_seconds
            )
            e2e.step("upload upgrade DAG", lambda: self.upload_dag(UPGRADE_DAG))
            e2e.step("rolling upgrade under load", self.upgrade_under_load)
            e2e.step("upload fan-out DAG", lambda: self.upload_dag(FANOUT_DAG))
            celery = e2e.step("fan-out celery", lambda: self.fanout("CeleryExecutor", "worker"))
            e2e.step("switch to LocalExecutor", self.switch_to_local_executor)
            local = e2e.step("fan-out local", lambda: self.fanout("LocalExecutor", "scheduler"))
            c, lo = statistics.median(celery), statistics.median(local)
            self.figures.update(
                {
                    "fan-out CeleryExecutor (s)": round(c, 1),
                    "fan-out LocalExecutor (s)": round(lo, 1),
                    "Celery / Local": round(c / lo, 2),
                }
            )
            e2e.step("teardown", e2e.teardown)
        except StepFailed:
            pass
        finally:
            e2e.stop()
        print(summary(e2e.result), flush=True)
        print("\n=== benchmark ===", flush=True)
        for name, value in self.figures.items():
            print(f"  {name}: {value}")
        return 1 if e2e.result.errors else 0


class HealthProbe(threading.Thread):
    """GET `url` every 0.5 s: how many answered 200, and the longest time from an unanswered probe to the
    next answer (seconds)."""

    def __init__(self, url: str) -> None:
        super().__init__(name="health-probe", daemon=True)
        self.url = url
        self.sent = self.answered = 0
        self.longest_outage = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        session.trust_env = False
        down_since: float | None = None
        while not self._halt.is_set():
            self.sent += 1
            try:
                ok = session.get(self.url, timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            now = time.monotonic()
            if ok:
                self.answered += 1
                if down_since is not None:  # from the first unanswered probe to the next answer
                    self.longest_outage = max(self.longest_outage, now - down_since)
                down_since = None
            else:
                down_since = down_since or now
            self._halt.wait(0.5)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="fan-out runs per executor (the median is compared)")
    args = parser.parse_args(argv)
    return Bench(args.runs).run()


if __name__ == "__main__":
    raise SystemExit(main())
