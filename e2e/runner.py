"""The end-to-end run on the local runtime: deploy, use Airflow as a user would, tear down.

Steps (each timed; the first failure skips the rest, and the emulator and everything it ran are
stopped in any case): the embedded emulator with the local ECS agent -> site.yml -> the ALB listener
has a healthy target (the UI URL `make deploy` prints) -> what ECS, ELB and Cloud Map report -> the
migrate task once more -> books_etl through the UI's URL and the Celery worker -> a DAG shipped alone
-> tasks on the AwsEcsExecutor as Fargate tasks of their own, with their DAG's task role -> every secret
rotated (a stored connection read before and after) -> S3 outputs, task logs, CloudWatch -> the UI in
headless Chromium -> what IAM denied -> teardown.yml -> nothing left running.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import psycopg2
from cryptography.fernet import Fernet

from e2e import browser
from e2e.airflow_api import AirflowApi
from embedded_aws import servers
from embedded_aws.launcher import Emulator, deployer_keys, start_emulator, wait_for_ui
from embedded_aws.processes import Processes, leftovers

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
ARTIFACTS = ROOT / "artifacts" / "e2e"
REGION = "us-east-1"
CLUSTER = "airflow"
# The default stack's services: the scheduler's task runs the dag-processor and the triggerer too
# (airflow_nodes_colocate) and the worker-demand publisher of the autoscaled workers; Flower is off.
SERVICES = ["api-server", "scheduler", "worker", "rabbitmq"]
# Each service's containers: its own, every Airflow node's metrics sidecar, the scheduler's colocated ones.
CONTAINERS = {
    "api-server": {"api-server", "metrics"},
    "scheduler": {"scheduler", "metrics", "dag-processor", "triggerer", "worker-demand"},
    "worker": {"worker", "metrics"},
    "rabbitmq": {"rabbitmq"},
}
DAG_ID = "books_etl"
SHIPPED_DAG = "shipped_alone"  # tests/e2e/dags/shipped_alone.py, shipped with `--tags dags`
ROTATION_DAG = "rotation_check"  # tests/e2e/dags/rotation_check.py, shipped with it
PACKAGES_DAG = "image_packages"  # tests/e2e/dags/image_packages.py, shipped with it
BROKER_DAG = "broker_replacement"  # tests/e2e/dags/broker_replacement.py: 60 short tasks, shipped with it
# tests/e2e/dags/fargate_task_roles.py and fargate_role_escalation.py, shipped with it: tasks on the AwsEcsExecutor
# with the role the e2e inventory maps the first DAG to (E2E_INVENTORY), and a DAG taking that role, refused.
FARGATE_DAG, ESCALATION_DAG = "fargate_task_roles", "fargate_role_escalation"
FARGATE_ROLE = f"{CLUSTER}-task-e2e"
# The e2e's settings over inventories/emulator (ANSIBLE_INVENTORY lists both, so every playbook run has them).
E2E_INVENTORY = {
    "airflow_ecs": {
        "vars": {
            "airflow_task_roles": [
                {
                    "name": "e2e",
                    "dags": [FARGATE_DAG],
                    "statements": [
                        {
                            "Sid": "WriteProofs",
                            "Effect": "Allow",
                            "Action": "s3:PutObject",
                            "Resource": "arn:{{ preflight_partition }}:s3:::{{ airflow_data_bucket }}/fargate/*",
                        }
                    ],
                }
            ],
            # The workers start at zero (min 0 is the default; the count only matters when the service is
            # created): books_etl's first task must make the autoscaling start one.
            "airflow_nodes_worker_count": 0,
        }
    }
}
# The runtime evaluates alarms every 10 s instead of CloudWatch's minute (the publisher still puts the
# demand once a minute): a scale-out from zero takes at most about 70 s, plus the worker's start.
EMULATOR_ENV = {"EMBEDDED_AWS_ALARM_EVALUATION_SECONDS": "10"}
# Every generated secret but the admin user's, rotated on the running stack.
ROTATED = ["database", "broker", "fernet_key", "jwt_secret", "api_secret_key"]
PAGE_COUNT = 3  # the fixture site has 3 catalogue pages, 12 book pages, 9 valid rows
# watchtower (Airflow's CloudWatch handler) lists log groups before creating its own; the task role may
# only create that one existing group instead, so this denial is by design (roles/airflow/vars/main.yml).
EXPECTED_DENIALS = {
    # (each Airflow component that writes task logs: the scheduler's task runs the dag-processor and triggerer)
    *((f"{CLUSTER}-{component}-task", "logs:DescribeLogGroups") for component in ("worker", "scheduler")),
    (FARGATE_ROLE, "logs:DescribeLogGroups"),
    (FARGATE_ROLE, "secretsmanager:GetSecretValue"),  # fargate_task_roles' read_what_its_role_lacks, by design
}

for _path in (TESTS, TESTS / "dags"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


class StepFailed(RuntimeError):
    pass


@dataclass
class Result:
    """What a run saw; the tests assert on it."""

    run_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    ui_url: str = ""
    services: dict[str, dict] = field(default_factory=dict)  # DescribeServices, by service name
    tasks: dict[str, list[dict]] = field(default_factory=dict)  # DescribeTasks of the running tasks, by group
    # The worker service before books_etl (desired, running: idle at zero) and its first task's start,
    # in seconds after the trigger (the scale-out from zero).
    idle_workers: tuple[int, int] | None = None
    scale_out_seconds: float | None = None
    target_health: list[dict] = field(default_factory=list)
    discovery: dict[str, list[dict]] = field(default_factory=dict)  # Cloud Map name -> its instances
    migrate_tasks: list[dict] = field(default_factory=list)  # every migrate task ECS knows, after the re-run
    container_logs: dict[str, int] = field(default_factory=dict)  # awslogs stream -> events
    task_environ: dict[str, dict] = field(default_factory=dict)  # service -> the agent's view of its task
    dags_alone: dict = field(default_factory=dict)  # make deploy-dags: changed, seconds, tasks run
    broker_replacement: dict = field(default_factory=dict)  # the broker task replaced mid-run (BROKER_DAG)
    rotation: dict = field(default_factory=dict)  # secrets_rotate of every secret on the running stack
    # image_packages on a worker: task id -> (state, log), and the deployed Airflow image
    image_packages: dict[str, tuple[str, str]] = field(default_factory=dict)
    # fargate_task_roles on the AwsEcsExecutor: tasks (task id -> state, log, executor, executor_config), ecs_tasks
    # (DescribeTasks), proofs (keys written), role_decisions (action, allowed), refused (the import error)
    fargate: dict[str, Any] = field(default_factory=dict)
    airflow_image: str = ""
    rerun_changed: int | None = None  # changed= of a second site.yml while the stack runs
    restarted: list[str] = field(default_factory=list)  # task groups whose task the second run replaced
    target_health_after_rerun: list[dict] = field(default_factory=list)
    dag_run: dict = field(default_factory=dict)
    stray_runs: list[dict] = field(default_factory=list)
    task_instances: list[dict] = field(default_factory=list)
    task_logs: dict[str, str] = field(default_factory=dict)  # "task_id[map_index]#try" -> text
    data_bucket: str = ""
    data_keys: list[str] = field(default_factory=list)
    report_md: str = ""
    parquet_rows: int | None = None
    chart_png: bytes = b""
    cloudwatch: dict[str, int] = field(default_factory=dict)  # task log stream -> events
    # What the metrics sidecars put into CloudWatch: "name" or "name{dim=value}" -> sum, max and samples
    airflow_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    screenshot: Path | None = None
    page_text: str = ""
    worker_tasks_succeeded: int = 0
    denials: list[dict] = field(default_factory=list)  # IAM decisions that said no, other than EXPECTED_DENIALS
    teardown_runtime: dict = field(default_factory=dict)  # runtime.json after teardown.yml
    # The deploy summary's computed worst case of database connections, and the runtime's sampled peak (runtime.json
    # databases.<key>.connections, read before the teardown): worst_case, peak, max_connections, peak_by_client
    connections: dict = field(default_factory=dict)
    leftovers: list[int] = field(default_factory=list)

    def failed_step(self) -> str | None:
        return next(iter(self.errors), None)


class E2ERun:
    """One end-to-end run; use `run_all()`, or the steps one by one (the benchmark does)."""

    def __init__(self, artifacts: Path = ARTIFACTS, keep_dir: bool = False) -> None:
        self.artifacts = artifacts
        self.keep_dir = keep_dir
        self.run_dir = Path(tempfile.mkdtemp(prefix="airflow-e2e-"))
        self.run_dir.chmod(0o755)  # the postgres user must reach its data directory
        self.result = Result(self.run_dir)
        self.procs = Processes(self.run_dir)  # Chromium
        self.emulator: Emulator | None = None
        self.deployer_env: dict[str, str] = {}
        self.site = None
        self.api: AirflowApi | None = None

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
            self.result.errors[name] = "".join(traceback.format_exception(exc)) + self.stopped_tasks()
            log(f"{name} FAILED after {self.result.timings[name]:.1f} s:\n{self.result.errors[name]}")
            raise StepFailed(name) from exc
        self.result.timings[name] = time.monotonic() - start
        log(f"{name}: {self.result.timings[name]:.1f} s")
        return value

    def stopped_tasks(self) -> str:
        if self.emulator is None:
            return ""
        tasks = self.emulator.runtime().get("tasks", {})
        return "".join(
            f"\n{t['family']} {t['lastStatus']} exit {t['exitCode']}: {t['stoppedReason']} ({t['directory']}/logs)"
            for t in tasks.values()
            if t["lastStatus"] == "STOPPED" and t["exitCode"] != 0
        )

    def client(self, service: str):
        assert self.emulator is not None
        return self.emulator.client(service)

    def task_directory(self, service: str) -> Path:
        assert self.emulator is not None
        for task in self.emulator.runtime()["tasks"].values():
            if task["group"] == f"service:{CLUSTER}-{service}" and task["lastStatus"] == "RUNNING":
                return Path(task["directory"])
        raise LookupError(f"no RUNNING task of service {CLUSTER}-{service}")

    def container_log(self, service: str) -> Path:
        """The output of the service's own container in its running task (not of a sidecar)."""
        return self.task_directory(service) / "logs" / f"{service}.log"

    def environment(self, service: str) -> dict[str, str]:
        """The container's environment in its task definition (what ECS passes, without secrets)."""
        ecs = self.client("ecs")
        definition = ecs.describe_services(cluster=CLUSTER, services=[f"{CLUSTER}-{service}"])["services"][0]
        containers = ecs.describe_task_definition(taskDefinition=definition["taskDefinition"])["taskDefinition"]
        return {e["name"]: e["value"] for e in containers["containerDefinitions"][0].get("environment", [])}

    # -- steps ------------------------------------------------------------------------------------

    def prerequisites(self) -> None:
        servers.ensure_apt_packages({"chromium": "/usr/bin/chromium"})

    def deploy(self) -> None:
        from ansible_runner import run_playbook  # noqa: PLC0415 - tests/ is on sys.path from here on

        self.emulator = start_emulator(self.run_dir / "moto.log", env=EMULATOR_ENV, runtime=True)
        # As `make deploy` does: the playbooks run as a deployer holding exactly the deployer policy.
        policy = self.run_dir / "deployer-policy.json"
        play = run_playbook(
            "deployer_policy.yml", self.emulator.env(), extra_vars={"deployer_policy_file": str(policy)}
        )
        if play.returncode != 0:
            raise RuntimeError(f"deployer_policy.yml failed (exit {play.returncode}):\n{play.output[-4000:]}")
        self.deployer_env = {**self.emulator.env(), **deployer_keys(self.emulator, policy, self.run_dir / "key.json")}
        inventory = self.run_dir / "e2e-inventory.yml"
        inventory.write_text(json.dumps(E2E_INVENTORY))  # JSON is YAML
        self.deployer_env["ANSIBLE_INVENTORY"] = f"{ROOT / 'inventories' / 'emulator'},{inventory}"
        play = run_playbook("site.yml", self.deployer_env)
        if play.returncode != 0:
            raise RuntimeError(f"site.yml failed (exit {play.returncode}):\n{play.output[-4000:]}")
        worst = re.search(r"Database connections: worst case (\d+)", play.output)
        self.result.connections["worst_case"] = int(worst[1]) if worst else None

    def deploy_again(self) -> None:
        """Another `make deploy` while the stack runs, after the rotation (so a finished rotation must leave
        nothing for it either): nothing changes, nothing restarts, the api-server stays in service."""
        from ansible_runner import run_playbook  # noqa: PLC0415

        assert self.emulator is not None
        before = self.running_task_ids()
        # The same DAG folder as the last deploy shipped (a deploy makes the bucket mirror its folder).
        play = run_playbook("site.yml", self.deployer_env, extra_vars={"dags_source_dir": str(self.run_dir / "dags")})
        if play.returncode != 0:
            raise RuntimeError(f"the second site.yml failed (exit {play.returncode}):\n{play.output[-4000:]}")
        self.result.rerun_changed = play.changed
        after = self.running_task_ids()
        self.result.restarted = sorted(group for group, tasks in before.items() if after.get(group) != tasks)
        elb = self.client("elbv2")
        for group in elb.describe_target_groups()["TargetGroups"]:
            health = elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
            self.result.target_health_after_rerun += health["TargetHealthDescriptions"]

    def running_task_ids(self) -> dict[str, set[str]]:
        assert self.emulator is not None
        running: dict[str, set[str]] = {}
        for task_id, task in self.emulator.runtime()["tasks"].items():
            if task["lastStatus"] == "RUNNING":
                running.setdefault(task["group"], set()).add(task_id)
        return running

    def dag_folder(self, *extra_dags: str) -> Path:
        """The project's dags/ plus these DAGs of tests/e2e/dags/, as a folder a deploy mirrors to the bucket."""
        folder = self.run_dir / "dags"
        shutil.copytree(ROOT / "dags", folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        for dag_id in extra_dags:
            shutil.copy(TESTS / "e2e" / "dags" / f"{dag_id}.py", folder)
        return folder

    def deploy_dags_alone(self) -> None:
        """`make deploy-dags` while the stack runs: only the DAG bucket changes, and Airflow sees the new DAG."""
        from ansible_runner import run_playbook  # noqa: PLC0415

        source = self.dag_folder(SHIPPED_DAG, ROTATION_DAG, PACKAGES_DAG, FARGATE_DAG, ESCALATION_DAG, BROKER_DAG)
        began = time.monotonic()
        play = run_playbook(
            "site.yml",
            self.deployer_env,
            extra_vars={"dags_source_dir": str(source), "preflight_live_roles": ["dags"]},
            args=["--tags", "dags"],
        )
        if play.returncode != 0:
            raise RuntimeError(f"site.yml --tags dags failed (exit {play.returncode}):\n{play.output[-4000:]}")
        shipped = time.monotonic() - began
        api = self.api or self.login()
        api.wait_for_dag(SHIPPED_DAG, timeout=120)
        self.result.dags_alone = {
            "changed": play.changed,
            "play_seconds": round(shipped, 1),
            "seen_after_seconds": round(time.monotonic() - began, 1),
            "tasks": len(re.findall(r"^TASK \[", play.output, re.MULTILINE)),
        }

    def run_image_packages(self) -> None:
        """The image's package set on a worker: the recipe's matplotlib imports, polars (in no image) does not."""
        run = self.run_dag(PACKAGES_DAG, {}, guard_schedule=False)
        assert self.api is not None
        # What each task's log shows once it has reached CloudWatch (the worker ships it after the task ends).
        markers = {"recipe_package": "matplotlib ", "missing_package": "polars"}
        deadline = time.monotonic() + 90
        for ti in self.api.task_instances(PACKAGES_DAG, run["dag_run_id"]):
            while True:
                text = self.api.task_log(PACKAGES_DAG, run["dag_run_id"], ti["task_id"], 1)
                if markers.get(ti["task_id"], "") in text or time.monotonic() > deadline:
                    break
                time.sleep(2)
            self.result.image_packages[ti["task_id"]] = (ti["state"], text)
        definition = self.client("ecs").describe_task_definition(
            taskDefinition=self.result.services["worker"]["taskDefinition"]
        )["taskDefinition"]
        self.result.airflow_image = definition["containerDefinitions"][0]["image"]

    def run_fargate_tasks(self) -> None:
        """Tasks on the AwsEcsExecutor: the scheduler runs each as an ECS task of its own (RunTask of <stack>-task
        with the DAG's role as overrides.taskRoleArn), the agent runs it to its exit, the executor reads the exit
        code back; one task writes with the DAG's role, the other is denied what the role lacks. A DAG asking for
        that role is refused by the cluster policy (an import error)."""
        assert self.emulator is not None
        run = self.run_dag(FARGATE_DAG, {"secret_id": f"{CLUSTER}/admin"}, timeout=240, guard_schedule=False)
        assert self.api is not None
        markers = {"write_with_its_role": "wrote s3://", "read_what_its_role_lacks": "AccessDenied"}
        deadline = time.monotonic() + 60
        for ti in self.api.task_instances(FARGATE_DAG, run["dag_run_id"]):
            while True:
                text = self.api.task_log(FARGATE_DAG, run["dag_run_id"], ti["task_id"], 1)
                if markers.get(ti["task_id"], "") in text or time.monotonic() > deadline:
                    break
                time.sleep(2)
            self.result.fargate.setdefault("tasks", {})[ti["task_id"]] = {
                "state": ti["state"],
                "log": text,
                "executor": ti.get("executor"),
                "executor_config": ti.get("executor_config"),
            }
        # The run ends when the task instances do; each ECS task stops a moment later (its log shipped).
        ecs, deadline = self.client("ecs"), time.monotonic() + 60
        while True:
            arns = ecs.list_tasks(cluster=CLUSTER, family=f"{CLUSTER}-task", desiredStatus="STOPPED")["taskArns"]
            running = ecs.list_tasks(cluster=CLUSTER, family=f"{CLUSTER}-task", desiredStatus="RUNNING")["taskArns"]
            if (len(arns) >= len(self.result.fargate["tasks"]) and not running) or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.result.fargate["ecs_tasks"] = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
        bucket = self.environment("worker")["AIRFLOW_VAR_ETL_DATA_BUCKET"]
        listed = self.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"fargate/{run['dag_run_id']}/")
        self.result.fargate["proofs"] = [o["Key"] for o in listed.get("Contents", [])]
        self.result.fargate["run_id"] = run["dag_run_id"]
        assert self.emulator.iam_log is not None
        decisions = [json.loads(line) for line in self.emulator.iam_log.read_text().splitlines()]
        self.result.fargate["role_decisions"] = sorted(
            {(d["action"], d["allowed"]) for d in decisions if f":assumed-role/{FARGATE_ROLE}/" in d["principal"]}
        )
        deadline = time.monotonic() + 60
        while True:
            errors = self.api.get("/api/v2/importErrors")["import_errors"]
            refused = [e for e in errors if ESCALATION_DAG in e["filename"]]
            if refused or time.monotonic() > deadline:
                break
            time.sleep(2)
        self.result.fargate["refused"] = refused[0]["stack_trace"] if refused else ""
        log(f"  {FARGATE_DAG} run {run['state']}; ECS tasks {len(self.result.fargate['ecs_tasks'])}")

    def replace_broker_mid_run(self) -> None:
        """ECS replaces the broker task while a 60-task run is under way (StopTask, as a Fargate task retirement
        or an OOM kill would): no task instance is lost or retried."""
        api = self.api or self.login()
        ecs = self.client("ecs")
        api.wait_for_dag(BROKER_DAG, timeout=240)
        run_id = api.trigger(BROKER_DAG, {})["dag_run_id"]
        api.set_paused(BROKER_DAG, False)
        began = time.monotonic()
        while True:  # some done, many still to be sent or queued in the broker
            states = Counter(ti["state"] for ti in api.task_instances(BROKER_DAG, run_id))
            if states["success"] >= 5 or time.monotonic() - began > 300:
                break
            time.sleep(0.5)
        broker = {"cluster": CLUSTER, "serviceName": f"{CLUSTER}-rabbitmq", "desiredStatus": "RUNNING"}
        (old_task,) = ecs.list_tasks(**broker)["taskArns"]
        ecs.stop_task(cluster=CLUSTER, task=old_task, reason="e2e: the broker task is replaced mid-run")
        stopped = time.monotonic()
        finished = api.wait_for_run(BROKER_DAG, run_id, timeout=600)
        api.set_paused(BROKER_DAG, True)
        instances = api.task_instances(BROKER_DAG, run_id)
        new_tasks = ecs.list_tasks(**broker)["taskArns"]
        self.result.broker_replacement = {
            "run": finished["state"],
            "at_stop": dict(states),
            "states": dict(Counter(ti["state"] for ti in instances)),
            "tries": dict(Counter(ti["try_number"] for ti in instances)),
            "replaced": bool(new_tasks) and old_task not in new_tasks,
            "run_seconds_after_stop": round(time.monotonic() - stopped, 1),
        }
        log(f"  broker replacement: {self.result.broker_replacement}")

    def rotate_secrets(self) -> None:
        """site.yml -e secrets_rotate=[every secret but the admin's] while the stack runs: a connection and a
        variable stored before read the same on a worker after, RDS takes the new password, and the data
        ends up encrypted with the new Fernet key alone."""
        from ansible_runner import run_playbook  # noqa: PLC0415

        assert self.emulator is not None
        api = self.api or self.login()
        conf = {
            "conn_id": "e2e_rotation",
            "password": token_urlsafe(16),
            "variable": "e2e_rotation_variable",
            "value": token_urlsafe(16),
        }
        api.request(
            "POST",
            "/api/v2/connections",
            json={"connection_id": conf["conn_id"], "conn_type": "generic", "password": conf["password"]},
        )
        api.request("POST", "/api/v2/variables", json={"key": conf["variable"], "value": conf["value"]})
        before_run = self.run_dag(ROTATION_DAG, conf, guard_schedule=False)
        manager = self.client("secretsmanager")

        def values() -> dict[str, str]:
            return {
                key: manager.get_secret_value(SecretId=f"{CLUSTER}/{key.replace('_', '-')}")["SecretString"]
                for key in ROTATED
            }

        before = values()
        began = time.monotonic()
        # The same DAG folder as `make deploy-dags` shipped (a deploy makes the bucket mirror its folder).
        extra = {"secrets_rotate": ROTATED, "dags_source_dir": str(self.run_dir / "dags")}
        play = run_playbook("site.yml", self.deployer_env, extra_vars=extra)
        (self.run_dir / "rotation-play.txt").write_text(play.output)
        if play.returncode != 0:
            raise RuntimeError(f"site.yml with secrets_rotate failed (exit {play.returncode}):\n{play.output[-4000:]}")
        seconds = round(time.monotonic() - began, 1)
        after = values()
        api = self.login()  # the JWT secret changed: earlier tokens are void
        after_run = self.run_dag(ROTATION_DAG, conf, guard_schedule=False)
        (database,) = self.emulator.runtime()["databases"].values()
        old_login, new_login = json.loads(before["database"]), json.loads(after["database"])

        def connect(login: dict) -> Any:
            return psycopg2.connect(
                host="127.0.0.1",
                port=database["port"],
                dbname="airflow",
                user=login["username"],
                password=login["password"],
                connect_timeout=5,
            )

        conn = connect(new_login)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT password FROM connection WHERE conn_id = %s", (conf["conn_id"],))
            (stored_password,) = cur.fetchone()
            cur.execute("SELECT val FROM variable WHERE key = %s", (conf["variable"],))
            (stored_value,) = cur.fetchone()
        conn.close()
        try:
            connect(old_login).close()
            old_password_refused = False
        except psycopg2.OperationalError:
            old_password_refused = True
        new_key = Fernet(after["fernet_key"])
        self.result.rotation = {
            "play_seconds": seconds,
            "changed": play.changed,
            "rotated": sorted(key for key in ROTATED if before[key] != after[key]),
            "fernet_keys_after": after["fernet_key"].count(",") + 1,
            "runs": [before_run["state"], after_run["state"]],
            "connection_under_new_key": new_key.decrypt(stored_password.encode()).decode() == conf["password"],
            "variable_under_new_key": new_key.decrypt(stored_value.encode()).decode() == conf["value"],
            "old_database_password_refused": old_password_refused,
        }
        log(f"  rotation: {self.result.rotation}")

    def wait_for_ui(self) -> None:
        assert self.emulator is not None
        self.result.ui_url = wait_for_ui(self.emulator, 240)

    def read_ecs(self) -> None:
        """What ECS, ELB and Cloud Map report now that the stack runs."""
        ecs = self.client("ecs")
        names = [f"{CLUSTER}-{s}" for s in SERVICES]
        for service in ecs.describe_services(cluster=CLUSTER, services=names)["services"]:
            self.result.services[service["serviceName"].removeprefix(f"{CLUSTER}-")] = service
        arns = ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"]
        for task in ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]:
            group = task["group"].removeprefix(f"service:{CLUSTER}-")
            self.result.tasks.setdefault(group, []).append(task)
        elb = self.client("elbv2")
        for group in elb.describe_target_groups()["TargetGroups"]:
            self.result.target_health += elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])[
                "TargetHealthDescriptions"
            ]
        discovery = self.client("servicediscovery")
        namespaces = {n["Id"]: n["Name"] for n in discovery.list_namespaces()["Namespaces"]}
        for service in discovery.list_services()["Services"]:
            detail = discovery.get_service(Id=service["Id"])["Service"]
            name = f"{detail['Name']}.{namespaces[detail['NamespaceId']]}"
            self.result.discovery[name] = discovery.list_instances(ServiceId=service["Id"])["Instances"]
        assert self.emulator is not None
        for task in self.emulator.runtime()["tasks"].values():
            if task["lastStatus"] == "RUNNING":
                self.result.task_environ[task["group"].removeprefix(f"service:{CLUSTER}-")] = task

    def rerun_migrate(self) -> None:
        """Every new migrate revision runs on a live database: the same task again must exit 0."""
        ecs = self.client("ecs")
        worker = self.result.services["worker"]
        started = ecs.run_task(
            cluster=CLUSTER,
            taskDefinition=f"{CLUSTER}-migrate",
            launchType="FARGATE",
            networkConfiguration=worker["networkConfiguration"],
            startedBy="e2e-migrate-again",
        )["tasks"][0]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            task = ecs.describe_tasks(cluster=CLUSTER, tasks=[started["taskArn"]])["tasks"][0]
            if task["lastStatus"] == "STOPPED":
                break
            time.sleep(2)
        arns = ecs.list_tasks(cluster=CLUSTER, family=f"{CLUSTER}-migrate")["taskArns"]
        self.result.migrate_tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]

    def login(self) -> AirflowApi:
        self.api = AirflowApi(self.result.ui_url)
        username, password = self.admin_credentials()
        self.api.login(username, password)
        return self.api

    def admin_credentials(self) -> tuple[str, str]:
        admin = json.loads(self.client("secretsmanager").get_secret_value(SecretId=f"{CLUSTER}/admin")["SecretString"])
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

    def worker_service(self) -> dict:
        ecs = self.client("ecs")
        return ecs.describe_services(cluster=CLUSTER, services=[f"{CLUSTER}-worker"])["services"][0]

    def run_books_etl(self) -> None:
        """From zero workers: the run's demand makes the autoscaling start one, and the run succeeds."""
        site = self.start_site()
        conf = {
            "base_url": site,
            "page_count": PAGE_COUNT,
            "request_delay_seconds": 0,
            "http_backoff_seconds": 0.2,
            "request_timeout_seconds": 10,
        }
        idle = self.worker_service()
        self.result.idle_workers = (idle["desiredCount"], idle["runningCount"])
        triggered = datetime.now(UTC)
        run = self.run_dag(DAG_ID, conf)
        self.result.dag_run = run
        ecs = self.client("ecs")
        arns = ecs.list_tasks(cluster=CLUSTER, serviceName=f"{CLUSTER}-worker")["taskArns"]
        workers = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
        started = sorted(t["startedAt"] for t in workers if t.get("startedAt"))
        if started:
            self.result.scale_out_seconds = round((started[0] - triggered).total_seconds(), 1)
            log(f"  the first worker ran {self.result.scale_out_seconds} s after the trigger (from zero workers)")
        self.result.tasks["worker"] = [t for t in workers if t["lastStatus"] == "RUNNING"]
        for task in self.emulator.runtime()["tasks"].values():
            if task["lastStatus"] == "RUNNING" and task["group"] == f"service:{CLUSTER}-worker":
                self.result.task_environ["worker"] = task
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
        log_path = self.container_log("worker")
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

        env = self.environment("worker")
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
        folder = self.environment("worker").get("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "")
        group = folder.split(":log-group:", 1)[-1] if folder.startswith("cloudwatch://") else ""
        if not group:
            self.result.findings.append("remote logging is not CloudWatch")
            return
        logs = self.client("logs")
        streams = logs.describe_log_streams(logGroupName=group).get("logStreams", [])
        for stream in streams:
            events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)
            self.result.cloudwatch[stream["logStreamName"]] = len(events.get("events", []))

    def read_airflow_metrics(self) -> None:
        """Every metric of the stack's namespace and its statistics since the deploy (one-minute datapoints)."""
        cloudwatch = self.client("cloudwatch")
        namespace = f"airflow-ecs/{CLUSTER}"
        end = datetime.now(UTC) + timedelta(minutes=1)
        start = end - timedelta(hours=2)
        for metric in cloudwatch.list_metrics(Namespace=namespace)["Metrics"]:
            points = cloudwatch.get_metric_statistics(
                Namespace=namespace,
                MetricName=metric["MetricName"],
                Dimensions=metric["Dimensions"],
                StartTime=start,
                EndTime=end,
                Period=60,
                Statistics=["Sum", "Maximum", "SampleCount"],
            )["Datapoints"]
            dimensions = ",".join(f"{d['Name']}={d['Value']}" for d in metric["Dimensions"])
            key = metric["MetricName"] + (f"{{{dimensions}}}" if dimensions else "")
            self.result.airflow_metrics[key] = {
                "sum": sum(p["Sum"] for p in points),
                "max": max((p["Maximum"] for p in points), default=0.0),
                "samples": sum(p["SampleCount"] for p in points),
            }

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

    def read_container_logs(self) -> None:
        """The awslogs driver's streams: every container's output, shipped with the execution role."""
        logs = self.client("logs")
        for group in logs.describe_log_groups(logGroupNamePrefix=f"/ecs/{CLUSTER}")["logGroups"]:
            for stream in logs.describe_log_streams(logGroupName=group["logGroupName"]).get("logStreams", []):
                events = logs.get_log_events(logGroupName=group["logGroupName"], logStreamName=stream["logStreamName"])
                self.result.container_logs[stream["logStreamName"]] = len(events.get("events", []))

    def read_denials(self) -> None:
        assert self.emulator is not None and self.emulator.iam_log is not None
        for line in self.emulator.iam_log.read_text().splitlines():
            decision = json.loads(line)
            role = decision["principal"].split("/")[1] if ":assumed-role/" in decision["principal"] else ""
            if not decision["allowed"] and (role, decision["action"]) not in EXPECTED_DENIALS:
                self.result.denials.append(decision)

    def teardown(self) -> None:
        from ansible_runner import run_playbook  # noqa: PLC0415

        assert self.emulator is not None
        for database in self.emulator.runtime().get("databases", {}).values():
            sampled = database.get("connections", {})
            self.result.connections.update({k: sampled.get(k) for k in ("peak", "max_connections", "peak_by_client")})
        play = run_playbook("teardown.yml", self.deployer_env)
        if play.returncode != 0:
            raise RuntimeError(f"teardown.yml failed (exit {play.returncode}):\n{play.output[-4000:]}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.result.teardown_runtime = self.emulator.runtime()
            if not self.result.teardown_runtime["databases"] and all(
                t["lastStatus"] == "STOPPED" for t in self.result.teardown_runtime["tasks"].values()
            ):
                break
            time.sleep(1)
        deadline = time.monotonic() + 10
        while (pids := leftovers(f"{self.emulator.runtime_dir}/")) and time.monotonic() < deadline:
            time.sleep(0.5)
        self.result.leftovers = pids
        self.result.findings += [f"left running after teardown: {describe_process(pid)}" for pid in pids]

    def stop(self) -> None:
        log("stopping everything ...")
        start = time.monotonic()
        if self.site is not None:
            self.site.stop()
        self.procs.stop_together(self.procs.procs)
        if self.emulator is not None:
            self.collect_logs()
            self.emulator.stop()
            self.result.leftovers += leftovers(str(self.run_dir))
        if not self.keep_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.result.timings["stop"] = time.monotonic() - start
        log(f"stopped in {self.result.timings['stop']:.1f} s; leftovers: {self.result.leftovers or 'none'}")

    def collect_logs(self) -> None:
        target = self.artifacts / "logs"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        assert self.emulator is not None and self.emulator.runtime_dir is not None
        for path in self.emulator.runtime_dir.glob("tasks/*/logs/*.log"):
            shutil.copy(path, target / f"{path.stem}-{path.parts[-3][:8]}.log")
        for path in (self.run_dir / "moto.log", self.emulator.iam_log, self.run_dir / "rotation-play.txt"):
            if path is not None and path.exists():
                shutil.copy(path, target / path.name)

    # -- the whole thing --------------------------------------------------------------------------

    def boot(self) -> None:
        """From nothing to the UI answering through the ALB listener (`make deploy` on the emulator)."""
        self.step("prerequisites", self.prerequisites)
        self.step("deploy", self.deploy)
        self.step("steady", self.wait_for_ui)

    def run_all(self) -> Result:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        try:
            self.boot()
            self.step("ecs state", self.read_ecs)
            self.step("books_etl run", self.run_books_etl)
            self.step("migrate again", self.rerun_migrate)
            self.step("deploy dags alone", self.deploy_dags_alone)
            self.step("image packages", self.run_image_packages)
            self.step("fargate tasks", self.run_fargate_tasks)
            self.step("broker replacement", self.replace_broker_mid_run)
            self.step("rotate secrets", self.rotate_secrets)
            self.step("deploy again", self.deploy_again)
            self.step("task logs", self.read_task_logs)
            self.step("s3 outputs", self.read_outputs)
            self.step("cloudwatch", self.read_cloudwatch)
            self.step("airflow metrics", self.read_airflow_metrics)
            self.step("container logs", self.read_container_logs)
            self.step("ui screenshot", self.screenshot)
            self.step("iam", self.read_denials)
            self.step("teardown", self.teardown)
        except StepFailed:
            pass
        finally:
            self.stop()
            self.result.timings["total"] = time.monotonic() - start
        return self.result


def describe_process(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return f"{pid} {command.strip()} (cwd {os.readlink(f'/proc/{pid}/cwd')})"
    except OSError:
        return f"{pid} (gone)"


def summary(result: Result) -> str:
    lines = ["", "=== e2e summary ==="]
    for name, seconds in result.timings.items():
        lines.append(f"  {name:<16} {seconds:7.1f} s")
    lines.append(f"  UI: {result.ui_url}")
    if result.dag_run:
        lines.append(f"  {DAG_ID} run {result.dag_run.get('dag_run_id')}: {result.dag_run.get('state')}")
    lines.append(
        f"  workers before {DAG_ID} (desired, running): {result.idle_workers}; first worker running "
        f"{result.scale_out_seconds} s after the trigger"
    )
    lines.append(f"  data bucket objects: {len(result.data_keys)}; curated rows: {result.parquet_rows}")
    lines.append(f"  task logs read: {len(result.task_logs)}; container log streams: {len(result.container_logs)}")
    sampled = result.connections
    lines.append(
        f"  connections peak {sampled.get('peak')} (computed worst case {sampled.get('worst_case')}, "
        f"max_connections {sampled.get('max_connections')}); by client: {sampled.get('peak_by_client')}"
    )
    lines.append(f"  screenshot: {result.screenshot}")
    for denial in result.denials:
        lines.append(f"  ACCESS DENIED: {denial['principal']} {denial['action']} on {denial['resource']}")
    for finding in result.findings:
        lines.append(f"  finding: {finding}")
    for step, error in result.errors.items():
        lines.append(f"  FAILED {step}: {error.strip().splitlines()[-1] if error.strip() else ''}")
    lines.append(f"  leftover processes: {result.leftovers or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--keep-dir", action="store_true", help="keep the run directory (data, logs)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    result = E2ERun(keep_dir=args.keep_dir).run_all()
    print(summary(result), flush=True)
    return 1 if result.errors or result.leftovers or result.denials else 0
