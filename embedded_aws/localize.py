"""Turn a container's declared environment into a local process environment, recording every change.

A container keeps exactly its task definition's environment and secrets. The only changes are:

- host: a Cloud Map name, the RDS endpoint or the ALB name inside a URL becomes 127.0.0.1 and the
  local port that serves it (a listener that forwards to the instances registered at connect time);
- port: a port the container listens on (or that others reach it on) is a free local port, set with
  the component's own setting (AIRFLOW__API__PORT, RABBITMQ_NODE_PORT, ...), also inside the
  health check command;
- bind: listeners bind 127.0.0.1 instead of 0.0.0.0 where the component has a setting for it;
- aws-endpoint: AWS calls go to the emulator (AWS_ENDPOINT_URL). Credentials are the task role's,
  from the container credentials endpoint, as on ECS (platform keys, not a rewrite).

Besides those, a process gets only what the image and Fargate give every container (PATH, HOME,
AIRFLOW_HOME, LANG, HOSTNAME, AWS_REGION, ...): see PLATFORM_KEYS. `Rewrite` records each change.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from embedded_aws.forwarder import free_port
from embedded_aws.task_definitions import Container

LOCALHOST = "127.0.0.1"

# What the image or the Fargate platform sets in every container, never taken from a task definition.
PLATFORM_KEYS = frozenset(
    {
        "PATH",  # the image's PATH (here: the bin dir of the image's environment first: registry.py)
        "HOME",  # the image user's home (here: a directory per process)
        "AIRFLOW_HOME",  # the image's /opt/airflow (here: a directory per process)
        "TMPDIR",  # each container has its own /tmp (here: a directory per process)
        "LANG",
        "LC_ALL",
        "HOSTNAME",  # the task's host name on Fargate (here: this machine's)
        "AWS_REGION",  # set by Fargate
        "AWS_DEFAULT_REGION",  # set by Fargate
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",  # the task role's credentials (ECS sets the relative URI)
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "ECS_AGENT_TASK_DIR",  # marks every process of a task (the agent finds strays by it)
        # RabbitMQ's data and config locations (the image's volumes and files)
        "RABBITMQ_MNESIA_BASE",
        "RABBITMQ_LOG_BASE",
        "RABBITMQ_CONFIG_FILE",
        "RABBITMQ_ENABLED_PLUGINS_FILE",
        "RABBITMQ_PID_FILE",
    }
)

# Airflow settings naming a port a component listens on (or reaches another one on): (key, default).
AIRFLOW_PORT_SETTINGS = (
    ("AIRFLOW__API__PORT", 8080),
    ("AIRFLOW__CELERY__FLOWER_PORT", 5555),
    ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", 8793),
    ("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", 8794),
    ("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", 8974),
    ("AIRFLOW__METRICS__STATSD_PORT", 8125),  # UDP, where a StatsD sidecar of the same task listens
)
# Airflow settings naming the address a listener binds (default 0.0.0.0).
AIRFLOW_BIND_SETTINGS = (
    "AIRFLOW__API__HOST",
    "AIRFLOW__CELERY__FLOWER_HOST",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST",
)
AWS_KEYS = ("AWS_ENDPOINT_URL",)
HEALTH_CHECK = "healthCheck"  # the Rewrite key of a change to the health check command
DEFAULT_PORTS = {"http": 80, "https": 443, "amqp": 5672, "amqps": 5671, "postgresql": 5432, "postgres": 5432}
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


@dataclass(frozen=True)
class Rewrite:
    container: str
    key: str  # environment variable, or HEALTH_CHECK
    kind: str  # host | port | bind | aws-endpoint
    before: str | None  # None: the key was added
    after: str


@dataclass
class LocalEndpoints:
    """Where one task's endpoints are on this machine, and where it finds the others."""

    ports: dict[int, int]  # a port the task listens on -> the local port it listens on instead
    hosts: dict[tuple[str, int], tuple[str, int]]  # a (host, port) of the stack -> local (host, port)
    aws_endpoint: str
    region: str
    extra_rabbitmq: dict[str, int] = field(default_factory=dict)  # epmd and distribution ports


def task_ports(containers: list[Container], programs: dict[str, str] | None = None) -> dict[int, int]:
    """A free local port for every port a container of the task listens on (its port mappings and Airflow's).
    `programs`: container name -> what its image runs (registry.RunnableImage.program), else read from the image.

    The containers of a task share its network namespace (awsvpc), so the map is the task's: a port one
    container listens on is the same local port for every other container of the task.
    """
    ports: set[int] = set()
    for container in containers:
        ports |= set(container.ports)
        program = (programs or {}).get(container.name) or program_of(container.image)
        if program == "airflow":
            ports |= {int(container.environment.get(key, default)) for key, default in AIRFLOW_PORT_SETTINGS}
        if program == "rabbitmq":  # the AMQP port it listens on, mapped or not
            ports.add(int(container.environment.get("RABBITMQ_NODE_PORT", 5672)))
    return {port: free_port() for port in sorted(ports)}


def rewrite_urls(value: str, hosts: dict[tuple[str, int], tuple[str, int]]) -> str:
    """Point every URL in `value` whose host and port are in `hosts` at the local host and port."""

    def replace(match: re.Match) -> str:
        url = match.group(0)
        parts = urlsplit(url)
        try:
            port = parts.port or DEFAULT_PORTS.get(parts.scheme.split("+")[-1])
        except ValueError:
            return url
        target = hosts.get((parts.hostname or "", port or 0))
        if not target:
            return url
        userinfo, _, _ = parts.netloc.rpartition("@")
        netloc = (userinfo + "@" if userinfo else "") + f"{target[0]}:{target[1]}"
        return parts._replace(netloc=netloc).geturl()

    return URL.sub(replace, value)


def is_airflow(image: str) -> bool:
    return image.split(":", 1)[0].endswith("apache/airflow")


def is_rabbitmq(image: str) -> bool:
    return image.split(":", 1)[0].rsplit("/", maxsplit=1)[-1] == "rabbitmq"


def program_of(image: str) -> str | None:
    """What a public image runs, by its name (an ECR image's program is known once it is pulled: registry.py)."""
    return "airflow" if is_airflow(image) else "rabbitmq" if is_rabbitmq(image) else None


@dataclass
class LocalContainer:
    """A container made runnable here: its process environment and health check, and what changed."""

    container: Container
    env: dict[str, str]
    platform: dict[str, str]
    health_check: str | None
    rewrites: list[Rewrite]

    @property
    def name(self) -> str:
        return self.container.name


def localize(
    container: Container, endpoints: LocalEndpoints, platform: dict[str, str], program: str | None = None
) -> LocalContainer:
    """The process environment of `container`: declared env + secrets, the rewrites, the platform keys.
    `program` is what its image runs (airflow | rabbitmq), read from the image name when not given."""
    name = container.name
    program = program or program_of(container.image)
    env = dict(container.declared_env)
    rewrites: list[Rewrite] = []

    def put(key: str, value: str, kind: str) -> None:
        before = env.get(key)
        if before != value:
            rewrites.append(Rewrite(name, key, kind, before, value))
            env[key] = value

    for key, value in sorted(container.declared_env.items()):
        put(key, rewrite_urls(value, endpoints.hosts), "host")

    health = container.health_check.command if container.health_check else None
    if program == "airflow":
        for key, default in AIRFLOW_PORT_SETTINGS:
            stack_port = int(env.get(key, default))
            put(key, str(endpoints.ports.get(stack_port, stack_port)), "port")
        for key in AIRFLOW_BIND_SETTINGS:
            put(key, LOCALHOST, "bind")
    if program == "rabbitmq":
        stack_port = int(env.get("RABBITMQ_NODE_PORT", 5672))
        put("RABBITMQ_NODE_PORT", str(endpoints.ports[stack_port]), "port")
        put("RABBITMQ_NODE_IP_ADDRESS", LOCALHOST, "bind")
        for key, port in sorted(endpoints.extra_rabbitmq.items()):
            put(key, str(port), "port")
        put("ERL_EPMD_ADDRESS", LOCALHOST, "bind")
        put("RABBITMQ_SERVER_START_ARGS", "-kernel inet_dist_use_interface {127,0,0,1}", "bind")
        # A node name the task definition sets is kept (its data directory is mnesia/<node name>), on this host.
        given = env.get("RABBITMQ_NODENAME", "").partition("@")[0]
        put("RABBITMQ_NODENAME", f"{given or 'rabbit-' + str(endpoints.ports[stack_port])}@localhost", "host")
    if health:
        local = health
        for stack_port, local_port in endpoints.ports.items():
            local = re.sub(rf"(//(?:localhost|127\.0\.0\.1)):{stack_port}\b", rf"\g<1>:{local_port}", local)
        if local != health:
            rewrites.append(Rewrite(name, HEALTH_CHECK, "port", health, local))
            health = local

    if program == "airflow":
        put("AWS_ENDPOINT_URL", endpoints.aws_endpoint, "aws-endpoint")

    overlap = sorted(set(platform) & set(container.declared_env))
    if overlap:
        raise ValueError(f"{name}: the task definition sets platform keys {overlap}")
    return LocalContainer(container, {**env, **platform}, dict(platform), health, rewrites)


def platform_env(
    name: str, root: Path, bin_dirs: list[str], region: str, *, airflow: bool, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """What the image and Fargate give a container: a private HOME, AIRFLOW_HOME and TMPDIR under `root`."""
    home = root / name
    for sub in ("home", "airflow", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": ":".join([*bin_dirs, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
        "HOME": str(home / "home"),
        "TMPDIR": str(home / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOSTNAME": socket.gethostname(),
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    if airflow:
        env["AIRFLOW_HOME"] = str(home / "airflow")
    env.update(extra or {})
    unknown = sorted(set(env) - PLATFORM_KEYS)
    if unknown:
        raise ValueError(f"not platform keys: {unknown}")
    return env
