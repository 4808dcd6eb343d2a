"""The stack's monthly AWS bill from its variables and a price file: one model for two readers.

`make cost` (scripts/cost.py) reads the variables from the project's files and prints the breakdown; the
deploy summary (plugins/lookup/cost_estimate.py) reads the play's own variables through Ansible's templar
and prints the total. Both hand a `Variables` to `estimate()`; nothing here imports Ansible.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRICES_DIR = Path(__file__).resolve().parent
DEFAULT_PRICES_REGION = "us-east-1"
# Service lists, in the order the stack deploys them; each spec is merged over ecs_service_defaults.
SERVICE_LISTS = ("__messaging_services", "__airflow_nodes_services")
# The ecs_service_common each list is deployed with (roles/*/tasks): between the defaults and each entry.
SERVICE_COMMONS = {"__airflow_nodes_services": "__airflow_nodes_common"}
SECRET_LISTS = ("__secrets_definitions", "__airflow_connection_secrets")
# What the scheduler's metrics sidecar samples besides Airflow's own metrics.
STACK_METRICS = ("BrokerQueueDepth", "RunningWorkers", "WorkerShortfall")
# The scheduler task holds these nodes as containers when airflow_nodes_colocate is true.
SCHEDULER = "scheduler"
COLOCATED_NODES = ("dag-processor", "triggerer")
WORKER_DEMAND = "worker-demand"
ARCHITECTURES = ("ARM64", "X86_64")
CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
BROKER_BACKENDS = ("rabbitmq_fargate", "amazonmq")
EGRESS_OPTIONS = ("nat_gateway", "nat_instance")
# The network role's default NAT instance type (priced in the egress comparison before the role has one).
DEFAULT_NAT_INSTANCE_TYPE = "t4g.nano"
# "{{ name }}", "{{ not name }}", "{{ name | bool }}", "{{ not (name | bool) }}", "{{ name | default('X') }}":
# references the estimate follows without Ansible (scripts/cost.py); any other template is refused there.
REFERENCE = re.compile(
    r"^\{\{\s*(?P<negate>not\s+)?\(?\s*(?P<name>[A-Za-z_]\w*)\s*"
    r"(?:\|\s*default\(\s*(?P<default>'[^']*'|\"[^\"]*\"|-?\d+|true|false|True|False)\s*\)\s*)?"
    r"(?:\|\s*(?P<filter>bool|int|string)\s*)?\)?\s*\}\}$"
)
TRUE_STRINGS = {"1", "yes", "on", "true", "y", "t"}
FALSE_STRINGS = {"0", "no", "off", "false", "n", "f", ""}
MISSING: Any = object()


class CostError(Exception):
    """A variable or price the estimate cannot use; the message names it."""


# --- reading variables ------------------------------------------------------------------------------


class Variables:
    """The play's variables as the estimate reads them.

    Values are literals (sizes, counts, classes, flags). A value that is a reference (REFERENCE: "{{ name }}",
    "{{ not name | bool }}", "{{ name | default('X') }}"...) is followed; the flags the roles derive with an expression
    (DERIVED_FLAGS) are computed the way the roles compute them; any other template is refused with the
    variable's name. The deploy summary's lookup overrides `resolve` to template with the play's templar.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def __contains__(self, name: object) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = None) -> Any:
        """The value as written (a service list's specs are merged before their fields are resolved)."""
        return self.data.get(name, default)

    def resolve(self, name: str, value: Any = MISSING) -> Any:
        """The value of `name` (or the given value of one of its fields), references followed."""
        return self._follow(name, value, 0)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Variables:
        return type(self)({**self.data, **overrides})

    def _follow(self, name: str, value: Any, depth: int) -> Any:
        if value is MISSING:
            if name in DERIVED_FLAGS:
                return DERIVED_FLAGS[name](self)
            if name not in self.data:
                raise CostError(f"variable {name} is not defined")
            value = self.data[name]
        if not (isinstance(value, str) and "{{" in value):
            return value
        match = REFERENCE.match(value.strip())
        if not match or depth > 10:
            raise CostError(f"variable {name} is a template ({value!r}); pass a literal with -e {name}=...")
        if match["default"] is not None and match["name"] not in self.data and match["name"] not in DERIVED_FLAGS:
            target = yaml.safe_load(match["default"])
        else:
            target = self._follow(match["name"], MISSING, depth + 1)
        if match["filter"] == "int":
            target = as_int(self, match["name"], target)
        elif match["filter"] == "string":
            target = str(target)
        elif match["filter"] == "bool" or match["negate"]:
            target = as_bool(self, match["name"], target)
        return not target if match["negate"] else target


def as_int(variables: Variables, name: str, value: Any = MISSING) -> int:
    raw = variables.resolve(name, value)
    if isinstance(raw, bool):
        raise CostError(f"variable {name} must be a whole number, not {raw!r}")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise CostError(f"variable {name} must be a whole number, not {raw!r}") from None
    if number != int(number) or number < 0:
        raise CostError(f"variable {name} must be a whole number >= 0, not {raw!r}")
    return int(number)


def as_bool(variables: Variables, name: str, value: Any = MISSING) -> bool:
    raw = variables.resolve(name, value)
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS:
        return False
    raise CostError(f"variable {name} must be a boolean, not {raw!r}")


def as_str(variables: Variables, name: str, value: Any = MISSING) -> str:
    return str(variables.resolve(name, value))


def as_choice(variables: Variables, name: str, choices: tuple[str, ...], value: Any = MISSING) -> str:
    text = as_str(variables, name, value)
    if text not in choices:
        raise CostError(f"variable {name} must be one of {', '.join(choices)}, not {text!r}")
    return text


def as_list(variables: Variables, name: str) -> list:
    """A list variable (a service list, alarms, secrets); it must exist: an empty one is written as [].
    A list as written is returned with its items unresolved: the estimate resolves the fields it reads."""
    if name not in variables:
        raise CostError(f"variable {name} is not defined")
    value = variables.raw(name)
    if not isinstance(value, list):
        value = variables.resolve(name)
    if not isinstance(value, list):
        raise CostError(f"variable {name} must be a list, not {value!r}")
    return value


def optional(variables: Variables, name: str, default: Any, read: Callable[..., Any] = as_str) -> Any:
    """A variable the stack may not have yet (a newer knob): its default while it is not defined."""
    return read(variables, name) if name in variables else default


def worker_autoscaled(variables: Variables) -> bool:
    """airflow_nodes' __airflow_nodes_worker_autoscaled: a maximum worker count above the minimum."""
    if not ("airflow_nodes_worker_min_count" in variables and "airflow_nodes_worker_max_count" in variables):
        return False
    return as_int(variables, "airflow_nodes_worker_max_count") > as_int(variables, "airflow_nodes_worker_min_count")


def broker_on_fargate(variables: Variables) -> bool:
    """messaging's __messaging_on_fargate: broker_backend rabbitmq_fargate (the default) rather than amazonmq."""
    return optional(variables, "broker_backend", BROKER_BACKENDS[0], choice(BROKER_BACKENDS)) == BROKER_BACKENDS[0]


def choice(choices: tuple[str, ...]) -> Callable[[Variables, str], str]:
    return lambda variables, name: as_choice(variables, name, choices)


# Flags the roles derive with an expression; the estimate computes them the same way.
DERIVED_FLAGS: dict[str, Callable[[Variables], bool]] = {
    "__airflow_nodes_worker_autoscaled": worker_autoscaled,
    "__messaging_on_fargate": broker_on_fargate,
}


# --- prices -------------------------------------------------------------------------------------------


def read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CostError(f"{path} does not hold a mapping")
    return data


def prices_file(region: str) -> Path | None:
    """cost/prices-<region>.yml when the project has list prices for the region."""
    path = PRICES_DIR / f"prices-{region}.yml"
    return path if path.is_file() else None


def price(prices: dict[str, Any], *path: str) -> float:
    node: Any = prices
    for key in path:
        if not isinstance(node, dict) or key not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else ""
            raise CostError(f"no price {'.'.join(path)} in the price file" + (f" (known: {known})" if known else ""))
        node = node[key]
    return float(node)


def fargate_hourly(
    prices: dict[str, Any], cpu: int, memory: int, architecture: str, capacity_provider: str = "FARGATE"
) -> float:
    hourly = cpu / 1024 * price(prices, "fargate", architecture, "vcpu_hour")
    hourly += memory / 1024 * price(prices, "fargate", architecture, "gb_hour")
    if capacity_provider == "FARGATE_SPOT":
        hourly *= 1 - price(prices, "fargate", "spot_discount")
    return hourly


# --- the estimate -------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    cpu: int
    memory: int
    count: int  # desired_count: the fixed count, or the first deploy's count of an autoscaled service
    capacity_provider: str
    architecture: str
    discovered: bool
    max_count: int | None = None
    min_count: int | None = None
    metrics_sidecar: bool = False  # an Airflow node whose tasks relay Airflow's metrics (one PutMetricData a minute)

    @property
    def autoscaled(self) -> bool:
        return self.min_count is not None and self.max_count is not None and self.max_count > self.min_count

    @property
    def always_on(self) -> int:
        """Tasks running with no DAG running: the minimum of an autoscaled service, else its count."""
        return self.min_count if self.autoscaled else self.count


@dataclass
class LineItem:
    item: str
    detail: str
    monthly: float
    in_total: bool = True
    # Billed only while DAGs run (usage from the price file's `workload` assumptions), not in an idle hour.
    per_run: bool = False


@dataclass
class EgressOption:
    option: str
    detail: str
    monthly: float
    chosen: bool
    internet: bool  # gives the tasks internet egress (the ETL's site, Docker Hub), not only the AWS APIs


@dataclass
class Estimate:
    region: str
    prices_region: str
    hours_per_month: float
    lines: list[LineItem] = field(default_factory=list)
    egress_options: list[EgressOption] = field(default_factory=list)
    # The AWS APIs the tasks call: what the VPC interface endpoints option is priced with.
    interface_endpoints: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Monthly price of each MWAA environment class in the price file, for comparison.
    mwaa: dict[str, float] = field(default_factory=dict)
    # What the services with a maximum count add to the total when they run at it all month.
    at_max_extra: float = 0.0

    @property
    def total(self) -> float:
        return round(sum(line.monthly for line in self.lines if line.in_total), 2)

    @property
    def always_on(self) -> float:
        """The monthly cost with no DAG running: every totalled line but the per-run ones."""
        return round(sum(line.monthly for line in self.lines if line.in_total and not line.per_run), 2)

    @property
    def idle_hour(self) -> float:
        """What one hour costs with no DAG running."""
        return round(self.always_on / self.hours_per_month, 4)

    @property
    def mwaa_smallest(self) -> tuple[str, float]:
        return min(self.mwaa.items(), key=lambda item: item[1]) if self.mwaa else ("", 0.0)

    @property
    def mwaa_ratio(self) -> float:
        """This stack's total over the smallest MWAA environment's price."""
        smallest = self.mwaa_smallest[1]
        return round(self.total / smallest, 2) if smallest else 0.0

    def add(self, item: str, detail: str, monthly: float, in_total: bool = True, per_run: bool = False) -> None:
        self.lines.append(LineItem(item, detail, round(monthly, 2), in_total, per_run))

    def summary(self) -> dict[str, Any]:
        """The computed figures, for JSON beside the lines."""
        smallest, smallest_monthly = self.mwaa_smallest
        return {
            "total": self.total,
            "total_at_max": round(self.total + self.at_max_extra, 2),
            "always_on": self.always_on,
            "idle_hour": self.idle_hour,
            "mwaa_smallest": {"class": smallest, "monthly": smallest_monthly, "ratio": self.mwaa_ratio},
        }


def airflow_metric_names(variables: Variables) -> int:
    """How many metric names airflow_metrics_allow_list lets through: each (a|b|c) group multiplies by its choices."""
    total = 0
    for pattern in optional(variables, "airflow_metrics_allow_list", [], as_list):
        names = 1
        for group in re.findall(r"\(([^()]*)\)", str(pattern)):
            names *= len(group.split("|"))
        total += names
    return total


def default_architecture(variables: Variables) -> str:
    """ecs_cpu_architecture (group_vars/all): every task's CPU; Fargate's own default before the stack had one."""
    return optional(variables, "ecs_cpu_architecture", "X86_64", choice(ARCHITECTURES))


def services(variables: Variables) -> list[Service]:
    """The long-running ECS services (create_service and enabled), from the roles' own service lists."""
    defaults = variables.raw("ecs_service_defaults") or {}
    result = []
    for list_name in SERVICE_LISTS:
        common = variables.raw(SERVICE_COMMONS.get(list_name, "")) or {}
        for spec in as_list(variables, list_name):
            merged = {**defaults, **common, **spec}
            name = str(merged["name"])
            key = f"{list_name}[{name}]"
            if not as_bool(variables, f"{key}.create_service", merged.get("create_service", True)):
                continue
            if not as_bool(variables, f"{key}.enabled", merged.get("enabled", True)):
                continue
            prefix = f"airflow_nodes_{name.replace('-', '_')}"
            architecture = merged.get("cpu_architecture")
            result.append(
                Service(
                    name=name,
                    cpu=as_int(variables, f"{key}.cpu", merged.get("cpu")),
                    memory=as_int(variables, f"{key}.memory", merged.get("memory")),
                    count=as_int(variables, f"{key}.desired_count", merged.get("desired_count", 1)),
                    capacity_provider=as_choice(
                        variables,
                        f"{key}.capacity_provider",
                        CAPACITY_PROVIDERS,
                        merged.get("capacity_provider", "FARGATE"),
                    ),
                    architecture=(
                        as_choice(variables, f"{key}.cpu_architecture", ARCHITECTURES, architecture)
                        if architecture is not None
                        else default_architecture(variables)
                    ),
                    discovered=bool(merged.get("discovery_name")),
                    max_count=optional(variables, f"{prefix}_max_count", None, as_int),
                    min_count=optional(variables, f"{prefix}_min_count", None, as_int),
                    metrics_sidecar=list_name == "__airflow_nodes_services" and bool(merged.get("sidecars")),
                )
            )
    if not result:
        raise CostError(f"no ECS services found in {', '.join(SERVICE_LISTS)} (roles/*/vars/main.yml)")
    return result


def scheduler_containers(variables: Variables, deployed: list[Service]) -> list[str]:
    """The nodes that run as containers of the scheduler task instead of services of their own."""
    names = {svc.name for svc in deployed}
    inside = []
    if optional(variables, "airflow_nodes_colocate", False, as_bool):
        inside += [node for node in COLOCATED_NODES if node not in names]
    if worker_autoscaled(variables) and WORKER_DEMAND not in names:
        inside.append(WORKER_DEMAND)
    return inside


def add_fargate(est: Estimate, variables: Variables, prices: dict[str, Any], deployed: list[Service]) -> None:
    """One line per service at its always-on count; an autoscaled one adds its busy hours (per run) and
    shows its cost at the maximum count (not totalled)."""
    hours = est.hours_per_month
    inside = scheduler_containers(variables, deployed)
    for svc in deployed:
        hourly = fargate_hourly(prices, svc.cpu, svc.memory, svc.architecture, svc.capacity_provider)
        detail = f"{svc.cpu / 1024:g} vCPU / {svc.memory / 1024:g} GB x {svc.always_on}, {svc.architecture}"
        detail += ", Spot" if svc.capacity_provider == "FARGATE_SPOT" else ""
        if svc.name == SCHEDULER and inside:
            detail += f"; with {', '.join(inside)}"
        always_on = svc.always_on * hours * hourly
        est.add(f"Fargate {svc.name}", detail, always_on)
        scaled = 0.0
        if svc.autoscaled:
            busy_hours = price(prices, "workload", "assumed_worker_busy_hours_per_month")
            tasks = min(price(prices, "workload", "assumed_workers_when_busy"), svc.max_count - svc.min_count)
            scaled = tasks * busy_hours * hourly
            est.add(
                f"Fargate {svc.name} autoscaled",
                f"+{tasks:g} task x {busy_hours:g} h busy (workload assumption)",
                scaled,
                per_run=True,
            )
        if svc.max_count is not None and svc.max_count > svc.always_on:
            at_max = svc.max_count * hours * hourly
            est.add(f"Fargate {svc.name} at max", f"x {svc.max_count} all month (not in the total)", at_max, False)
            est.at_max_extra += at_max - always_on - scaled


def add_ecs_executor(est: Estimate, variables: Variables, prices: dict[str, Any]) -> None:
    """AwsEcsExecutor: one Fargate task per task instance, billed for its minutes (a workload assumption)."""
    if not optional(variables, "airflow_ecs_executor_enabled", False, as_bool):
        return
    cpu = as_int(variables, "airflow_ecs_executor_cpu")
    memory = as_int(variables, "airflow_ecs_executor_memory")
    architecture = default_architecture(variables)
    provider = optional(variables, "airflow_ecs_executor_capacity_provider", "FARGATE", choice(CAPACITY_PROVIDERS))
    minutes = price(prices, "workload", "assumed_ecs_executor_task_minutes_per_month")
    spot = ", Spot" if provider == "FARGATE_SPOT" else ""
    size = f"{cpu / 1024:g} vCPU / {memory / 1024:g} GB, {architecture}{spot}"
    est.add(
        "Fargate ECS executor tasks",
        f"{size}, {minutes:,.0f} task-min (workload assumption)",
        minutes / 60 * fargate_hourly(prices, cpu, memory, architecture, provider),
        per_run=True,
    )


def add_amazon_mq(est: Estimate, variables: Variables, prices: dict[str, Any]) -> None:
    """Amazon MQ for RabbitMQ (broker_backend amazonmq): broker instance hours (three for a cluster) and storage."""
    mode = as_str(variables, "messaging_amazonmq_deployment_mode")
    instance_type = as_str(variables, "messaging_amazonmq_instance_type")
    nodes = int(price(prices, "amazon_mq_rabbitmq", "cluster_nodes")) if mode == "CLUSTER_MULTI_AZ" else 1
    storage_gb = price(prices, "amazon_mq_rabbitmq", "assumed_storage_gb")
    est.add(
        "Amazon MQ broker",
        f"{instance_type} x {nodes} ({mode}) + {storage_gb:g} GB",
        nodes * est.hours_per_month * price(prices, "amazon_mq_rabbitmq", "instance_hour", instance_type)
        + storage_gb * price(prices, "amazon_mq_rabbitmq", "storage_gb_month"),
    )


def add_broker_storage(est: Estimate, prices: dict[str, Any]) -> None:
    """The Fargate broker's data directory on EFS: storage and Elastic Throughput reads and writes."""
    stored, written, read = (price(prices, "efs", f"assumed_broker_{what}_gb") for what in ("storage", "write", "read"))
    est.add(
        "EFS (broker data)",
        f"{stored:g} GB, {written:g} GB written, {read:g} GB read (assumed)",
        stored * price(prices, "efs", "storage_gb_month")
        + written * price(prices, "efs", "elastic_write_gb")
        + read * price(prices, "efs", "elastic_read_gb"),
    )


def interface_endpoints(variables: Variables) -> list[str]:
    """The AWS APIs the tasks call from the private subnets: the interface endpoints that would replace NAT
    for them (S3, for the DAG bundle, the data bucket and ECR's image layers, takes the free gateway endpoint)."""
    names = ["ecr.api", "ecr.dkr"]  # image pulls (images_source ecr)
    names += ["logs"]  # the awslogs driver of every container
    names += ["secretsmanager"]  # the secrets ECS injects at each task start
    names += ["monitoring"]  # the metrics sidecars' PutMetricData
    names += ["ecs"]  # the scheduler sidecar's worker counts, the ECS executor's RunTask
    if optional(variables, "ecs_exec_enabled", False, as_bool):
        names += ["ssmmessages"]  # ECS Exec sessions
    return names


def add_network(est: Estimate, variables: Variables, prices: dict[str, Any]) -> None:
    """The egress the stack deploys (a NAT gateway or a NAT instance, one or one per AZ), the ALB and the
    public IPv4 addresses; then the egress options side by side (not totalled)."""
    hours = est.hours_per_month
    az_count = as_int(variables, "network_az_count")
    nat_count = az_count if as_bool(variables, "network_nat_per_az") else 1
    egress = optional(variables, "network_egress", "nat_gateway", choice(EGRESS_OPTIONS))
    instance_type = optional(variables, "network_nat_instance_type", DEFAULT_NAT_INSTANCE_TYPE)
    gb = price(prices, "egress_traffic", "assumed_gb_per_month")
    address = hours * price(prices, "public_ipv4", "hour")

    gateway = nat_count * hours * price(prices, "nat_gateway", "hour") + gb * price(
        prices, "nat_gateway", "gb_processed"
    )
    root_gb = price(prices, "nat_instance", "root_volume_gb")
    instance = nat_count * (
        hours * price(prices, "nat_instance", "instance_hour", instance_type)
        + root_gb * price(prices, "nat_instance", "gp3_gb_month")
    )
    if egress == "nat_gateway":
        est.add("NAT gateway", f"{nat_count} x {hours:g} h + {gb:g} GB processed", gateway)
    else:
        est.add("NAT instance", f"{instance_type} x {nat_count}, {hours:g} h + {root_gb:g} GB gp3 root", instance)
    lcu = price(prices, "alb", "assumed_lcu")
    est.add(
        "Application Load Balancer",
        f"{hours:g} h + {lcu:g} LCU",
        hours * (price(prices, "alb", "hour") + lcu * price(prices, "alb", "lcu_hour")),
    )
    est.add("Public IPv4 addresses", f"{nat_count} NAT EIP + {az_count} ALB", (nat_count + az_count) * address)

    endpoints = est.interface_endpoints = interface_endpoints(variables)
    est.egress_options = [
        EgressOption(
            "NAT gateway",
            f"{nat_count} x {hours:g} h + {gb:g} GB + {nat_count} EIP",
            round(gateway + nat_count * address, 2),
            egress == "nat_gateway",
            True,
        ),
        EgressOption(
            f"NAT instance ({instance_type})",
            f"{nat_count} x {hours:g} h + {root_gb:g} GB gp3 + {nat_count} EIP",
            round(instance + nat_count * address, 2),
            egress == "nat_instance",
            True,
        ),
        EgressOption(
            "VPC interface endpoints",
            f"{len(endpoints)} endpoints x {az_count} AZ x {hours:g} h + {gb:g} GB",
            round(
                len(endpoints) * az_count * hours * price(prices, "vpc_endpoints", "interface_hour")
                + gb * price(prices, "vpc_endpoints", "gb_processed"),
                2,
            ),
            False,
            False,
        ),
    ]


def add_cloudwatch(est: Estimate, variables: Variables, prices: dict[str, Any], deployed: list[Service]) -> None:
    """The relayed Airflow metrics and the scheduler's stack samples, their PutMetricData calls (one a
    minute per always-on task with a metrics sidecar, plus the worker-demand publisher), the monitoring
    role's alarms and dashboard (an account's first three dashboards are free: counted anyway)."""
    metrics = airflow_metric_names(variables) + len(STACK_METRICS)
    alarms = len(as_list(variables, "__monitoring_alarms"))  # roles/monitoring/vars/main.yml
    publishers = sum(svc.always_on for svc in deployed if svc.metrics_sidecar)
    if worker_autoscaled(variables):
        metrics += 2  # DesiredWorkers and ActiveTasks
        alarms += 1
        publishers += 1
    calls = est.hours_per_month * 60 * publishers / 1000
    est.add(
        "CloudWatch metrics and alarms",
        f"{metrics} metrics, {alarms} alarms, 1 dashboard, {calls * 1000:,.0f} PutMetricData",
        metrics * price(prices, "cloudwatch", "metric_month")
        + alarms * price(prices, "cloudwatch", "alarm_month")
        + price(prices, "cloudwatch", "dashboard_month")
        + calls * price(prices, "cloudwatch", "requests_per_1k"),
    )
    if optional(variables, "airflow_metrics_dimensions", [], as_list):
        est.notes.append(
            "airflow_metrics_dimensions is set: each distinct tag value is one more metric (not estimated)"
        )


def estimate(variables: Variables | Mapping[str, Any], prices: dict[str, Any]) -> Estimate:
    """The monthly bill of the stack the variables describe, at the price file's prices."""
    if not isinstance(variables, Variables):
        variables = Variables(variables)
    hours = price(prices, "hours_per_month")
    est = Estimate(
        region=as_str(variables, "aws_region"), prices_region=str(prices.get("region", "?")), hours_per_month=hours
    )
    if est.region != est.prices_region:
        est.notes.append(
            f"the stack's aws_region is {est.region} but the prices are {est.prices_region} list prices: "
            "expect a somewhat higher real bill"
        )

    deployed = services(variables)
    add_fargate(est, variables, prices, deployed)
    add_ecs_executor(est, variables, prices)

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
    else:
        add_broker_storage(est, prices)

    add_network(est, variables, prices)

    # Cloud Map: the private DNS namespace's hosted zone, registered tasks and DNS queries.
    instances = sum(svc.always_on for svc in deployed if svc.discovered)
    queries = price(prices, "cloud_map", "assumed_dns_queries_millions")
    est.add(
        "Cloud Map",
        f"1 zone, {instances} instances, {queries:g}M queries",
        price(prices, "cloud_map", "hosted_zone_month")
        + instances * price(prices, "cloud_map", "registered_instance_month")
        + queries * price(prices, "cloud_map", "dns_queries_per_million"),
    )

    # Secrets Manager: the generated secrets plus the connection strings.
    secrets = sum(len(as_list(variables, name)) for name in SECRET_LISTS)
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

    add_cloudwatch(est, variables, prices, deployed)

    if as_bool(variables, "ecs_cluster_container_insights"):
        est.notes.append("Container Insights is on: its custom metrics are billed on top (not estimated)")
    est.notes.append(
        "not included: data transfer out and across AZs, the one-off migrate task, KMS requests, "
        "RDS backups beyond the free allocation, T-class CPU credits"
    )
    environments = (prices.get("mwaa") or {}).get("environment_hour") or {}
    est.mwaa = {name: round(price(prices, "mwaa", "environment_hour", name) * hours, 2) for name in environments}
    return est


# --- levers -------------------------------------------------------------------------------------------

# The knobs that move the bill most, each with the two values compared (the other one is tried).
LEVERS: dict[str, tuple[Any, Any]] = {
    "ecs_cpu_architecture": ("ARM64", "X86_64"),
    "airflow_nodes_colocate": (True, False),
    "airflow_nodes_flower_enabled": (False, True),
    "airflow_nodes_api_server_count": (1, 2),
    "airflow_nodes_worker_capacity_provider": ("FARGATE_SPOT", "FARGATE"),
    "airflow_nodes_worker_min_count": (0, 1),
    "airflow_ecs_executor_enabled": (True, False),
    "network_egress": ("nat_instance", "nat_gateway"),
    "network_nat_per_az": (False, True),
    "database_multi_az": (False, True),
    "broker_backend": ("rabbitmq_fargate", "amazonmq"),
}


@dataclass
class Lever:
    variable: str
    current: Any
    alternative: Any
    delta: float | None  # the monthly total's change; None when the alternative cannot be estimated
    problem: str = ""


def levers(variables: Variables, prices: dict[str, Any], total: float) -> list[Lever]:
    """Each lever the stack has, with what setting it to its other value does to the monthly total."""
    result = []
    for name, pair in LEVERS.items():
        if name not in variables:
            continue
        kind = type(pair[0])
        read = {bool: as_bool, int: as_int}.get(kind, as_str)
        current = read(variables, name)
        alternative = pair[1] if current == pair[0] else pair[0]
        try:
            changed = estimate(variables.with_overrides({name: alternative}), prices).total
        except CostError as exc:
            result.append(Lever(name, current, alternative, None, str(exc)))
            continue
        result.append(Lever(name, current, alternative, round(changed - total, 2)))
    return result


def summary_line(est: Estimate) -> str:
    """The deploy summary's sentence."""
    return f"${est.total:,.2f}/month at {est.prices_region} list prices (make cost for the breakdown)"
