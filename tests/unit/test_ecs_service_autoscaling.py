"""library/ecs_service_autoscaling.py against a moto server, through the real `ansible` CLI.

moto 5.2.5 quirks the tests live with: it gives a re-put policy a new ARN (the module then updates the
alarm's action, as it must on AWS when a policy is re-created), and deregistering a scalable target
leaves its policies behind (the module deletes alarm, policy and target one by one).
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator, endpoint_env

from embedded_aws.weather import Weather, WeatherProxy

MODULE = "ecs_service_autoscaling"
CLUSTER = "airflow"
SERVICE = "airflow-worker"
RESOURCE = f"service/{CLUSTER}/{SERVICE}"
NAME = f"{CLUSTER}-{SERVICE}-demand"
ARGS = {
    "cluster": CLUSTER,
    "service": SERVICE,
    "min_capacity": 0,
    "max_capacity": 3,
    "metric_namespace": "airflow-ecs/airflow",
    "metric_name": "DesiredWorkers",
    "tags": {"airflow-ecs:stack": "airflow"},
}


@pytest.fixture
def service(clean_emulator: Emulator) -> str:
    ecs = clean_emulator.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family=SERVICE, containerDefinitions=[{"name": "worker", "image": "apache/airflow:3.3.2", "memory": 512}]
    )
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=SERVICE, desiredCount=1)
    return SERVICE


def in_aws(emulator: Emulator) -> dict[str, Any]:
    """Bounds, steps and alarm as Application Auto Scaling and CloudWatch report them."""
    scaling = emulator.client("application-autoscaling")
    targets = scaling.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[RESOURCE])["ScalableTargets"]
    policies = scaling.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=RESOURCE)["ScalingPolicies"]
    alarms = emulator.client("cloudwatch").describe_alarms(AlarmNames=[NAME])["MetricAlarms"]
    found: dict[str, Any] = {"bounds": None, "steps": None, "alarm_actions": None}
    if targets:
        found["bounds"] = (targets[0]["MinCapacity"], targets[0]["MaxCapacity"])
    if policies:
        config = policies[0]["StepScalingPolicyConfiguration"]
        assert config["AdjustmentType"] == "ExactCapacity"
        found["steps"] = [s["ScalingAdjustment"] for s in config["StepAdjustments"]]
        found["policy_arn"] = policies[0]["PolicyARN"]
    if alarms:
        found["alarm_actions"] = alarms[0]["AlarmActions"]
        found["metric"] = (alarms[0]["Namespace"], alarms[0]["MetricName"], alarms[0]["Statistic"])
    return found


def test_autoscaling_story(clean_emulator: Emulator, service: str) -> None:
    env = clean_emulator.env()

    planned = run_module(MODULE, ARGS, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"]["min_capacity"] == 0 and planned["diff"]["after"]["max_capacity"] == 3
    assert in_aws(clean_emulator) == {"bounds": None, "steps": None, "alarm_actions": None}

    created = run_module(MODULE, ARGS, env=env)
    assert created["changed"] is True, created
    state = in_aws(clean_emulator)
    assert state["bounds"] == (0, 3)
    assert state["steps"] == [0, 1, 2, 3]  # ExactCapacity: the metric's value, clamped to 0..3
    assert state["alarm_actions"] == [state["policy_arn"]] == [created["policy"]["policy_arn"]]
    assert state["metric"] == ("airflow-ecs/airflow", "DesiredWorkers", "Maximum")
    assert created["alarm"]["tags"] == {"airflow-ecs:stack": "airflow"}

    again = run_module(MODULE, ARGS, env=env, check=True)
    assert again["changed"] is False, again
    assert run_module(MODULE, ARGS, env=env)["changed"] is False

    wider = {**ARGS, "min_capacity": 1, "max_capacity": 5, "tags": {"airflow-ecs:stack": "airflow", "team": "data"}}
    planned_update = run_module(MODULE, wider, env=env, check=True, diff=True)
    assert planned_update["changed"] is True
    assert planned_update["diff"]["after"]["max_capacity"] == 5
    assert in_aws(clean_emulator)["bounds"] == (0, 3)

    updated = run_module(MODULE, wider, env=env)
    assert updated["changed"] is True, updated
    state = in_aws(clean_emulator)
    assert state["bounds"] == (1, 5) and state["steps"] == [1, 2, 3, 4, 5]
    assert state["alarm_actions"] == [state["policy_arn"]]
    assert updated["alarm"]["tags"] == {"airflow-ecs:stack": "airflow", "team": "data"}
    assert run_module(MODULE, wider, env=env)["changed"] is False

    absent = {"cluster": CLUSTER, "service": SERVICE, "state": "absent"}
    assert run_module(MODULE, absent, env=env, check=True)["changed"] is True
    assert in_aws(clean_emulator)["bounds"] == (1, 5)
    removed = run_module(MODULE, absent, env=env, diff=True)
    assert removed["changed"] is True and removed["diff"]["after"] == {}
    assert in_aws(clean_emulator) == {"bounds": None, "steps": None, "alarm_actions": None}
    weather = Weather(latency_ms=0)
    proxy = WeatherProxy(clean_emulator.url, weather)
    try:
        assert run_module(MODULE, absent, env=endpoint_env(proxy.url))["changed"] is False
        calls = weather.stats()["calls"]
    finally:
        proxy.close()
    # No scalable target, so no scaling policy (it is deleted with its target): not asked for.
    assert calls == {
        "application-autoscaling DescribeScalableTargets": 1,
        "monitoring DescribeAlarms": 1,
    }, calls


BAD_INPUTS = [
    ({"min_capacity": 4, "max_capacity": 2}, "max_capacity from min_capacity to min_capacity + 19"),
    ({"min_capacity": 0, "max_capacity": 25}, "max_capacity from min_capacity to min_capacity + 19"),
    ({"metric_name": None}, "metric_name missing"),
    ({"period": 45}, "period must be 10, 30 or a multiple of 60"),
    ({"service": "nope"}, "Failed to register the scalable target"),
]


def test_bad_bounds_metric_or_service_are_refused(clean_emulator: Emulator, service: str) -> None:
    """One emulator reset for every case: each one must fail before creating anything."""
    for args, message in BAD_INPUTS:
        merged = {k: v for k, v in {**ARGS, **args}.items() if v is not None}
        result = run_module(MODULE, merged, env=clean_emulator.env())
        assert result.get("failed") is True, (args, result)
        assert message in result["msg"], (args, result["msg"])
        assert in_aws(clean_emulator)["alarm_actions"] is None
