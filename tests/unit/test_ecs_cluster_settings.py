"""library/ecs_cluster_settings.py against a moto server, through the real `ansible` CLI.

moto 5.2.5 knows cluster settings and tags, with two quirks the tests live with:
- it has no UpdateClusterSettings (HTTP 500), which is why the module uses UpdateCluster(settings=...);
- it returns `settings` even without include=SETTINGS, and omits `tags` when a cluster has none.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator

MODULE = "ecs_cluster_settings"
NAME = "airflow"


@pytest.fixture
def cluster_arn(clean_emulator: Emulator) -> str:
    """A fresh cluster made with boto3: Container Insights disabled (moto's default), no tags."""
    return clean_emulator.client("ecs").create_cluster(clusterName=NAME)["cluster"]["clusterArn"]


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
    assert planned["diff"] == {
        "before": {"container_insights": "disabled", "execute_command_configuration": {}, "tags": {}},
        "after": {"container_insights": "enabled", "execute_command_configuration": {}, "tags": {}},
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
