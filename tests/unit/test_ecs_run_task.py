"""library/ecs_run_task: run a one-off ECS task, wait for it to stop and judge its exit code.

Two AWS endpoints:
- moto (`clean_emulator`) for the real API round trip: resolve the task definition, RunTask, poll
  DescribeTasks through moto's RUNNING -> ... -> STOPPED progression, error answers.
- `fake_ecs`, a tiny HTTP server speaking the ECS JSON protocol, for what moto cannot produce: a
  container exiting non-zero, a task that fails to start, RunTask `failures`, a task that never stops.
  The module reaches it through AWS_ENDPOINT_URL exactly as it reaches moto or AWS.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ansible_runner import run_module
from emulator import REGION, Emulator, endpoint_env

MODULE = "ecs_run_task"
FAMILY = "airflow-migrate"
MIGRATE = {"containerOverrides": [{"name": "airflow", "command": ["db", "migrate"]}]}


# --- moto --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EcsOnMoto:
    emulator: Emulator
    subnet_id: str
    security_group_id: str
    cluster: str = ""

    def args(self, **extra: Any) -> dict[str, Any]:
        args = {
            "cluster": self.cluster,
            "task_definition": FAMILY,
            "network_configuration": {"subnets": [self.subnet_id], "security_groups": [self.security_group_id]},
            "poll_interval": 1,
        }
        return {**args, **extra}

    def task_arns(self) -> list[str]:
        return self.emulator.client("ecs").list_tasks(cluster=self.cluster)["taskArns"]


@pytest.fixture(scope="module")
def moto_account(emulator: Emulator) -> EcsOnMoto:
    """A subnet + security group and a Fargate task definition, set up once for this module.

    A reset makes moto rebuild its EC2/ECS backends on first use (~3 s), so the tests share one
    account and each gets its own cluster (`ecs_on_moto`) instead of a `clean_emulator` each.
    """
    emulator.reset()
    ec2 = emulator.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto 5.2.5: RunTask for an awsvpc task crashes (ENI without private_dns_name) unless DNS hostnames are on.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg_id = ec2.create_security_group(GroupName="airflow", Description="airflow tasks", VpcId=vpc_id)["GroupId"]
    emulator.client("ecs").register_task_definition(
        family=FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        # moto: RunTask answers HTTP 500 unless every container has its own memory.
        containerDefinitions=[{"name": "airflow", "image": "apache/airflow:3.1.0", "memory": 512, "essential": True}],
    )
    return EcsOnMoto(emulator, subnet_id, sg_id)


@pytest.fixture
def ecs_on_moto(moto_account: EcsOnMoto) -> EcsOnMoto:
    """The shared account plus a fresh cluster of this test's own, so no test sees another's tasks."""
    cluster = f"airflow-{len(moto_account.emulator.client('ecs').list_clusters()['clusterArns'])}"
    moto_account.emulator.client("ecs").create_cluster(clusterName=cluster)
    return replace(moto_account, cluster=cluster)


def test_runs_task_to_completion_and_reports_exit_codes(ecs_on_moto: EcsOnMoto) -> None:
    result = run_module(
        MODULE,
        ecs_on_moto.args(overrides=MIGRATE, tags={"airflow-ecs:stack": "airflow"}),
        env=ecs_on_moto.emulator.env(),
    )

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True
    assert result["task_definition_arn"].endswith(f"task-definition/{FAMILY}:1")
    [task] = result["tasks"]
    assert task["last_status"] == "STOPPED"
    assert task["started_by"] == "ansible"
    assert task["tags"] == {"airflow-ecs:stack": "airflow"}
    assert [(c["name"], c["exit_code"]) for c in task["containers"]] == [("airflow", 0)]
    assert "reason" in task["containers"][0]
    assert {"stop_code", "stopped_reason"} <= task.keys()
    described = ecs_on_moto.emulator.client("ecs").describe_tasks(cluster=ecs_on_moto.cluster, tasks=[task["task_arn"]])
    assert described["tasks"][0]["overrides"] == MIGRATE
    assert ecs_on_moto.task_arns() == [task["task_arn"]]


def test_check_mode_runs_nothing(ecs_on_moto: EcsOnMoto) -> None:
    result = run_module(MODULE, ecs_on_moto.args(overrides=MIGRATE), env=ecs_on_moto.emulator.env(), check=True)

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True
    assert result["msg"].startswith(f"would run task {FAMILY} in cluster {ecs_on_moto.cluster}")
    assert result["tasks"] == []
    assert ecs_on_moto.task_arns() == []


@pytest.mark.parametrize(
    ("bad_args", "expected"),
    [
        (
            {"task_definition": "no-such-family"},
            "Could not describe task definition no-such-family (does it exist?) to run in cluster {cluster}",
        ),
        ({"cluster": "no-such-cluster"}, "in cluster no-such-cluster: An error occurred (ClusterNotFoundException)"),
        ({"container_name": "web"}, "container_name web is not a container of task definition"),
    ],
    ids=["unknown-task-definition", "unknown-cluster", "unknown-container"],
)
def test_bad_input_fails_with_clear_message_and_runs_nothing(
    ecs_on_moto: EcsOnMoto, bad_args: dict[str, str], expected: str
) -> None:
    result = run_module(MODULE, ecs_on_moto.args(**bad_args), env=ecs_on_moto.emulator.env())

    assert result["failed"] is True
    assert expected.format(cluster=ecs_on_moto.cluster) in result["msg"]
    assert ecs_on_moto.task_arns() == []


# --- fake ECS endpoint ---------------------------------------------------------------------------

ACCOUNT_ARN = f"arn:aws:ecs:{REGION}:123456789012"
STUB_CLUSTER = "stub"
TASK_ARN = f"{ACCOUNT_ARN}:task/{STUB_CLUSTER}/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TASK_DEFINITION_ARN = f"{ACCOUNT_ARN}:task-definition/{FAMILY}:7"
CONTAINER_DEFINITIONS = [
    {"name": "airflow", "image": "apache/airflow:3.1.0", "essential": True},
    {"name": "log-router", "image": "fluent-bit", "essential": False},
]


@dataclass
class FakeEcs:
    """One cluster, one task definition (essential `airflow` + non-essential `log-router`), one task.

    Each DescribeTasks answer takes the next entry of `statuses` (the last one repeats). Once STOPPED
    the task carries `stop_code`, `stopped_reason` and `containers` (name, exitCode, reason).
    """

    url: str = ""
    statuses: list[str] = field(default_factory=lambda: ["STOPPED"])
    stop_code: str = "EssentialContainerExited"
    stopped_reason: str = "Essential container in task exited"
    containers: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"name": "airflow", "exitCode": 0},
            {"name": "log-router", "exitCode": 137, "reason": "killed when the essential container stopped"},
        ]
    )
    run_task_failures: list[dict[str, str]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def env(self) -> dict[str, str]:
        return endpoint_env(self.url)

    def requests(self, action: str) -> list[dict[str, Any]]:
        return [body for name, body in self.calls if name == action]

    def answer(self, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append((action, body))
            if action == "DescribeTaskDefinition":
                return 200, self._task_definition()
            if action == "ListTasks":  # no copy of the task is running already
                return 200, {"taskArns": []}
            if action == "RunTask":
                if self.run_task_failures:
                    return 200, {"tasks": [], "failures": self.run_task_failures}
                return 200, {"tasks": [self._task("PROVISIONING")], "failures": []}
            if action == "DescribeTasks":
                index = min(len(self.requests("DescribeTasks")) - 1, len(self.statuses) - 1)
                return 200, {"tasks": [self._task(self.statuses[index])], "failures": []}
        return 400, {"__type": "InvalidParameterException", "message": f"fake ECS does not answer {action}"}

    def _task_definition(self) -> dict[str, Any]:
        return {
            "taskDefinition": {"taskDefinitionArn": TASK_DEFINITION_ARN, "containerDefinitions": CONTAINER_DEFINITIONS}
        }

    def _task(self, status: str) -> dict[str, Any]:
        task: dict[str, Any] = {
            "taskArn": TASK_ARN,
            "clusterArn": f"{ACCOUNT_ARN}:cluster/{STUB_CLUSTER}",
            "taskDefinitionArn": TASK_DEFINITION_ARN,
            "lastStatus": status,
            "desiredStatus": "STOPPED" if status == "STOPPED" else "RUNNING",
            "startedBy": "ansible",
            "containers": [{"name": c["name"], "lastStatus": status} for c in CONTAINER_DEFINITIONS],
        }
        if status == "STOPPED":
            task.update(stopCode=self.stop_code, stoppedReason=self.stopped_reason, stoppedAt=1767225600.0)
            task["containers"] = [{**c, "lastStatus": "STOPPED"} for c in self.containers]
        return task


class FakeEcsHandler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer  # carries a `.fake` attribute

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        action = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        status, answer = self.server.fake.answer(action, body)  # type: ignore[attr-defined]
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_ecs() -> Iterator[FakeEcs]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEcsHandler)
    server.daemon_threads = True
    fake = FakeEcs(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def stub_args(**extra: Any) -> dict[str, Any]:
    args = {
        "cluster": STUB_CLUSTER,
        "task_definition": FAMILY,
        "network_configuration": {"subnets": ["subnet-1", "subnet-2"], "security_groups": ["sg-1"]},
        "overrides": MIGRATE,
        "poll_interval": 1,
    }
    return {**args, **extra}


def test_polls_until_stopped_and_ignores_non_essential_containers(fake_ecs: FakeEcs) -> None:
    fake_ecs.statuses = ["PENDING", "RUNNING", "STOPPED"]

    result = run_module(MODULE, stub_args(), env=fake_ecs.env())

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True
    assert len(fake_ecs.requests("DescribeTasks")) == 3
    [task] = result["tasks"]
    assert task["task_arn"] == TASK_ARN
    assert task["last_status"] == "STOPPED"
    assert task["stop_code"] == "EssentialContainerExited"
    assert [(c["name"], c["exit_code"]) for c in task["containers"]] == [("airflow", 0), ("log-router", 137)]
    [run_request] = fake_ecs.requests("RunTask")
    assert len(run_request["clientToken"]) == 36  # retried calls of the same run start one task
    assert run_request == {
        "cluster": STUB_CLUSTER,
        "taskDefinition": TASK_DEFINITION_ARN,
        "count": 1,
        "startedBy": "ansible",
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-1", "subnet-2"],
                "securityGroups": ["sg-1"],
                "assignPublicIp": "DISABLED",
            }
        },
        "overrides": MIGRATE,
        "clientToken": run_request["clientToken"],  # botocore fills in the idempotency token
    }


def test_non_zero_exit_fails_naming_task_container_and_reasons(fake_ecs: FakeEcs) -> None:
    fake_ecs.containers = [
        {"name": "airflow", "exitCode": 3, "reason": "migration 0042 failed"},
        {"name": "log-router", "exitCode": 0},
    ]

    result = run_module(MODULE, stub_args(), env=fake_ecs.env())

    assert result["failed"] is True
    assert result["changed"] is True
    for part in (
        TASK_ARN,
        "container airflow exited with code 3",
        "migration 0042 failed",
        "Essential container in task exited",
    ):
        assert part in result["msg"]
    assert result["tasks"][0]["containers"][0]["exit_code"] == 3


def test_task_that_failed_to_start_fails(fake_ecs: FakeEcs) -> None:
    fake_ecs.stop_code = "TaskFailedToStart"
    fake_ecs.stopped_reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s)"
    fake_ecs.containers = [{"name": "airflow", "reason": "CannotPullContainerError"}, {"name": "log-router"}]

    result = run_module(MODULE, stub_args(), env=fake_ecs.env())

    assert result["failed"] is True
    for part in (TASK_ARN, "TaskFailedToStart", "container airflow has no exit code", "CannotPullContainerError"):
        assert part in result["msg"]
    assert result["tasks"][0]["containers"][0]["exit_code"] is None


def test_container_name_picks_the_container_that_decides(fake_ecs: FakeEcs) -> None:
    result = run_module(MODULE, stub_args(essential_container="log-router"), env=fake_ecs.env())

    assert result["failed"] is True
    assert "container log-router exited with code 137" in result["msg"]
    assert "container airflow" not in result["msg"]


def test_run_task_failures_fail_the_module(fake_ecs: FakeEcs) -> None:
    fake_ecs.run_task_failures = [{"arn": f"{ACCOUNT_ARN}:cluster/{STUB_CLUSTER}", "reason": "RESOURCE:ENI"}]
    strategy = [{"capacity_provider": "FARGATE_SPOT", "weight": 1}]

    result = run_module(MODULE, stub_args(capacity_provider_strategy=strategy), env=fake_ecs.env())

    assert result["failed"] is True
    assert result["changed"] is False
    assert "RunTask reported failures" in result["msg"]
    assert "RESOURCE:ENI" in result["msg"]
    assert result["failures"] == [{"arn": f"{ACCOUNT_ARN}:cluster/{STUB_CLUSTER}", "reason": "RESOURCE:ENI"}]
    assert fake_ecs.requests("DescribeTasks") == []
    [run_request] = fake_ecs.requests("RunTask")
    assert run_request["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "launchType" not in run_request


def test_times_out_naming_tasks_and_last_status(fake_ecs: FakeEcs) -> None:
    fake_ecs.statuses = ["PENDING", "RUNNING"]

    result = run_module(MODULE, stub_args(wait_timeout=1), env=fake_ecs.env())

    assert result["failed"] is True
    assert result["changed"] is True
    assert "Timed out after 1 s" in result["msg"]
    assert f"{TASK_ARN} (RUNNING)" in result["msg"]
    assert result["tasks"][0]["last_status"] == "RUNNING"


def test_without_wait_returns_once_the_task_is_started(fake_ecs: FakeEcs) -> None:
    fake_ecs.containers = [{"name": "airflow", "exitCode": 1}]

    result = run_module(MODULE, stub_args(wait=False), env=fake_ecs.env())

    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True
    assert [task["task_arn"] for task in result["tasks"]] == [TASK_ARN]
    assert result["tasks"][0]["last_status"] == "PROVISIONING"
    assert fake_ecs.requests("DescribeTasks") == []
