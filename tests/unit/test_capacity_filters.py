"""The connection budget and the quota needs (plugins/filter/capacity.py), against hand-counted figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("capacity_filters", ROOT / "plugins" / "filter" / "capacity.py")
capacity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(capacity)

DEFAULT_STACK = {
    "instance_class": "db.t4g.small",
    "pool_size": 2,
    "max_overflow": 1,
    "api_server_pool_size": 5,
    "api_server_max_overflow": 10,
    "api_server_count": 1,
    "scheduler_count": 1,
    "colocate": True,
    "worker_max_count": 4,
    "worker_maximum_percent": 100,
    "worker_concurrency": 8,
    "worker_autoscaled": True,
}


@pytest.mark.parametrize(
    ("instance_class", "gib"),
    [("db.t4g.micro", 1), ("db.t3.medium", 4), ("db.m7g.large", 8), ("db.r6g.2xlarge", 64), ("db.m5.12xlarge", 192),
     ("db.x2g.large", 32)],
)  # fmt: skip
def test_class_memory_follows_family_and_size(instance_class, gib):
    assert capacity.class_memory_gib(instance_class) == gib


@pytest.mark.parametrize(
    ("instance_class", "published"),
    [("db.t3.micro", 79), ("db.t3.small", 198), ("db.t3.medium", 413), ("db.t3.large", 856)],
)
def test_estimate_stays_at_or_below_published_max_connections(instance_class, published):
    estimate = capacity.rds_max_connections(instance_class)
    assert published * 0.9 <= estimate <= published  # conservative, within 10 %


def test_max_connections_is_capped_at_5000():
    assert capacity.rds_max_connections("db.r7g.16xlarge") == 5000


def test_unknown_class_names_the_override():
    with pytest.raises(capacity.CapacityError, match="database_max_connections"):
        capacity.rds_max_connections("db.unknown.large")


def test_unknown_class_budget_defers_its_refusal_to_after_the_live_checks():
    budget = capacity.database_connection_budget({**DEFAULT_STACK, "instance_class": "db.unknown.large"})
    assert budget["fits"] and "database_max_connections" in budget["unknown_class"]
    given = capacity.database_connection_budget({**DEFAULT_STACK, "instance_class": "db.unknown.large",
                                                 "max_connections": 400})  # fmt: skip
    assert given["unknown_class"] == "" and given["max_connections"] == 400


def test_default_stack_budget_counts_every_engine_and_the_rolling_deploy():
    budget = capacity.database_connection_budget(DEFAULT_STACK)
    rolling = {row["name"]: row["rolling"] for row in budget["components"]}
    # api-server: 1 task x 2 (rolling) x (sync + async engine) x 15; scheduler: (3 + result backend) x 2;
    # dag-processor and triggerer 3 x 2; workers 4 x 8 Celery children, stop-then-start; the publisher 1 x 2.
    assert rolling == {"api-server": 60, "scheduler": 8, "dag-processor": 6, "triggerer": 6, "worker": 32,
                       "worker-demand": 2}  # fmt: skip
    assert budget["steady"] == 73
    assert budget["worst_case"] == 114
    assert budget["usable"] == capacity.rds_max_connections("db.t4g.small") - 3 == 185
    assert budget["fits"]
    assert "worst case 114" in budget["summary"]
    assert not capacity.database_connection_budget({**DEFAULT_STACK, "instance_class": "db.t4g.micro"})["fits"]


def test_workers_side_by_side_in_a_deploy_double_their_connections():
    budget = capacity.database_connection_budget({**DEFAULT_STACK, "worker_maximum_percent": 200})
    assert {row["name"]: row["rolling"] for row in budget["components"]}["worker"] == 64
    assert budget["worst_case"] == 146


def test_migrate_beside_the_old_services_can_be_the_peak():
    budget = capacity.database_connection_budget({**DEFAULT_STACK, "maximum_percent": 100})
    assert budget["worst_case"] == budget["steady"] + 3


def test_more_workers_are_refused_naming_what_fits():
    budget = capacity.database_connection_budget({**DEFAULT_STACK, "worker_max_count": 13})
    assert not budget["fits"]
    assert "186 PostgreSQL connections" in budget["problem"]
    assert "airflow_nodes_worker_max_count at most 12 (now 13)" in budget["problem"]
    assert "database_instance_class db.t4g.medium" in budget["problem"]


def test_a_large_api_server_pool_is_refused_with_the_pool_that_fits():
    budget = capacity.database_connection_budget({**DEFAULT_STACK, "api_server_max_overflow": 40})
    assert not budget["fits"]
    best = int(budget["problem"].split("airflow_nodes_api_server_max_overflow at most ")[1].split()[0])
    assert best == 32  # (185 - 54 for the other nodes) // (1 task x 2 engines x 2 rolling)
    fitting = {**DEFAULT_STACK, "api_server_pool_size": best, "api_server_max_overflow": 0}
    assert capacity.database_connection_budget(fitting)["fits"]
    assert not capacity.database_connection_budget({**fitting, "api_server_pool_size": best + 1})["fits"]


def test_airflow_default_pools_are_refused_with_the_pool_that_fits():
    budget = capacity.database_connection_budget({**DEFAULT_STACK, "pool_size": 5, "max_overflow": 10})
    assert not budget["fits"]
    best = int(budget["problem"].split("database_max_overflow at most ")[1].split()[0])
    assert capacity.database_connection_budget({**DEFAULT_STACK, "pool_size": best, "max_overflow": 0})["fits"]
    assert not capacity.database_connection_budget({**DEFAULT_STACK, "pool_size": best + 1, "max_overflow": 0})["fits"]


def test_given_max_connections_replaces_the_estimate():
    budget = capacity.database_connection_budget(
        {**DEFAULT_STACK, "instance_class": "db.custom.x", "max_connections": 500}
    )
    assert budget["max_connections"] == 500 and budget["fits"]


def test_api_server_workers_and_separate_nodes_count():
    config = {**DEFAULT_STACK, "api_server_workers": 2, "colocate": False, "dag_processor_count": 2,
              "flower_enabled": True, "max_connections": 5000}  # fmt: skip
    rolling = {row["name"]: row["rolling"] for row in capacity.database_connection_budget(config)["components"]}
    assert rolling["api-server"] == 1 * 2 * 2 * 2 * 15
    assert rolling["dag-processor"] == 2 * 2 * 3
    assert rolling["flower"] == 2


def test_bad_number_names_the_field():
    with pytest.raises(capacity.CapacityError, match="pool_size"):
        capacity.database_connection_budget({**DEFAULT_STACK, "pool_size": "many"})


def test_quota_needs_double_rolling_services_and_add_the_executor():
    needs = capacity.stack_quota_needs(
        {
            "services": [
                {"name": "api-server", "cpu": 512, "count": 1},
                {"name": "scheduler", "cpu": 512, "count": 1},
                {"name": "worker", "cpu": 1024, "count": 4, "capacity_provider": "FARGATE_SPOT"},
                {"name": "rabbitmq", "cpu": 256, "count": 1, "maximum_percent": 100},
                {"name": "flower", "enabled": "False", "cpu": 256, "count": 1},
            ],
            "one_off_cpu": 512,
            "executor": {"cpu": 512, "tasks": 32},
            "elastic_ips": 1,
        }
    )
    # On-Demand: (0.5 + 0.5) x 2 + 0.25 + 16 executor tasks = 18.25 (the migrate task's 0.5 beside the old
    # services only: 1 + 0.25 + 16 + 0.5 = 17.75 is smaller); Spot: 4 x 1 x 2.
    assert needs["fargate_on_demand_vcpu"] == 18.25
    assert needs["fargate_spot_vcpu"] == 8
    assert needs["elastic_ips"] == 1
    assert "worker 4 x 1 x2" in needs["detail"]


def test_quota_needs_refuse_an_unknown_capacity_provider():
    with pytest.raises(capacity.CapacityError, match="EC2"):
        capacity.stack_quota_needs({"services": [{"name": "x", "cpu": 256, "count": 1, "capacity_provider": "EC2"}]})


def test_default_inventory_fits_its_database():
    """The project's defaults (role defaults as written) pass the budget they are checked against."""
    database = yaml.safe_load((ROOT / "roles/database/defaults/main.yml").read_text())
    nodes = yaml.safe_load((ROOT / "roles/airflow_nodes/defaults/main.yml").read_text())
    airflow = yaml.safe_load((ROOT / "roles/airflow/defaults/main.yml").read_text())
    budget = capacity.database_connection_budget(
        {
            "instance_class": database["database_instance_class"],
            "max_connections": database["database_max_connections"],
            "pool_size": database["database_pool_size"],
            "max_overflow": database["database_max_overflow"],
            "api_server_pool_size": nodes["airflow_nodes_api_server_pool_size"],
            "api_server_max_overflow": nodes["airflow_nodes_api_server_max_overflow"],
            "api_server_count": nodes["airflow_nodes_api_server_count"],
            "scheduler_count": nodes["airflow_nodes_scheduler_count"],
            "colocate": nodes["airflow_nodes_colocate"],
            "worker_max_count": max(nodes["airflow_nodes_worker_count"], nodes["airflow_nodes_worker_max_count"]),
            "worker_maximum_percent": nodes["airflow_nodes_worker_maximum_percent"],
            "worker_concurrency": airflow["airflow_worker_concurrency"],
            "worker_autoscaled": nodes["airflow_nodes_worker_max_count"] > nodes["airflow_nodes_worker_min_count"],
            "flower_enabled": nodes["airflow_nodes_flower_enabled"],
        }
    )
    assert budget["fits"], budget["problem"]


def test_default_inventory_fits_a_new_accounts_default_quotas():
    """A new account's Fargate quotas are 6 On-Demand and 6 Spot vCPU (embedded_aws/service_quotas.py DEFAULTS):
    the default stack must deploy there the first time. Role defaults as written, as the preflight counts them."""
    nodes = yaml.safe_load((ROOT / "roles/airflow_nodes/defaults/main.yml").read_text())
    airflow = yaml.safe_load((ROOT / "roles/airflow/defaults/main.yml").read_text())
    messaging = yaml.safe_load((ROOT / "roles/messaging/defaults/main.yml").read_text())
    assert nodes["airflow_nodes_colocate"] and not nodes["airflow_nodes_flower_enabled"]
    assert nodes["airflow_nodes_worker_on_demand_base"] == 0
    workers = max(nodes["airflow_nodes_worker_count"], nodes["airflow_nodes_worker_max_count"])
    needs = capacity.stack_quota_needs(
        {
            "services": [
                {"name": "api-server", "cpu": nodes["airflow_nodes_api_server_cpu"],
                 "count": nodes["airflow_nodes_api_server_count"]},
                {"name": "scheduler", "cpu": nodes["airflow_nodes_scheduler_cpu"],
                 "count": nodes["airflow_nodes_scheduler_count"]},
                {"name": "worker", "cpu": nodes["airflow_nodes_worker_cpu"], "count": workers,
                 "capacity_provider": nodes["airflow_nodes_worker_capacity_provider"],
                 "maximum_percent": nodes["airflow_nodes_worker_maximum_percent"]},
                {"name": "rabbitmq", "cpu": messaging["messaging_cpu"], "count": 1, "maximum_percent": 100},
            ],
            "one_off_cpu": airflow["airflow_migrate_cpu"],
            "executor": {"cpu": airflow["airflow_ecs_executor_cpu"],
                         "tasks": airflow["airflow_ecs_executor_max_tasks"]},
            "elastic_ips": 1,
        }
    )  # fmt: skip
    # On-Demand: api-server and scheduler 0.5 x 2 each in a deploy + the broker 0.25 + 4 executor tasks x 0.5;
    # Spot: 4 workers x 1 vCPU, replaced stop-then-start.
    new_account = {"on_demand": 6, "spot": 6, "elastic_ips": 5}
    assert needs["fargate_on_demand_vcpu"] == 4.25 and needs["fargate_on_demand_vcpu"] <= new_account["on_demand"]
    assert needs["fargate_spot_vcpu"] == 4 and needs["fargate_spot_vcpu"] <= new_account["spot"]
    assert needs["elastic_ips"] <= new_account["elastic_ips"]
