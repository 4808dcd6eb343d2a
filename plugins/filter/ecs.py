"""Build ECS API structures from the ecs_service role's service specs (see roles/ecs_service/README.md)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

# community.aws.ecs_taskdefinition reuses an existing revision when it "matches", and its matcher treats two
# lists of the same length as equal whatever they hold: a changed environment or secret value would never
# register a new revision. This label is a digest of the whole container definition, so it differs then.
DIGEST_LABEL = "airflow-ecs.definition-digest"

DOCUMENTATION = """
name: ecs
short_description: ECS helpers for airflow-ecs
description: ecs_service_specs, ecs_container_definition, ecs_task_containers and ecs_scaled_count; see each docstring.
"""


def ecs_service_specs(services: list[dict], defaults: dict, common: dict | None = None) -> list[dict]:
    """Each service spec merged over `common` and then the role defaults (shallow: a field given replaces it)."""
    return [{**defaults, **(common or {}), **service} for service in services]


def _health_check(check: dict | None) -> dict | None:
    if not check:
        return None
    return {
        "command": ["CMD-SHELL", check["command"]] if isinstance(check["command"], str) else check["command"],
        "interval": int(check.get("interval", 30)),
        "timeout": int(check.get("timeout", 10)),
        "retries": int(check.get("retries", 3)),
        "startPeriod": int(check.get("start_period", 60)),
    }


def ecs_container_definition(
    spec: dict, stack_name: str, region: str, *, stream_prefix: str | None = None, essential: bool = True
) -> dict[str, Any]:
    """The (essential) container of a service's task definition, in the ECS API's camelCase form.

    Environment and secrets are sorted by name so the same spec always yields the same definition
    (ECS compares task definitions field by field; a reordering would register a new revision), and
    the DIGEST_LABEL docker label changes with any field (see its comment).
    """
    ports = [p for p in [spec.get("port"), *spec.get("extra_ports", [])] if p]
    definition: dict[str, Any] = {
        "name": spec["name"],
        "image": spec["image"],
        "essential": essential,
        "cpu": int(spec["cpu"]),
        "environment": [{"name": k, "value": str(v)} for k, v in sorted(spec.get("environment", {}).items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(spec.get("secrets", {}).items())],
        "portMappings": [{"containerPort": int(p), "hostPort": int(p), "protocol": "tcp"} for p in ports],
        "stopTimeout": int(spec.get("stop_timeout", 30)),
        "linuxParameters": {"initProcessEnabled": True},
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": f"/ecs/{stack_name}/{spec.get('log_component') or spec['name']}",
                "awslogs-region": region,
                "awslogs-stream-prefix": stream_prefix or spec["name"],
            },
        },
    }
    if spec.get("memory"):
        definition["memory"] = int(spec["memory"])
    if spec.get("memory_reservation"):
        definition["memoryReservation"] = int(spec["memory_reservation"])
    if spec.get("command"):
        definition["command"] = [str(c) for c in spec["command"]]
    if spec.get("user"):
        definition["user"] = str(spec["user"])
    if spec.get("mount_points"):
        definition["mountPoints"] = spec["mount_points"]
    health_check = _health_check(spec.get("health_check"))
    if health_check:
        definition["healthCheck"] = health_check
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]
    definition["dockerLabels"] = {DIGEST_LABEL: digest}
    return definition


def ecs_task_containers(spec: dict, stack_name: str, region: str) -> list[dict[str, Any]]:
    """Every container of a service's task: the service's own, then its `sidecars`.

    A sidecar runs the service's image with its own command, environment and secrets, and logs to its
    `log_component`'s log group (the service's by default) under its own name. It is non-essential
    unless `essential: true` (then its exit stops the task and its `health_check` counts for the task's
    health, as ECS does). A sidecar has a hard `memory` limit or only a `memory_reservation` (soft: it may
    use more while the task has it). Fargate refuses reservations (hard limits count as such) adding up to
    more than the task's memory, so the service's own container gets the task's size minus the sidecars'.
    """
    sidecars = spec.get("sidecars") or []
    main = {
        **spec,
        "cpu": int(spec["cpu"]) - sum(int(s.get("cpu", 0)) for s in sidecars),
        "memory": int(spec["memory"]) - sum(ecs_sidecar_memory(s) for s in sidecars),
    }
    if main["cpu"] < 0 or main["memory"] < 128:
        raise ValueError(
            f"{spec['name']}: the sidecars leave the main container {main['cpu']} CPU / {main['memory']} MiB"
        )
    containers = [ecs_container_definition(main, stack_name, region)]
    for sidecar in sidecars:
        definition = ecs_container_definition(
            {
                "name": sidecar["name"],
                "image": spec["image"],
                "cpu": sidecar.get("cpu", 0),
                "memory": sidecar.get("memory"),
                "memory_reservation": sidecar.get("memory_reservation"),
                "command": sidecar.get("command", []),
                "environment": sidecar.get("environment", {}),
                "secrets": sidecar.get("secrets", {}),
                "health_check": sidecar.get("health_check"),
                "stop_timeout": sidecar.get("stop_timeout", 10),
                "log_component": sidecar.get("log_component") or spec.get("log_component") or spec["name"],
            },
            stack_name,
            region,
            stream_prefix=spec["name"],
            essential=bool(sidecar.get("essential", False)),
        )
        containers.append(definition)
    return containers


def ecs_sidecar_memory(sidecar: dict) -> int:
    """The memory a sidecar takes from the task (MiB): its hard limit, else its reservation."""
    return int(sidecar.get("memory") or sidecar.get("memory_reservation") or 0)


def ecs_scaled_count(current: int | str | None, spec: dict) -> int:
    """The desired count to deploy a service with: its autoscaling bounds win over `desired_count`.

    Without autoscaling, `desired_count`. With it, the count the service runs now (the autoscaler's
    choice; None when the service does not exist yet, then `desired_count`), clamped to
    `autoscaling.min_count`..`autoscaling.max_count`, so a deploy neither fights the autoscaler nor
    leaves the count outside new bounds.
    """
    wanted = int(spec.get("desired_count", 1))
    scaling = spec.get("autoscaling")
    if not scaling:
        return wanted
    count = wanted if current is None or current == "" else int(current)
    return max(int(scaling["min_count"]), min(int(scaling["max_count"]), count))


class FilterModule:
    def filters(self) -> dict:
        return {
            "ecs_service_specs": ecs_service_specs,
            "ecs_container_definition": ecs_container_definition,
            "ecs_scaled_count": ecs_scaled_count,
            "ecs_task_containers": ecs_task_containers,
            "ecs_sidecar_memory": ecs_sidecar_memory,
        }
