"""library/ecs_services.py against a moto server, through the real `ansible` CLI."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator

MODULE = "ecs_services"
CLUSTER = "airflow"
NET: dict[str, str] = {}  # placeholder name -> emulator id, filled by the `ecs` fixture


def awsvpc(subnets: list[str], groups: list[str]) -> dict:
    return {
        "awsvpcConfiguration": {
            "subnets": [NET[s] for s in subnets],
            "securityGroups": [NET[g] for g in groups],
            "assignPublicIp": "DISABLED",
        }
    }


@pytest.fixture
def net(clean_emulator: Emulator) -> dict[str, str]:
    """Two subnets and two security groups (ECS checks that they exist)."""
    ec2 = clean_emulator.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ids = {
        f"subnet-{i}": ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)
    }
    for i in (1, 2):
        ids[f"sg-{i}"] = ec2.create_security_group(VpcId=vpc, GroupName=f"g{i}", Description="g")["GroupId"]
    return ids


@pytest.fixture
def ecs(clean_emulator: Emulator, net: dict[str, str]) -> Any:
    """A cluster and two task definition revisions made with boto3."""
    NET.update(net)
    client = clean_emulator.client("ecs")
    client.create_cluster(clusterName=CLUSTER)
    for _ in range(2):
        client.register_task_definition(
            family="airflow-worker",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "worker", "image": "apache/airflow:3.3.2"}],
        )
    return client


def service(name: str = "airflow-worker", **extra: Any) -> dict:
    return {
        "name": name,
        "task_definition": "airflow-worker:1",
        "desired_count": 2,
        "launch_type": "FARGATE",
        "network_configuration": awsvpc(["subnet-1", "subnet-2"], ["sg-1"]),
        "deployment_configuration": {
            "minimumHealthyPercent": 0,
            "maximumPercent": 200,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        },
        "tags": {"stack": "airflow"},
        **extra,
    }


def described(ecs: Any, name: str = "airflow-worker") -> dict:
    return ecs.describe_services(cluster=CLUSTER, services=[name], include=["TAGS"])["services"][0]


def test_create_update_delete_story(clean_emulator: Emulator, ecs: Any) -> None:
    env = clean_emulator.env()
    args = {"cluster": CLUSTER, "services": [service(), service("airflow-flower", desired_count=1)]}

    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert [s["arn"] for s in planned["services"]] == [None, None]
    assert ecs.list_services(cluster=CLUSTER)["serviceArns"] == []

    created = run_module(MODULE, args, env=env)
    assert created["changed"] is True, created
    worker = described(ecs)
    assert (worker["status"], worker["desiredCount"], worker["launchType"]) == ("ACTIVE", 2, "FARGATE")
    assert worker["taskDefinition"].endswith("task-definition/airflow-worker:1")
    assert worker["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [NET["sg-1"]]
    assert worker["propagateTags"] == "SERVICE"
    assert {t["key"]: t["value"] for t in worker["tags"]} == {"stack": "airflow"}

    again = run_module(MODULE, args, env=env)
    assert again["changed"] is False, again
    assert run_module(MODULE, args, env=env, check=True)["changed"] is False

    moved = service(
        task_definition="airflow-worker:2",
        desired_count=3,
        network_configuration=awsvpc(["subnet-1"], ["sg-2"]),
        tags={"stack": "airflow", "team": "data"},
    )
    predicted = run_module(MODULE, {"cluster": CLUSTER, "services": [moved]}, env=env, check=True, diff=True)
    assert predicted["services"][0]["updated"] == ["desiredCount", "networkConfiguration", "taskDefinition"], predicted
    assert predicted["diff"][0]["after"]["desiredCount"] == 3
    assert described(ecs)["desiredCount"] == 2

    updated = run_module(MODULE, {"cluster": CLUSTER, "services": [moved]}, env=env)
    assert updated["changed"] is True, updated.get("msg", updated)
    worker = described(ecs)
    assert worker["taskDefinition"].endswith(":2") and worker["desiredCount"] == 3
    # Kept from CreateService and sent with every update (an endpoint that does not report it still gets it).
    assert worker["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert updated["services"][0]["updated"] == ["desiredCount", "networkConfiguration", "taskDefinition"]
    assert worker["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [NET["sg-2"]]
    assert {t["key"]: t["value"] for t in worker["tags"]} == {"stack": "airflow", "team": "data"}
    assert run_module(MODULE, {"cluster": CLUSTER, "services": [moved]}, env=env)["changed"] is False

    names = [{"name": "airflow-worker"}, {"name": "airflow-flower"}]
    plan_delete = run_module(MODULE, {"cluster": CLUSTER, "services": names, "state": "absent"}, env=env, check=True)
    assert plan_delete["changed"] is True, plan_delete
    assert described(ecs)["status"] == "ACTIVE"
    deleted = run_module(MODULE, {"cluster": CLUSTER, "services": names, "state": "absent"}, env=env)
    assert deleted["changed"] is True, deleted
    assert described(ecs)["status"] == "INACTIVE"
    assert run_module(MODULE, {"cluster": CLUSTER, "services": names, "state": "absent"}, env=env)["changed"] is False
    gone = run_module(MODULE, {"cluster": "no-such-cluster", "services": names, "state": "absent"}, env=env)
    assert gone["changed"] is False, gone


def test_launch_type_change_and_bad_input_are_refused(clean_emulator: Emulator, ecs: Any) -> None:
    env = clean_emulator.env()
    run_module(MODULE, {"cluster": CLUSTER, "services": [service()]}, env=env)
    ec2 = run_module(MODULE, {"cluster": CLUSTER, "services": [service(launch_type="EC2")]}, env=env)
    assert "runs with launch type FARGATE, not EC2: ECS cannot change it in place" in ec2["msg"], ec2
    twice = run_module(MODULE, {"cluster": CLUSTER, "services": [service(), service()]}, env=env)
    assert twice["msg"] == "services names the same service twice: airflow-worker", twice
    both = service("airflow-x", capacity_provider_strategy=[{"capacityProvider": "FARGATE", "weight": 1}])
    refused = run_module(MODULE, {"cluster": CLUSTER, "services": [both]}, env=env)
    assert "launch_type and capacity_provider_strategy exclude each other" in refused["msg"], refused
    missing = run_module(MODULE, {"cluster": "no-such-cluster", "services": [service()]}, env=env)
    assert missing["msg"] == "Cluster 'no-such-cluster' does not exist; create it before its services", missing
    assert [s.rsplit("/", 1)[-1] for s in ecs.list_services(cluster=CLUSTER)["serviceArns"]] == ["airflow-worker"]


def test_a_load_balanced_service_keeps_its_health_check_grace_period(clean_emulator: Emulator, ecs: Any) -> None:
    env = clean_emulator.env()
    vpc = clean_emulator.client("ec2").describe_subnets(SubnetIds=[NET["subnet-1"]])["Subnets"][0]["VpcId"]
    group = clean_emulator.client("elbv2").create_target_group(
        Name="api-server", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    balanced = {"load_balancers": [{"targetGroupArn": group, "containerName": "worker", "containerPort": 8080}]}
    args = {"cluster": CLUSTER, "services": [service(**balanced, health_check_grace_period_seconds=120)]}
    assert run_module(MODULE, args, env=env)["changed"] is True
    assert described(ecs)["healthCheckGracePeriodSeconds"] == 120
    assert run_module(MODULE, args, env=env)["changed"] is False
    shorter = {"cluster": CLUSTER, "services": [service(**balanced, health_check_grace_period_seconds=60)]}
    updated = run_module(MODULE, shorter, env=env)
    assert updated["services"][0]["updated"] == ["healthCheckGracePeriodSeconds"], updated
    assert described(ecs)["healthCheckGracePeriodSeconds"] == 60


def test_ecs_exec_is_turned_on_and_off_in_place(clean_emulator: Emulator, ecs: Any) -> None:
    env = clean_emulator.env()
    on = {"cluster": CLUSTER, "services": [service(enable_execute_command=True)]}
    assert run_module(MODULE, on, env=env)["changed"] is True
    assert described(ecs)["enableExecuteCommand"] is True
    assert run_module(MODULE, on, env=env)["changed"] is False
    off = run_module(MODULE, {"cluster": CLUSTER, "services": [service()]}, env=env)
    assert off["services"][0]["updated"] == ["enableExecuteCommand"], off
    assert described(ecs).get("enableExecuteCommand", False) is False
