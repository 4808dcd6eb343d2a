"""A container of a task definition as ECS starts it: command, environment, secrets, health check.

Secrets are resolved the way the ECS agent resolves them: Secrets Manager ARN with an optional JSON
key, version stage and version id, read with the execution role's credentials (the caller's client).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


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
    log_options: dict[str, str] = field(default_factory=dict)  # awslogs-group, -region, -stream-prefix
    essential: bool = True
    entry_point: list[str] = field(default_factory=list)

    @property
    def task_definition(self) -> str:
        return f"{self.family}:{self.revision}"

    @property
    def declared_env(self) -> dict[str, str]:
        """The environment ECS gives the container: environment plus resolved secrets."""
        return {**self.environment, **self.resolved_secrets}


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


def container(service: str, family: str, revision: int, c: dict[str, Any], resolver: SecretResolver) -> Container:
    """`c` is one entry of containerDefinitions; raises when a secret does not resolve."""
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
        family=family,
        revision=int(revision),
        name=c["name"],
        image=c["image"],
        command=list(c.get("command", [])),
        environment={e["name"]: e["value"] for e in c.get("environment", [])},
        secrets=secrets,
        resolved_secrets={name: resolver.resolve(value_from) for name, value_from in secrets.items()},
        health_check=health,
        ports=[int(p["containerPort"]) for p in c.get("portMappings", [])],
        stop_timeout=int(c.get("stopTimeout", 30)),
        log_options=dict(c.get("logConfiguration", {}).get("options", {})),
        essential=bool(c.get("essential", True)),
        entry_point=list(c.get("entryPoint", [])),
    )
