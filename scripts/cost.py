#!/usr/bin/env python3
"""Estimate the monthly AWS bill of the stack from the project's own variables.

Usage: .venv/bin/python scripts/cost.py [-i inventories/aws] [-e name=value | -e @file.yml | -e '{json}']...
                                        [--prices cost/prices-us-east-1.yml] [--json]

The variables are read the way Ansible layers them for the play's host (lowest precedence first):
role defaults, the inventory file's group vars, inventory group_vars/all, the project's group_vars/all,
inventory group_vars/airflow_ecs, the project's group_vars/airflow_ecs, the inventory file's host vars,
inventory and project host_vars/localhost, role vars, then --extra-vars. Values the estimate needs are
literals (sizes, counts, classes, flags); a value that is exactly "{{ other_variable }}" is followed, any
other template is refused with the variable's name (pass it with -e instead).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PRICES = ROOT / "cost" / "prices-us-east-1.yml"
DEFAULT_INVENTORY = "inventories/emulator"
GROUP = "airflow_ecs"  # the play's group (hosts: airflow_ecs); its parent is `all`
HOST = "localhost"
# Service lists, in the order the stack deploys them; each spec is merged over ecs_service_defaults.
SERVICE_LISTS = ("__messaging_services", "__airflow_nodes_services")
# The ecs_service_common each list is deployed with (roles/*/tasks): between the defaults and each entry.
SERVICE_COMMONS = {"__airflow_nodes_services": "__airflow_nodes_common"}
SECRET_LISTS = ("__secrets_definitions", "__airflow_connection_secrets")
# What the scheduler's metrics sidecar samples besides Airflow's own metrics.
STACK_METRICS = ("BrokerQueueDepth", "RunningWorkers", "WorkerShortfall")
SIMPLE_REFERENCE = re.compile(r"^\{\{\s*([A-Za-z_]\w*)\s*\}\}$")
TRUE_STRINGS = {"1", "yes", "on", "true", "y", "t"}
FALSE_STRINGS = {"0", "no", "off", "false", "n", "f", ""}


class CostError(Exception):
    """A variable or price the estimate cannot use; the message names it."""


# --- reading variables ------------------------------------------------------------------------------


def read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CostError(f"{path} does not hold a mapping of variables")
    return data


def vars_files(base: Path, kind: str, name: str) -> dict[str, Any]:
    """<base>/<kind>/<name>.yml|.yaml|.json, or every file of <base>/<kind>/<name>/ in name order (as Ansible)."""
    merged: dict[str, Any] = {}
    target = base / kind / name
    candidates = [target.with_name(name + ext) for ext in ("", ".yml", ".yaml", ".json")]
    for path in candidates:
        if path.is_file():
            merged.update(read_yaml(path))
    if target.is_dir():
        for path in sorted(target.rglob("*")):
            if path.is_file() and path.suffix in {".yml", ".yaml", ".json"}:
                merged.update(read_yaml(path))
    return merged


def inventory_file_vars(inventory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Group vars (all, then the play's group) and host vars written inside a YAML inventory file."""
    group_vars: dict[str, Any] = {}
    host_vars: dict[str, Any] = {}
    files = [inventory] if inventory.is_file() else sorted(inventory.glob("*.y*ml"))
    for path in files:
        data = read_yaml(path)
        top = data.get("all") or {}
        group_vars.update(top.get("vars") or {})
        group = (top.get("children") or {}).get(GROUP) or {}
        group_vars.update(group.get("vars") or {})
        host_vars.update(((group.get("hosts") or {}).get(HOST)) or {})
    return group_vars, host_vars


def role_files(root: Path, kind: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted((root / "roles").glob(f"*/{kind}/main.yml")):
        merged.update(read_yaml(path))
    return merged


def parse_extra_vars(items: list[str], root: Path = ROOT) -> dict[str, Any]:
    """-e values as ansible-playbook takes them: name=value pairs (strings), @file, or a JSON/YAML mapping."""
    merged: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            path = Path(text[1:])
            merged.update(read_yaml(path if path.is_absolute() else root / path))
        elif text.startswith(("{", "[")):
            data = yaml.safe_load(text)
            if not isinstance(data, dict):
                raise CostError(f"extra vars {item!r} are not a mapping")
            merged.update(data)
        else:
            for pair in shlex.split(text):
                name, sep, value = pair.partition("=")
                if not sep:
                    raise CostError(f"extra vars {pair!r} are not name=value")
                merged[name] = value
    return merged


def variable_layers(root: Path, inventory: str, extra_vars: list[str] | None = None) -> list[tuple[str, dict]]:
    """Every source of variables for the play's host, lowest precedence first."""
    inv = Path(inventory) if Path(inventory).is_absolute() else root / inventory
    if not inv.exists():
        raise CostError(f"inventory {inventory} does not exist")
    inv_dir = inv if inv.is_dir() else inv.parent
    file_group_vars, file_host_vars = inventory_file_vars(inv)
    return [
        ("role defaults", role_files(root, "defaults")),
        ("inventory file group vars", file_group_vars),
        ("inventory group_vars/all", vars_files(inv_dir, "group_vars", "all")),
        ("project group_vars/all", vars_files(root, "group_vars", "all")),
        (f"inventory group_vars/{GROUP}", vars_files(inv_dir, "group_vars", GROUP)),
        (f"project group_vars/{GROUP}", vars_files(root, "group_vars", GROUP)),
        ("inventory file host vars", file_host_vars),
        (f"inventory host_vars/{HOST}", vars_files(inv_dir, "host_vars", HOST)),
        (f"project host_vars/{HOST}", vars_files(root, "host_vars", HOST)),
        ("role vars", role_files(root, "vars")),
        ("extra vars", parse_extra_vars(extra_vars or [], root)),
    ]


def load_variables(root: Path, inventory: str, extra_vars: list[str] | None = None) -> dict[str, Any]:
    """The effective variables: later layers replace earlier ones (Ansible's default hash_behaviour=replace)."""
    merged: dict[str, Any] = {}
    for _, layer in variable_layers(root, inventory, extra_vars):
        merged.update(layer)
    return merged


# --- typed access --------------------------------------------------------------------------------------


def resolve(variables: dict[str, Any], name: str, value: Any = None, depth: int = 0) -> Any:
    """The value of `name` (or the given value), following "{{ other }}" references; other templates fail."""
    if value is None:
        if name not in variables:
            raise CostError(f"variable {name} is not defined (pass it with -e {name}=...)")
        value = variables[name]
    if isinstance(value, str) and "{{" in value:
        match = SIMPLE_REFERENCE.match(value.strip())
        if not match or depth > 10:
            raise CostError(f"variable {name} is a template ({value!r}); pass a literal with -e {name}=...")
        return resolve(variables, match[1], depth=depth + 1)
    return value


def as_int(variables: dict[str, Any], name: str, value: Any = None) -> int:
    raw = resolve(variables, name, value)
    if isinstance(raw, bool):
        raise CostError(f"variable {name} must be a whole number, not {raw!r}")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise CostError(f"variable {name} must be a whole number, not {raw!r}") from None
    if number != int(number) or number < 0:
        raise CostError(f"variable {name} must be a whole number >= 0, not {raw!r}")
    return int(number)


def as_bool(variables: dict[str, Any], name: str, value: Any = None) -> bool:
    raw = resolve(variables, name, value)
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS:
        return False
    raise CostError(f"variable {name} must be a boolean, not {raw!r}")


def as_str(variables: dict[str, Any], name: str, value: Any = None) -> str:
    return str(resolve(variables, name, value))


# --- the estimate -------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    cpu: int
    memory: int
    count: int
    capacity_provider: str
    discovered: bool
    max_count: int | None = None
    metrics_sidecar: bool = False  # an Airflow node whose tasks relay Airflow's metrics (one PutMetricData a minute)


@dataclass
class LineItem:
    item: str
    detail: str
    monthly: float
    in_total: bool = True


@dataclass
class Estimate:
    region: str
    prices_region: str
    lines: list[LineItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mwaa_small: float = 0.0
    # What the services with a maximum count add to the total when they run at it.
    at_max_extra: float = 0.0

    @property
    def total(self) -> float:
        return round(sum(line.monthly for line in self.lines if line.in_total), 2)

    def add(self, item: str, detail: str, monthly: float, in_total: bool = True) -> None:
        self.lines.append(LineItem(item, detail, round(monthly, 2), in_total))


def airflow_metric_names(variables: dict[str, Any]) -> int:
    """How many metric names airflow_metrics_allow_list lets through: each (a|b|c) group multiplies by its choices."""
    total = 0
    for pattern in variables.get("airflow_metrics_allow_list") or []:
        names = 1
        for group in re.findall(r"\(([^()]*)\)", str(pattern)):
            names *= len(group.split("|"))
        total += names
    return total


def worker_autoscaled(variables: dict[str, Any]) -> bool:
    """airflow_nodes' __airflow_nodes_worker_autoscaled: a maximum worker count above the minimum."""
    if not {"airflow_nodes_worker_min_count", "airflow_nodes_worker_max_count"} <= variables.keys():
        return False
    return as_int(variables, "airflow_nodes_worker_max_count") > as_int(variables, "airflow_nodes_worker_min_count")


BROKER_BACKENDS = ("rabbitmq_fargate", "amazonmq")


def broker_on_fargate(variables: dict[str, Any]) -> bool:
    """messaging's __messaging_on_fargate: broker_backend rabbitmq_fargate (the default) rather than amazonmq."""
    backend = as_str(variables, "broker_backend") if "broker_backend" in variables else BROKER_BACKENDS[0]
    if backend not in BROKER_BACKENDS:
        raise CostError(f"variable broker_backend must be one of {', '.join(BROKER_BACKENDS)}, not {backend!r}")
    return backend == "rabbitmq_fargate"


# Flags the roles derive with an expression; the estimate computes them the same way.
DERIVED_FLAGS = {"__airflow_nodes_worker_autoscaled": worker_autoscaled, "__messaging_on_fargate": broker_on_fargate}


def service_enabled(variables: dict[str, Any], key: str, value: Any) -> bool:
    """A service spec's `enabled` field (ecs_service: false = the service is removed)."""
    match = SIMPLE_REFERENCE.match(value.strip()) if isinstance(value, str) else None
    if match and match[1] in DERIVED_FLAGS:
        return DERIVED_FLAGS[match[1]](variables)
    return as_bool(variables, f"{key}.enabled", value)


def services(variables: dict[str, Any]) -> list[Service]:
    """The long-running ECS services (create_service true), from the roles' own service lists."""
    defaults = variables.get("ecs_service_defaults") or {}
    result = []
    for list_name in SERVICE_LISTS:
        for spec in variables.get(list_name) or []:
            merged = {**defaults, **(variables.get(SERVICE_COMMONS.get(list_name, "")) or {}), **spec}
            name = merged["name"]
            key = f"{list_name}[{name}]"
            if not as_bool(variables, f"{key}.create_service", merged.get("create_service", True)):
                continue
            if not service_enabled(variables, key, merged.get("enabled", True)):
                continue
            max_name = f"airflow_nodes_{name.replace('-', '_')}_max_count"
            result.append(
                Service(
                    name=name,
                    cpu=as_int(variables, f"{key}.cpu", merged.get("cpu")),
                    memory=as_int(variables, f"{key}.memory", merged.get("memory")),
                    count=as_int(variables, f"{key}.desired_count", merged.get("desired_count", 1)),
                    capacity_provider=as_str(
                        variables, f"{key}.capacity_provider", merged.get("capacity_provider", "FARGATE")
                    ),
                    discovered=bool(merged.get("discovery_name")),
                    max_count=as_int(variables, max_name) if max_name in variables else None,
                    metrics_sidecar=list_name == "__airflow_nodes_services" and bool(merged.get("sidecars")),
                )
            )
    if not result:
        raise CostError(f"no ECS services found in {', '.join(SERVICE_LISTS)} (roles/*/vars/main.yml)")
    return result


def price(prices: dict[str, Any], *path: str) -> float:
    node: Any = prices
    for key in path:
        if not isinstance(node, dict) or key not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else ""
            raise CostError(f"no price {'.'.join(path)} in the price file" + (f" (known: {known})" if known else ""))
        node = node[key]
    return float(node)


def fargate_monthly(service: Service, count: int, prices: dict[str, Any]) -> float:
    hours = price(prices, "hours_per_month")
    hourly = service.cpu / 1024 * price(prices, "fargate", "vcpu_hour")
    hourly += service.memory / 1024 * price(prices, "fargate", "gb_hour")
    if service.capacity_provider == "FARGATE_SPOT":
        hourly *= 1 - price(prices, "fargate", "spot_discount")
    return count * hours * hourly


def add_amazon_mq(est: Estimate, variables: dict[str, Any], prices: dict[str, Any]) -> None:
    """Amazon MQ for RabbitMQ (broker_backend amazonmq): broker instance hours (three for a cluster) and storage."""
    mode = as_str(variables, "messaging_amazonmq_deployment_mode")
    instance_type = as_str(variables, "messaging_amazonmq_instance_type")
    nodes = int(price(prices, "amazon_mq_rabbitmq", "cluster_nodes")) if mode == "CLUSTER_MULTI_AZ" else 1
    storage_gb = price(prices, "amazon_mq_rabbitmq", "assumed_storage_gb")
    est.add(
        "Amazon MQ broker",
        f"{instance_type} x {nodes} ({mode}) + {storage_gb:g} GB",
        nodes * price(prices, "hours_per_month") * price(prices, "amazon_mq_rabbitmq", "instance_hour", instance_type)
        + storage_gb * price(prices, "amazon_mq_rabbitmq", "storage_gb_month"),
    )


def add_cloudwatch(
    est: Estimate, variables: dict[str, Any], prices: dict[str, Any], node_services: list[Service], hours: float
) -> None:
    """The relayed Airflow metrics and the scheduler's stack samples, their PutMetricData calls (one a
    minute per task with a metrics sidecar, plus the worker-demand publisher), the monitoring role's
    alarms and dashboard (an account's first three dashboards are free: counted anyway)."""
    metrics = airflow_metric_names(variables) + len(STACK_METRICS)
    alarms = len(variables.get("__monitoring_alarms") or [])  # roles/monitoring/vars/main.yml
    publishers = sum(svc.count for svc in node_services if svc.metrics_sidecar)
    if worker_autoscaled(variables):
        metrics += 2  # DesiredWorkers and ActiveTasks
        alarms += 1
        publishers += 1
    calls = hours * 60 * publishers / 1000
    est.add(
        "CloudWatch metrics and alarms",
        f"{metrics} metrics, {alarms} alarms, 1 dashboard, {calls * 1000:,.0f} PutMetricData",
        metrics * price(prices, "cloudwatch", "metric_month")
        + alarms * price(prices, "cloudwatch", "alarm_month")
        + price(prices, "cloudwatch", "dashboard_month")
        + calls * price(prices, "cloudwatch", "requests_per_1k"),
    )
    if variables.get("airflow_metrics_dimensions"):
        est.notes.append(
            "airflow_metrics_dimensions is set: each distinct tag value is one more metric (not estimated)"
        )


def estimate(variables: dict[str, Any], prices: dict[str, Any]) -> Estimate:
    hours = price(prices, "hours_per_month")
    est = Estimate(region=as_str(variables, "aws_region"), prices_region=str(prices.get("region", "?")))
    if est.region != est.prices_region:
        est.notes.append(
            f"the stack's aws_region is {est.region} but the prices are {est.prices_region} list prices: "
            "expect a somewhat higher real bill"
        )

    # Fargate: one line per service, plus its cost at the maximum count where a node has one.
    node_services = services(variables)
    for svc in node_services:
        size = f"{svc.cpu / 1024:g} vCPU / {svc.memory / 1024:g} GB x {svc.count}"
        spot = ", Spot" if svc.capacity_provider == "FARGATE_SPOT" else ""
        est.add(f"Fargate {svc.name}", size + spot, fargate_monthly(svc, svc.count, prices))
        if svc.max_count is not None and svc.max_count > svc.count:
            at_max = fargate_monthly(svc, svc.max_count, prices)
            est.add(f"Fargate {svc.name} at max", f"x {svc.max_count} (not in the total)", at_max, in_total=False)
            est.at_max_extra += at_max - fargate_monthly(svc, svc.count, prices)

    # RDS PostgreSQL: instance and storage, both doubled by Multi-AZ.
    instance_class = as_str(variables, "database_instance_class")
    multi_az = as_bool(variables, "database_multi_az")
    factor = price(prices, "rds_postgresql", "multi_az_factor") if multi_az else 1
    deployment = "Multi-AZ" if multi_az else "Single-AZ"
    est.add(
        "RDS instance",
        f"{instance_class} {deployment}",
        price(prices, "rds_postgresql", "instance_hour", instance_class) * hours * factor,
    )
    storage_gb = as_int(variables, "database_allocated_storage")
    storage_type = as_str(variables, "database_storage_type")
    est.add(
        "RDS storage",
        f"{storage_gb} GB {storage_type} {deployment}",
        storage_gb * price(prices, "rds_postgresql", "storage_gb_month", storage_type) * factor,
    )

    if not broker_on_fargate(variables):
        add_amazon_mq(est, variables, prices)

    # Network: NAT gateways (one, or one per AZ), processed data, the ALB and public IPv4 addresses.
    az_count = as_int(variables, "network_az_count")
    nat_count = az_count if as_bool(variables, "network_nat_per_az") else 1
    nat_gb = price(prices, "nat_gateway", "assumed_gb_per_month")
    est.add(
        "NAT gateway",
        f"{nat_count} x {hours:g} h + {nat_gb:g} GB",
        nat_count * hours * price(prices, "nat_gateway", "hour")
        + nat_gb * price(prices, "nat_gateway", "gb_processed"),
    )
    lcu = price(prices, "alb", "assumed_lcu")
    est.add(
        "Application Load Balancer",
        f"{hours:g} h + {lcu:g} LCU",
        hours * (price(prices, "alb", "hour") + lcu * price(prices, "alb", "lcu_hour")),
    )
    addresses = nat_count + az_count
    est.add(
        "Public IPv4 addresses",
        f"{nat_count} NAT EIP + {az_count} ALB",
        addresses * hours * price(prices, "public_ipv4", "hour"),
    )

    # Cloud Map: the private DNS namespace's hosted zone, registered tasks and DNS queries.
    instances = sum(svc.count for svc in node_services if svc.discovered)
    queries = price(prices, "cloud_map", "assumed_dns_queries_millions")
    est.add(
        "Cloud Map",
        f"1 zone, {instances} instances, {queries:g}M queries",
        price(prices, "cloud_map", "hosted_zone_month")
        + instances * price(prices, "cloud_map", "registered_instance_month")
        + queries * price(prices, "cloud_map", "dns_queries_per_million"),
    )

    # Secrets Manager: the generated secrets plus the connection strings.
    secrets = sum(len(variables.get(name) or []) for name in SECRET_LISTS)
    calls = price(prices, "secrets_manager", "assumed_api_calls_per_month")
    est.add(
        "Secrets Manager",
        f"{secrets} secrets, {calls:g} API calls",
        secrets * price(prices, "secrets_manager", "secret_month")
        + calls / 10_000 * price(prices, "secrets_manager", "api_calls_per_10k"),
    )

    # CloudWatch Logs: ingestion plus what the retention keeps stored.
    ingested = price(prices, "cloudwatch_logs", "assumed_ingestion_gb_per_month")
    retention = as_int(variables, "ecs_cluster_log_retention_days")
    stored = ingested * retention / 30
    est.add(
        "CloudWatch Logs",
        f"{ingested:g} GB in, {stored:g} GB kept ({retention} d)",
        ingested * price(prices, "cloudwatch_logs", "ingestion_gb")
        + stored * price(prices, "cloudwatch_logs", "storage_gb_month"),
    )

    # S3: the buckets' contents and the DAG bundle refresh (one LIST and one GET per interval).
    s3_gb = price(prices, "s3", "assumed_storage_gb")
    refreshes = hours * 3600 / max(as_int(variables, "airflow_dag_refresh_interval"), 1)
    est.add(
        "S3",
        f"{s3_gb:g} GB, {refreshes:,.0f} DAG refreshes",
        s3_gb * price(prices, "s3", "storage_gb_month")
        + refreshes / 1000 * (price(prices, "s3", "list_per_1k") + price(prices, "s3", "get_per_1k")),
    )

    add_cloudwatch(est, variables, prices, node_services, hours)

    if as_bool(variables, "ecs_cluster_container_insights"):
        est.notes.append("Container Insights is on: its custom metrics are billed on top (not estimated)")
    est.notes.append(
        "not included: data transfer out and across AZs, the one-off migrate task, KMS requests, "
        "RDS backups beyond the free allocation, T-class CPU credits"
    )
    est.mwaa_small = round(price(prices, "mwaa", "small_environment_hour") * hours, 2)
    return est


# --- output ---------------------------------------------------------------------------------------------


def render(est: Estimate, inventory: str, prices_path: Path, prices: dict[str, Any]) -> str:
    width_item = max(len(line.item) for line in est.lines)
    width_detail = max(len(line.detail) for line in est.lines)
    rule = "-" * (width_item + width_detail + 16)
    out = [
        f"Monthly cost estimate: {inventory} (aws_region {est.region}); "
        f"{prices.get('region')} list prices of {prices.get('as_of')} from {prices_path.name}",
        rule,
        f"{'Item':<{width_item}}  {'Detail':<{width_detail}}  {'USD/month':>10}",
        rule,
    ]
    for line in est.lines:
        amount = f"{line.monthly:10.2f}" if line.in_total else f"({line.monthly:.2f})".rjust(10)
        out.append(f"{line.item:<{width_item}}  {line.detail:<{width_detail}}  {amount}")
    out += [rule, f"{'Total':<{width_item + width_detail + 2}}  {est.total:10.2f}"]
    label = width_item + width_detail + 2
    if est.at_max_extra:
        out.append(f"{'Total at the maximum counts':<{label}}  {est.total + est.at_max_extra:10.2f}")
    out.append(f"{'MWAA mw1.small environment (for comparison)':<{label}}  {est.mwaa_small:10.2f}")
    ratio = 100 * est.total / est.mwaa_small if est.mwaa_small else 0
    difference = est.mwaa_small - est.total
    out.append(
        f"This stack costs {ratio:.0f} % of an MWAA small environment: "
        f"{abs(difference):.2f} USD/month {'less' if difference >= 0 else 'more'}."
    )
    for note in est.notes:
        out.append(f"note: {note}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", default=DEFAULT_INVENTORY)
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS")
    parser.add_argument("--prices", type=Path, default=DEFAULT_PRICES)
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    args = parser.parse_args(argv)
    try:
        prices = read_yaml(args.prices)
        variables = load_variables(ROOT, args.inventory, args.extra_vars)
        est = estimate(variables, prices)
    except CostError as exc:
        print(f"cost: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**asdict(est), "total": est.total}, indent=2))
    else:
        print(render(est, args.inventory, args.prices, prices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
