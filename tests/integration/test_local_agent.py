"""The local ECS agent (embedded_aws/agent.py): tasks really run, and ECS reports what happened.

One emulator with the runtime on (enforced IAM, container credentials) for the module. The task
definitions use the apache/airflow image with `bash -c` commands, which the agent runs as the
image's entrypoint would, in the stock image's package set (registry.py; images and their pulls are
tests/integration/test_local_images.py), so each case takes seconds. The whole stack on the runtime is tests/e2e.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ansible_runner import ROOT, run_module
from emulator import start_emulator

from embedded_aws.cgroups import OOM_REASON, Cgroup

pytestmark = pytest.mark.xdist_group("local_agent")

CLUSTER = "agent"
LOG_GROUP = "/ecs/agent"
PROPAGATION = 3  # seconds before ECS can assume a new role (EMBEDDED_AWS_IAM_PROPAGATION_SECONDS)
IMAGE = "apache/airflow:3.3.2"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture(scope="module")
def runtime() -> Iterator[dict]:
    state = Path(tempfile.mkdtemp(prefix="airflow-agent-"))
    state.chmod(0o755)  # the postgres user must reach the databases' directories
    emulator = start_emulator(
        state / "moto.log", env={"EMBEDDED_AWS_IAM_PROPAGATION_SECONDS": str(PROPAGATION)}, runtime=True
    )
    try:
        ec2 = emulator.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
        iam = emulator.client("iam")
        roles = {}
        for name in ("execution", "task"):
            roles[name] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        began = time.monotonic()
        secret = emulator.client("secretsmanager").create_secret(Name="app", SecretString='{"token": "s3cr3t"}')["ARN"]
        iam.put_role_policy(
            RoleName="execution",
            PolicyName="secrets",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret},
                        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
                    ],
                }
            ),
        )
        emulator.client("logs").create_log_group(logGroupName=LOG_GROUP)
        emulator.client("ecs").create_cluster(clusterName=CLUSTER)
        network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}
        time.sleep(max(0.0, PROPAGATION - (time.monotonic() - began)))  # the roles are assumable from here on
        yield {"emulator": emulator, "network": network, "roles": roles, "secret": secret}
    finally:
        emulator.stop()
        shutil.rmtree(state, ignore_errors=True)


def register_containers(
    runtime: dict, family: str, containers: list[dict], task_role: str = "", *, cpu: str = "256", memory: str = "512"
) -> str:
    """A Fargate task definition (256 CPU / 512 MiB by default) of these containers, with the module's roles."""
    return (
        runtime["emulator"]
        .client("ecs")
        .register_task_definition(
            family=family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu=cpu,
            memory=memory,
            executionRoleArn=runtime["roles"]["execution"],
            taskRoleArn=task_role or runtime["roles"]["task"],
            containerDefinitions=containers,
        )["taskDefinition"]["taskDefinitionArn"]
    )


def register(runtime: dict, family: str, command: str = "true", task_role: str = "", **container: object) -> str:
    """A one-container task definition running `bash -c command`; `container` adds or overrides fields."""
    definition = {"name": "main", "image": IMAGE, "memory": 512, "essential": True, "command": ["bash", "-c", command]}
    definition.update(container)
    return register_containers(runtime, family, [definition], task_role)


def run_and_wait(runtime: dict, definition: str, timeout: float = 60) -> dict:
    ecs = runtime["emulator"].client("ecs")
    arn = ecs.run_task(
        cluster=CLUSTER, taskDefinition=definition, launchType="FARGATE", networkConfiguration=runtime["network"]
    )["tasks"][0]["taskArn"]
    return wait_task(runtime, arn, "STOPPED", timeout)


def wait_task(runtime: dict, arn: str, status: str, timeout: float = 60) -> dict:
    ecs = runtime["emulator"].client("ecs")
    deadline = time.monotonic() + timeout
    while True:
        task = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == status or time.monotonic() > deadline:
            return task
        time.sleep(0.5)


def task_log(runtime: dict, task: dict) -> str:
    directory = Path(runtime["emulator"].runtime()["tasks"][task["taskArn"].rsplit("/", 1)[-1]]["directory"])
    return "".join(p.read_text() for p in (directory / "logs").glob("*.log"))


def test_a_task_runs_its_command_and_reports_its_exit_code(runtime: dict) -> None:
    task = run_and_wait(runtime, register(runtime, "exit-three", "echo started; exit 3"))
    assert task["lastStatus"] == "STOPPED" and task["desiredStatus"] == "STOPPED"
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert [c["exitCode"] for c in task["containers"]] == [3]
    assert {"createdAt", "startedAt", "stoppedAt"} <= task.keys()
    assert "started" in task_log(runtime, task)


# A leader that ends on SIGTERM and a child that says whether SIGTERM reached it too. The leader lingers
# a second: when it exits the container stops and its stream is closed (as when dumb-init, PID 1, exits),
# so a child that got the signal must have written by then.
TERM_WITNESS = (
    '(trap "echo child-got-TERM; exit 0" TERM; while :; do sleep 0.2; done) & '
    'trap "echo leader-got-TERM; sleep 1; exit 0" TERM; echo ready; wait'
)


def test_stop_signals_the_process_group_unless_dumb_init_is_told_not_to(runtime: dict) -> None:
    """apache/airflow's dumb-init forwards ECS's SIGTERM to the whole group, with DUMB_INIT_SETSID=0 to
    the main process alone (how the worker gets Celery's warm shutdown while its tasks keep running)."""
    ecs = runtime["emulator"].client("ecs")
    seen = {}
    for label, environment in (("default", []), ("setsid-0", [{"name": "DUMB_INIT_SETSID", "value": "0"}])):
        definition = register(runtime, f"witness-{label}", TERM_WITNESS, environment=environment)
        arn = ecs.run_task(
            cluster=CLUSTER, taskDefinition=definition, launchType="FARGATE", networkConfiguration=runtime["network"]
        )["tasks"][0]["taskArn"]
        running = wait_task(runtime, arn, "RUNNING")
        deadline = time.monotonic() + 30
        while "ready" not in task_log(runtime, running) and time.monotonic() < deadline:
            time.sleep(0.2)
        ecs.stop_task(cluster=CLUSTER, task=arn, reason="witness")
        seen[label] = task_log(runtime, wait_task(runtime, arn, "STOPPED"))
    assert "leader-got-TERM" in seen["default"] and "child-got-TERM" in seen["default"], seen
    assert "leader-got-TERM" in seen["setsid-0"] and "child-got-TERM" not in seen["setsid-0"], seen


# An Airflow container sending StatsD datagrams for argv[1] seconds to localhost:$AIRFLOW__METRICS__STATSD_PORT,
# and a StatsD sidecar printing what it receives there: after the first datagram ("once", exit 3) or "forever".
STATSD_SENDER = (
    "import os, socket, sys, time\n"
    "port = int(os.environ['AIRFLOW__METRICS__STATSD_PORT'])\n"
    "print('sending to', port, flush=True)\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "end = time.monotonic() + int(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    s.sendto(b'airflow.sidecar_test:1|c', ('localhost', port))\n"
    "    time.sleep(0.2)\n"
)
STATSD_SIDECAR = (
    "import os, socket, sys\n"
    "port = int(os.environ['AIRFLOW__METRICS__STATSD_PORT'])\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('127.0.0.1', port))\n"
    "print('listening on', port, flush=True)\n"
    "while True:\n"
    "    print('received', s.recv(512).decode(), flush=True)\n"
    "    if sys.argv[1] == 'once':\n"
    "        raise SystemExit(3)\n"
)


def test_a_sidecar_shares_the_task_network_and_stops_with_the_essential_container(runtime: dict) -> None:
    """ECS's sidecar pattern: a non-essential StatsD container beside the essential Airflow one. Both run
    on one port map (the task's network), each logs to its own stream, the sidecar exiting leaves the task
    running, and stopping the task (StopTask, or the essential container exiting) stops both."""
    emulator = runtime["emulator"]
    ecs, logs = emulator.client("ecs"), emulator.client("logs")
    statsd = [{"name": "AIRFLOW__METRICS__STATSD_PORT", "value": "8125"}]
    awslogs = {
        "logDriver": "awslogs",
        "options": {"awslogs-group": LOG_GROUP, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "sidecar"},
    }
    definition = register_containers(
        runtime,
        "with-sidecar",
        [
            {
                "name": "airflow",
                "image": IMAGE,
                "memory": 384,
                "essential": True,
                "command": ["python", "-c", STATSD_SENDER, "600"],
                "environment": statsd,
                "logConfiguration": awslogs,
                "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 2},
            },
            {
                "name": "statsd",
                "image": IMAGE,
                "memory": 128,
                "essential": False,
                "command": ["python", "-c", STATSD_SIDECAR, "once"],
                "environment": statsd,
                "logConfiguration": awslogs,
            },
        ],
    )

    def run(*overrides: dict) -> str:
        return ecs.run_task(
            cluster=CLUSTER,
            taskDefinition=definition,
            launchType="FARGATE",
            networkConfiguration=runtime["network"],
            overrides={"containerOverrides": list(overrides)},
        )["tasks"][0]["taskArn"]

    def described(arn: str, check, timeout: float = 60) -> tuple[dict, dict]:
        """The task and its containers by name, once `check(task, containers)` holds (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            task = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]
            found = {c["name"]: c for c in task["containers"]}
            if check(task, found) or time.monotonic() > deadline:
                return task, found
            time.sleep(0.5)

    def stream(arn: str, container: str) -> list[str]:
        name = f"sidecar/{container}/{arn.rsplit('/', 1)[-1]}"
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=name, startFromHead=True)["events"]
        return [e["message"] for e in events]

    def stopped(arn: str) -> tuple[dict, dict]:
        return described(arn, lambda task, _: task["lastStatus"] == "STOPPED")

    # The sidecar hears the essential container on the same local port, then exits 3: the task runs on.
    once = run()
    task, found = described(
        once, lambda t, c: c["statsd"]["lastStatus"] == "STOPPED" and t.get("healthStatus") == "HEALTHY"
    )
    assert task["lastStatus"] == "RUNNING", task
    assert (found["statsd"]["lastStatus"], found["statsd"].get("exitCode")) == ("STOPPED", 3), found
    assert (found["airflow"]["lastStatus"], found["airflow"].get("exitCode")) == ("RUNNING", None), found
    assert found["airflow"]["healthStatus"] == task["healthStatus"] == "HEALTHY", found
    assert found["statsd"].get("healthStatus") is None, found  # it has no health check of its own
    heard = stream(once, "statsd")
    assert heard[1:] == ["received airflow.sidecar_test:1|c"], heard
    port = heard[0].removeprefix("listening on ")
    assert port != "8125", heard  # a free local port, the one the sender was given too

    ecs.stop_task(cluster=CLUSTER, task=once, reason="sidecar test over")
    task, found = stopped(once)
    assert (task["stopCode"], task["stoppedReason"]) == ("UserInitiated", "sidecar test over"), task
    assert {name: (c["lastStatus"], c.get("exitCode")) for name, c in found.items()} == {
        "airflow": ("STOPPED", 143),  # SIGTERM
        "statsd": ("STOPPED", 3),  # its own exit, kept
    }, found
    assert stream(once, "airflow") == [f"sending to {port}"]

    # Both running: StopTask stops both; the essential container exiting stops the sidecar.
    forever = {"name": "statsd", "command": ["python", "-c", STATSD_SIDECAR, "forever"]}
    by_user = run(forever)
    by_exit = run(forever, {"name": "airflow", "command": ["python", "-c", STATSD_SENDER, "5"]})
    described(by_user, lambda t, _: t["lastStatus"] == "RUNNING" and len(stream(by_user, "statsd")) > 1)
    ecs.stop_task(cluster=CLUSTER, task=by_user, reason="sidecar test over")
    ended = {arn: stopped(arn) for arn in (by_user, by_exit)}
    assert {
        arn: (task["stoppedReason"], {name: (c["lastStatus"], c.get("exitCode")) for name, c in found.items()})
        for arn, (task, found) in ended.items()
    } == {
        by_user: ("sidecar test over", {"airflow": ("STOPPED", 143), "statsd": ("STOPPED", 143)}),
        by_exit: ("Essential container in task exited", {"airflow": ("STOPPED", 0), "statsd": ("STOPPED", 143)}),
    }, ended
    assert "received airflow.sidecar_test:1|c" in stream(by_exit, "statsd")


def run_migration(runtime: dict, family: str, **params: object) -> dict:
    """library/ecs_run_task as the deploy's migrate step calls it."""
    network = runtime["network"]["awsvpcConfiguration"]
    args = {
        "cluster": CLUSTER,
        "task_definition": family,
        "network_configuration": {"subnets": network["subnets"], "security_groups": network["securityGroups"]},
        "started_by": "airflow-ecs-migrate",
        "wait_timeout": 60,
        "poll_interval": 1,
        **params,
    }
    return run_module("ecs_run_task", args, env=runtime["emulator"].env())


def test_a_migration_that_exits_non_zero_fails_the_deploy_with_its_exit_code_and_log_tail(runtime: dict) -> None:
    """What the deploy's migrate step (library/ecs_run_task) sees; moto alone reported exit 0."""
    register(runtime, "migrate", "echo 'relation already exists' >&2; exit 7", **logged("migrate"))
    result = run_migration(runtime, "migrate")
    assert result.get("failed"), result
    assert "container main exited with code 7" in result["msg"], result["msg"]
    assert "| relation already exists" in result["msg"], result["msg"]


def test_run_task_with_the_same_client_token_starts_the_task_once(runtime: dict) -> None:
    ecs = runtime["emulator"].client("ecs")
    definition = register(runtime, "once", "sleep 1")
    request = {
        "cluster": CLUSTER,
        "taskDefinition": definition,
        "launchType": "FARGATE",
        "networkConfiguration": runtime["network"],
        "clientToken": "retried-call-1",
    }
    first, again = (ecs.run_task(**request)["tasks"][0]["taskArn"] for _ in range(2))
    assert first == again
    assert ecs.list_tasks(cluster=CLUSTER, family="once")["taskArns"] == [first]


def test_a_migration_right_after_its_role_was_created_waits_for_iam_propagation(runtime: dict) -> None:
    iam = runtime["emulator"].client("iam")
    fresh = iam.create_role(RoleName="fresh", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    register(runtime, "fresh-role", "exit 0", task_role=fresh)
    with pytest.raises(Exception, match="ECS was unable to assume the role"):
        run_and_wait(runtime, "fresh-role")  # RunTask itself refuses a role IAM has not propagated
    result = run_migration(runtime, "fresh-role")
    assert not result.get("failed"), result.get("msg")
    assert [c["exit_code"] for c in result["tasks"][0]["containers"]] == [0]


def test_an_interrupted_migration_is_waited_for_not_started_twice(runtime: dict) -> None:
    """A deploy killed while its migration ran: the next run waits for that task instead of a second one."""
    ecs = runtime["emulator"].client("ecs")
    # Longer than the playbook takes to reach its check on a loaded machine (4 s once was not).
    definition = register(runtime, "long-migration", "sleep 20")
    running = ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration=runtime["network"],
        startedBy="airflow-ecs-migrate",
    )["tasks"][0]["taskArn"]
    result = run_migration(runtime, "long-migration")
    assert not result.get("failed"), result.get("msg")
    assert [t["task_arn"] for t in result["tasks"]] == [running]
    assert ecs.list_tasks(cluster=CLUSTER, family="long-migration", desiredStatus="STOPPED")["taskArns"] == [running]


def test_the_task_environment_has_the_secrets_read_with_the_execution_role(runtime: dict) -> None:
    command = 'test "$TOKEN" = s3cr3t && test -z "$AWS_ACCESS_KEY_ID" && test -n "$AWS_CONTAINER_CREDENTIALS_FULL_URI"'
    secrets = [{"name": "TOKEN", "valueFrom": f"{runtime['secret']}:token::"}]
    task = run_and_wait(runtime, register(runtime, "with-secret", command, secrets=secrets))
    assert [c["exitCode"] for c in task["containers"]] == [0], task_log(runtime, task)


@pytest.mark.parametrize(
    ("family", "container", "reason"),
    [
        ("unknown-image", {"image": "example.com/unknown:1"}, "CannotPullContainerError"),
        ("no-binary", {"entryPoint": ["no-such-binary"]}, 'CannotStartContainerError: .* exec: "no-such-binary"'),
        (
            "missing-secret",
            {
                "secrets": [
                    {"name": "X", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"}
                ]
            },
            "ResourceInitializationError: unable to pull secrets",
        ),
    ],
)
def test_a_task_that_cannot_start_stops_with_the_reason_ecs_gives(
    runtime: dict, family: str, container: dict, reason: str
) -> None:
    task = run_and_wait(runtime, register(runtime, family, **container))
    assert task["lastStatus"] == "STOPPED"
    assert task["stopCode"] == "TaskFailedToStart", task
    assert re.search(reason, task["stoppedReason"]), task["stoppedReason"]
    assert [c.get("exitCode") for c in task["containers"]] == [None]


def test_the_task_role_is_judged_by_enforced_iam(runtime: dict) -> None:
    """Without s3:ListAllMyBuckets the call fails with AccessDenied naming it; granting it makes the task pass."""
    command = 'python -c \'import boto3; print(boto3.client("s3").list_buckets()["Buckets"])\''
    definition = register(runtime, "lists-buckets", command)
    denied = run_and_wait(runtime, definition)
    assert [c["exitCode"] for c in denied["containers"]] == [1]
    assert "AccessDenied" in task_log(runtime, denied)
    decisions = [json.loads(line) for line in runtime["emulator"].iam_log.read_text().splitlines()]
    assert {"principal": "task", "action": "s3:ListAllMyBuckets", "allowed": False} in [
        {
            "principal": d["principal"].split("/")[1] if "assumed-role" in d["principal"] else "",
            "action": d["action"],
            "allowed": d["allowed"],
        }
        for d in decisions
    ]
    runtime["emulator"].client("iam").put_role_policy(
        RoleName="task",
        PolicyName="list",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
            }
        ),
    )
    allowed = run_and_wait(runtime, definition)
    assert [c["exitCode"] for c in allowed["containers"]] == [0], task_log(runtime, allowed)


def create_service(runtime: dict, name: str, definition: str, count: int, **settings: object) -> None:
    runtime["emulator"].client("ecs").create_service(
        cluster=CLUSTER,
        serviceName=name,
        taskDefinition=definition,
        desiredCount=count,
        launchType="FARGATE",
        networkConfiguration=runtime["network"],
        **settings,
    )


def service(runtime: dict, name: str) -> dict:
    return runtime["emulator"].client("ecs").describe_services(cluster=CLUSTER, services=[name])["services"][0]


def wait_service(runtime: dict, name: str, check, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = service(runtime, name)
        if check(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.5)


def running_tasks(runtime: dict, name: str) -> list[dict]:
    ecs = runtime["emulator"].client("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["group"] == f"service:{name}" and t["lastStatus"] == "RUNNING"]


def test_a_service_keeps_desired_count_tasks_running_and_replaces_one_that_dies(runtime: dict) -> None:
    ecs = runtime["emulator"].client("ecs")
    definition = register(
        runtime, "sleeper", "sleep 600", healthCheck={"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 2}
    )
    create_service(runtime, "sleeper", definition, 2)
    steady = wait_service(runtime, "sleeper", lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    assert (steady["runningCount"], steady["pendingCount"]) == (2, 0), steady
    tasks = running_tasks(runtime, "sleeper")
    assert len(tasks) == 2 and {t["healthStatus"] for t in tasks} == {"HEALTHY"}

    # A task's process dies out of band: ECS reports its exit and the scheduler starts another.
    victim = tasks[0]
    directory = runtime["emulator"].runtime()["tasks"][victim["taskArn"].rsplit("/", 1)[-1]]["directory"]
    from embedded_aws.processes import leftovers  # noqa: PLC0415

    for pid in leftovers(directory):
        os.kill(pid, signal.SIGKILL)
    stopped = wait_task(runtime, victim["taskArn"], "STOPPED")
    assert [c["exitCode"] for c in stopped["containers"]] == [137]
    replaced = wait_service(
        runtime, "sleeper", lambda s: s["runningCount"] == 2 and len(running_tasks(runtime, "sleeper")) == 2
    )
    assert replaced["runningCount"] == 2
    assert victim["taskArn"] not in [t["taskArn"] for t in running_tasks(runtime, "sleeper")]

    # Scaled to zero and deleted: every task stops, the service ends INACTIVE.
    ecs.update_service(cluster=CLUSTER, service="sleeper", desiredCount=0)
    ecs.delete_service(cluster=CLUSTER, service="sleeper")
    gone = wait_service(runtime, "sleeper", lambda s: s["status"] == "INACTIVE")
    assert gone["status"] == "INACTIVE" and gone["runningCount"] == 0
    assert running_tasks(runtime, "sleeper") == []


def test_a_new_task_definition_rolls_the_service_over(runtime: dict) -> None:
    ecs = runtime["emulator"].client("ecs")
    first = register(runtime, "rolling", "sleep 600")
    create_service(runtime, "rolling", first, 1)
    wait_service(runtime, "rolling", lambda s: s["runningCount"] == 1)
    old = running_tasks(runtime, "rolling")[0]
    second = register(runtime, "rolling", "sleep 601")
    ecs.update_service(cluster=CLUSTER, service="rolling", taskDefinition=second)
    done = wait_service(
        runtime,
        "rolling",
        lambda s: (
            len(s["deployments"]) == 1
            and s["deployments"][0]["taskDefinition"] == second
            and s["deployments"][0]["rolloutState"] == "COMPLETED"
        ),
    )
    assert done["deployments"][0]["taskDefinition"] == second, done["deployments"]
    (new,) = running_tasks(runtime, "rolling")
    assert new["taskDefinitionArn"] == second
    assert wait_task(runtime, old["taskArn"], "STOPPED")["lastStatus"] == "STOPPED"

    # A forced new deployment (same task definition) replaces the task too.
    ecs.update_service(cluster=CLUSTER, service="rolling", forceNewDeployment=True)

    def replaced_by_the_forced_deployment(current: dict) -> bool:
        (deployment,) = current["deployments"][:1]
        tasks = running_tasks(runtime, "rolling")
        return (
            len(current["deployments"]) == 1
            and deployment["rolloutState"] == "COMPLETED"
            and [t["startedBy"] for t in tasks] == [deployment["id"]]
            and tasks[0]["taskArn"] != new["taskArn"]
        )

    forced = wait_service(runtime, "rolling", replaced_by_the_forced_deployment)
    assert forced["deployments"][0]["rolloutState"] == "COMPLETED", forced["deployments"]
    (newest,) = running_tasks(runtime, "rolling")
    assert newest["taskArn"] != new["taskArn"] and newest["startedBy"] == forced["deployments"][0]["id"]
    ecs.delete_service(cluster=CLUSTER, service="rolling", force=True)


def test_a_service_task_that_fails_its_health_check_is_stopped_and_replaced(runtime: dict) -> None:
    ecs = runtime["emulator"].client("ecs")
    definition = register(
        runtime,
        "sick",
        "sleep 600",
        healthCheck={"command": ["CMD-SHELL", "exit 1"], "interval": 5, "retries": 1, "startPeriod": 0},
    )
    create_service(runtime, "sick", definition, 1)
    deadline = time.monotonic() + 60
    stopped: list[dict] = []
    while not stopped and time.monotonic() < deadline:
        arns = ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
        tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
        stopped = [t for t in tasks if t["group"] == "service:sick" and t["lastStatus"] == "STOPPED"]
        time.sleep(0.5)
    assert stopped, "the unhealthy task was never stopped"
    assert stopped[0]["stoppedReason"] == "Task failed container health checks"
    assert stopped[0]["healthStatus"] == "UNHEALTHY"
    ecs.delete_service(cluster=CLUSTER, service="sick", force=True)


def test_a_load_balanced_task_is_judged_by_its_target_health_after_the_grace_period(runtime: dict) -> None:
    """As ECS: targets are registered once the task runs; a task whose app answers only after 8 s is left
    alone during the service's health check grace period and counts for the rollout once its target is
    healthy; with no grace period the same task is stopped for failing the ELB health checks."""
    emulator = runtime["emulator"]
    ecs, elb = emulator.client("ecs"), emulator.client("elbv2")
    vpc = emulator.client("ec2").describe_subnets(SubnetIds=runtime["network"]["awsvpcConfiguration"]["subnets"])[
        "Subnets"
    ][0]["VpcId"]
    group = elb.create_target_group(
        Name="slow-web",
        Protocol="HTTP",
        Port=8080,
        VpcId=vpc,
        TargetType="ip",
        HealthCheckPath="/",
        HealthCheckIntervalSeconds=5,  # unhealthy after 2 failures 5 s apart, before the app answers at 8 s
        HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=2,
    )["TargetGroups"][0]["TargetGroupArn"]
    definition = register(
        runtime,
        "slow-web",
        'sleep 8; exec python -m http.server --bind 127.0.0.1 "$AIRFLOW__API__PORT"',
        portMappings=[{"containerPort": 8080}],
    )
    balancer = [{"targetGroupArn": group, "containerName": "main", "containerPort": 8080}]
    for name, grace in (("patient", 30), ("impatient", 0)):
        create_service(runtime, name, definition, 1, loadBalancers=balancer, healthCheckGracePeriodSeconds=grace)
        if name == "patient":
            # Registered while the app still starts (unhealthy), yet not stopped within the grace period.
            wait_service(runtime, name, lambda s: s["runningCount"] == 1)
            health = elb.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
            assert len(health) == 1 and health[0]["TargetHealth"]["State"] in ("initial", "unhealthy"), health
            done = wait_service(runtime, name, lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
            assert done["deployments"][0]["rolloutState"] == "COMPLETED", done["deployments"]
            health = elb.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
            assert [h["TargetHealth"]["State"] for h in health] == ["healthy"], health
            assert [t["stoppedReason"] for t in stopped_tasks(runtime, name)] == []
            ecs.delete_service(cluster=CLUSTER, service=name, force=True)
            wait_service(runtime, name, lambda s: s["status"] == "INACTIVE")
        else:
            deadline = time.monotonic() + 60
            while not stopped_tasks(runtime, name) and time.monotonic() < deadline:
                time.sleep(0.5)
            reasons = [t["stoppedReason"] for t in stopped_tasks(runtime, name)]
            assert reasons[:1] == [f"Task failed ELB health checks in (target-group {group})"], reasons
            ecs.delete_service(cluster=CLUSTER, service=name, force=True)


def test_make_shell_opens_ecs_exec_into_a_running_task_of_a_service_with_exec_on(runtime: dict, tmp_path: Path) -> None:
    """scripts/ecs_shell.py finds the RUNNING task and hands it to the AWS CLI (here a stand-in on PATH that
    prints its arguments: the Session Manager side is AWS's); a service without ECS Exec is refused."""
    emulator = runtime["emulator"]
    ecs = emulator.client("ecs")
    definition = register(runtime, "agent-shellable", "sleep 600", name="shellable")
    for name, exec_on in (("agent-shellable", True), ("agent-closed", False)):
        create_service(runtime, name, definition, 1, enableExecuteCommand=exec_on)
    wait_service(runtime, "agent-shellable", lambda s: s["runningCount"] == 1)
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("aws", "session-manager-plugin"):
        (tools / tool).write_text("#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
        (tools / tool).chmod(0o755)
    script = [sys.executable, str(ROOT / "scripts" / "ecs_shell.py"), "--stack", CLUSTER, "--region", "us-east-1"]

    def shell(service: str, path: str) -> subprocess.CompletedProcess:
        env = {**os.environ, **emulator.env(), "PATH": path}
        return subprocess.run([*script, service], env=env, capture_output=True, text=True, timeout=60, check=False)

    opened = shell("shellable", f"{tools}:{os.environ['PATH']}")
    assert opened.returncode == 0, opened.stderr
    (task,) = running_tasks(runtime, "agent-shellable")
    assert json.loads(opened.stdout.splitlines()[-1]) == [
        "ecs", "execute-command", "--region", "us-east-1", "--cluster", CLUSTER, "--task", task["taskArn"],
        "--container", "shellable", "--interactive", "--command", "/bin/bash",
    ]  # fmt: skip
    closed = shell("closed", f"{tools}:{os.environ['PATH']}")
    assert closed.returncode != 0 and "ECS Exec is off for agent-closed" in closed.stderr, closed.stderr
    missing = shell("shellable", os.environ["PATH"])  # the AWS CLI may be there, the plugin is not
    assert missing.returncode != 0 and "session-manager-plugin" in missing.stderr, missing.stderr
    for name in ("agent-shellable", "agent-closed"):
        ecs.delete_service(cluster=CLUSTER, service=name, force=True)


def stopped_tasks(runtime: dict, name: str) -> list[dict]:
    ecs = runtime["emulator"].client("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["group"] == f"service:{name}"]


def connect(port: int, password: str):
    import psycopg2  # noqa: PLC0415 - the venv's (Airflow's postgres provider)

    return psycopg2.connect(
        host="127.0.0.1", port=port, user="master", password=password, dbname="app", connect_timeout=5
    )


def wait_database(runtime: dict, present: bool, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        databases = runtime["emulator"].runtime().get("databases", {})
        ready = [d for d in databases.values() if d["ready"]]
        if (bool(ready) if present else not databases) or time.monotonic() > deadline:
            return databases
        time.sleep(0.5)


def test_an_rds_instance_is_a_postgresql_server_with_its_master_user_and_database(runtime: dict) -> None:
    rds = runtime["emulator"].client("rds")
    rds.create_db_instance(
        DBInstanceIdentifier="metadata",
        Engine="postgres",
        EngineVersion="16.4",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="master",
        MasterUserPassword="first-password",
        DBName="app",
    )
    (database,) = wait_database(runtime, present=True).values()
    with connect(database["port"], "first-password") as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), current_user")
        assert cur.fetchone() == ("app", "master")

    # A new master password (ModifyDBInstance, as a rotation does) is what the server then accepts.
    rds.modify_db_instance(DBInstanceIdentifier="metadata", MasterUserPassword="second-password", ApplyImmediately=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            connect(database["port"], "second-password").close()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

    rds.delete_db_instance(DBInstanceIdentifier="metadata", SkipFinalSnapshot=True)
    assert wait_database(runtime, present=False) == {}
    from embedded_aws.processes import leftovers  # noqa: PLC0415

    assert leftovers(f"{runtime['emulator'].runtime_dir}/rds") == []


# -- rollouts through library/ecs_services (the deploy's own step) -------------------------------------


def logged(family: str) -> dict:
    """awslogs to LOG_GROUP, and a health check, as every service of the stack has."""
    options = {"awslogs-group": LOG_GROUP, "awslogs-region": "us-east-1", "awslogs-stream-prefix": family}
    return {
        "logConfiguration": {"logDriver": "awslogs", "options": options},
        "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 2},
    }


def deploy_service(runtime: dict, name: str, definition: str, **params: object) -> dict:
    network = runtime["network"]["awsvpcConfiguration"]
    service = {
        "name": name,
        "task_definition": definition.rsplit("/", 1)[-1],
        "launch_type": "FARGATE",
        "network_configuration": {
            "awsvpcConfiguration": {"subnets": network["subnets"], "securityGroups": network["securityGroups"]}
        },
        "deployment_configuration": {
            "minimumHealthyPercent": 100,
            "maximumPercent": 200,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        },
    }
    args = {"cluster": CLUSTER, "services": [service], "poll_interval": 1, **params}
    return run_module("ecs_services", args, env=runtime["emulator"].env())


def test_a_deploy_waits_for_the_rollout_and_a_failed_one_is_rolled_back_and_reported(runtime: dict) -> None:
    good = register(runtime, "web", "echo serving; sleep 600", **logged("web"))
    first = deploy_service(runtime, "web", good)
    assert not first.get("failed"), first.get("msg")
    steady = service(runtime, "web")
    assert (steady["runningCount"], steady["deployments"][0]["rolloutState"]) == (1, "COMPLETED")

    bad = register(runtime, "web", "echo 'cannot reach the database' >&2; exit 3", **logged("web"))
    began = time.monotonic()
    failed = deploy_service(runtime, "web", bad)
    detected = time.monotonic() - began
    assert failed.get("failed"), failed
    message = failed["msg"]
    assert f"the deployment of {bad.rsplit('/', 1)[-1]} failed" in message, message
    assert "ECS deployment circuit breaker: tasks failed to start." in message, message
    assert f"ECS rolled the service back to {good.rsplit('/', 1)[-1]}" in message, message
    assert "Essential container in task exited [EssentialContainerExited]; exit codes: main=3" in message, message
    assert "| cannot reach the database" in message, message
    print(f"failed rollout reported after {detected:.1f} s")
    assert detected < 60, f"the failed rollout took {detected:.0f} s to report"
    # The previous revision keeps serving.
    after = wait_service(runtime, "web", lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    assert after["taskDefinition"] == good and after["runningCount"] == 1
    assert [t["taskDefinitionArn"] for t in running_tasks(runtime, "web")] == [good]
    runtime["emulator"].client("ecs").delete_service(cluster=CLUSTER, service="web", force=True)


def test_a_rollout_that_never_gets_healthy_fails_the_deploy_at_its_timeout(runtime: dict) -> None:
    never = register(
        runtime,
        "stuck",
        "sleep 600",
        healthCheck={"command": ["CMD-SHELL", "exit 1"], "interval": 5, "retries": 3, "startPeriod": 300},
    )
    result = deploy_service(runtime, "stuck", never, wait_timeout=8)
    assert result.get("failed"), result
    assert "was not complete after 8 s" in result["msg"], result["msg"]
    assert "IN_PROGRESS" in result["msg"], result["msg"]
    runtime["emulator"].client("ecs").delete_service(cluster=CLUSTER, service="stuck", force=True)


def test_several_essential_containers_make_the_task_health_and_any_exit_stops_it(runtime: dict) -> None:
    """As ECS: a task's health is HEALTHY once every essential container with a health check is, a
    container may have only a memory reservation, and one essential container exiting stops the task
    with the others (the scheduler's task runs the dag-processor and the triggerer this way)."""
    ecs = runtime["emulator"].client("ecs")
    checked = {"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 2, "startPeriod": 0}
    definition = register_containers(runtime, "two-essentials", [
        {"name": "long", "image": IMAGE, "memory": 256, "essential": True, "healthCheck": checked,
         "command": ["python", "-c", "import time; held = b'x' * (40 << 20); time.sleep(600)"]},
        {"name": "short", "image": IMAGE, "memoryReservation": 128, "essential": True, "healthCheck": checked,
         "command": ["bash", "-c", "sleep 600 & wait"]},
    ])  # fmt: skip
    arn = ecs.run_task(
        cluster=CLUSTER, taskDefinition=definition, launchType="FARGATE", networkConfiguration=runtime["network"]
    )["tasks"][0]["taskArn"]
    deadline = time.monotonic() + 60
    while (task := ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]).get("healthStatus") != "HEALTHY":
        assert time.monotonic() < deadline and task["lastStatus"] != "STOPPED", task
        time.sleep(0.5)
    assert {c["name"]: c.get("healthStatus") for c in task["containers"]} == {"long": "HEALTHY", "short": "HEALTHY"}
    deadline = time.monotonic() + 20  # sampled every few seconds
    while (usage := runtime["emulator"].runtime()["tasks"][arn.rsplit("/", 1)[-1]]["usage"])["long"][
            "peak_memory_mib"] < 40 and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.5)
    assert set(usage) == {"long", "short"} and usage["long"]["peak_memory_mib"] >= 40, usage  # what it holds

    directory = runtime["emulator"].runtime()["tasks"][arn.rsplit("/", 1)[-1]]["directory"]
    pid = next(
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _is_container(p, directory, "sleep 600 & wait")
    )
    os.kill(pid, signal.SIGKILL)  # the second essential container dies
    task = wait_task(runtime, arn, "STOPPED")
    found = {c["name"]: (c["lastStatus"], c.get("exitCode")) for c in task["containers"]}
    assert task["stoppedReason"] == "Essential container in task exited", task
    assert found["short"] == ("STOPPED", 137) and found["long"][0] == "STOPPED", found


def _is_container(proc: Path, task_dir: str, command: str) -> bool:
    try:
        environ = (proc / "environ").read_bytes()
        return f"ECS_AGENT_TASK_DIR={task_dir}".encode() in environ and command in (proc / "cmdline").read_text()
    except OSError:
        return False


# -- Fargate's CPU and memory limits (embedded_aws/cgroups.py) ---------------------------------------------


def task_cgroup(runtime: dict, arn: str) -> Cgroup:
    """The task's cgroup once runtime.json shows it; the test is skipped, saying why, where the runtime cannot
    enforce limits."""
    deadline = time.monotonic() + 10
    while True:
        state = runtime["emulator"].runtime()
        if "not enforced" in state["resource_limits"]:
            pytest.skip(state["resource_limits"])
        report = state["tasks"].get(arn.rsplit("/", 1)[-1], {}).get("cgroup")
        if report or time.monotonic() > deadline:
            return Cgroup.from_report(report)
        time.sleep(0.2)


def test_a_container_that_outgrows_its_memory_is_oom_killed_and_its_task_replaced(runtime: dict) -> None:
    """As on Fargate: the kernel kills the container at its hard limit (128 MiB of the task's 512), ECS reports
    exit 137 with its OutOfMemoryError reason, the essential container's exit stops the task and the service
    starts another; the stopped task's cgroup is gone."""
    ecs = runtime["emulator"].client("ecs")
    hog = "sleep 3; exec python -c 'held = bytearray(300 << 20); import time; time.sleep(600)'"
    create_service(runtime, "hog", register(runtime, "hog", hog, memory=128), 1)
    deadline = time.monotonic() + 90
    while not (stopped := stopped_tasks(runtime, "hog")):
        assert time.monotonic() < deadline, "the task was never OOM-killed"
        time.sleep(0.5)
    (container,) = stopped[0]["containers"]
    assert (container["exitCode"], container["reason"]) == (137, OOM_REASON), container
    assert (stopped[0]["stopCode"], stopped[0]["stoppedReason"]) == (
        "EssentialContainerExited",
        "Essential container in task exited",
    )
    assert not task_cgroup(runtime, stopped[0]["taskArn"]).exists()
    deadline = time.monotonic() + 60  # the replacement starts after the service's restart delay

    def replaced() -> bool:
        tasks = running_tasks(runtime, "hog") + stopped_tasks(runtime, "hog")
        return any(t["taskArn"] != stopped[0]["taskArn"] for t in tasks)

    while not replaced():
        assert time.monotonic() < deadline, "the OOM-killed task was not replaced"
        time.sleep(0.5)
    ecs.delete_service(cluster=CLUSTER, service="hog", force=True)


def test_a_cpu_bound_container_is_held_to_its_task_cpu_units(runtime: dict) -> None:
    """256 CPU units are a quarter of a vCPU, however busy the container; its cgroup goes with the task."""
    ecs = runtime["emulator"].client("ecs")
    arn = ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=register(runtime, "spinner", "exec python -c 'while True: pass'"),
        launchType="FARGATE",
        networkConfiguration=runtime["network"],
    )["tasks"][0]["taskArn"]
    assert wait_task(runtime, arn, "RUNNING")["lastStatus"] == "RUNNING"
    cgroup = task_cgroup(runtime, arn)
    time.sleep(1)
    began, used = time.monotonic(), cgroup.cpu_seconds()
    time.sleep(4)
    vcpu = (cgroup.cpu_seconds() - used) / (time.monotonic() - began)
    ecs.stop_task(cluster=CLUSTER, task=arn)
    assert wait_task(runtime, arn, "STOPPED")["lastStatus"] == "STOPPED"
    assert 0.15 < vcpu < 0.35, vcpu
    assert not cgroup.exists()


# -- health checks that do not cascade ---------------------------------------------------------------------

NODES = yaml.safe_load((ROOT / "roles" / "airflow_nodes" / "vars" / "main.yml").read_text())
WORKER_CHECK = next(s for s in NODES["__airflow_nodes_services"] if s["name"] == "worker")["health_check"]
THROUGH_THE_BROKER = (  # the worker's check before: ECS replaced every worker when the broker blinked
    'celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d "celery@$HOSTNAME"'
)


def test_workers_stay_healthy_and_are_not_replaced_while_the_broker_is_down(runtime: dict) -> None:
    """The worker's health check of roles/airflow_nodes, every 10 s here: with the broker's only task stopped
    for longer than three failed checks take, the worker stays HEALTHY and keeps its task. A worker beside it
    checked through the broker (`celery inspect ping`, the check before) is replaced in the same outage."""
    ecs, ec2 = runtime["emulator"].client("ecs"), runtime["emulator"].client("ec2")
    discovery = runtime["emulator"].client("servicediscovery")
    subnet = runtime["network"]["awsvpcConfiguration"]["subnets"][0]
    vpc = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"]
    discovery.create_private_dns_namespace(Name="workers.internal", Vpc=vpc)
    namespace = next(n["Id"] for n in discovery.list_namespaces()["Namespaces"] if n["Name"] == "workers.internal")
    registry = discovery.create_service(
        Name="rabbitmq", NamespaceId=namespace, DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]}
    )["Service"]["Arn"]
    broker = register_containers(runtime, "broker", [{
        "name": "rabbitmq", "image": "rabbitmq:4.1", "memory": 512, "essential": True,
        "portMappings": [{"containerPort": 5672}],
        "environment": [{"name": "RABBITMQ_DEFAULT_USER", "value": "airflow"},
                        {"name": "RABBITMQ_DEFAULT_PASS", "value": "airflow"}],
    }])  # fmt: skip
    create_service(runtime, "broker", broker, 1, serviceRegistries=[{"registryArn": registry}])
    environment = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "amqp://airflow:airflow@rabbitmq.workers.internal:5672//",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
    }
    for name, command, timeout in (
        ("worker-local", WORKER_CHECK["command"], WORKER_CHECK["timeout"]),
        ("worker-ping", THROUGH_THE_BROKER, 20),
    ):
        check = {"command": ["CMD-SHELL", command], "interval": 10, "timeout": timeout, "retries": 3,
                 "startPeriod": WORKER_CHECK["start_period"]}  # fmt: skip
        worker = {
            "name": "worker", "image": IMAGE, "memory": 2048, "essential": True, "command": ["celery", "worker"],
            "portMappings": [{"containerPort": 8793}], "healthCheck": check,
            "environment": [{"name": k, "value": v} for k, v in environment.items()],
        }  # fmt: skip
        create_service(runtime, name, register_containers(runtime, name, [worker], cpu="1024", memory="2048"), 1)
    try:
        for name in ("worker-local", "worker-ping"):
            healthy = wait_service(
                runtime, name, lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", timeout=240
            )
            failed = [
                (t["stoppedReason"], [c.get("exitCode") for c in t["containers"]]) for t in stopped_tasks(runtime, name)
            ]
            assert healthy["deployments"][0]["rolloutState"] == "COMPLETED", (name, failed)
        (local,) = running_tasks(runtime, "worker-local")
        (ping,) = running_tasks(runtime, "worker-ping")

        ecs.update_service(cluster=CLUSTER, service="broker", desiredCount=0)
        wait_service(runtime, "broker", lambda s: s["runningCount"] == 0 and not running_tasks(runtime, "broker"))
        # Until the worker checked through the broker is replaced (3 failed checks of up to 20 s, 10 s apart),
        # and at least the window of three failed checks of the local one.
        outage = time.monotonic()
        replaced: list[dict] = []
        while not replaced or time.monotonic() - outage < 3 * (10 + WORKER_CHECK["timeout"]):
            (still,) = running_tasks(runtime, "worker-local")
            assert (still["taskArn"], still["healthStatus"]) == (local["taskArn"], "HEALTHY"), still
            replaced = [t for t in stopped_tasks(runtime, "worker-ping") if t["taskArn"] == ping["taskArn"]]
            assert time.monotonic() - outage < 240, "the worker checked through the broker was never replaced"
            time.sleep(2)
        assert [t["stoppedReason"] for t in stopped_tasks(runtime, "worker-local")] == []
        assert replaced[0]["stoppedReason"] == "Task failed container health checks", replaced
    finally:
        for name in ("worker-local", "worker-ping", "broker"):
            ecs.delete_service(cluster=CLUSTER, service=name, force=True)
