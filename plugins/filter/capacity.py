"""What the stack can need at most of the database's connections and of the account's quotas: one place.

The preflight refuses a configuration whose worst case does not fit (roles/preflight/tasks/capacity.yml),
the deploy summary prints the connection budget, the local runtime starts each PostgreSQL with the
max_connections RDS would give its class (embedded_aws/connections.py), and the e2e prints the measured
peak beside the computed worst case. Plain Python, no Ansible: tests/unit/test_capacity_filters.py.
"""

from __future__ import annotations

import math
import re
from typing import Any

DOCUMENTATION = """
name: capacity
short_description: Connection budget and quota needs of airflow-ecs
description: rds_max_connections, database_connection_budget and stack_quota_needs; see each docstring.
"""

# RDS for PostgreSQL's default max_connections: LEAST({DBInstanceClassMemory/9531392}, 5000) (RDS user guide,
# "Maximum number of database connections"). DBInstanceClassMemory is the class's memory less what the
# operating system and RDS's own processes keep, "always somewhat lower" and not published per class (RDS user
# guide, "DB parameter formula variables"). RESERVED_MIB is a fit that lies below every published reading of
# `SHOW max_connections` (1 GiB: 79-87, 2 GiB: 198, 4 GiB: 413, 8 GiB: 856, 15.25 GiB: 1660).
BYTES_PER_CONNECTION = 9531392
MAX_CONNECTIONS_CAP = 5000
RESERVED_MIB_BASE = 280
RESERVED_MIB_PER_GIB = 28
# PostgreSQL's superuser_reserved_connections (3 on RDS too): slots the master user (rds_superuser, not a
# superuser) cannot take.
SUPERUSER_RESERVED = 3
# GiB of the burstable classes by size; other families have a fixed GiB per vCPU (large = 2 vCPU, xlarge = 4,
# Nxlarge = 4N), RDS user guide, "Hardware specifications for DB instance classes".
BURSTABLE_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}
GIB_PER_VCPU = (
    (re.compile(r"^t[234]g?$"), None),
    (re.compile(r"^m[5-8][a-z]*$"), 4),
    (re.compile(r"^r[5-8][a-z]*$"), 8),
    (re.compile(r"^z1d$"), 8),
    (re.compile(r"^x2g[a-z]*$"), 16),
    (re.compile(r"^x2ie[a-z]*$"), 32),
)
# Airflow 3.3's [database] defaults (config.yml).
AIRFLOW_POOL_SIZE = 5
AIRFLOW_MAX_OVERFLOW = 10
AIRFLOW_API_WORKERS = 1


class CapacityError(ValueError):
    """A value the computation cannot use; the message names the variable."""


def class_memory_gib(instance_class: str) -> float:
    """The nominal memory of an RDS class (db.t4g.micro -> 1); CapacityError for a class not in the table."""
    match = re.match(r"^db\.([a-z0-9-]+)\.([a-z0-9]+)$", instance_class or "")
    if match:
        family, size = match.groups()
        for pattern, per_vcpu in GIB_PER_VCPU:
            if not pattern.match(family):
                continue
            if per_vcpu is None:
                if size in BURSTABLE_GIB:
                    return float(BURSTABLE_GIB[size])
                break
            vcpus = {"large": 2, "xlarge": 4}.get(size)
            if vcpus is None and re.match(r"^[0-9]+xlarge$", size):
                vcpus = 4 * int(size[: -len("xlarge")])
            if vcpus:
                return float(vcpus * per_vcpu)
    raise CapacityError(
        f"database_instance_class: the memory of {instance_class!r} is not known here, so neither is its "
        "max_connections; set database_max_connections to what `SHOW max_connections` answers on it"
    )


def rds_max_connections(instance_class: str, unknown: int | None = None) -> int:
    """RDS for PostgreSQL's default max_connections for the class, from a DBInstanceClassMemory kept low;
    `unknown` for a class not in the table (else CapacityError), where a later check names the class."""
    try:
        gib = class_memory_gib(instance_class)
    except CapacityError:
        if unknown is None:
            raise
        return int(unknown)
    usable_mib = gib * 1024 - (RESERVED_MIB_BASE + RESERVED_MIB_PER_GIB * gib)
    return min(int(usable_mib * 1024 * 1024 // BYTES_PER_CONNECTION), MAX_CONNECTIONS_CAP)


def _int(config: dict, name: str, default: Any = None, minimum: int = 0) -> int:
    value = config.get(name, default)
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise CapacityError(f"{name}: got {value!r}, not a whole number") from None
    if number < minimum:
        raise CapacityError(f"{name}: got {number}, must be at least {minimum}")
    return number


def _bool(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on", "t", "y")


def _surge(config: dict, key: str = "maximum_percent") -> int:
    """Tasks per desired task during a rolling deploy (maximumPercent 200: old and new run side by side)."""
    return max(1, math.ceil(_int(config, key, 200, 100) / 100))


def database_connection_budget(config: dict) -> dict[str, Any]:
    """The worst case of the stack's PostgreSQL connections against the class's max_connections.

    `config` holds the deploy's values (roles/preflight/vars/main.yml `__preflight_capacity`). Per component,
    tasks x processes x connections per process, from Airflow 3.3's source:

    - every Airflow process's metadata engine holds up to pool_size + max_overflow connections; the api-server
      opens a sync and an async engine in each of its [api] workers processes;
    - the scheduler's Celery executor reads task states from the `db+` result backend through Celery's
      NullPool engine (not forked): one more; the migrate task one engine;
    - Celery workers in Airflow 3 hold no metadata connection (task processes use the Execution API, their
      ORM is blocked), but each prefork child keeps one result-backend connection (Celery's per-child pooled
      engine, STARTED and the result stored there): worker_concurrency per worker;
    - the worker-demand publisher one, Flower one (result lookups); the AwsEcsExecutor's tasks none (Task SDK);
    - services roll with maximumPercent 200: every service doubles while a deploy rolls them all together,
      except the workers at worker_maximum_percent 100 (stop-then-start); the migrate task runs before, beside
      the old services only: the peak is the larger of the two.
    """
    pool_size = _int(config, "pool_size", AIRFLOW_POOL_SIZE, 1)
    max_overflow = _int(config, "max_overflow", AIRFLOW_MAX_OVERFLOW, 0)
    engine = pool_size + max_overflow
    # The api-server's own pool: its thread pool serves the UI's parallel requests and every running task's
    # Execution API calls, each holding a connection.
    api_engine = _int(config, "api_server_pool_size", pool_size, 1) + _int(config, "api_server_max_overflow",
                                                                           max_overflow, 0)  # fmt: skip
    surge = _surge(config)
    worker_surge = _surge(config, "worker_maximum_percent")
    scheduler_tasks = _int(config, "scheduler_count", 1)
    colocated = _bool(config.get("colocate", True))
    # (name, tasks, engines per task, connections per engine, connections per task outside the metadata pools)
    components = [
        ("api-server", _int(config, "api_server_count", 1), _int(config, "api_server_workers", 1, 1) * 2, api_engine,
         0),
        ("scheduler", scheduler_tasks, 1, engine, 1),
        ("dag-processor", scheduler_tasks if colocated else _int(config, "dag_processor_count", 1), 1, engine, 0),
        ("triggerer", scheduler_tasks if colocated else _int(config, "triggerer_count", 1), 1, engine, 0),
        ("worker", _int(config, "worker_max_count", 1), 0, engine, _int(config, "worker_concurrency", 16, 1)),
    ]  # fmt: skip
    if _bool(config.get("worker_autoscaled", False)):
        components.append(("worker-demand", scheduler_tasks, 0, engine, 1))
    if _bool(config.get("flower_enabled", False)):
        components.append(("flower", _int(config, "flower_count", 1), 0, engine, 1))
    rows = []
    for name, tasks, engines, size, fixed in components:
        per_task = engines * size + fixed
        rolls = worker_surge if name == "worker" else surge
        rows.append({"name": name, "tasks": tasks, "engines": engines, "engine": size, "fixed": fixed,
                     "per_task": per_task, "surge": rolls, "steady": tasks * per_task,
                     "rolling": tasks * per_task * rolls})  # fmt: skip
    steady = sum(r["steady"] for r in rows)
    rolling = sum(r["rolling"] for r in rows)
    worst = max(rolling, steady + engine)  # + engine: the migrate task beside the old services
    given = _int(config, "max_connections", 0)
    instance_class = str(config.get("instance_class", ""))
    try:
        max_connections, unknown_class = given or rds_max_connections(instance_class), ""
    except CapacityError as error:
        # Refused after the live checks (roles/preflight), which name a class RDS does not offer first.
        max_connections, unknown_class = 0, str(error)
    usable = max(max_connections - SUPERUSER_RESERVED, 0)
    source = "database_max_connections" if given else f"the {instance_class} default, estimated"
    budget = {
        "unknown_class": unknown_class,
        "components": rows,
        "engine": engine,
        "surge": surge,
        "steady": steady,
        "rolling": rolling,
        "worst_case": worst,
        "max_connections": max_connections,
        "usable": usable,
        "fits": bool(unknown_class) or worst <= usable,
        "summary": f"Database connections: worst case {worst} ({steady} steady, {rolling} in a rolling deploy) of "
        + (f"{usable} usable ({max_connections} max_connections, {source}, - {SUPERUSER_RESERVED} reserved)"
           if not unknown_class else f"{instance_class}'s max_connections, unknown"),
    }  # fmt: skip
    budget["problem"] = "" if budget["fits"] else _connection_advice(config, budget)
    return budget


def _connection_advice(config: dict, budget: dict) -> str:
    """One sentence naming the variables and the values that would fit."""
    rows, usable, worst = budget["components"], budget["usable"], budget["worst_case"]
    parts = " + ".join(f"{r['name']} {r['rolling']}" for r in rows if r["rolling"])
    fixes = []
    api = next(r for r in rows if r["name"] == "api-server")
    shared = [r for r in rows if r is not api]  # engines of database_pool_size + database_max_overflow
    engines_rolling = sum(r["tasks"] * r["engines"] * r["surge"] for r in shared)
    fixed_rolling = sum(r["tasks"] * r["fixed"] * r["surge"] for r in shared) + api["rolling"]
    engines_steady = sum(r["tasks"] * r["engines"] for r in shared) + 1
    fixed_steady = sum(r["tasks"] * r["fixed"] for r in shared) + api["steady"]
    if engines_rolling:
        best = min((usable - fixed_rolling) // engines_rolling, (usable - fixed_steady) // engines_steady)
        if best >= 2:
            fixes.append(f"database_pool_size + database_max_overflow at most {best} (now {budget['engine']})")
    api_engines = api["tasks"] * api["engines"] * api["surge"]
    if api_engines and (usable - (budget["rolling"] - api["rolling"])) // api_engines >= 2:
        fixes.append(
            "airflow_nodes_api_server_pool_size + airflow_nodes_api_server_max_overflow at most "
            f"{(usable - (budget['rolling'] - api['rolling'])) // api_engines} (now {api['engine']})"
        )
    worker = next(r for r in rows if r["name"] == "worker")
    room = usable - (budget["rolling"] - worker["rolling"])
    if worker["per_task"] and room >= 0 and room // (worker["per_task"] * worker["surge"]) < worker["tasks"]:
        fixes.append(
            f"airflow_nodes_worker_max_count at most {room // (worker['per_task'] * worker['surge'])} "
            f"(now {worker['tasks']})"
        )
    bigger = next((c for c in LARGER_CLASSES if rds_max_connections(c) - SUPERUSER_RESERVED >= worst), "")
    if bigger:
        fixes.append(f"database_instance_class {bigger} ({rds_max_connections(bigger)} max_connections)")
    return (
        f"the stack can open {worst} PostgreSQL connections ({parts} while a deploy rolls every service with "
        f"old and new tasks side by side) but the database allows {usable} ({budget['max_connections']} "
        f"max_connections - {SUPERUSER_RESERVED} reserved): set "
        + (", or ".join(fixes) if fixes else "a larger database_instance_class")
        + " (roles/database/README.md, Connection budget)"
    )


# Classes offered as a way out, smallest first.
LARGER_CLASSES = (
    "db.t4g.small", "db.t4g.medium", "db.t4g.large", "db.m7g.large", "db.m7g.xlarge", "db.m7g.2xlarge",
    "db.m7g.4xlarge", "db.r7g.4xlarge", "db.r7g.8xlarge",
)  # fmt: skip


def stack_quota_needs(config: dict) -> dict[str, Any]:
    """The most Fargate vCPU (On-Demand and Spot) and Elastic IPs the stack can hold at once.

    `config`: `services` (name, enabled, cpu units, max count, capacity provider, maximum_percent), `one_off` (the
    migrate task's cpu), `executor` (cpu, tasks at once = the slots of their pool, capacity
    provider), `elastic_ips` (the NAT instances' or gateways'). A rolling deploy runs maximumPercent of each
    service; the migrate task runs beside the old services only, so the peak is the larger of the two.
    """
    totals: dict[str, dict[str, float]] = {"FARGATE": {"steady": 0.0, "rolling": 0.0},
                                           "FARGATE_SPOT": {"steady": 0.0, "rolling": 0.0}}  # fmt: skip
    detail = []
    for service in config.get("services", []):
        if not _bool(service.get("enabled", True)):
            continue
        provider = service.get("capacity_provider") or "FARGATE"
        if provider not in totals:
            raise CapacityError(f"{service['name']}: capacity provider {provider!r} is not FARGATE or FARGATE_SPOT")
        vcpu = _int(service, "cpu", 256, 1) / 1024
        count = _int(service, "count", 1)
        surge = max(1, math.ceil(_int(service, "maximum_percent", 200, 100) / 100))
        totals[provider]["steady"] += vcpu * count
        totals[provider]["rolling"] += vcpu * count * surge
        detail.append(f"{service['name']} {count} x {vcpu:g}" + (f" x{surge}" if surge > 1 else ""))
    executor = config.get("executor") or {}
    executor_vcpu = _int(executor, "cpu", 0) / 1024 * _int(executor, "tasks", 0)
    if executor_vcpu:
        provider = executor.get("capacity_provider") or "FARGATE"
        for phase in ("steady", "rolling"):
            totals[provider][phase] += executor_vcpu
        detail.append(f"executor tasks {_int(executor, 'tasks', 0)} x {_int(executor, 'cpu', 0) / 1024:g}")
    one_off = _int(config, "one_off_cpu", 0) / 1024
    if one_off:
        detail.append(f"migrate 1 x {one_off:g}")
    on_demand = max(totals["FARGATE"]["rolling"], totals["FARGATE"]["steady"] + one_off)
    return {
        "fargate_on_demand_vcpu": on_demand,
        "fargate_spot_vcpu": totals["FARGATE_SPOT"]["rolling"],
        "elastic_ips": _int(config, "elastic_ips", 0),
        "detail": ", ".join(detail),
    }


class FilterModule:
    def filters(self) -> dict:
        return {
            "rds_max_connections": rds_max_connections,
            "database_connection_budget": database_connection_budget,
            "stack_quota_needs": stack_quota_needs,
        }
