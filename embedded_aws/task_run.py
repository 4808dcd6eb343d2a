"""One ECS task run as local processes, from PROVISIONING to STOPPED, reported the way ECS reports it.

Launch (PENDING): the image must be one this machine can run (apache/airflow: the Python environment
of the emulator, with the image entrypoint's rule; rabbitmq: Debian's rabbitmq-server), the container's
`secrets` are read with the *execution role's* credentials, the awslogs stream is created with them,
then the container's environment is its task definition's plus the printed rewrites (localize.py) and
what Fargate gives every container, including the task role's credentials endpoint. Failures end the
task STOPPED with ECS's stop code and reason (CannotPullContainerError, ResourceInitializationError,
CannotStartContainerError). RUNNING: the container's health check runs as Docker runs it (startPeriod,
interval, timeout, retries); the process's output goes to its log file and to CloudWatch Logs. STOPPED:
exit code (128 + signal when killed), stoppedReason, stopCode.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from embedded_aws import credentials, ecs_state, servers
from embedded_aws.forwarder import free_port
from embedded_aws.localize import (
    LocalContainer,
    LocalEndpoints,
    is_airflow,
    is_rabbitmq,
    localize,
    platform_env,
    task_ports,
)
from embedded_aws.processes import Proc, Processes, kill_leftovers
from embedded_aws.task_definitions import Container, SecretResolver, container

if TYPE_CHECKING:
    from embedded_aws.agent import Agent

log = logging.getLogger("embedded_aws.task")
STARTUP_CHECK_SECONDS = 2.0  # health checks run this often until the first success (Docker's start interval)
LOG_SHIP_SECONDS = 2.0


class TaskFailed(Exception):
    def __init__(self, stop_code: str, reason: str) -> None:
        super().__init__(reason)
        self.stop_code = stop_code
        self.reason = reason


class TaskRun(threading.Thread):
    def __init__(self, agent: Agent, ecs: Any, task: Any, account: str, region: str) -> None:
        super().__init__(name=f"task-{task.id[:8]}", daemon=True)
        self.agent = agent
        self.task = task
        self.account = account
        self.region = region
        self.definition = ecs.describe_task_definition(task.task_definition_arn)
        self.family = self.definition.family
        self.service_arn = ""
        self.directory = agent.settings.runtime_dir / "tasks" / task.id
        self.ports: dict[int, int] = {}
        self.proc: Proc | None = None
        self.local: LocalContainer | None = None
        self.stop_requested = False
        self.stop_initiator: str | None = None  # scheduler | user | health; None: the container exited itself
        self.became_ready = False
        self.stopped = False
        self.stopped_time = 0.0
        self.ready = False
        self.registered: set[str] = set()  # "discovery", "target": what the agent registered the task in
        self.registrations: list[tuple[str, str, str]] = []
        self.running_since = 0.0  # when the task became RUNNING (ECS's health check grace period counts from it)
        self.discovery_names: set[str] = set()
        self.exit_code: int | None = None
        self.environment_keys: list[str] = []  # what the process really got (/proc/<pid>/environ), names only
        self.stop_timeout = 30
        self._wake = threading.Event()
        self._health_stop = threading.Event()
        self._shipped = 0
        self._logs: Any = None
        self._log_stream: tuple[str, str] | None = None

    @property
    def ip_address(self) -> str:
        """The task ENI's private address (moto assigns one from the subnet), as ECS registers it."""
        for attachment in self.task.attachments:
            for detail in attachment.get("details", []):
                if detail.get("name") == "privateIPv4Address":
                    return detail["value"]
        return "127.0.0.1"

    def target_port(self, target_group_arn: str) -> int | None:
        service = self.agent.find_service(self.service_arn)
        for balancer in getattr(service, "load_balancers", []):
            if balancer.get("targetGroupArn") == target_group_arn:
                return self.ports.get(int(balancer.get("containerPort") or 0))
        return None

    def request_stop(self, reason: str, initiator: str = "scheduler") -> None:
        if not self.stop_requested and not self.stopped:
            self.stop_requested = True
            self.stop_initiator = initiator
            self.task.desired_status = "STOPPED"
            self.task.stopped_reason = self.task.stopped_reason or reason
            self.task.stop_code = self.task.stop_code or "ServiceSchedulerInitiated"
        self._wake.set()
        self._health_stop.set()

    # -- the task's life ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            ecs_state.set_status(self.task, "PENDING")
            self.launch()
        except TaskFailed as failure:
            self.finish(failure.stop_code, failure.reason)
            return
        except Exception as exc:  # a fault of the agent itself: still a STOPPED task with a reason
            log.exception("task %s failed to launch", self.task.id)
            self.finish("TaskFailedToStart", f"ResourceInitializationError: {type(exc).__name__}: {exc}")
            return
        self.watch()

    def launch(self) -> None:
        definitions = self.definition.container_definitions
        if len(definitions) != 1:
            raise TaskFailed("TaskFailedToStart", "the local runtime runs tasks of one container")
        image = definitions[0].get("image", "")
        spec = {**definitions[0]}
        if not (is_airflow(image) or is_rabbitmq(image)):
            raise TaskFailed(
                "TaskFailedToStart",
                f"CannotPullContainerError: pull image manifest has been retried 5 time(s): {image} is not an image "
                "the local runtime can run (apache/airflow, rabbitmq)",
            )
        for key in ("command", "environment"):  # RunTask overrides
            override = next(
                (o for o in self.task.overrides.get("containerOverrides", []) if o.get("name") == spec["name"]), {}
            ).get(key)
            if override is not None:
                spec[key] = override
        self.stop_timeout = int(spec.get("stopTimeout", 30))
        resolver = SecretResolver(
            self.role_client("secretsmanager", getattr(self.definition, "execution_role_arn", None), "secrets")
        )
        try:
            spec_container = container(self.service_name, self.family, self.definition.revision, spec, resolver)
        except Exception as exc:
            raise TaskFailed(
                "TaskFailedToStart",
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                f"retrieval failed: unable to retrieve secret from asm: {exc}",
            ) from exc
        self.open_log_stream(spec_container)
        self.ports = task_ports(spec_container)
        endpoints = LocalEndpoints(
            ports=self.ports,
            hosts=self.agent.hosts(self.account, self.region),
            aws_endpoint=self.agent.settings.endpoint_url,
            region=self.region,
            extra_rabbitmq={"ERL_EPMD_PORT": free_port(), "RABBITMQ_DIST_PORT": free_port()}
            if is_rabbitmq(spec_container.image)
            else {},
        )
        self.local = localize(spec_container, endpoints, self.platform(spec_container))
        argv = self.argv(spec_container)
        self.directory.mkdir(parents=True, exist_ok=True)
        cwd = Path(self.local.env.get("AIRFLOW_HOME") or self.local.env["HOME"])
        try:
            self.proc = Processes(self.directory).start(
                spec_container.name,
                argv,
                self.local.env,
                cwd,
                stop_timeout=self.stop_timeout,
                signal_group=self.signals_group(spec_container),
            )
        except OSError as exc:
            raise TaskFailed(
                "TaskFailedToStart",
                f"CannotStartContainerError: Error response from daemon: failed to create task for container: "
                f'exec: "{argv[0]}": {exc.strerror}',
            ) from exc
        self.environment_keys = sorted(read_environ(self.proc.pid))
        for c in self.task.containers:
            c.last_status = "RUNNING"
        ecs_state.set_status(self.task, "RUNNING")
        self.running_since = time.time()
        self.ready = self.became_ready = spec_container.health_check is None
        if spec_container.health_check is not None:
            threading.Thread(target=self.health_loop, name=f"health-{self.task.id[:8]}", daemon=True).start()

    @property
    def service_name(self) -> str:
        return self.task.group.removeprefix("service:") if self.task.group.startswith("service:") else self.family

    def role_client(self, service: str, role_arn: str | None, purpose: str) -> Any:
        if not role_arn:
            return _NoRole(purpose)
        try:
            keys = credentials.role_credentials(role_arn.rsplit("/", 1)[-1], self.region)
        except Exception as exc:
            raise TaskFailed(
                "TaskFailedToStart",
                f"ResourceInitializationError: the execution role {role_arn} cannot be assumed: {exc}",
            ) from exc
        return boto3.client(
            service,
            endpoint_url=self.agent.settings.endpoint_url,
            region_name=self.region,
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["Token"],
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def platform(self, spec: Container) -> dict[str, str]:
        rabbit = is_rabbitmq(spec.image)
        extra = servers.prepare_rabbitmq_files(self.directory) if rabbit else {}
        extra["ECS_AGENT_TASK_DIR"] = str(self.directory)
        role = getattr(self.definition, "task_role_arn", None)
        if role:
            extra["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = self.agent.settings.credentials_url + role.rsplit("/", 1)[-1]
            extra["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = self.agent.settings.credentials_token
        bins = [servers.RABBITMQ_BIN] if rabbit else [str(self.agent.settings.python_bin)]
        return platform_env(spec.name, self.directory, bins, self.region, airflow=is_airflow(spec.image), extra=extra)

    @staticmethod
    def signals_group(spec: Container) -> bool:
        """apache/airflow runs under dumb-init, which forwards ECS's SIGTERM to the whole process group,
        or with DUMB_INIT_SETSID=0 to its child alone (Celery's warm shutdown: running tasks finish)."""
        return not (is_airflow(spec.image) and not spec.entry_point and spec.environment.get("DUMB_INIT_SETSID") == "0")

    def argv(self, spec: Container) -> list[str]:
        """What the image runs: its entrypoint's rule, or the task definition's entryPoint + command."""
        if spec.entry_point:
            return [*spec.entry_point, *spec.command]
        if is_airflow(spec.image):
            # apache/airflow's /entrypoint: `bash`, `python` and `airflow` run as they are, anything else via airflow
            if spec.command and spec.command[0] in ("bash", "python", "airflow"):
                return list(spec.command)
            return ["airflow", *spec.command]
        # rabbitmq: the image's CMD, with epmd beside it in the container
        command = spec.command or ["rabbitmq-server"]
        return ["sh", "-c", 'epmd -port "$ERL_EPMD_PORT" & exec "$@"', "sh", *command]

    # -- logs ---------------------------------------------------------------------------------------

    def open_log_stream(self, spec: Container) -> None:
        """The awslogs driver: the stream <prefix>/<container>/<task id>, created with the execution role."""
        group, prefix = spec.log_options.get("awslogs-group"), spec.log_options.get("awslogs-stream-prefix")
        if not group:
            return
        stream = f"{prefix}/{spec.name}/{self.task.id}" if prefix else self.task.id
        self._logs = self.role_client("logs", getattr(self.definition, "execution_role_arn", None), "awslogs")
        try:
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except Exception as exc:
            raise TaskFailed(
                "TaskFailedToStart",
                f"CannotStartContainerError: failed to initialize logging driver: failed to create "
                f"Cloudwatch log stream: {exc}",
            ) from exc
        self._log_stream = (group, stream)

    def ship_logs(self) -> None:
        if self._log_stream is None or self.proc is None:
            return
        try:
            with open(self.proc.log_path, "rb") as f:
                f.seek(self._shipped)
                data = f.read(1_000_000)
        except OSError:
            return
        lines = data.rsplit(b"\n", 1)[0] if b"\n" in data else b""
        if not lines:
            return
        stamp = int(time.time() * 1000)
        events = [{"timestamp": stamp, "message": line.decode(errors="replace") or " "} for line in lines.split(b"\n")]
        try:
            for start in range(0, len(events), 5000):
                self._logs.put_log_events(
                    logGroupName=self._log_stream[0],
                    logStreamName=self._log_stream[1],
                    logEvents=events[start : start + 5000],
                )
            self._shipped += len(lines) + 1
        except Exception as exc:  # the awslogs driver keeps the container running and drops what it cannot send
            log.warning("task %s: awslogs: %s", self.task.id, exc)
            self._shipped += len(lines) + 1

    # -- running ------------------------------------------------------------------------------------

    def watch(self) -> None:
        assert self.proc is not None
        last_ship = time.monotonic()
        while self.proc.alive() and not self.stop_requested:
            self._wake.wait(0.5)
            self._wake.clear()
            if time.monotonic() - last_ship > LOG_SHIP_SECONDS:
                self.ship_logs()
                last_ship = time.monotonic()
            if self.task.desired_status == "STOPPED":
                self.request_stop(self.task.stopped_reason or "Task stopped by the user", "user")
        if self.proc.alive():
            ecs_state.set_status(self.task, "DEACTIVATING")
            self.ready = False
            self.proc.stop(self.stop_timeout)
        code = self.proc.popen.wait()
        self.exit_code = 128 - code if code < 0 else code
        self.ship_logs()
        if self.stop_requested:
            self.finish(self.task.stop_code or "UserInitiated", self.task.stopped_reason or "Task stopped")
        else:
            self.finish("EssentialContainerExited", "Essential container in task exited")

    def health_loop(self) -> None:
        assert self.local is not None and self.proc is not None
        check = self.local.container.health_check
        assert check is not None and self.local.health_check is not None
        started = time.monotonic()
        failures = 0
        health = "UNKNOWN"
        # Docker's start interval: a first check soon, then as often as a check's own cost allows until
        # the first success (an Airflow CLI check costs seconds of CPU); the definition's interval after.
        if self._health_stop.wait(STARTUP_CHECK_SECONDS):
            return
        while self.proc.alive() and not self.stop_requested:
            began = time.monotonic()
            code = run_check(self.local.health_check, self.local.env, check.timeout)
            cost = time.monotonic() - began
            if code == 0:
                failures, health = 0, "HEALTHY"
            elif time.monotonic() - started >= check.start_period:
                failures += 1
                if failures >= check.retries:
                    health = "UNHEALTHY"
            for c in self.task.containers:
                c.health_status = health
            self.task.health_status = health
            self.ready = health == "HEALTHY"
            self.became_ready = self.became_ready or self.ready
            if health == "UNHEALTHY" and self.service_arn:
                self.request_stop("Task failed container health checks", "health")
                return
            pause = min(check.interval, max(STARTUP_CHECK_SECONDS, cost)) if health == "UNKNOWN" else check.interval
            if self._health_stop.wait(pause):
                return

    def finish(self, stop_code: str, reason: str) -> None:
        self.ready = False
        for c in self.task.containers:
            c.last_status = "STOPPED"
            c.exitCode = self.exit_code
            if self.exit_code is None:
                c.reason = reason
        self.task.stop_code = self.task.stop_code if self.stop_requested and self.task.stop_code else stop_code
        self.task.stopped_reason = self.task.stopped_reason if self.stop_requested else reason
        ecs_state.set_status(self.task, "STOPPED")
        self.stopped = True
        self.stopped_time = time.time()
        self.agent.task_stopped(self)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.stop(1)
            kill_leftovers(str(self.directory), grace=1)  # children that left the process group


class _NoRole:
    """A task definition without the execution role a feature needs: every call fails with why."""

    def __init__(self, purpose: str) -> None:
        self.purpose = purpose

    def __getattr__(self, name: str) -> Any:
        def fail(**_: Any) -> Any:
            raise PermissionError(f"the task definition has {self.purpose} but no execution role")

        return fail


def read_environ(pid: int, timeout: float = 10) -> dict[str, str]:
    """The initial environment of a process, from /proc/<pid>/environ.

    Right after Popen returns the kernel may still show an empty environment (the exec is under way),
    so this waits for it. Read it early: setproctitle (Airflow, Celery) later reuses that memory.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                items = f.read().split(b"\0")
        except OSError:
            return {}
        environ = dict(item.decode(errors="replace").split("=", 1) for item in items if b"=" in item)
        if environ or time.monotonic() > deadline:
            return environ
        time.sleep(0.01)


def run_check(command: str, env: dict[str, str], timeout: float) -> int:
    """`sh -c command` in its own process group, killed whole on timeout (as Docker kills the exec); -1 then."""
    proc = subprocess.Popen(
        ["sh", "-c", command],
        env=env,
        cwd=env.get("AIRFLOW_HOME") or env["HOME"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -1
