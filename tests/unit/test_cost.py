"""scripts/cost.py: the arithmetic (hand-computed), Ansible's variable precedence, Spot, Multi-AZ, NAT per AZ."""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def load_cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_ecs_cost", ROOT / "scripts" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


cost = load_cost()

# Round prices, 100 hours a month: every expected figure below is worked out by hand.
PRICES: dict[str, Any] = {
    "region": "us-east-1",
    "hours_per_month": 100,
    "fargate": {"vcpu_hour": 0.04, "gb_hour": 0.004, "spot_discount": 0.7},
    "rds_postgresql": {
        "instance_hour": {"db.t4g.micro": 0.02},
        "multi_az_factor": 2,
        "storage_gb_month": {"gp2": 0.1, "gp3": 0.1},
    },
    "nat_gateway": {"hour": 0.05, "gb_processed": 0.05, "assumed_gb_per_month": 10},
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
    "mwaa": {"small_environment_hour": 0.5},
    "cloudwatch": {"metric_month": 0.3, "alarm_month": 0.1, "dashboard_month": 2.0, "requests_per_1k": 0.01},
    "amazon_mq_rabbitmq": {
        "instance_hour": {"mq.m7g.medium": 0.1, "mq.m7g.large": 0.3},
        "cluster_nodes": 3,
        "storage_gb_month": 0.1,
        "assumed_storage_gb": 5,
    },
}


def small_config(**overrides: Any) -> dict[str, Any]:
    """A broker (1 vCPU / 2 GB, in Cloud Map), two workers (2 vCPU / 4 GB) and a one-off task that is no service."""
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


def lines(estimate) -> dict[str, float]:
    return {line.item: line.monthly for line in estimate.lines}


def test_arithmetic_of_a_small_config() -> None:
    result = cost.estimate(small_config(), PRICES)
    assert lines(result) == {
        "Fargate broker": 4.80,  # (1 x 0.04 + 2 x 0.004) x 100 h
        "Fargate worker": 19.20,  # 2 x (2 x 0.04 + 4 x 0.004) x 100 h
        "RDS instance": 2.00,  # 0.02 x 100 h
        "RDS storage": 2.00,  # 20 GB x 0.1
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
    assert result.total == 49.34
    assert result.mwaa_small == 50.00
    assert result.notes == [note for note in result.notes if note.startswith("not included")]


def test_worker_autoscaling_adds_the_publisher_and_its_metrics_and_shows_the_maximum() -> None:
    enabled = "{{ __airflow_nodes_worker_autoscaled }}"
    publisher = {"name": "worker-demand", "enabled": enabled, "cpu": 256, "memory": 512, "sidecars": []}
    config = small_config()
    config["__airflow_nodes_services"] = [*config["__airflow_nodes_services"], publisher]
    fixed = cost.estimate({**config, "airflow_nodes_worker_min_count": 2, "airflow_nodes_worker_max_count": 2}, PRICES)
    assert "Fargate worker-demand" not in lines(fixed)
    assert fixed.total == 49.34

    scaled = cost.estimate({**config, "airflow_nodes_worker_min_count": 0, "airflow_nodes_worker_max_count": 4}, PRICES)
    assert lines(scaled)["Fargate worker-demand"] == 1.20  # (0.25 x 0.04 + 0.5 x 0.004) x 100 h
    # + DesiredWorkers and ActiveTasks, their alarm and the publisher's 6000 calls: 0.6 + 0.1 + 0.06
    assert lines(scaled)["CloudWatch metrics and alarms"] == round(4.12 + 0.76, 2)
    assert lines(scaled)["Fargate worker at max"] == 38.40  # 4 x (2 x 0.04 + 4 x 0.004) x 100 h, not totalled
    assert scaled.total == round(49.34 + 1.20 + 0.76, 2)


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


def test_an_unknown_broker_backend_or_instance_type_is_named() -> None:
    with pytest.raises(cost.CostError, match="broker_backend must be one of rabbitmq_fargate, amazonmq"):
        cost.estimate(small_config(broker_backend="sqs"), PRICES)
    with pytest.raises(cost.CostError, match=r"no price amazon_mq_rabbitmq.instance_hour.mq.m9.large"):
        cost.estimate(amazonmq_config("SINGLE_INSTANCE", "mq.m9.large"), PRICES)


def test_fargate_spot_costs_thirty_percent() -> None:
    on_demand = lines(cost.estimate(small_config(), PRICES))
    spot = lines(cost.estimate(small_config(worker_provider="FARGATE_SPOT"), PRICES))
    assert spot["Fargate worker"] == 5.76  # 19.20 x (1 - 0.7)
    assert spot["Fargate broker"] == on_demand["Fargate broker"]


def test_multi_az_doubles_the_instance_and_the_storage() -> None:
    single = lines(cost.estimate(small_config(), PRICES))
    multi = lines(cost.estimate(small_config(database_multi_az=True), PRICES))
    assert (multi["RDS instance"], multi["RDS storage"]) == (4.00, 4.00)
    assert (single["RDS instance"], single["RDS storage"]) == (2.00, 2.00)


def test_one_nat_gateway_per_az_and_one_public_address_each() -> None:
    shared = lines(cost.estimate(small_config(network_az_count=3), PRICES))
    per_az = lines(cost.estimate(small_config(network_az_count=3, network_nat_per_az=True), PRICES))
    assert shared["NAT gateway"] == 5.50  # one NAT; processed data does not depend on the count
    assert per_az["NAT gateway"] == 15.50  # 3 x 100 h x 0.05 + 0.50
    assert shared["Public IPv4 addresses"] == 2.00  # (1 NAT + 3 ALB) x 0.5
    assert per_az["Public IPv4 addresses"] == 3.00  # (3 NAT + 3 ALB) x 0.5


def test_a_maximum_count_is_shown_but_not_totalled() -> None:
    result = cost.estimate(small_config(airflow_nodes_worker_max_count=5), PRICES)
    assert lines(result)["Fargate worker at max"] == 48.00  # 5 x 9.60
    assert result.total == 49.34
    assert result.at_max_extra == pytest.approx(28.80)  # 48.00 - 19.20


def test_flags_and_numbers_given_as_strings_work_like_ansible_extra_vars() -> None:
    result = cost.estimate(small_config(database_multi_az="true", network_az_count="2", worker_count="2"), PRICES)
    assert lines(result)["RDS instance"] == 4.00
    assert result.total == 53.34


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"broker_cpu": "{{ 512 * 2 }}"}, "is a template"),
        ({"database_instance_class": "db.x9.huge"}, "no price rds_postgresql.instance_hour.db.x9.huge"),
        ({"network_az_count": "two"}, "network_az_count must be a whole number"),
        ({"database_multi_az": "maybe"}, "database_multi_az must be a boolean"),
        ({"__messaging_services": [], "__airflow_nodes_services": []}, "no ECS services"),
    ],
)
def test_unusable_values_are_named(overrides: dict, message: str) -> None:
    with pytest.raises(cost.CostError, match=re.escape(message)):
        cost.estimate(small_config(**overrides), PRICES)


def test_a_missing_variable_is_named() -> None:
    variables = small_config()
    del variables["network_az_count"]
    with pytest.raises(cost.CostError, match="network_az_count is not defined"):
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
    assert aws["database_instance_class"] == "db.t4g.micro"  # not set by the inventory: the role default

    overridden = cost.load_variables(ROOT, "inventories/aws", ["network_az_count=2 database_multi_az=false"])
    result = cost.estimate(overridden, cost.read_yaml(cost.DEFAULT_PRICES))
    assert next(line.detail for line in result.lines if line.item == "NAT gateway").startswith("2 x 730 h")
    assert lines(result)["RDS instance"] == 11.68  # 0.016 x 730, Single-AZ again


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


def test_price_file_has_every_instance_class_and_a_date() -> None:
    prices = cost.read_yaml(cost.DEFAULT_PRICES)
    assert prices["region"] == "us-east-1" and prices["as_of"]
    for family, sizes in (("t4g", ("micro", "small", "medium")), ("t3", ("micro", "small", "medium", "large"))):
        for size in sizes:
            assert f"db.{family}.{size}" in prices["rds_postgresql"]["instance_hour"]
    assert prices["fargate"]["vcpu_hour"] == 0.04048
    assert prices["fargate"]["gb_hour"] == 0.004445


@pytest.mark.parametrize("inventory", ["inventories/emulator", "inventories/aws"])
def test_the_default_stack_is_estimated(inventory: str) -> None:
    prices = cost.read_yaml(cost.DEFAULT_PRICES)
    result = cost.estimate(cost.load_variables(ROOT, inventory), prices)
    items = lines(result)
    # the seven services: RabbitMQ and the six Airflow nodes; 7 generated secrets + 4 connection strings
    assert [item for item in items if item.startswith("Fargate")] == [
        f"Fargate {name}"
        for name in ("rabbitmq", "api-server", "scheduler", "dag-processor", "triggerer", "worker", "flower")
    ]
    assert items["Fargate api-server"] == 72.08  # two tasks x 730 x (1 x 0.04048 + 2 x 0.004445)
    assert "11 secrets" in next(line.detail for line in result.lines if line.item == "Secrets Manager")
    assert result.mwaa_small == 357.70
    assert 0 < result.total < 1000


def test_cli_prints_the_table_and_refuses_unknown_classes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["-i", "inventories/aws"]) == 0
    out = capsys.readouterr().out
    assert "Total" in out and "MWAA" in out and "eu-west-1" in out
    assert cost.main(["-e", "database_instance_class=db.x1.tiny"]) == 2
    assert "db.x1.tiny" in capsys.readouterr().err
