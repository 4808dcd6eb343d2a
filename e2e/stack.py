"""What was deployed, read back through the AWS API only: services, task definitions, secrets, endpoints.

Nothing here reads the project's Ansible variables: a container is what ECS would run, with its
`secrets` resolved the way the ECS agent resolves them (Secrets Manager ARN, optional JSON key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MIGRATE_FAMILY_SUFFIX = "-migrate"


@dataclass
class HealthCheck:
    command: str  # a CMD-SHELL command (run with `sh -c`)
    interval: int
    timeout: int
    retries: int
    start_period: int


@dataclass
class Container:
    """One container of a task definition, as ECS would start it."""

    service: str  # ECS service name, or the task definition family of a one-off task
    family: str
    revision: int
    name: str
    image: str
    command: list[str]
    environment: dict[str, str]
    secrets: dict[str, str]  # name -> valueFrom (ARN[:json-key:version-stage:version-id])
    resolved_secrets: dict[str, str] = field(default_factory=dict, repr=False)
    health_check: HealthCheck | None = None
    ports: list[int] = field(default_factory=list)
    stop_timeout: int = 30
    log_group: str = ""

    @property
    def task_definition(self) -> str:
        return f"{self.family}:{self.revision}"

    @property
    def declared_env(self) -> dict[str, str]:
        """The environment ECS gives the container: environment plus resolved secrets."""
        return {**self.environment, **self.resolved_secrets}


@dataclass
class Stack:
    """Everything the runner needs from the account, all read through the AWS API."""

    cluster: str
    containers: dict[str, Container]  # by container name; "migrate" is the one-off task
    namespace: str  # Cloud Map private DNS namespace, e.g. airflow.internal
    discovery: dict[str, str]  # container name -> Cloud Map host name (service.namespace)
    database: tuple[str, int]  # RDS endpoint (address, port)
    load_balancer: str  # ALB DNS name, "" when there is none
    load_balancer_port: int
    secret_values: dict[str, str] = field(default_factory=dict, repr=False)  # secret name -> SecretString

    @property
    def migrate(self) -> Container:
        return self.containers["migrate"]

    def secret_json(self, name: str) -> dict[str, Any]:
        return json.loads(self.secret_values[name])


def parse_value_from(value_from: str) -> tuple[str, str, str, str]:
    """`arn:aws:secretsmanager:<region>:<account>:secret:<name>[:json-key:version-stage:version-id]`."""
    parts = value_from.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager":
        raise ValueError(f"only Secrets Manager ARNs are supported as valueFrom, got {value_from!r}")
    arn = ":".join(parts[:7])
    json_key, stage, version_id = [*parts[7:], "", "", ""][:3]
    return arn, json_key, stage, version_id


class SecretResolver:
    """Resolve ECS `secrets` entries from Secrets Manager, caching each secret version once."""

    def __init__(self, client) -> None:
        self.client = client
        self._cache: dict[tuple[str, str, str], dict] = {}

    def secret(self, arn: str, stage: str = "", version_id: str = "") -> dict:
        key = (arn, stage, version_id)
        if key not in self._cache:
            kwargs: dict[str, str] = {"SecretId": arn}
            if stage:
                kwargs["VersionStage"] = stage
            if version_id:
                kwargs["VersionId"] = version_id
            self._cache[key] = self.client.get_secret_value(**kwargs)
        return self._cache[key]

    def resolve(self, value_from: str) -> str:
        arn, json_key, stage, version_id = parse_value_from(value_from)
        value = self.secret(arn, stage, version_id)["SecretString"]
        if not json_key:
            return value
        data = json.loads(value)
        if json_key not in data:
            raise KeyError(f"secret {arn} has no JSON key {json_key!r}")
        return str(data[json_key])


def _container(service: str, task_definition: dict, resolver: SecretResolver) -> Container:
    definitions = task_definition["containerDefinitions"]
    if len(definitions) != 1:
        raise ValueError(f"{task_definition['family']}: expected one container, found {len(definitions)}")
    c = definitions[0]
    check = c.get("healthCheck")
    health = None
    if check:
        kind, *rest = check["command"]
        if kind == "CMD-SHELL":
            command = rest[0]
        elif kind == "CMD":
            command = " ".join(json.dumps(part) for part in rest)
        else:
            raise ValueError(f"{c['name']}: unsupported health check form {kind!r}")
        health = HealthCheck(
            command=command,
            interval=int(check.get("interval", 30)),
            timeout=int(check.get("timeout", 5)),
            retries=int(check.get("retries", 3)),
            start_period=int(check.get("startPeriod", 0)),
        )
    secrets = {s["name"]: s["valueFrom"] for s in c.get("secrets", [])}
    return Container(
        service=service,
        family=task_definition["family"],
        revision=int(task_definition["revision"]),
        name=c["name"],
        image=c["image"],
        command=list(c.get("command", [])),
        environment={e["name"]: e["value"] for e in c.get("environment", [])},
        secrets=secrets,
        resolved_secrets={name: resolver.resolve(value_from) for name, value_from in secrets.items()},
        health_check=health,
        ports=[int(p["containerPort"]) for p in c.get("portMappings", [])],
        stop_timeout=int(c.get("stopTimeout", 30)),
        log_group=c.get("logConfiguration", {}).get("options", {}).get("awslogs-group", ""),
    )


def _services(ecs, cluster: str) -> list[dict]:
    arns: list[str] = []
    for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
        arns += page["serviceArns"]
    services = []
    for start in range(0, len(arns), 10):
        services += ecs.describe_services(cluster=cluster, services=arns[start : start + 10])["services"]
    return [s for s in services if s.get("status") == "ACTIVE"]


def read_stack(session_client, cluster: str = "airflow") -> Stack:
    """Read the deployed stack; `session_client(service)` returns a boto3 client for the account."""
    ecs = session_client("ecs")
    secretsmanager = session_client("secretsmanager")
    resolver = SecretResolver(secretsmanager)

    containers: dict[str, Container] = {}
    registries: dict[str, str] = {}  # Cloud Map service id -> container name
    for service in _services(ecs, cluster):
        task_definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        container = _container(service["serviceName"], task_definition, resolver)
        containers[container.name] = container
        for registry in service.get("serviceRegistries", []):
            registries[registry["registryArn"].rsplit("/", 1)[-1]] = container.name
    if not containers:
        raise RuntimeError(f"no ACTIVE ECS services in cluster {cluster!r}")

    migrate_family = cluster + MIGRATE_FAMILY_SUFFIX
    migrate = ecs.describe_task_definition(taskDefinition=migrate_family)["taskDefinition"]
    if migrate.get("status") != "ACTIVE":
        raise RuntimeError(f"{migrate_family}: latest revision is {migrate.get('status')}")
    containers["migrate"] = _container(migrate_family, migrate, resolver)

    # Cloud Map: which container answers to which DNS name.
    cloudmap = session_client("servicediscovery")
    namespaces = {n["Id"]: n["Name"] for n in cloudmap.list_namespaces()["Namespaces"]}
    discovery: dict[str, str] = {}
    namespace = ""
    for summary in cloudmap.list_services()["Services"]:
        if summary["Id"] in registries:
            detail = cloudmap.get_service(Id=summary["Id"])["Service"]
            namespace = namespaces.get(detail["NamespaceId"], namespace)
            discovery[registries[summary["Id"]]] = f"{detail['Name']}.{namespaces[detail['NamespaceId']]}"

    # The metadata database: the RDS instance whose endpoint the connection string names.
    rds = session_client("rds")
    instances = rds.describe_db_instances()["DBInstances"]
    conn = containers["migrate"].declared_env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    database = ("", 0)
    for instance in instances:
        endpoint = instance.get("Endpoint", {})
        if endpoint.get("Address") and endpoint["Address"] in conn:
            database = (endpoint["Address"], int(endpoint.get("Port", 5432)))
    if not database[0]:
        raise RuntimeError("no RDS instance endpoint appears in AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")

    # The ALB in front of the api-server, when there is one.
    load_balancer, lb_port = "", 0
    elbv2 = session_client("elbv2")
    api = containers.get("api-server")
    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        if api and listeners:
            load_balancer, lb_port = lb["DNSName"], int(listeners[0]["Port"])

    secret_values = {}
    for page in secretsmanager.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            secret_values[secret["Name"]] = resolver.secret(secret["ARN"])["SecretString"]

    return Stack(
        cluster=cluster,
        containers=containers,
        namespace=namespace,
        discovery=discovery,
        database=database,
        load_balancer=load_balancer,
        load_balancer_port=lb_port,
        secret_values=secret_values,
    )
