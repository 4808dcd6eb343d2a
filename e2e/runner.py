"""Run the deployed stack for real on this machine and check that Airflow works.

Steps (each timed; the first failure skips the rest, and everything started is stopped in any case):
deploy -> read the stack -> PostgreSQL + RabbitMQ -> migrate -> the six Airflow services -> their
health checks -> books_etl through the REST API and the Celery workers -> S3 outputs, task logs,
CloudWatch -> the UI in headless Chromium.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from e2e import browser, servers
from e2e.airflow_api import AirflowApi
from e2e.localize import LOCALHOST, LocalContainer, LocalEndpoints, allocate, is_airflow, localize, platform_env
from e2e.procs import PeakMemory, Proc, Processes, leftovers
from e2e.stack import Stack, read_stack

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
ARTIFACTS = ROOT / "artifacts" / "e2e"
VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SERVICE_ORDER = ["api-server", "scheduler", "dag-processor", "triggerer", "worker", "flower"]
DAG_ID = "books_etl"
PAGE_COUNT = 3  # the fixture site has 3 catalogue pages, 12 book pages, 9 valid rows
LOCAL_STOP_TIMEOUT = 20  # seconds; a task definition may allow more (the worker: 120)

for _path in (TESTS, TESTS / "dags"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


class StepFailed(RuntimeError):
    pass


@dataclass
class HealthResult:
    container: str
    command: str
    healthy: bool
    seconds: float
    attempts: int
    output: str = ""
    durations: list[float] = field(default_factory=list)  # wall seconds of each check


@dataclass
class Result:
    """What a run saw; the tests assert on it."""

    run_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    stack: Stack | None = None
    endpoints: LocalEndpoints | None = None
    containers: dict[str, LocalContainer] = field(default_factory=dict)
    migrate_exit: int | None = None
    migrate_rerun_exit: int | None = None  # the same task again, with the admin user already there
    migrate_rerun_log: str = ""
    health: dict[str, HealthResult] = field(default_factory=dict)
    broker_created: list[str] = field(default_factory=list)
    dag_run: dict = field(default_factory=dict)
    stray_runs: list[dict] = field(default_factory=list)
    task_instances: list[dict] = field(default_factory=list)
    task_logs: dict[str, str] = field(default_factory=dict)  # "task_id[map_index]#try" -> text
    data_bucket: str = ""
    data_keys: list[str] = field(default_factory=list)
    report_md: str = ""
    parquet_rows: int | None = None
    chart_png: bytes = b""
    cloudwatch: dict[str, int] = field(default_factory=dict)  # log stream -> events
    screenshot: Path | None = None
    page_text: str = ""
    peak_db_connections: int = 0
    effective_env: dict[str, dict[str, str]] = field(default_factory=dict)  # read from /proc/<pid>/environ
    start_order: list[str] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)
    worker_tasks_succeeded: int = 0  # Celery tasks the worker reports as succeeded
    worker_peak_mib: float = 0.0  # PSS of the worker's process group during the books_etl run
    leftovers: list[int] = field(default_factory=list)

    @property
    def rewrites(self):
        return [r for c in self.containers.values() for r in c.rewrites]

    def failed_step(self) -> str | None:
        return next(iter(self.errors), None)


class E2ERun:
    """One end-to-end run; use `run_all()`, or the steps one by one (the benchmark does)."""

    def __init__(self, emulator_url: str | None = None, artifacts: Path = ARTIFACTS, keep_dir: bool = False) -> None:
        self.emulator_url = emulator_url
        self.artifacts = artifacts
        self.keep_dir = keep_dir
        self.run_dir = Path(tempfile.mkdtemp(prefix="airflow-e2e-"))
        self.run_dir.chmod(0o755)  # the postgres user must reach its data directory
        self.procs = Processes(self.run_dir)
        self.result = Result(self.run_dir)
        self.emulator = None
        self.postgres: servers.Postgres | None = None
        self.site = None
        self.api: AirflowApi | None = None
        self.started: dict[str, Proc] = {}
        self._db_watch_stop = threading.Event()

    # -- plumbing ---------------------------------------------------------------------------------

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        if self.result.errors:
            raise StepFailed(f"skipped {name}: {self.result.failed_step()} failed")
        log(f"{name} ...")
        start = time.monotonic()
        try:
            value = action()
        except Exception as exc:
            self.result.timings[name] = time.monotonic() - start
            detail = "".join(traceback.format_exception(exc))
            dead = [p.describe_failure() for p in self.procs.procs if not p.alive() and p.returncode not in (0, None)]
            self.result.errors[name] = detail + ("\n".join(dead) if dead else "")
            log(f"{name} FAILED after {self.result.timings[name]:.1f} s:\n{self.result.errors[name]}")
            raise StepFailed(name) from exc
        self.result.timings[name] = time.monotonic() - start
        log(f"{name}: {self.result.timings[name]:.1f} s")
        return value

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.emulator_url,
            region_name=REGION,
            aws_access_key_id=EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    @property
    def stack(self) -> Stack:
        assert self.result.stack is not None
        return self.result.stack

    def local(self, name: str) -> LocalContainer:
        return self.result.containers[name]

    # -- steps ------------------------------------------------------------------------------------

    def prerequisites(self) -> None:
        """Debian packages: PostgreSQL, RabbitMQ, Chromium (the venv's Airflow and providers are the image's)."""
        self.result.installed = servers.ensure_apt_packages({**servers.APT_PACKAGES, "chromium": "/usr/bin/chromium"})
        if self.result.installed:
            log(f"installed {self.result.installed}")

    def deploy(self) -> None:
        from ansible_runner import run_playbook  # noqa: PLC0415 - tests/ is on sys.path from here on
        from emulator import start_emulator  # noqa: PLC0415

        if self.emulator_url:
            log(f"using the already deployed emulator at {self.emulator_url}")
            return
        self.emulator = start_emulator(self.run_dir / "moto.log")
        self.emulator_url = self.emulator.url
        play = run_playbook("site.yml", self.emulator.env())
        if play.returncode != 0:
            raise RuntimeError(f"site.yml failed (exit {play.returncode}):\n{play.output[-4000:]}")

    def read(self) -> None:
        stack = read_stack(self.client)
        self.result.stack = stack
        self.result.endpoints = allocate(stack, self.emulator_url or "", EMULATOR_CREDENTIALS, REGION)
        for name, container in stack.containers.items():
            extra = servers.prepare_rabbitmq_files(self.run_dir) if name == "rabbitmq" else None
            bins = [str(VENV_BIN)] + ([servers.RABBITMQ_BIN] if name == "rabbitmq" else [])
            platform = platform_env(name, self.run_dir, bins, REGION, airflow=is_airflow(container), extra=extra)
            self.result.containers[name] = localize(container, self.result.endpoints, platform)
        log(
            f"cluster {stack.cluster}: services {sorted(c for c in stack.containers if c != 'migrate')}, "
            f"migrate {stack.migrate.task_definition}"
        )
        log("rewrites (everything that differs from the task definitions):")
        for line in format_rewrites(self.result.rewrites):
            log("  " + line)

    def start_database(self) -> None:
        airflow = self.local("migrate").container.declared_env
        db = servers.parse_db_url(airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        backend = servers.parse_db_url(airflow["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+"))
        if (backend.host, backend.port, backend.database, backend.user) != (db.host, db.port, db.database, db.user):
            self.result.findings.append("the Celery result backend is not the metadata database")
        assert self.result.endpoints is not None
        self.postgres = servers.Postgres(self.procs, self.run_dir, self.result.endpoints.ports[db.port])
        self.postgres.start()
        self.postgres.create_database(db)
        threading.Thread(target=self._watch_db_connections, daemon=True).start()

    def _watch_db_connections(self) -> None:
        while not self._db_watch_stop.wait(2):
            try:
                assert self.postgres is not None
                self.result.peak_db_connections = max(self.result.peak_db_connections, self.postgres.connections())
            except Exception:
                return

    def start_broker(self) -> None:
        rabbit = self.local("rabbitmq")
        epmd, server = servers.start_rabbitmq(self.procs, rabbit.env, self.run_dir / "rabbitmq")
        self.started["epmd"] = epmd
        self.record_start("rabbitmq", server)
        broker = servers.parse_broker_url(self.local("worker").container.declared_env["AIRFLOW__CELERY__BROKER_URL"])
        self.result.broker_created = servers.ensure_broker_account(rabbit.env, broker)
        if self.result.broker_created:
            self.result.findings.append(
                "the broker URL's account is not the one the RabbitMQ container creates; had to add "
                + ", ".join(self.result.broker_created)
            )
        self.wait_healthy(["rabbitmq"], timeout=90)

    def container_argv(self, local: LocalContainer) -> list[str]:
        """What the image's entrypoint runs: `bash`/`python` commands as they are, anything else via `airflow`."""
        command = local.container.command
        if is_airflow(local.container):
            if command and command[0] in ("bash", "python", "airflow"):
                return list(command)
            return ["airflow", *command]
        return list(command)

    def start_container(self, name: str, process_name: str | None = None) -> Proc:
        local = self.local(name)
        cwd = Path(local.env.get("AIRFLOW_HOME") or local.env["HOME"])
        stop_timeout = min(local.container.stop_timeout, LOCAL_STOP_TIMEOUT)
        argv = self.container_argv(local)
        proc = self.procs.start(process_name or name, argv, local.env, cwd, stop_timeout=stop_timeout)
        if process_name is None:
            self.record_start(name, proc)
        return proc

    def record_start(self, name: str, proc: Proc) -> None:
        """Remember the environment the process really got (from /proc, not from our own dict)."""
        self.started[name] = proc
        self.result.start_order.append(name)
        self.result.effective_env[name] = read_environ(proc.pid)

    def migrate(self, timeout: float = 600) -> None:
        proc = self.start_container("migrate")
        try:
            self.result.migrate_exit = proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"migrate still running after {timeout} s\n{proc.describe_failure()}") from exc
        if self.result.migrate_exit != 0:
            raise RuntimeError(f"migrate exited {self.result.migrate_exit}\n{proc.describe_failure()}")

    def start_migrate_rerun(self) -> None:
        """Run the migrate task once more, as every deploy with a new revision does (admin exists now)."""
        self.started["migrate-rerun"] = self.start_container("migrate", process_name="migrate-rerun")

    def finish_migrate_rerun(self, timeout: float = 300) -> None:
        proc = self.started["migrate-rerun"]
        try:
            self.result.migrate_rerun_exit = proc.wait(timeout)
        finally:
            self.result.migrate_rerun_log = proc.tail(60)
        if self.result.migrate_rerun_exit != 0:
            raise RuntimeError(
                f"migrate (second run) exited {self.result.migrate_rerun_exit}\n{proc.describe_failure()}"
            )

    def start_services(self, names: list[str] | None = None) -> None:
        for name in names or [n for n in SERVICE_ORDER if n in self.result.containers]:
            self.start_container(name)

    def wait_healthy(self, names: list[str], timeout: float = 300) -> None:
        threads = [threading.Thread(target=self._health_loop, args=(n, timeout), daemon=True) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sick = [self.result.health[n] for n in names if not self.result.health[n].healthy]
        if sick:
            details = "\n".join(
                f"{h.container}: `{h.command}` never passed ({h.attempts} tries, {h.seconds:.0f} s): "
                f"{h.output[-800:]}\n" + self.started[h.container].describe_failure()
                for h in sick
            )
            raise RuntimeError(f"unhealthy: {[h.container for h in sick]}\n{details}")

    def _health_loop(self, name: str, timeout: float) -> None:
        local = self.local(name)
        check = local.container.health_check
        proc = self.started[name]
        start = time.monotonic()
        if check is None or local.health_check is None:
            self.result.health[name] = HealthResult(name, "", proc.alive(), 0, 0, "no health check")
            return
        deadline = start + min(timeout, check.start_period + check.retries * check.interval + 60)
        attempts, output, durations = 0, "", []
        self._wait_until_likely_healthy(name, proc, deadline)
        while time.monotonic() < deadline and proc.alive():
            attempts += 1
            began = time.monotonic()
            code, output = run_check(local.health_check, local.env, check.timeout)
            durations.append(round(time.monotonic() - began, 1))
            if code == 0:
                self.result.health[name] = HealthResult(
                    name, local.health_check, True, time.monotonic() - start, attempts, output, durations
                )
                log(f"  {name} healthy after {time.monotonic() - start:.0f} s ({attempts} checks)")
                return
            # Faster than the task definition's interval (the point is to start quickly), but a check
            # that costs seconds of CPU (`airflow jobs check`) is not repeated back to back.
            time.sleep(min(check.interval, max(2.0, (time.monotonic() - began) / 2)))
        if not proc.alive():
            output += f"\n(process exited with {proc.returncode})"
        self.result.health[name] = HealthResult(
            name, local.health_check, False, time.monotonic() - start, attempts, output, durations
        )

    def _wait_until_likely_healthy(self, name: str, proc: Proc, deadline: float) -> None:
        """Hold back the expensive checks (a whole Airflow CLI each) until they can pass.

        `airflow jobs check` waits for the job's row in the metadata database (read directly here),
        `celery inspect ping` for the worker's "ready" line; the task definition's check runs after.
        """
        command = self.local(name).health_check or ""
        job = re.search(r"--job-type\s+(\w+)", command)
        while time.monotonic() < deadline and proc.alive():
            if job and self.postgres is not None:
                db = servers.parse_db_url(
                    self.local(name).container.declared_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
                )
                try:
                    rows = self.postgres.sql(
                        f"SELECT count(*) FROM job WHERE job_type = '{job.group(1)}' AND state = 'running'",
                        database=db.database,
                    )
                except Exception:  # the table may not be there yet
                    rows = [(0,)]
                if rows[0][0]:
                    return
            elif "inspect ping" in command:
                if re.search(r"celery@\S+ ready\.", proc.log_path.read_text(errors="replace")):
                    return
            else:
                return
            time.sleep(1)

    def login(self) -> AirflowApi:
        assert self.result.endpoints is not None
        api_port = int(self.local("api-server").env["AIRFLOW__API__PORT"])
        self.api = AirflowApi(f"http://{LOCALHOST}:{api_port}")
        username, password = self.admin_credentials()
        self.api.login(username, password)
        return self.api

    def admin_credentials(self) -> tuple[str, str]:
        admin = self.stack.secret_json(f"{self.stack.cluster}/admin")
        return admin["username"], admin["password"]

    def start_site(self) -> str:
        from books_support import SITE, SiteServer  # noqa: PLC0415

        if self.site is None:
            self.site = SiteServer(SITE).start()
        return self.site.url

    def run_dag(
        self, dag_id: str, conf: dict, timeout: float = 420, parse_timeout: float = 240, guard_schedule: bool = True
    ) -> dict:
        """Trigger `dag_id` (paused) for its next scheduled logical date, unpause, wait for the run to end.

        Taking the next logical date keeps the scheduler from creating a scheduled run of its own when
        the DAG is unpaused (that run would use the default params: the real website).
        """
        api = self.api or self.login()
        dag = api.wait_for_dag(dag_id, timeout=parse_timeout)
        logical_date = dag.get("next_dagrun_logical_date") if guard_schedule else None
        run = api.trigger(dag_id, conf, logical_date=logical_date)
        run_id = run["dag_run_id"]
        log(f"  triggered {dag_id} run {run_id} (logical date {logical_date})")
        api.set_paused(dag_id, False)

        def stop_strays(_: dict) -> None:
            for other in api.runs(dag_id):
                if other["dag_run_id"] != run_id and other["state"] not in ("failed", "success"):
                    api.set_run_state(dag_id, other["dag_run_id"], "failed")
                    self.result.stray_runs.append(other)
                    log(f"  stopped an unexpected run {other['dag_run_id']} ({other.get('run_type')})")

        finished = api.wait_for_run(dag_id, run_id, timeout, on_poll=stop_strays if guard_schedule else None)
        api.set_paused(dag_id, True)
        return finished

    def run_books_etl(self) -> None:
        site = self.start_site()
        conf = {
            "base_url": site,
            "page_count": PAGE_COUNT,
            "request_delay_seconds": 0,
            "http_backoff_seconds": 0.2,
            "request_timeout_seconds": 10,
        }
        with PeakMemory(self.started["worker"]) as memory:
            run = self.run_dag(DAG_ID, conf)
        self.result.worker_peak_mib = memory.peak
        self.result.dag_run = run
        assert self.api is not None
        self.result.task_instances = self.api.task_instances(DAG_ID, run["dag_run_id"])
        states = {f"{ti['task_id']}[{ti['map_index']}]": ti["state"] for ti in self.result.task_instances}
        log(f"  run {run['state']}: {states}")
        self.result.worker_tasks_succeeded = self.worker_tasks_succeeded(len(self.result.task_instances))
        if run["state"] != "success":
            raise RuntimeError(f"{DAG_ID} run ended {run['state']}: {states}")

    def worker_tasks_succeeded(self, expected: int, timeout: float = 60) -> int:
        """Celery tasks the worker logged as succeeded, waiting up to `timeout` for `expected` of them.

        A task instance reports success to the API server before its Celery task returns, so the
        run can end a moment before the worker logs the last task.
        """
        log_path = self.started["worker"].log_path
        deadline = time.monotonic() + timeout
        while True:
            count = len(re.findall(r"Task execute_workload\[[^\]]+\] succeeded", log_path.read_text(errors="replace")))
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(1)

    def read_task_logs(self) -> None:
        assert self.api is not None
        shutil.rmtree(self.artifacts / "task_logs", ignore_errors=True)
        for ti in self.result.task_instances:
            for attempt in range(1, int(ti.get("try_number") or 1) + 1):
                key = f"{ti['task_id']}[{ti['map_index']}]#{attempt}"
                text = self.api.task_log(
                    DAG_ID, self.result.dag_run["dag_run_id"], ti["task_id"], attempt, ti["map_index"]
                )
                self.result.task_logs[key] = text
                (self.artifacts / "task_logs").mkdir(parents=True, exist_ok=True)
                (self.artifacts / "task_logs" / f"{key.replace('#', '.try')}.log").write_text(text)

    def read_outputs(self) -> None:
        import pyarrow.parquet as pq  # noqa: PLC0415

        env = self.local("worker").container.environment
        bucket = env["AIRFLOW_VAR_ETL_DATA_BUCKET"]
        self.result.data_bucket = bucket
        s3 = self.client("s3")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys += [o["Key"] for o in page.get("Contents", [])]
        self.result.data_keys = sorted(keys)
        dt = (self.result.dag_run.get("logical_date") or self.result.dag_run["run_after"])[:10]
        report = f"reports/dt={dt}/report.md"
        if report in keys:
            self.result.report_md = s3.get_object(Bucket=bucket, Key=report)["Body"].read().decode()
        chart = f"reports/dt={dt}/chart.png"
        if chart in keys:
            self.result.chart_png = s3.get_object(Bucket=bucket, Key=chart)["Body"].read()
        curated = f"curated/books/dt={dt}/books.parquet"
        if curated in keys:
            data = s3.get_object(Bucket=bucket, Key=curated)["Body"].read()
            self.result.parquet_rows = pq.read_table(io.BytesIO(data)).num_rows

    def read_cloudwatch(self) -> None:
        folder = self.local("worker").container.environment.get("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "")
        group = folder.split(":log-group:", 1)[-1] if folder.startswith("cloudwatch://") else ""
        if not group:
            self.result.findings.append("remote logging is not CloudWatch")
            return
        logs = self.client("logs")
        streams = logs.describe_log_streams(logGroupName=group).get("logStreams", [])
        for stream in streams:
            events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)
            self.result.cloudwatch[stream["logStreamName"]] = len(events.get("events", []))

    def screenshot(self) -> None:
        executable = browser.find_chromium()
        if not executable:
            servers.ensure_apt_packages({"chromium": "/usr/bin/chromium"})
            executable = browser.find_chromium()
        assert executable, "chromium is not installed"
        chromium = browser.Chromium(self.procs, self.run_dir, executable)
        chromium.start()
        page = chromium.page()
        try:
            assert self.api is not None
            base = self.api.base_url
            username, password = self.admin_credentials()
            page.navigate(f"{base}/auth/login/?next=/dags/{DAG_ID}/runs")
            browser.fill_and_submit_login(page, username, password)
            page.wait_for("document.cookie.includes('_token') || location.pathname.startsWith('/dags')", 60)
            page.navigate(f"{base}/dags/{DAG_ID}/runs")
            run_id = self.result.dag_run.get("dag_run_id", "")
            page.wait_for(
                f"document.body && document.body.innerText.includes({json.dumps(DAG_ID)})"
                f" && document.body.innerText.includes({json.dumps(run_id)})"
                " && /success/i.test(document.body.innerText)",
                90,
            )
            time.sleep(1.5)  # let the table settle before the picture
            self.result.page_text = page.text()
            path = self.artifacts / f"{DAG_ID}_runs.png"
            page.screenshot(path)
            self.result.screenshot = path
            (self.artifacts / f"{DAG_ID}_runs.txt").write_text(self.result.page_text)
        finally:
            page.close()
            self.procs.stop("chromium")

    def stop(self) -> None:
        """Stop everything this run started, newest first; then make sure nothing is left."""
        log("stopping everything ...")
        start = time.monotonic()
        self._db_watch_stop.set()
        # Airflow (and Chromium) first, all at once; then the broker and epmd; the database last.
        infrastructure = {"rabbitmq", "epmd", "postgres"}
        waves = [
            [p for p in reversed(self.procs.procs) if p.name not in infrastructure],
            [p for p in reversed(self.procs.procs) if p.name in infrastructure - {"postgres"}],
            [p for p in self.procs.procs if p.name == "postgres"],
        ]
        for wave in waves:
            began = time.monotonic()
            try:
                self.procs.stop_together(wave)
            except Exception as exc:  # keep stopping the others; the sweep follows
                log(f"stopping {[p.name for p in wave]} failed: {exc}")
            if wave and time.monotonic() - began > 3:
                log(f"  {', '.join(p.name for p in wave)}: {time.monotonic() - began:.1f} s to stop")
        if self.site is not None:
            self.site.stop()
        if self.emulator is not None:
            self.emulator.stop()
        killed = self.procs.sweep()
        self.result.leftovers = leftovers(str(self.run_dir))
        if killed:
            log(f"killed {len(killed)} leftover process(es) by pid: {killed}")
        self.collect_logs()
        if not self.keep_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.result.timings["stop"] = time.monotonic() - start
        log(f"stopped in {self.result.timings['stop']:.1f} s; leftovers: {self.result.leftovers or 'none'}")

    def collect_logs(self) -> None:
        target = self.artifacts / "logs"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        for path in self.procs.logs.glob("*.log"):
            shutil.copy(path, target / path.name)
        moto = self.run_dir / "moto.log"
        if moto.exists():
            shutil.copy(moto, target / "moto.log")

    # -- the whole thing --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything before the first container starts: packages, the deployment, the stack read back."""
        self.step("prerequisites", self.prerequisites)
        self.step("deploy", self.deploy)
        self.step("read stack", self.read)

    def boot(self) -> None:
        """From nothing running to every service healthy (the cold start)."""
        self.step("postgres", self.start_database)
        self.step("rabbitmq", self.start_broker)
        self.step("migrate", self.migrate)
        self.step("start services", self.start_services)
        self.step("health checks", lambda: self.wait_healthy([n for n in SERVICE_ORDER if n in self.started]))

    def run_all(self) -> Result:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        try:
            self.prepare()
            self.boot()
            # The next deploy's migrate task runs while DAGs run: start it alongside the books_etl run.
            self.step("migrate re-run start", self.start_migrate_rerun)
            self.step("books_etl run", self.run_books_etl)
            self.step("task logs", self.read_task_logs)
            self.step("s3 outputs", self.read_outputs)
            self.step("cloudwatch", self.read_cloudwatch)
            self.step("migrate re-run", self.finish_migrate_rerun)
            self.step("ui screenshot", self.screenshot)
        except StepFailed:
            pass
        finally:
            self.stop()
            self.result.timings["total"] = time.monotonic() - start
        return self.result


def read_environ(pid: int, timeout: float = 10) -> dict[str, str]:
    """The initial environment of a process, from /proc/<pid>/environ.

    Right after Popen returns the kernel may still show an empty environment (the exec is under way),
    so this waits for it. Read it early: setproctitle (Airflow, Celery) later reuses that memory.
    """
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = f.read().split(b"\0")
        environ = dict(item.decode().split("=", 1) for item in items if b"=" in item)
        if environ or time.monotonic() > deadline:
            return environ
        time.sleep(0.01)


def run_check(command: str, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """`sh -c command` in its own process group, killed whole on timeout (as Docker kills the exec)."""
    proc = subprocess.Popen(
        ["sh", "-c", command],
        env=env,
        cwd=env.get("AIRFLOW_HOME") or env["HOME"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output.strip()
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return -1, f"timed out after {timeout} s: {output.strip()[-500:]}"


def format_rewrites(rewrites) -> list[str]:
    """One line per (key, kind, before -> after), with the containers it applies to; secrets masked."""
    grouped: dict[tuple, list[str]] = {}
    for r in rewrites:
        grouped.setdefault((r.key, r.kind, mask(r.before), mask(r.after)), []).append(r.container)
    lines = []
    for (key, kind, before, after), names in sorted(grouped.items()):
        change = f"{before} -> {after}" if before is not None else f"(added) {after}"
        lines.append(f"[{kind}] {key}: {change}  ({', '.join(sorted(names))})")
    return lines


def mask(value: str | None) -> str | None:
    """Hide the password of URLs and the emulator secret key in printed rewrites."""
    if value is None:
        return None
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", value)


def summary(result: Result) -> str:
    lines = ["", "=== e2e summary ==="]
    for name, seconds in result.timings.items():
        lines.append(f"  {name:<16} {seconds:7.1f} s")
    lines.append(
        f"  health: {', '.join(f'{h.container}={"ok" if h.healthy else "FAIL"}' for h in result.health.values())}"
    )
    if result.dag_run:
        lines.append(f"  {DAG_ID} run {result.dag_run.get('dag_run_id')}: {result.dag_run.get('state')}")
    lines.append(f"  data bucket objects: {len(result.data_keys)}; curated rows: {result.parquet_rows}")
    lines.append(f"  task logs read: {len(result.task_logs)}; CloudWatch streams: {len(result.cloudwatch)}")
    lines.append(
        f"  peak DB connections: {result.peak_db_connections}; worker peak PSS {result.worker_peak_mib:.0f} MiB"
    )
    for h in result.health.values():
        lines.append(f"  health check {h.container}: {h.attempts} tries, seconds each {h.durations}")
    lines.append(f"  screenshot: {result.screenshot}")
    for finding in result.findings:
        lines.append(f"  finding: {finding}")
    for step, error in result.errors.items():
        lines.append(f"  FAILED {step}: {error.strip().splitlines()[-1] if error.strip() else ''}")
    lines.append(f"  leftover processes: {result.leftovers or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--emulator-url", help="use an emulator where site.yml was already deployed")
    parser.add_argument("--keep-dir", action="store_true", help="keep the run directory (data, logs)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    run = E2ERun(emulator_url=args.emulator_url, keep_dir=args.keep_dir)
    result = run.run_all()
    print(summary(result), flush=True)
    return 1 if result.errors or result.leftovers else 0
