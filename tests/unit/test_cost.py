"""cost/model.py through scripts/cost.py (`make cost`) and the deploy summary's lookup: the arithmetic
(hand-computed), Ansible's variable precedence, ARM64, Spot, colocation, autoscaled workers, NAT instance
and gateway, the ECS executor, the idle hour, the MWAA ratio, the egress table, the levers and the JSON."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible_runner import LOCALHOST_ARGS, run_playbook

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUDGET_USD = 132  # the default stack's monthly ceiling at us-east-1 list prices: the project's issue set $120 with
# db.t4g.micro, whose 75 connections cannot hold an api-server pool that keeps the UI responsive (roles/database README)


def load_cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_ecs_cost", ROOT / "scripts" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


cost = load_cost()
model = sys.modules["cost.model"]  # the shared model scripts/cost.py imports

# Round prices, 100 hours a month: every expected figure below is worked out by hand.
PRICES: dict[str, Any] = {
    "region": "us-east-1",
    "hours_per_month": 100,
    "fargate": {
        "X86_64": {"vcpu_hour": 0.04, "gb_hour": 0.004},
        "ARM64": {"vcpu_hour": 0.032, "gb_hour": 0.0032},  # 20 % less
        "spot_discount": 0.7,
    },
    "workload": {
        "assumed_worker_busy_hours_per_month": 10,
        "assumed_workers_when_busy": 1,
        "assumed_ecs_executor_task_minutes_per_month": 600,  # 10 h
    },
    "rds_postgresql": {
        "instance_hour": {"db.t4g.micro": 0.02},
        "multi_az_factor": 2,
        "storage_gb_month": {"gp2": 0.1, "gp3": 0.1},
    },
    "egress_traffic": {"assumed_gb_per_month": 10},
    # The Fargate broker's EFS data: 1 GB at 0.3 + 5 GB written at 0.06 + 1 GB read at 0.03 = 0.63.
    "efs": {
        "storage_gb_month": 0.3,
        "elastic_write_gb": 0.06,
        "elastic_read_gb": 0.03,
        "assumed_broker_storage_gb": 1,
        "assumed_broker_write_gb": 5,
        "assumed_broker_read_gb": 1,
    },
    "nat_gateway": {"hour": 0.05, "gb_processed": 0.05},
    "nat_instance": {
        "instance_hour": {"t4g.nano": 0.004, "t4g.micro": 0.008},
        "root_volume_gb": 8,
        "gp3_gb_month": 0.1,
    },
    "vpc_endpoints": {"interface_hour": 0.01, "gb_processed": 0.01},
    "alb": {"hour": 0.02, "lcu_hour": 0.01, "assumed_lcu": 1},
    "public_ipv4": {"hour": 0.005},
    "cloud_map": {
        "registered_instance_month": 0.1,
        "hosted_zone_month": 0.5,
        "dns_queries_per_million": 0.4,
        "assumed_dns_queries_millions": 5,
    },
    "secrets_manager": {"secret_month": 0.4, "api_calls_per_10k": 0.05, "assumed_api_calls_per_month": 20000},
    "cloudwatch_logs": {"ingestion_gb": 0.5, "storage_gb_month": 0.03, "assumed_ingestion_gb_per_month": 6},
    "s3": {"storage_gb_month": 0.02, "get_per_1k": 0.001, "list_per_1k": 0.004, "assumed_storage_gb": 10},
    "mwaa": {"environment_hour": {"mw1.micro": 0.25, "mw1.small": 0.5}},
    "cloudwatch": {"metric_month": 0.3, "alarm_month": 0.1, "dashboard_month": 2.0, "requests_per_1k": 0.01},
    "amazon_mq_rabbitmq": {
        "instance_hour": {"mq.m7g.medium": 0.1, "mq.m7g.large": 0.3},
        "cluster_nodes": 3,
        "storage_gb_month": 0.1,
        "assumed_storage_gb": 5,
    },
}


def small_config(**overrides: Any) -> dict[str, Any]:
    """A broker (1 vCPU / 2 GB, in Cloud Map), two workers (2 vCPU / 4 GB) and a one-off task that is no service.

    The stack's newer knobs (ecs_cpu_architecture, network_egress, the ECS executor...) are left undefined:
    the estimate then prices what the stack deployed before them (x86, a NAT gateway, no executor)."""
    variables = {
        "aws_region": "us-east-1",
        "ecs_service_defaults": {"cpu": 512, "memory": 1024, "desired_count": 1, "capacity_provider": "FARGATE"},
        "__messaging_services": [{"name": "broker", "cpu": "{{ broker_cpu }}", "memory": 2048, "discovery_name": "b"}],
        "__airflow_nodes_services": [
            {
                "name": "worker",
                "cpu": 2048,
                "memory": 4096,
                "desired_count": "{{ worker_count }}",
                "capacity_provider": "{{ worker_provider }}",
            },
            {"name": "migrate", "create_service": False},
        ],
        # Every node gets a metrics sidecar (roles/airflow_nodes): one PutMetricData a minute per task.
        "__airflow_nodes_common": {"sidecars": [{"name": "metrics", "memory": 128}]},
        "airflow_metrics_allow_list": ["^a\\b", "^(b|c)_x\\b"],  # 3 metric names
        "__monitoring_alarms": [{"name": "one"}, {"name": "two"}],
        "broker_cpu": 1024,
        "worker_count": 2,
        "worker_provider": "FARGATE",
        "database_instance_class": "db.t4g.micro",
        "database_multi_az": False,
        "database_allocated_storage": 20,
        "database_storage_type": "gp3",
        "network_az_count": 2,
        "network_nat_per_az": False,
        "__secrets_definitions": [{"key": "a"}, {"key": "b"}],
        "__airflow_connection_secrets": [{"key": "c"}],
        "ecs_cluster_log_retention_days": 15,
        "ecs_cluster_container_insights": False,
        "airflow_dag_refresh_interval": 60,
    }
    variables.update(overrides)
    return variables


def nodes_config(**overrides: Any) -> dict[str, Any]:
    """small_config with the Airflow nodes the way roles/airflow_nodes lists them with the newer knobs at their
    defaults: ARM64, the dag-processor and triggerer inside the scheduler's task, Flower off, workers on Spot
    autoscaled 0-4, a NAT instance, the ECS executor on (0.5 vCPU / 1 GB)."""
    node = {"cpu": 512, "memory": 1024}
    services = [
        {"name": "scheduler", "cpu": 1024, "memory": 2048},
        {"name": "dag-processor", "enabled": "{{ not airflow_nodes_colocate | bool }}", **node},
        {"name": "triggerer", "enabled": "{{ not airflow_nodes_colocate | bool }}", **node},
        {
            "name": "worker",
            "cpu": 2048,
            "memory": 4096,
            "desired_count": "{{ airflow_nodes_worker_count }}",
            "capacity_provider": "{{ airflow_nodes_worker_capacity_provider }}",
        },
        {"name": "flower", "enabled": "{{ airflow_nodes_flower_enabled | bool }}", "cpu": 256, "memory": 512},
    ]
    defaults = {
        "cpu": 512,
        "memory": 1024,
        "desired_count": 1,
        "capacity_provider": "FARGATE",
        "cpu_architecture": "{{ ecs_cpu_architecture | default('X86_64') }}",
    }
    config = small_config(__airflow_nodes_services=services, ecs_service_defaults=defaults)
    config.update(
        ecs_cpu_architecture="ARM64",
        airflow_nodes_colocate=True,
        airflow_nodes_flower_enabled=False,
        airflow_nodes_worker_count=1,
        airflow_nodes_worker_min_count=0,
        airflow_nodes_worker_max_count=4,
        airflow_nodes_worker_capacity_provider="FARGATE_SPOT",
        network_egress="nat_instance",
        network_nat_instance_type="t4g.nano",
        airflow_ecs_executor_enabled=True,
        airflow_ecs_executor_cpu=512,
        airflow_ecs_executor_memory=1024,
    )
    config.update(overrides)
    return config


def lines(estimate) -> dict[str, float]:
    return {line.item: line.monthly for line in estimate.lines}


def detail(estimate, item: str) -> str:
    return next(line.detail for line in estimate.lines if line.item == item)


# --- arithmetic ---------------------------------------------------------------------------------------


def test_arithmetic_of_a_small_config() -> None:
    result = cost.estimate(small_config(), PRICES)
    assert lines(result) == {
        "Fargate broker": 4.80,  # (1 x 0.04 + 2 x 0.004) x 100 h
        "Fargate worker": 19.20,  # 2 x (2 x 0.04 + 4 x 0.004) x 100 h
        "RDS instance": 2.00,  # 0.02 x 100 h
        "RDS storage": 2.00,  # 20 GB x 0.1
        "EFS (broker data)": 0.63,  # 1 GB x 0.3 + 5 GB written x 0.06 + 1 GB read x 0.03
        "NAT gateway": 5.50,  # 1 x 100 h x 0.05 + 10 GB x 0.05
        "Application Load Balancer": 3.00,  # 100 h x (0.02 + 1 LCU x 0.01)
        "Public IPv4 addresses": 1.50,  # (1 NAT + 2 ALB) x 100 h x 0.005
        "Cloud Map": 2.60,  # 0.5 zone + 1 instance x 0.1 + 5 M x 0.4
        "Secrets Manager": 1.30,  # 3 x 0.4 + 20000 / 10000 x 0.05
        "CloudWatch Logs": 3.09,  # 6 GB x 0.5 + (6 x 15 / 30) GB x 0.03
        "S3": 0.23,  # 10 GB x 0.02 + 6000 refreshes / 1000 x (0.004 + 0.001)
        # (3 Airflow + 3 stack metrics) x 0.3 + 2 alarms x 0.1 + a dashboard + 2 workers x 6000 calls / 1000 x 0.01
        "CloudWatch metrics and alarms": 4.12,
    }
    assert result.total == 49.97
    assert detail(result, "Fargate worker") == "2 vCPU / 4 GB x 2, X86_64"  # x86 before ecs_cpu_architecture
    assert result.notes == [note for note in result.notes if note.startswith("not included")]


def test_the_idle_hour_and_the_ratio_to_the_smallest_mwaa_environment() -> None:
    result = cost.estimate(small_config(), PRICES)
    assert result.mwaa == {"mw1.micro": 25.00, "mw1.small": 50.00}  # 0.25 and 0.5 x 100 h
    assert result.mwaa_smallest == ("mw1.micro", 25.00)
    assert result.mwaa_ratio == 2.0  # 49.97 / 25
    assert result.always_on == 49.97  # nothing here runs per DAG run
    assert result.idle_hour == 0.4997  # 49.97 / 100 h


def test_arm64_costs_twenty_percent_less_and_a_service_may_choose_its_own() -> None:
    x86 = lines(cost.estimate(small_config(ecs_cpu_architecture="X86_64"), PRICES))
    arm = cost.estimate(small_config(ecs_cpu_architecture="ARM64"), PRICES)
    assert (lines(arm)["Fargate broker"], x86["Fargate broker"]) == (3.84, 4.80)  # (1 x 0.032 + 2 x 0.0032) x 100
    assert lines(arm)["Fargate worker"] == 15.36  # 2 x (2 x 0.032 + 4 x 0.0032) x 100 h
    assert detail(arm, "Fargate worker") == "2 vCPU / 4 GB x 2, ARM64"

    config = small_config(ecs_cpu_architecture="ARM64")
    config["__messaging_services"][0]["cpu_architecture"] = "X86_64"  # a spec's own field wins
    assert lines(cost.estimate(config, PRICES))["Fargate broker"] == 4.80

    # ecs_service_defaults carries "{{ ecs_cpu_architecture | default('X86_64') }}" (roles/ecs_service)
    defaults = {"cpu_architecture": "{{ ecs_cpu_architecture | default('X86_64') }}"}
    config = small_config(ecs_service_defaults=defaults)
    assert lines(cost.estimate(config, PRICES))["Fargate broker"] == 4.80
    assert lines(cost.estimate({**config, "ecs_cpu_architecture": "ARM64"}, PRICES))["Fargate broker"] == 3.84


def test_fargate_spot_costs_thirty_percent_on_either_architecture() -> None:
    on_demand = lines(cost.estimate(small_config(), PRICES))
    spot = cost.estimate(small_config(worker_provider="FARGATE_SPOT"), PRICES)
    assert lines(spot)["Fargate worker"] == 5.76  # 19.20 x (1 - 0.7)
    assert detail(spot, "Fargate worker") == "2 vCPU / 4 GB x 2, X86_64, Spot"
    assert lines(spot)["Fargate broker"] == on_demand["Fargate broker"]
    arm_spot = cost.estimate(small_config(worker_provider="FARGATE_SPOT", ecs_cpu_architecture="ARM64"), PRICES)
    assert lines(arm_spot)["Fargate worker"] == 4.61  # 15.36 x 0.3


def test_colocated_nodes_are_containers_of_the_scheduler_task() -> None:
    colocated = cost.estimate(nodes_config(), PRICES)
    fargate = [item for item in lines(colocated) if item.startswith("Fargate")]
    assert "Fargate dag-processor" not in fargate and "Fargate triggerer" not in fargate
    # The task size is what Fargate bills: 1 vCPU / 2 GB ARM64, (0.032 + 2 x 0.0032) x 100 h
    assert lines(colocated)["Fargate scheduler"] == 3.84
    assert (
        detail(colocated, "Fargate scheduler")
        == "1 vCPU / 2 GB x 1, ARM64; with dag-processor, triggerer, worker-demand"
    )

    separate = cost.estimate(nodes_config(airflow_nodes_colocate=False), PRICES)
    # each 0.5 vCPU / 1 GB ARM64: (0.5 x 0.032 + 0.0032) x 100 h
    assert (lines(separate)["Fargate dag-processor"], lines(separate)["Fargate triggerer"]) == (1.92, 1.92)
    # + their metrics sidecars' PutMetricData: 2 tasks x 6000 calls / 1000 x 0.01
    assert separate.total == round(colocated.total + 3.84 + 0.12, 2)


def test_flower_is_priced_only_when_enabled() -> None:
    assert "Fargate flower" not in lines(cost.estimate(nodes_config(), PRICES))
    enabled = cost.estimate(nodes_config(airflow_nodes_flower_enabled="true"), PRICES)  # -e gives a string
    assert lines(enabled)["Fargate flower"] == 0.96  # (0.25 x 0.032 + 0.5 x 0.0032) x 100 h


def test_workers_from_zero_cost_their_busy_hours_and_the_maximum_is_shown() -> None:
    result = cost.estimate(nodes_config(), PRICES)
    items = lines(result)
    assert items["Fargate worker"] == 0.00  # min 0: none while idle
    assert detail(result, "Fargate worker") == "2 vCPU / 4 GB x 0, ARM64, Spot"
    # one task above the minimum for 10 busy hours: 10 h x 0.0768 x 0.3
    assert items["Fargate worker autoscaled"] == 0.23
    assert items["Fargate worker at max"] == 9.22  # 4 x 100 h x 0.0768 x 0.3, not totalled
    assert result.at_max_extra == pytest.approx(9.216 - 0.2304)
    per_run = [line.item for line in result.lines if line.per_run]
    assert per_run == ["Fargate worker autoscaled", "Fargate ECS executor tasks"]
    assert result.always_on == round(result.total - 0.23 - items["Fargate ECS executor tasks"], 2)


def test_a_fixed_worker_count_is_always_on() -> None:
    result = lines(
        cost.estimate(
            nodes_config(
                airflow_nodes_worker_min_count=2, airflow_nodes_worker_max_count=2, airflow_nodes_worker_count=2
            ),
            PRICES,
        )
    )
    assert result["Fargate worker"] == 4.61  # 2 x 0.0768 x 100 h x 0.3
    assert "Fargate worker autoscaled" not in result and "Fargate worker at max" not in result


def test_worker_autoscaling_adds_the_publishers_metrics_and_alarm() -> None:
    fixed = cost.estimate(small_config(airflow_nodes_worker_min_count=2, airflow_nodes_worker_max_count=2), PRICES)
    scaled = cost.estimate(small_config(airflow_nodes_worker_min_count=0, airflow_nodes_worker_max_count=4), PRICES)
    assert lines(fixed)["CloudWatch metrics and alarms"] == 4.12
    # + DesiredWorkers and ActiveTasks and their alarm; calls: no always-on worker, the publisher's 6000
    # (3 + 3 + 2) x 0.3 + 3 x 0.1 + 2 + 6000 / 1000 x 0.01
    assert lines(scaled)["CloudWatch metrics and alarms"] == 4.76
    assert lines(scaled)["Fargate worker autoscaled"] == 0.96  # 10 h x (2 x 0.04 + 4 x 0.004)
    assert lines(scaled)["Fargate worker at max"] == 38.40  # 4 x 9.60, not totalled


def test_a_worker_demand_service_is_priced_while_it_is_one() -> None:
    """The publisher is a container of the scheduler task; a stack listing it as a service pays for its task."""
    publisher = {
        "name": "worker-demand",
        "enabled": "{{ __airflow_nodes_worker_autoscaled }}",
        "cpu": 256,
        "memory": 512,
        "sidecars": [],
    }
    config = small_config()
    config["__airflow_nodes_services"] = [*config["__airflow_nodes_services"], publisher]
    fixed = cost.estimate({**config, "airflow_nodes_worker_min_count": 2, "airflow_nodes_worker_max_count": 2}, PRICES)
    assert "Fargate worker-demand" not in lines(fixed)
    scaled = cost.estimate({**config, "airflow_nodes_worker_min_count": 0, "airflow_nodes_worker_max_count": 4}, PRICES)
    assert lines(scaled)["Fargate worker-demand"] == 1.20  # (0.25 x 0.04 + 0.5 x 0.004) x 100 h


def test_the_ecs_executor_costs_its_task_minutes_per_run() -> None:
    result = cost.estimate(nodes_config(), PRICES)
    assert lines(result)["Fargate ECS executor tasks"] == 0.19  # 600 min = 10 h x (0.5 x 0.032 + 1 x 0.0032)
    assert detail(result, "Fargate ECS executor tasks") == "0.5 vCPU / 1 GB, ARM64, 600 task-min (workload assumption)"
    off = cost.estimate(nodes_config(airflow_ecs_executor_enabled=False), PRICES)
    assert "Fargate ECS executor tasks" not in lines(off)
    assert off.always_on == result.always_on  # per run: not in the idle hour
    config = nodes_config()
    del config["airflow_ecs_executor_cpu"]
    with pytest.raises(cost.CostError, match="airflow_ecs_executor_cpu is not defined"):
        cost.estimate(config, PRICES)


def test_a_nat_instance_costs_its_hours_and_root_volume_and_no_traffic() -> None:
    gateway = cost.estimate(small_config(), PRICES)
    instance = cost.estimate(small_config(network_egress="nat_instance", network_nat_instance_type="t4g.nano"), PRICES)
    assert "NAT gateway" not in lines(instance)
    assert lines(instance)["NAT instance"] == 1.20  # 100 h x 0.004 + 8 GB x 0.1; no per-GB charge
    assert detail(instance, "NAT instance") == "t4g.nano x 1, 100 h + 8 GB gp3 root"
    assert lines(instance)["Public IPv4 addresses"] == lines(gateway)["Public IPv4 addresses"]  # its Elastic IP
    assert instance.total == round(gateway.total - 5.50 + 1.20, 2)
    per_az = lines(
        cost.estimate(
            small_config(network_egress="nat_instance", network_nat_instance_type="t4g.micro", network_nat_per_az=True),
            PRICES,
        )
    )
    assert per_az["NAT instance"] == 3.20  # 2 x (100 h x 0.008 + 0.8)
    assert per_az["Public IPv4 addresses"] == 2.00  # (2 NAT + 2 ALB) x 0.5


def test_one_nat_gateway_per_az_and_one_public_address_each() -> None:
    shared = lines(cost.estimate(small_config(network_az_count=3), PRICES))
    per_az = lines(cost.estimate(small_config(network_az_count=3, network_nat_per_az=True), PRICES))
    assert shared["NAT gateway"] == 5.50  # one NAT; processed data does not depend on the count
    assert per_az["NAT gateway"] == 15.50  # 3 x 100 h x 0.05 + 0.50
    assert shared["Public IPv4 addresses"] == 2.00  # (1 NAT + 3 ALB) x 0.5
    assert per_az["Public IPv4 addresses"] == 3.00  # (3 NAT + 3 ALB) x 0.5


def test_the_egress_options_are_compared_outside_the_total() -> None:
    result = cost.estimate(small_config(network_egress="nat_instance", network_nat_instance_type="t4g.nano"), PRICES)
    options = {option.option: option for option in result.egress_options}
    assert {name: option.monthly for name, option in options.items()} == {
        "NAT gateway": 6.00,  # 5.50 + its Elastic IP 0.50
        "NAT instance (t4g.nano)": 1.70,  # 1.20 + 0.50
        "VPC interface endpoints": 12.10,  # 6 endpoints x 2 AZ x 100 h x 0.01 + 10 GB x 0.01
    }
    assert [name for name, option in options.items() if option.chosen] == ["NAT instance (t4g.nano)"]
    assert [name for name, option in options.items() if not option.internet] == ["VPC interface endpoints"]
    assert result.interface_endpoints == ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "monitoring", "ecs"]
    with_exec = cost.estimate(small_config(ecs_exec_enabled=True), PRICES)
    assert with_exec.interface_endpoints[-1] == "ssmmessages"
    assert with_exec.egress_options[2].monthly == 14.10  # 7 endpoints
    assert "VPC interface endpoints" not in lines(result)


def test_levers_show_what_one_other_value_changes() -> None:
    config = nodes_config()
    variables = model.Variables(config)
    total = cost.estimate(variables, PRICES).total
    found = {lever.variable: lever for lever in cost.levers(variables, PRICES, total)}
    assert set(found) == {
        "ecs_cpu_architecture",
        "airflow_nodes_colocate",
        "airflow_nodes_flower_enabled",
        "airflow_nodes_worker_capacity_provider",
        "airflow_nodes_worker_min_count",
        "airflow_ecs_executor_enabled",
        "network_egress",
        "network_nat_per_az",
        "database_multi_az",
    }  # the others (api-server count, broker_backend) are not variables of this config
    assert (found["network_egress"].current, found["network_egress"].alternative) == ("nat_instance", "nat_gateway")
    gateway = cost.estimate({**config, "network_egress": "nat_gateway"}, PRICES).total
    assert found["network_egress"].delta == round(gateway - total, 2)
    assert found["airflow_nodes_colocate"].delta == 3.96  # the two nodes' own tasks and their metrics calls
    assert found["ecs_cpu_architecture"].delta > 0


# --- reading values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "extra", "expected"),
    [
        ("{{ flag }}", {"flag": "yes"}, "yes"),
        ("{{ flag | bool }}", {"flag": "yes"}, True),
        ("{{ not flag | bool }}", {"flag": "true"}, False),
        ("{{ not (flag | bool) }}", {"flag": False}, True),
        ("{{ count | int }}", {"count": "3"}, 3),
        ("{{ missing | default('X86_64') }}", {}, "X86_64"),
        ("{{ arch | default('X86_64') }}", {"arch": "ARM64"}, "ARM64"),
        ("{{ chained }}", {"chained": "{{ flag }}", "flag": 7}, 7),
    ],
)
def test_references_are_followed_without_ansible(value: str, extra: dict, expected: Any) -> None:
    assert model.Variables({"v": value, **extra}).resolve("v") == expected


def test_flags_and_numbers_given_as_strings_work_like_ansible_extra_vars() -> None:
    result = cost.estimate(small_config(database_multi_az="true", network_az_count="2", worker_count="2"), PRICES)
    assert lines(result)["RDS instance"] == 4.00
    assert result.total == 53.97


def test_multi_az_doubles_the_instance_and_the_storage() -> None:
    single = lines(cost.estimate(small_config(), PRICES))
    multi = lines(cost.estimate(small_config(database_multi_az=True), PRICES))
    assert (multi["RDS instance"], multi["RDS storage"]) == (4.00, 4.00)
    assert (single["RDS instance"], single["RDS storage"]) == (2.00, 2.00)


def amazonmq_config(mode: str, instance_type: str) -> dict[str, Any]:
    config = small_config(broker_backend="amazonmq")
    config["__messaging_services"][0]["enabled"] = "{{ __messaging_on_fargate }}"
    return {**config, "messaging_amazonmq_deployment_mode": mode, "messaging_amazonmq_instance_type": instance_type}


def test_amazonmq_replaces_the_fargate_broker_and_a_cluster_bills_three_nodes() -> None:
    single = lines(cost.estimate(amazonmq_config("SINGLE_INSTANCE", "mq.m7g.medium"), PRICES))
    assert "Fargate broker" not in single
    assert single["Amazon MQ broker"] == 10.50  # 1 x 100 h x 0.1 + 5 GB x 0.1
    assert single["Cloud Map"] == 2.50  # the Fargate broker's registered instance is gone: 0.5 + 5 M x 0.4
    cluster = lines(cost.estimate(amazonmq_config("CLUSTER_MULTI_AZ", "mq.m7g.large"), PRICES))
    assert cluster["Amazon MQ broker"] == 90.50  # 3 x 100 h x 0.3 + 0.5
    fargate = lines(cost.estimate(small_config(broker_backend="rabbitmq_fargate"), PRICES))
    assert "Amazon MQ broker" not in fargate and fargate["Fargate broker"] == 4.80


def test_a_maximum_count_is_shown_but_not_totalled() -> None:
    result = cost.estimate(small_config(airflow_nodes_worker_max_count=5), PRICES)
    assert lines(result)["Fargate worker at max"] == 48.00  # 5 x 9.60
    assert result.total == 49.97
    assert result.at_max_extra == pytest.approx(28.80)  # 48.00 - 19.20


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"broker_cpu": "{{ 512 * 2 }}"}, "is a template"),
        ({"database_instance_class": "db.x9.huge"}, "no price rds_postgresql.instance_hour.db.x9.huge"),
        ({"network_az_count": "two"}, "network_az_count must be a whole number"),
        ({"database_multi_az": "maybe"}, "database_multi_az must be a boolean"),
        ({"__messaging_services": [], "__airflow_nodes_services": []}, "no ECS services"),
        ({"broker_backend": "sqs"}, "broker_backend must be one of rabbitmq_fargate, amazonmq"),
        ({"ecs_cpu_architecture": "RISCV"}, "ecs_cpu_architecture must be one of ARM64, X86_64"),
        ({"worker_provider": "EC2"}, "capacity_provider must be one of FARGATE, FARGATE_SPOT"),
        ({"network_egress": "vpn"}, "network_egress must be one of nat_gateway, nat_instance"),
        (
            {"network_egress": "nat_instance", "network_nat_instance_type": "t9g.huge"},
            "no price nat_instance.instance_hour.t9g.huge",
        ),
    ],
)
def test_unusable_values_are_named(overrides: dict, message: str) -> None:
    with pytest.raises(cost.CostError, match=re.escape(message)):
        cost.estimate(small_config(**overrides), PRICES)


@pytest.mark.parametrize("name", ["network_az_count", "__monitoring_alarms", "__messaging_services"])
def test_a_missing_variable_is_named(name: str) -> None:
    variables = small_config()
    del variables[name]
    with pytest.raises(cost.CostError, match=f"{name} is not defined"):
        cost.estimate(variables, PRICES)


# --- precedence --------------------------------------------------------------------------------------


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def layered_project(tmp_path: Path) -> tuple[Path, list[str]]:
    """A project where variable k<i> is set by layer i and by every lower layer (to that layer's name)."""
    inventory = tmp_path / "inventories" / "test"
    writers = [
        ("role defaults", lambda data: write(tmp_path / "roles" / "r" / "defaults" / "main.yml", data)),
        ("inventory file group vars", None),
        ("inventory group_vars/all", lambda data: write(inventory / "group_vars" / "all.yml", data)),
        ("project group_vars/all", lambda data: write(tmp_path / "group_vars" / "all" / "main.yml", data)),
        (
            "inventory group_vars/airflow_ecs",
            lambda data: write(inventory / "group_vars" / "airflow_ecs" / "a.yml", data),
        ),
        ("project group_vars/airflow_ecs", lambda data: write(tmp_path / "group_vars" / "airflow_ecs.yml", data)),
        ("inventory file host vars", None),
        ("inventory host_vars/localhost", lambda data: write(inventory / "host_vars" / "localhost.yml", data)),
        ("project host_vars/localhost", lambda data: write(tmp_path / "host_vars" / "localhost" / "x.yml", data)),
        ("role vars", lambda data: write(tmp_path / "roles" / "r" / "vars" / "main.yml", data)),
    ]
    names = [name for name, _ in writers]
    layer_data = [{f"k{i}": name for i in range(len(names)) if i >= index} for index, name in enumerate(names)]
    for (_, writer), data in zip(writers, layer_data, strict=True):
        if writer:
            writer(data)
    hosts = {
        "all": {
            "vars": {key: f"{value} (all)" for key, value in layer_data[1].items()},
            "children": {
                "airflow_ecs": {
                    "vars": layer_data[1],
                    "hosts": {"localhost": layer_data[6]},
                }
            },
        }
    }
    write(inventory / "hosts.yml", hosts)
    return tmp_path, names


def test_each_layer_overrides_the_ones_below_it(tmp_path: Path) -> None:
    root, names = layered_project(tmp_path)
    variables = cost.load_variables(root, "inventories/test")
    assert [variables[f"k{i}"] for i in range(len(names))] == names
    layers = [name for name, _ in cost.variable_layers(root, "inventories/test")]
    assert layers == [*names, "extra vars"]


def test_extra_vars_override_everything_in_order(tmp_path: Path) -> None:
    root, names = layered_project(tmp_path)
    write(root / "more.yml", {"k2": "from @file", "k3": "from @file"})
    variables = cost.load_variables(
        root, "inventories/test", ["k0=one k1='two words'", "@more.yml", '{"k3": 3, "k9": [1]}']
    )
    assert variables["k0"] == "one"
    assert variables["k1"] == "two words"
    assert variables["k2"] == "from @file"
    assert variables["k3"] == 3
    assert variables["k9"] == [1]
    assert variables["k4"] == names[4]


def test_the_aws_inventory_overrides_role_defaults_and_extra_vars_override_it() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "network" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert (defaults["network_az_count"], defaults["network_nat_per_az"]) == (2, False)

    aws = cost.load_variables(ROOT, "inventories/aws")
    assert (aws["network_az_count"], aws["network_nat_per_az"], aws["database_multi_az"]) == (3, True, True)
    assert aws["airflow_nodes_worker_capacity_provider"] == "FARGATE_SPOT"
    assert aws["database_instance_class"] == "db.t4g.medium"  # its connection budget needs more than the default

    overridden = cost.load_variables(ROOT, "inventories/aws", ["network_az_count=2 database_multi_az=false"])
    result = cost.estimate(overridden, cost.read_yaml(cost.DEFAULT_PRICES))
    assert detail(result, "Public IPv4 addresses") == "2 NAT EIP + 2 ALB"  # a NAT per AZ, in 2 AZs now
    assert lines(result)["RDS instance"] == 47.45  # db.t4g.medium: 0.065 x 730, Single-AZ again


def test_emulator_inventory_uses_gp2_over_the_role_default() -> None:
    assert cost.load_variables(ROOT, "inventories/emulator")["database_storage_type"] == "gp2"


def test_precedence_matches_ansible_itself() -> None:
    """ansible (ad hoc, --playbook-dir .) reads the same inventory / group_vars / extra vars values."""
    names = ["aws_region", "network_az_count", "network_nat_per_az", "database_multi_az", "aws_is_emulator"]
    extra = "database_multi_az=false"
    message = "{{ {" + ", ".join(f"'{name}': {name}" for name in names) + "} }}"
    command = [str(BIN / "ansible"), "localhost", "-i", "inventories/aws", "--playbook-dir", ".", "-e", extra]
    proc = subprocess.run(
        [*command, "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": message})],
        cwd=ROOT,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    from_ansible = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    ours = cost.load_variables(ROOT, "inventories/aws", [extra])
    assert from_ansible == {name: ours[name] for name in names}


# --- the real price file and inventories ---------------------------------------------------------------


def test_price_file_has_its_sources_a_date_and_every_priced_choice() -> None:
    prices = cost.read_yaml(cost.DEFAULT_PRICES)
    assert prices["region"] == "us-east-1" and prices["as_of"]
    assumptions = {"workload", "egress_traffic"}  # usage guesses, no prices
    for section, values in prices.items():
        if isinstance(values, dict) and section not in assumptions:
            assert values.get("source"), f"{section} has no source"
    for family, sizes in (("t4g", ("micro", "small", "medium")), ("t3", ("micro", "small", "medium", "large"))):
        for size in sizes:
            assert f"db.{family}.{size}" in prices["rds_postgresql"]["instance_hour"]
    assert prices["fargate"]["X86_64"] == {"vcpu_hour": 0.04048, "gb_hour": 0.004445}
    assert prices["fargate"]["ARM64"] == {"vcpu_hour": 0.03238, "gb_hour": 0.00356}
    assert {"t4g.nano", "t4g.micro", "t4g.small"} <= set(prices["nat_instance"]["instance_hour"])  # and the rest
    assert set(prices["mwaa"]["environment_hour"]) == {"mw1.micro", "mw1.small"}
    assert set(prices["workload"]) == {
        "assumed_worker_busy_hours_per_month",
        "assumed_workers_when_busy",
        "assumed_ecs_executor_task_minutes_per_month",
    }


@pytest.mark.parametrize("inventory", ["inventories/emulator", "inventories/aws"])
def test_the_default_stack_is_estimated(inventory: str) -> None:
    prices = cost.read_yaml(cost.DEFAULT_PRICES)
    result = cost.estimate(cost.load_variables(ROOT, inventory), prices)
    items = lines(result)
    assert {"Fargate rabbitmq", "Fargate api-server", "Fargate scheduler", "Fargate worker"} <= set(items)
    assert "11 secrets" in detail(result, "Secrets Manager")  # 7 generated secrets + 4 connection strings
    assert result.mwaa["mw1.small"] == 357.70
    assert [option.chosen for option in result.egress_options].count(True) == 1
    assert all(line.monthly >= 0 for line in result.lines)
    assert 0 < result.idle_hour * 730 <= result.total < 1000


def new_defaults() -> list[str]:
    """The issue's cheaper defaults as -e overrides (for a tree where some have not landed yet): ARM64, the
    dag-processor and triggerer colocated, Flower off, Spot workers 0-4, a t4g.nano NAT instance, the ECS
    executor at 0.5 vCPU / 1 GB, and the worker-demand publisher a container of the scheduler task."""
    role_vars = yaml.safe_load((ROOT / "roles" / "airflow_nodes" / "vars" / "main.yml").read_text(encoding="utf-8"))
    services = []
    for spec in copy.deepcopy(role_vars["__airflow_nodes_services"]):
        if spec["name"] == "worker-demand":
            continue
        if spec["name"] in ("dag-processor", "triggerer"):
            spec["enabled"] = "{{ not airflow_nodes_colocate | bool }}"
        if spec["name"] == "flower":
            spec["enabled"] = "{{ airflow_nodes_flower_enabled | bool }}"
        services.append(spec)
    knobs = {
        "ecs_cpu_architecture": "ARM64",
        "airflow_nodes_colocate": True,
        "airflow_nodes_flower_enabled": False,
        "airflow_nodes_worker_capacity_provider": "FARGATE_SPOT",
        "airflow_nodes_worker_min_count": 0,
        "airflow_nodes_worker_max_count": 4,
        "network_egress": "nat_instance",
        "network_nat_instance_type": "t4g.nano",
        "airflow_ecs_executor_enabled": True,
        "airflow_ecs_executor_cpu": 512,
        "airflow_ecs_executor_memory": 1024,
    }
    return [json.dumps({**knobs, "__airflow_nodes_services": services})]


def default_inventory_estimate(extra_vars: list[str] | None = None):
    prices = cost.read_yaml(cost.DEFAULT_PRICES)
    return cost.estimate(cost.load_variables(ROOT, "inventories/emulator", extra_vars), prices)


def test_the_new_defaults_as_extra_vars_price_what_the_issue_describes() -> None:
    result = default_inventory_estimate(new_defaults())
    items = lines(result)
    for gone in (
        "Fargate dag-processor",
        "Fargate triggerer",
        "Fargate flower",
        "Fargate worker-demand",
        "NAT gateway",
    ):
        assert gone not in items
    assert detail(result, "Fargate scheduler").endswith("ARM64; with dag-processor, triggerer, worker-demand")
    assert detail(result, "Fargate worker").endswith("x 0, ARM64, Spot")
    assert {"Fargate worker autoscaled", "Fargate ECS executor tasks", "NAT instance"} <= set(items)


def test_default_inventory_is_at_most_its_ceiling() -> None:
    """The default inventory (the emulator's, priced as if on AWS) with the project's real defaults."""
    result = default_inventory_estimate()
    breakdown = "\n".join(f"{line.item}: {line.monthly:.2f}" for line in result.lines if line.in_total)
    assert result.total <= BUDGET_USD, f"{result.total:.2f} USD/month > {BUDGET_USD}:\n{breakdown}"


def test_cli_prints_the_breakdown_ratio_idle_hour_egress_and_levers(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["-i", "inventories/aws"]) == 0
    out = capsys.readouterr().out
    for text in (
        "Total",
        "Always on (no DAG running)",
        "Ratio to MWAA's smallest environment (mw1.micro",
        "Idle hour:",
        "Egress from the private subnets",
        "VPC interface endpoints",
        "Endpoints alone give the AWS APIs only",
        "Levers",
        "eu-west-1",
    ):
        assert text in out, text
    assert cost.main(["-e", "database_instance_class=db.x1.tiny"]) == 2
    assert "db.x1.tiny" in capsys.readouterr().err


def test_json_holds_every_line_and_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["prices"] == {"file": "prices-us-east-1.yml", "region": "us-east-1", "as_of": "2026-11-26"}
    assert document["total"] == round(sum(line["monthly"] for line in document["lines"] if line["in_total"]), 2)
    assert document["always_on"] == round(
        sum(line["monthly"] for line in document["lines"] if line["in_total"] and not line["per_run"]), 2
    )
    assert document["idle_hour"] == round(document["always_on"] / 730, 4)
    assert document["mwaa_smallest"]["class"] == "mw1.micro"
    assert document["mwaa_smallest"]["ratio"] == round(document["total"] / document["mwaa"]["mw1.micro"], 2)
    assert len(document["egress_options"]) == 3 and document["interface_endpoints"]
    assert {"variable", "current", "alternative", "delta", "problem"} <= set(document["levers"][0])
    assert document["total_at_max"] >= document["total"] and document["notes"]


# --- the deploy summary's lookup (plugins/lookup/cost_estimate.py) --------------------------------------


def playbook_messages(path: Path, args: list[str]) -> dict[str, str]:
    """Run a playbook in check mode with the JSON callback: each task's message by task name."""
    result = run_playbook(
        str(path),
        {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"},
        args=[*args, "--check"],
        timeout=120,
    )
    assert result.returncode == 0, result.output[-3000:]
    document, _ = json.JSONDecoder().raw_decode(result.output[result.output.index("{") :])
    return {
        task["task"]["name"]: task["hosts"]["localhost"].get("msg", "")
        for play in document["plays"]
        for task in play["tasks"]
    }


def estimate_task(name: str, **task_vars: Any) -> dict[str, Any]:
    task = {"name": name, "ansible.builtin.debug": {"msg": "{{ lookup('cost_estimate') }}"}}
    return {**task, "vars": task_vars} if task_vars else task


def test_the_summary_lookup_prices_the_plays_own_variables(tmp_path: Path) -> None:
    """Templates the play's values (an expression make cost refuses too), falls back to us-east-1 prices with
    a word when the region has none, and reports instead of failing when a variable is missing."""
    config = small_config(broker_cpu="{{ 512 * 2 }}", worker_count="{{ [1, 2] | max }}")
    incomplete = small_config()
    del incomplete["network_az_count"]
    plays = [
        {
            "name": "A stack",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": config,
            "tasks": [estimate_task("priced"), estimate_task("elsewhere", aws_region="eu-west-1")],
        },
        {
            "name": "Not one",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": incomplete,
            "tasks": [estimate_task("missing")],
        },
    ]
    path = tmp_path / "estimate.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    messages = playbook_messages(path, LOCALHOST_ARGS)

    expected = cost.estimate(small_config(), cost.read_yaml(cost.DEFAULT_PRICES)).total  # literals: same stack
    figure = f"${expected:,.2f}/month at us-east-1 list prices (make cost for the breakdown)"
    assert messages["priced"] == f"Estimated cost: {figure}"
    assert messages["elsewhere"] == f"Estimated cost: no price data for eu-west-1; {figure}"
    assert messages["missing"] == "Estimated cost: not available (variable network_az_count is not defined)"


def test_the_summary_lookup_and_make_cost_agree_on_the_project(tmp_path: Path) -> None:
    """The deploy play's roles loaded (their tasks skipped), the lookup sees what the play sees; its figure is
    make cost's for the same inventory."""
    group_vars = yaml.safe_load((ROOT / "group_vars" / "all" / "main.yml").read_text(encoding="utf-8"))
    play = {
        "name": "The deploy play's variables",
        "hosts": "airflow_ecs",
        "gather_facts": False,
        "roles": group_vars["deploy_roles"],
        "tasks": [{**estimate_task("project"), "tags": ["cost_probe"]}],
    }
    path = ROOT / f".cost-probe-{tmp_path.name}.yml"  # beside group_vars/, as site.yml
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    try:
        # "always" also tags the roles' argument checks and output facts: only the probe runs.
        messages = playbook_messages(
            path, ["-i", "inventories/emulator", "--tags", "cost_probe", "--skip-tags", "always"]
        )
    finally:
        path.unlink()
    total = default_inventory_estimate().total
    assert (
        messages["project"]
        == f"Estimated cost: ${total:,.2f}/month at us-east-1 list prices (make cost for the breakdown)"
    )


def test_the_deploy_summary_prints_the_estimate() -> None:
    tasks = yaml.safe_load((ROOT / "roles" / "airflow_nodes" / "tasks" / "main.yml").read_text(encoding="utf-8"))
    summary = next(task for task in tasks if task["name"] == "Summarise the deployment")
    assert "{{ lookup('cost_estimate') }}" in summary["vars"]["__airflow_nodes_summary"]


def test_every_nat_instance_type_the_preflight_accepts_has_a_price():
    accepted = yaml.safe_load((ROOT / "roles/network/vars/main.yml").read_text())["__network_nat_instance_types"]
    prices = yaml.safe_load((ROOT / "cost/prices-us-east-1.yml").read_text())["nat_instance"]["instance_hour"]
    assert sorted(set(accepted) - set(prices)) == []
