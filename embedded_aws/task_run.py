"""One ECS task run as local processes, from PROVISIONING to STOPPED, reported the way ECS reports it.

Launch (PENDING): every container's image is pulled as Fargate pulls it (registry.py: apache/airflow
runs the stock image's package set with the image entrypoint's rule, a project image from the emulator's
ECR the environment its CodeBuild build made, rabbitmq Debian's rabbitmq-server; ECR images with the
*execution role's* credentials), the containers' `secrets` are read with the execution role's
credentials, each container's awslogs stream is created with them, then each container's environment is
its task definition's plus the printed rewrites (localize.py) and what Fargate gives every container,
including the task role's credentials endpoint. The containers share the task's network namespace: one
local port map for the task. The task's cgroup holds it to its CPU and memory, each container's to its own
(cgroups.py); a container the OOM killer ended is reported with ECS's OutOfMemoryError reason.
Failures end the task STOPPED with ECS's stop code and reason
(CannotPullContainerError, ResourceInitializationError, CannotStartContainerError). RUNNING: every
container runs (dependsOn is not waited for); each health check runs as Docker runs it (startPeriod,
interval, timeout, retries), the task's health being its essential container's; each process's output
goes to its log file and its own CloudWatch Logs stream. A non-essential container that exits is STOPPED
alone; when the essential one exits or the task is stopped, every other container is stopped (SIGTERM,
SIGKILL after its own stopTimeout). STOPPED: each container's exit code (128 + signal when killed), the
task's stoppedReason and stopCode.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from embedded_aws import cgroups, credentials, ecs_state, efs, registry, servers
from embedded_aws.forwarder import free_port
from embedded_aws.localize import LocalContainer, LocalEndpoints, localize, platform_env, task_ports
from embedded_aws.processes import Proc, Processes, groups_usage, kill_leftovers
from embedded_aws.task_definitions import Container, SecretResolver, container

if TYPE_CHECKING:
    from embedded_aws.agent import Agent

# A container whose image has another architecture than the task: the pull succeeds, but the kernel cannot
# execute its entrypoint, so it exits at once with what Fargate's logs then show.
EXEC_FORMAT_ERROR = ["sh", "-c", "echo 'exec /usr/bin/dumb-init: exec format error' >&2; exit 255"]
log = logging.getLogger("embedded_aws.task")
STARTUP_CHECK_SECONDS = 2.0  # health checks run this often until the first success (Docker's start interval)
LOG_SHIP_SECONDS = 2.0
USAGE_SECONDS = 5.0  # between two samples of each container's memory and CPU
DRAIN_SECONDS = 5.0  # the most of a target group's deregistration delay a stopping task waits (drain)


class TaskFailed(Exception):
    def __init__(self, stop_code: str, reason: str) -> None:
        super().__init__(reason)
        self.stop_code = stop_code
        self.reason = reason


@dataclass
class Usage:
    """What a container used, sampled every USAGE_SECONDS: the high-water marks sizes are chosen from."""

    peak_memory_mib: float = 0.0  # PSS of its processes
    cpu_seconds: float = 0.0
    peak_vcpu: float = 0.0  # CPU seconds per second, the highest over one sampling interval
    _sampled_at: float = 0.0

    def sample(self, memory_mib: float, cpu_seconds: float, at: float) -> None:
        if self._sampled_at and at > self._sampled_at and cpu_seconds >= self.cpu_seconds:
            self.peak_vcpu = max(self.peak_vcpu, (cpu_seconds - self.cpu_seconds) / (at - self._sampled_at))
        self.peak_memory_mib = max(self.peak_memory_mib, memory_mib)
        self.cpu_seconds, self._sampled_at = max(self.cpu_seconds, cpu_seconds), at

    def report(self) -> dict[str, float]:
        return {
            "peak_memory_mib": round(self.peak_memory_mib),
            "peak_vcpu": round(self.peak_vcpu, 2),
            "cpu_seconds": round(self.cpu_seconds, 1),
        }


@dataclass
class ContainerRun:
    """One container of the task: its definition as ECS starts it, its process, and what DescribeTasks reports."""

    spec: Container
    record: Any  # moto's container of the task: lastStatus, exitCode, healthStatus, reason
    local: LocalContainer | None = None
    proc: Proc | None = None
    exit_code: int | None = None
    log_stream: tuple[str, str] | None = None  # (group, stream) of its awslogs driver
    shipped: int = 0  # bytes of its log file sent to CloudWatch Logs
    usage: Usage = field(default_factory=Usage)
    limits: dict[str, int] = field(default_factory=dict)  # memory, memoryReservation, cpu of its definition
    cgroup: cgroups.Cgroup | None = None

    @property
    def name(self) -> str:
        return self.spec.name


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
        self.ports: dict[int, int] = {}  # the task's: every container listens on the same local ports
        self.containers: list[ContainerRun] = []
        self.images: dict[str, registry.RunnableImage] = {}  # container name -> what its image runs here
        self.mounts: dict[str, dict[str, Path]] = {}  # container name -> its EFS mounts (container path -> host dir)
        self.processes: Processes | None = None
        self.cgroup: cgroups.Cgroup | None = None  # the task's CPU and memory limits; its containers' below
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
        self.first_exit: ContainerRun | None = None  # the essential container whose exit stopped the task
        self.environment_keys: list[str] = []  # what the essential container really got (/proc/<pid>/environ)
        self.stop_timeout = 30  # the longest of its containers'
        self._wake = threading.Event()
        self._health_stop = threading.Event()
        self._logs: Any = None

    @property
    def essentials(self) -> list[ContainerRun]:
        """The containers whose exit stops the task, and whose health makes the task's."""
        return [c for c in self.containers if c.spec.essential]

    @property
    def exit_code(self) -> int | None:
        """The exit code of the essential container that stopped the task (the first essential one otherwise)."""
        first = self.first_exit or next(iter(self.essentials), None)
        return first.exit_code if first is not None else None

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
        definitions = [self.with_overrides(d) for d in self.definition.container_definitions]
        self.check_runnable(definitions)
        self.pull_images(definitions)
        try:
            self.mounts = efs.task_mounts(self, definitions)
        except efs.MountRefused as exc:
            raise TaskFailed("TaskFailedToStart", str(exc)) from exc
        resolver = SecretResolver(
            self.role_client("secretsmanager", getattr(self.definition, "execution_role_arn", None), "secrets")
        )
        records = {record.name: record for record in self.task.containers}
        self.containers = [
            ContainerRun(self.resolve(d, resolver), records[d["name"]], limits=container_limits(d)) for d in definitions
        ]
        self.stop_timeout = max(c.spec.stop_timeout for c in self.containers)
        for c in self.containers:
            self.open_log_stream(c)
        self.ports = task_ports([c.spec for c in self.containers], {n: i.program for n, i in self.images.items()})
        endpoints = self.endpoints()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.processes = Processes(self.directory)
        self.cgroup = self.agent.limits.task(
            self.task.id, int(getattr(self.definition, "cpu", 0) or 0), int(getattr(self.definition, "memory", 0) or 0)
        )
        for c in self.containers:
            self.start_container(c, endpoints)
        ecs_state.set_status(self.task, "RUNNING")
        self.running_since = time.time()
        self.ready = self.became_ready = all(c.spec.health_check is None for c in self.essentials)
        for c in self.containers:
            if c.spec.health_check is not None:
                name = f"health-{self.task.id[:8]}-{c.name}"
                threading.Thread(target=self.health_loop, args=(c,), name=name, daemon=True).start()

    def with_overrides(self, definition: dict[str, Any]) -> dict[str, Any]:
        """A container definition with RunTask's containerOverrides for it: the command replaced; the environment
        added to the definition's, a variable of the same name replaced (ECS's ContainerOverride)."""
        spec = {**definition}
        override = next(
            (o for o in self.task.overrides.get("containerOverrides", []) if o.get("name") == spec["name"]), {}
        )
        if override.get("command") is not None:
            spec["command"] = override["command"]
        if override.get("environment") is not None:
            merged = {e["name"]: e for e in spec.get("environment") or []}
            spec["environment"] = list({**merged, **{e["name"]: e for e in override["environment"]}}.values())
        return spec

    def check_runnable(self, definitions: list[dict[str, Any]]) -> None:
        """At least one essential container, as ECS requires (RegisterTaskDefinition refuses none)."""
        if not any(d.get("essential", True) for d in definitions):
            raise TaskFailed("TaskFailedToStart", f"{self.family} has no essential container")

    def pull_images(self, definitions: list[dict[str, Any]]) -> None:
        """Every container's image, pulled as Fargate pulls it (ECR with the execution role), before any starts."""
        puller = registry.Puller(self.execution_keys, self.agent.settings.endpoint_url)
        for definition in definitions:
            try:
                self.images[definition["name"]] = puller.resolve(definition.get("image", ""))
            except registry.CannotPull as exc:
                raise TaskFailed("TaskFailedToStart", str(exc)) from exc

    def execution_keys(self) -> dict[str, str]:
        """The execution role's credentials (PermissionError when there is none or it cannot be assumed)."""
        role_arn = getattr(self.definition, "execution_role_arn", None)
        if not role_arn:
            raise PermissionError("the task definition has an ECR image but no execution role")
        try:
            return credentials.role_credentials(role_arn.rsplit("/", 1)[-1], self.region)
        except Exception as exc:
            raise PermissionError(f"the execution role {role_arn} cannot be assumed: {exc}") from exc

    def resolve(self, definition: dict[str, Any], resolver: SecretResolver) -> Container:
        """The container as ECS starts it, its secrets read with the execution role."""
        try:
            return container(self.service_name, self.family, self.definition.revision, definition, resolver)
        except Exception as exc:
            raise TaskFailed(
                "TaskFailedToStart",
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                f"retrieval failed: unable to retrieve secret from asm: {exc}",
            ) from exc

    def endpoints(self) -> LocalEndpoints:
        """Where the task listens and finds the stack; one for all its containers, which share the task's network."""
        return LocalEndpoints(
            ports=self.ports,
            hosts=self.agent.hosts(self.account, self.region),
            aws_endpoint=self.agent.settings.endpoint_url,
            region=self.region,
            extra_rabbitmq={"ERL_EPMD_PORT": free_port(), "RABBITMQ_DIST_PORT": free_port()}
            if any(image.program == "rabbitmq" for image in self.images.values())
            else {},
        )

    def start_container(self, c: ContainerRun, endpoints: LocalEndpoints) -> None:
        """The container's process, started with its localized environment; ECS reports the container RUNNING."""
        assert self.processes is not None
        c.local = localize(c.spec, endpoints, self.platform(c.spec), self.images[c.name].program)
        argv = self.argv(c.spec) if self.images[c.name].runs_on(self.cpu_architecture) else EXEC_FORMAT_ERROR
        cwd = Path(c.local.env.get("AIRFLOW_HOME") or c.local.env["HOME"])
        if self.cgroup is not None:
            c.cgroup = self.cgroup.child(c.name)
            c.cgroup.limit(
                memory_mib=c.limits.get("memory", 0),
                reservation_mib=c.limits.get("memoryReservation", 0),
                shares=c.limits.get("cpu", 0),
            )
        try:
            c.proc = self.processes.start(
                c.name,
                argv,
                c.local.env,
                cwd,
                stop_timeout=c.spec.stop_timeout,
                signal_group=self.signals_group(c.spec),
                cgroup=c.cgroup,
            )
        except OSError as exc:
            raise TaskFailed(
                "TaskFailedToStart",
                f"CannotStartContainerError: Error response from daemon: failed to create task for container: "
                f'exec: "{argv[0]}": {exc.strerror}',
            ) from exc
        if c.spec.essential and not self.environment_keys:
            self.environment_keys = sorted(read_environ(c.proc.pid))
        c.record.last_status = "RUNNING"

    @property
    def task_role_arn(self) -> str | None:
        """RunTask's overrides.taskRoleArn, else the definition's (the AwsEcsExecutor's per-DAG roles)."""
        return self.task.overrides.get("taskRoleArn") or getattr(self.definition, "task_role_arn", None)

    @property
    def cpu_architecture(self) -> str:
        """The task definition's runtimePlatform cpuArchitecture (ECS's default: X86_64)."""
        return (getattr(self.definition, "runtime_platform", None) or {}).get("cpuArchitecture") or "X86_64"

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
        """What the image and Fargate give the container; PATH starts with the image's environment (registry.py)."""
        image = self.images[spec.name]
        rabbit = image.program == "rabbitmq"
        data = self.mounts.get(spec.name, {}).get(servers.RABBITMQ_DATA_DIR)
        extra = servers.prepare_rabbitmq_files(self.directory, data) if rabbit else {}
        extra["ECS_AGENT_TASK_DIR"] = str(self.directory)
        role = self.task_role_arn
        if role:
            extra["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = self.agent.settings.credentials_url + role.rsplit("/", 1)[-1]
            extra["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = self.agent.settings.credentials_token
        airflow = image.program == "airflow"
        return platform_env(spec.name, self.directory, [str(image.bin_dir)], self.region, airflow=airflow, extra=extra)

    def signals_group(self, spec: Container) -> bool:
        """apache/airflow runs under dumb-init, which forwards ECS's SIGTERM to the whole process group,
        or with DUMB_INIT_SETSID=0 to its child alone (Celery's warm shutdown: running tasks finish)."""
        airflow = self.images[spec.name].program == "airflow"
        return not (airflow and not spec.entry_point and spec.environment.get("DUMB_INIT_SETSID") == "0")

    def argv(self, spec: Container) -> list[str]:
        """What the image runs: its entrypoint's rule, or the task definition's entryPoint + command."""
        if spec.entry_point:
            return [*spec.entry_point, *spec.command]
        if self.images[spec.name].program == "airflow":
            # apache/airflow's /entrypoint: `bash`, `python` and `airflow` run as they are, anything else via airflow
            if spec.command and spec.command[0] in ("bash", "python", "airflow"):
                return list(spec.command)
            return ["airflow", *spec.command]
        # rabbitmq: the image's CMD, with epmd beside it in the container
        command = spec.command or ["rabbitmq-server"]
        return ["sh", "-c", 'epmd -port "$ERL_EPMD_PORT" & exec "$@"', "sh", *command]

    # -- logs ---------------------------------------------------------------------------------------

    def open_log_stream(self, c: ContainerRun) -> None:
        """The awslogs driver: the container's own stream <prefix>/<container>/<task id>, created with the
        execution role."""
        group, prefix = c.spec.log_options.get("awslogs-group"), c.spec.log_options.get("awslogs-stream-prefix")
        if not group:
            return
        stream = f"{prefix}/{c.name}/{self.task.id}" if prefix else self.task.id
        if self._logs is None:
            self._logs = self.role_client("logs", getattr(self.definition, "execution_role_arn", None), "awslogs")
        try:
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except Exception as exc:
            raise TaskFailed(
                "TaskFailedToStart",
                f"CannotStartContainerError: failed to initialize logging driver: failed to create "
                f"Cloudwatch log stream: {exc}",
            ) from exc
        c.log_stream = (group, stream)

    def ship_logs(self) -> None:
        for c in self.containers:
            self.ship_container_logs(c)

    def ship_container_logs(self, c: ContainerRun) -> None:
        """The new complete lines of the container's output, to its own stream."""
        if c.log_stream is None or c.proc is None:
            return
        try:
            with open(c.proc.log_path, "rb") as f:
                f.seek(c.shipped)
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
                    logGroupName=c.log_stream[0],
                    logStreamName=c.log_stream[1],
                    logEvents=events[start : start + 5000],
                )
        except Exception as exc:  # the awslogs driver keeps the container running and drops what it cannot send
            log.warning("task %s: awslogs %s: %s", self.task.id, c.name, exc)
        c.shipped += len(lines) + 1

    # -- running ------------------------------------------------------------------------------------

    def watch(self) -> None:
        """Until an essential container exits (ECS then stops the others) or the task is told to stop."""
        essentials = self.essentials
        assert all(c.proc is not None for c in essentials)
        last_ship = last_usage = time.monotonic()
        self.sample_usage()
        while all(c.proc.alive() for c in essentials) and not self.stop_requested:
            self._wake.wait(0.5)
            self._wake.clear()
            self.record_exits()
            if time.monotonic() - last_ship > LOG_SHIP_SECONDS:
                self.ship_logs()
                last_ship = time.monotonic()
            if time.monotonic() - last_usage > USAGE_SECONDS:
                self.sample_usage()
                last_usage = time.monotonic()
            if self.task.desired_status == "STOPPED":
                self.request_stop(self.task.stopped_reason or "Task stopped by the user", "user")
        self.first_exit = next((c for c in essentials if not c.proc.alive()), None)
        if self.stop_requested:
            self.drain()
        self.stop_containers()
        self.ship_logs()
        if self.stop_requested:
            self.finish(self.task.stop_code or "UserInitiated", self.task.stopped_reason or "Task stopped")
        else:
            self.finish("EssentialContainerExited", "Essential container in task exited")

    def drain(self) -> None:
        """ECS takes a task it stops out of its target groups before it signals the containers, and waits the
        groups' deregistration delay meanwhile: the load balancer sends it no new request. The agent
        deregisters a stopping task (reconcile_registrations); the delay is waited here up to DRAIN_SECONDS
        (requests to the local runtime's tasks last milliseconds, not the minutes the delay allows for)."""
        if "target" not in self.registered:
            return
        groups = [where for kind, where, _ in list(self.registrations) if kind == "target"]
        delay = max((self.agent.deregistration_delay(arn) for arn in groups), default=0)
        ecs_state.set_status(self.task, "DEACTIVATING")
        deadline = time.monotonic() + 10
        while "target" in self.registered and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(min(delay, DRAIN_SECONDS))

    def sample_usage(self) -> None:
        """Each running container's memory and CPU (its process group), for the task's usage report."""
        running = {c.proc.pid: c for c in self.containers if c.proc is not None and c.proc.alive()}
        at = time.monotonic()
        for pid, (memory, cpu) in groups_usage(set(running)).items():
            running[pid].usage.sample(memory, cpu, at)

    def usage(self) -> dict[str, dict[str, float]]:
        """Each container's high-water marks (runtime.json, `make bench`)."""
        return {c.name: c.usage.report() for c in self.containers}

    def record_exits(self) -> None:
        """A container whose process ended is STOPPED with its exit code (128 + signal when killed); a
        non-essential one stops alone, as on ECS: the task and its other containers keep running."""
        for c in self.containers:
            if c.proc is not None and c.record.last_status == "RUNNING" and not c.proc.alive():
                code = c.proc.popen.wait()
                self.ship_container_logs(c)  # its last lines are in its stream once it is reported STOPPED
                c.exit_code = 128 - code if code < 0 else code
                c.record.last_status = "STOPPED"
                c.record.exitCode = c.exit_code
                if c.cgroup is not None and c.cgroup.oom_kills():  # Docker's OOMKilled, as ECS reports it
                    c.record.reason = cgroups.OOM_REASON

    def stop_containers(self) -> None:
        """The essential container exited or the task is stopping: ECS stops every container still running,
        all at once (no dependsOn order here), each with SIGTERM and SIGKILL after its own stopTimeout."""
        running = [c.proc for c in self.containers if c.proc is not None and c.proc.alive()]
        if running and self.processes is not None:
            ecs_state.set_status(self.task, "DEACTIVATING")
            self.ready = False
            self.processes.stop_together(running)
        self.record_exits()

    def health_loop(self, c: ContainerRun) -> None:
        """The container's health check as Docker runs it; the essential container's health is the task's."""
        assert c.local is not None and c.proc is not None
        check = c.spec.health_check
        assert check is not None and c.local.health_check is not None
        started = time.monotonic()
        failures = 0
        health = "UNKNOWN"
        # Docker's start interval: a first check soon, then as often as a check's own cost allows until
        # the first success (an Airflow CLI check costs seconds of CPU); the definition's interval after.
        if self._health_stop.wait(STARTUP_CHECK_SECONDS):
            return
        while c.proc.alive() and not self.stop_requested:
            began = time.monotonic()
            code = run_check(c.local.health_check, c.local.env, check.timeout, c.cgroup)
            cost = time.monotonic() - began
            if code == 0:
                failures, health = 0, "HEALTHY"
            elif time.monotonic() - started >= check.start_period:
                failures += 1
                if failures >= check.retries:
                    health = "UNHEALTHY"
            c.record.health_status = health
            if c.spec.essential and self.task_health():
                return
            pause = min(check.interval, max(STARTUP_CHECK_SECONDS, cost)) if health == "UNKNOWN" else check.interval
            if self._health_stop.wait(pause):
                return

    def task_health(self) -> bool:
        """The task's health from its essential containers with a health check, as ECS makes it: UNHEALTHY
        when one is, HEALTHY when all are, UNKNOWN otherwise. An UNHEALTHY service task is stopped (True
        then). A non-essential container's health shows on that container only."""
        states = [c.record.health_status for c in self.essentials if c.spec.health_check is not None]
        if "UNHEALTHY" in states:
            health = "UNHEALTHY"
        else:
            health = "HEALTHY" if all(s == "HEALTHY" for s in states) else "UNKNOWN"
        self.task.health_status = health
        self.ready = health == "HEALTHY"
        self.became_ready = self.became_ready or self.ready
        if health == "UNHEALTHY" and self.service_arn:
            self.request_stop("Task failed container health checks", "health")
            return True
        return False

    def finish(self, stop_code: str, reason: str) -> None:
        self.ready = False
        started = [c.proc for c in self.containers if c.proc is not None]
        for proc in started:  # running only when the launch failed after it; the group's leftovers in any case
            with contextlib.suppress(Exception):
                proc.stop(1)
        self.record_exits()
        for record in self.task.containers:
            if record.last_status != "STOPPED":  # never started
                record.last_status = "STOPPED"
                record.reason = reason
        self.task.stop_code = self.task.stop_code if self.stop_requested and self.task.stop_code else stop_code
        self.task.stopped_reason = self.task.stopped_reason if self.stop_requested else reason
        ecs_state.set_status(self.task, "STOPPED")
        self.stopped = True
        self.stopped_time = time.time()
        self.agent.task_stopped(self)
        if started:
            kill_leftovers(str(self.directory), grace=1)  # children that left the process group
        if self.cgroup is not None:
            self.cgroup.remove()


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


def container_limits(definition: dict[str, Any]) -> dict[str, int]:
    """The container definition's memory (hard), memoryReservation (soft) and cpu units, those it sets."""
    return {key: int(definition[key]) for key in ("memory", "memoryReservation", "cpu") if definition.get(key)}


def run_check(command: str, env: dict[str, str], timeout: float, cgroup: cgroups.Cgroup | None = None) -> int:
    """`sh -c command` in its own process group, killed whole on timeout (as Docker kills the exec); -1 then.
    Like Docker's exec it runs in the container's cgroup: its memory and CPU count against the container's."""
    argv = ["sh", "-c", command]
    proc = subprocess.Popen(
        cgroup.wrap(argv, env) if cgroup is not None else argv,
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
