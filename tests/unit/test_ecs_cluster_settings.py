"""library/ecs_cluster_settings.py against a moto server, through the real `ansible` CLI.

The module's calls in the create / re-run / repair / delete tests go through the weather proxy
(embedded_aws/weather.py, no latency, no faults), which counts every request it forwards by operation: that
count is what the module really sent. What the cluster holds is read with boto3 straight from the emulator.

moto 5.2.5 knows cluster settings, tags and capacity providers, with quirks the tests live with:
- it has no UpdateClusterSettings (HTTP 500), which is why the module uses UpdateCluster(settings=...);
- it returns `settings` even without include=SETTINGS, and omits `tags` when a cluster has none;
- DeleteCluster leaves the cluster listed as INACTIVE, as AWS does for a while.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_runner import run_counted, run_module
from emulator import Emulator

from embedded_aws.weather import WeatherProxy

MODULE = "ecs_cluster_settings"
NAME = "airflow"
TAGS = {"airflow-ecs:stack": "airflow", "team": "data"}
FARGATE_FIRST = [{"capacity_provider": "FARGATE", "weight": 1, "base": 0}]
# What roles/ecs_cluster passes: the cluster is created when missing.
ROLE_ARGS = {
    "cluster": NAME,
    "capacity_providers": ["FARGATE", "FARGATE_SPOT"],
    "default_capacity_provider_strategy": FARGATE_FIRST,
    "container_insights": "enabled",
    "tags": TAGS,
    "state": "present",
}
DESCRIBE = "ecs DescribeClusters"


@pytest.fixture(autouse=True)
def ecs_service_linked_role(clean_emulator: Emulator) -> None:
    """As the ecs_cluster role makes it first: a new account's first cluster with capacity providers fails
    without it (tests/unit/test_iam_service_linked_roles.py)."""
    clean_emulator.client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")


@pytest.fixture
def cluster_arn(clean_emulator: Emulator) -> str:
    """A fresh cluster made with boto3: Container Insights disabled (moto's default), no tags."""
    return clean_emulator.client("ecs").create_cluster(clusterName=NAME)["cluster"]["clusterArn"]


def run(proxy: WeatherProxy, args: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """One module run through the proxy: its result and the AWS calls it made, by operation."""
    return run_counted(MODULE, proxy, args, **kwargs)


def capacity_in_aws(emulator: Emulator) -> dict[str, Any]:
    """The cluster's status, capacity providers and default strategy as ECS reports them (None: no cluster)."""
    clusters = emulator.client("ecs").describe_clusters(clusters=[NAME])["clusters"]
    if not clusters:
        return {"status": None}
    return {
        "status": clusters[0]["status"],
        "capacity_providers": clusters[0].get("capacityProviders") or [],
        "strategy": clusters[0].get("defaultCapacityProviderStrategy") or [],
    }


def in_aws(emulator: Emulator) -> dict[str, Any]:
    """What ECS itself says about the cluster: its Container Insights value and its tags."""
    cluster = emulator.client("ecs").describe_clusters(clusters=[NAME], include=["SETTINGS", "TAGS"])["clusters"][0]
    insights = {s["name"]: s["value"] for s in cluster.get("settings", [])}.get("containerInsights")
    tags = {tag["key"]: tag["value"] for tag in cluster.get("tags", [])}
    return {"container_insights": insights, "tags": tags}


def test_settings_and_tags_story(clean_emulator: Emulator, cluster_arn: str) -> None:
    env = clean_emulator.env()
    enable = {"cluster": NAME, "container_insights": "enabled"}

    planned = run_module(MODULE, enable, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    unmanaged = {"capacity_providers": [], "default_capacity_provider_strategy": []}  # left alone: not given
    assert planned["diff"] == {
        "before": {"container_insights": "disabled", "execute_command_configuration": {}, "tags": {}, **unmanaged},
        "after": {"container_insights": "enabled", "execute_command_configuration": {}, "tags": {}, **unmanaged},
    }
    assert planned["cluster"]["container_insights"] == "enabled"
    assert in_aws(clean_emulator) == {"container_insights": "disabled", "tags": {}}

    enabled = run_module(MODULE, enable, env=env)
    assert enabled["changed"] is True, enabled
    cluster = enabled["cluster"]
    assert (cluster["cluster_name"], cluster["cluster_arn"], cluster["status"]) == (NAME, cluster_arn, "ACTIVE")
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert "diff" not in enabled
    assert in_aws(clean_emulator)["container_insights"] == "enabled"

    assert run_module(MODULE, enable, env=env)["changed"] is False

    tagged = run_module(MODULE, {"cluster": cluster_arn, "tags": {"stack": "airflow", "team": "data"}}, env=env)
    assert tagged["changed"] is True, tagged
    assert tagged["cluster"]["tags"] == {"stack": "airflow", "team": "data"}
    assert in_aws(clean_emulator) == {"container_insights": "enabled", "tags": {"stack": "airflow", "team": "data"}}

    merged = run_module(
        MODULE, {"cluster": NAME, "resource_tags": {"team": "platform", "owner": "me"}, "purge_tags": False}, env=env
    )
    assert merged["changed"] is True, merged
    assert in_aws(clean_emulator)["tags"] == {"stack": "airflow", "team": "platform", "owner": "me"}

    purged = run_module(MODULE, {"cluster": NAME, "tags": {"stack": "airflow"}}, env=env, diff=True)
    assert purged["changed"] is True, purged
    assert purged["diff"]["before"]["tags"] == {"stack": "airflow", "team": "platform", "owner": "me"}
    assert purged["diff"]["after"]["tags"] == {"stack": "airflow"}
    assert in_aws(clean_emulator)["tags"] == {"stack": "airflow"}

    disabled = run_module(MODULE, {"cluster": NAME, "container_insights": "disabled"}, env=env, diff=True)
    assert disabled["changed"] is True, disabled
    assert disabled["diff"]["after"] == {
        "container_insights": "disabled",
        "execute_command_configuration": {},
        "tags": {"stack": "airflow"},
        **unmanaged,
    }
    assert in_aws(clean_emulator) == {"container_insights": "disabled", "tags": {"stack": "airflow"}}


def test_ecs_exec_sessions_are_logged_where_the_configuration_says(clean_emulator: Emulator, cluster_arn: str) -> None:
    env = clean_emulator.env()
    audit = {
        "logging": "OVERRIDE",
        "logConfiguration": {"s3BucketName": "airflow-data", "s3KeyPrefix": "ecs-exec/", "s3EncryptionEnabled": True},
    }
    args = {"cluster": NAME, "execute_command_configuration": audit}
    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] and planned["diff"]["after"]["execute_command_configuration"] == audit
    assert run_module(MODULE, args, env=env)["changed"] is True
    described = clean_emulator.client("ecs").describe_clusters(clusters=[NAME], include=["CONFIGURATIONS"])
    assert described["clusters"][0]["configuration"]["executeCommandConfiguration"] == audit
    assert run_module(MODULE, args, env=env)["changed"] is False


@pytest.mark.parametrize(
    ("case", "args", "message"),
    [
        ("missing", {"cluster": "nope", "container_insights": "enabled"}, "ECS cluster 'nope' not found; create it"),
        (
            "missing, strategy only",
            {"cluster": "nope", "default_capacity_provider_strategy": FARGATE_FIRST},
            "ECS cluster 'nope' not found; create it",
        ),
        ("deleted", {"cluster": NAME, "tags": {}}, f"ECS cluster '{NAME}' not found (status INACTIVE); create it"),
        ("boolean", {"cluster": NAME, "container_insights": True}, "container_insights must be one of"),
    ],
)
def test_bad_cluster_or_value_is_refused(
    clean_emulator: Emulator, cluster_arn: str, case: str, args: dict[str, Any], message: str
) -> None:
    if case == "deleted":
        clean_emulator.client("ecs").delete_cluster(cluster=cluster_arn)
    result = run_module(MODULE, args, env=clean_emulator.env())
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert result.get("changed", False) is False


def test_cluster_is_created_in_one_call_and_a_rerun_only_reads_it(
    proxy: WeatherProxy, clean_emulator: Emulator
) -> None:
    planned, calls = run(proxy, ROLE_ARGS, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert calls == {DESCRIBE: 1}
    assert capacity_in_aws(clean_emulator) == {"status": None}  # check mode created nothing
    assert "cluster_arn" not in planned["cluster"]  # so roles/ecs_cluster publishes arn ''
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"]["capacity_providers"] == ["FARGATE", "FARGATE_SPOT"]

    created, calls = run(proxy, ROLE_ARGS, diff=True)
    assert created["changed"] is True, created
    assert calls == {DESCRIBE: 1, "ecs CreateCluster": 1}  # everything in CreateCluster, nothing read back
    cluster = created["cluster"]
    assert cluster["cluster_arn"].endswith(f":cluster/{NAME}")
    assert (cluster["status"], cluster["container_insights"], cluster["tags"]) == ("ACTIVE", "enabled", TAGS)
    assert cluster["capacity_providers"] == ["FARGATE", "FARGATE_SPOT"]
    assert cluster["default_capacity_provider_strategy"] == FARGATE_FIRST
    assert created["diff"]["after"] == planned["diff"]["after"]
    assert in_aws(clean_emulator) == {"container_insights": "enabled", "tags": TAGS}
    assert capacity_in_aws(clean_emulator) == {
        "status": "ACTIVE",
        "capacity_providers": ["FARGATE", "FARGATE_SPOT"],
        "strategy": [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}],
    }

    rerun, calls = run(proxy, ROLE_ARGS)
    assert rerun["changed"] is False, rerun
    assert calls == {DESCRIBE: 1}
    assert rerun["cluster"]["cluster_arn"] == cluster["cluster_arn"]


def test_drifted_capacity_providers_are_repaired(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    clean_emulator.client("ecs").create_cluster(
        clusterName=NAME,
        capacityProviders=["FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 1}],
        settings=[{"name": "containerInsights", "value": "enabled"}],
        tags=[{"key": key, "value": value} for key, value in TAGS.items()],
    )
    planned, calls = run(proxy, ROLE_ARGS, check=True, diff=True)
    assert planned["changed"] is True and calls == {DESCRIBE: 1}, (planned, calls)
    assert planned["diff"]["before"]["default_capacity_provider_strategy"] == [
        {"capacity_provider": "FARGATE_SPOT", "weight": 3, "base": 1}
    ]
    assert planned["diff"]["after"]["default_capacity_provider_strategy"] == FARGATE_FIRST
    assert capacity_in_aws(clean_emulator)["capacity_providers"] == ["FARGATE_SPOT"]

    repaired, calls = run(proxy, ROLE_ARGS)
    assert repaired["changed"] is True, repaired
    assert calls == {DESCRIBE: 2, "ecs PutClusterCapacityProviders": 1}  # read, repair, read back
    assert capacity_in_aws(clean_emulator) == {
        "status": "ACTIVE",
        "capacity_providers": ["FARGATE", "FARGATE_SPOT"],
        "strategy": [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}],
    }
    assert run(proxy, {**ROLE_ARGS, "capacity_providers": ["FARGATE_SPOT", "FARGATE"]})[0]["changed"] is False


def test_absent_deletes_the_cluster_and_an_inactive_one_is_gone(
    proxy: WeatherProxy, clean_emulator: Emulator, cluster_arn: str
) -> None:
    absent = {"cluster": NAME, "state": "absent"}
    planned, calls = run(proxy, absent, check=True, diff=True)
    assert planned["changed"] is True and calls == {DESCRIBE: 1}, (planned, calls)
    assert planned["diff"]["after"] == {} and planned["diff"]["before"]["container_insights"] == "disabled"
    assert capacity_in_aws(clean_emulator)["status"] == "ACTIVE"

    deleted, calls = run(proxy, absent)
    assert deleted["changed"] is True, deleted
    assert calls == {DESCRIBE: 1, "ecs DeleteCluster": 1}
    assert (deleted["cluster"]["cluster_arn"], deleted["cluster"]["status"]) == (cluster_arn, "INACTIVE")
    assert capacity_in_aws(clean_emulator)["status"] == "INACTIVE"

    again, calls = run(proxy, absent)
    assert (again["changed"], again["cluster"], calls) == (False, {}, {DESCRIBE: 1})
    assert run(proxy, {"cluster": "never-made", "state": "absent"})[0]["changed"] is False

    # The ECS Exec use (no capacity_providers) never brings it back; the role's call makes it again.
    refused, calls = run(proxy, {"cluster": NAME, "execute_command_configuration": {"logging": "DEFAULT"}})
    assert refused.get("failed") is True and "not found (status INACTIVE)" in refused["msg"], refused
    assert calls == {DESCRIBE: 1}
    recreated, calls = run(proxy, ROLE_ARGS)
    assert recreated["changed"] is True and calls == {DESCRIBE: 1, "ecs CreateCluster": 1}, (recreated, calls)
    assert capacity_in_aws(clean_emulator)["status"] == "ACTIVE"


def test_existing_cluster_only_use_never_creates_one(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    exec_only = {"cluster": NAME, "execute_command_configuration": {"logging": "DEFAULT"}, "tags": TAGS}
    for check in (True, False):
        refused, calls = run(proxy, exec_only, check=check)
        assert refused.get("failed") is True, refused
        assert f"ECS cluster '{NAME}' not found; create it first" in refused["msg"]
        assert calls == {DESCRIBE: 1}
    assert clean_emulator.client("ecs").list_clusters()["clusterArns"] == []


def test_bad_strategy_is_refused_before_any_call(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    strategy = [
        {"capacity_provider": "EC2", "weight": 1},
        {"capacity_provider": "FARGATE", "weight": 1001, "base": 1},
        {"capacity_provider": "FARGATE_SPOT", "base": 2},
    ]
    refused, calls = run(proxy, {**ROLE_ARGS, "default_capacity_provider_strategy": strategy})
    assert refused.get("failed") is True, refused
    assert refused["msg"] == (
        "default_capacity_provider_strategy names 'EC2', which is not in capacity_providers; "
        "the weight of 'FARGATE' must be 0 to 1000, not 1001; "
        "only one provider of default_capacity_provider_strategy may have a base above 0"
    )
    assert calls == {}
