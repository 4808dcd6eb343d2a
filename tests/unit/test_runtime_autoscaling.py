"""embedded_aws/autoscaling.py: CloudWatch alarm evaluation and Application Auto Scaling step policies.

The pure parts (alarm states from datapoints, step selection, adjustments, cooldown) against the tables and
examples of AWS's documentation; the whole path against moto's own backends in this process (mock_aws),
with the policy and alarm library/ecs_service_autoscaling.py ships.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.cloudwatch.models import Alarm, CloudWatchBackend
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core import DEFAULT_ACCOUNT_ID

from embedded_aws import autoscaling
from embedded_aws.autoscaling import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    Datapoint,
    LastScaling,
    Sample,
    adjusted_capacity,
    datapoints,
    judge,
    plan_scaling,
    select_step,
)

REGION = "us-east-1"
CLUSTER, SERVICE = "airflow", "airflow-worker"
RESOURCE = f"service/{CLUSTER}/{SERVICE}"
DIMENSION = "ecs:service:DesiredCount"
NAMESPACE, METRIC = "airflow-ecs/airflow", "DesiredWorkers"
RETAINED = "RETAINED"  # stands for the alarm's current state in the tables below

# -- alarm states -----------------------------------------------------------------------------------


def points(row: str) -> list[Datapoint]:
    """'0 - X - X' (oldest first): 0 not breaching, X breaching, - missing."""
    values = {"0": 0.0, "X": 1.0, "-": None}
    return [Datapoint(float(i), values[mark]) for i, mark in enumerate(row.split())]


# CloudWatch user guide, "How alarm state is evaluated when data is missing": the five most recent
# datapoints, states for missing / ignore / breaching / notBreaching.
THREE_OF_THREE = [
    ("0 - X - X", (OK, OK, OK, OK)),
    ("0 - - - -", (OK, OK, OK, OK)),
    ("- - - - -", (INSUFFICIENT_DATA, RETAINED, ALARM, OK)),
    ("0 X X - X", (ALARM, ALARM, ALARM, ALARM)),
    ("- - - - X", (INSUFFICIENT_DATA, RETAINED, ALARM, OK)),
    # The guide says ALARM for missing here ("the oldest evaluated data point is breaching"), and
    # INSUFFICIENT_DATA for the same single breaching point when it is the newest (row above): the runtime
    # does not tell the two apart (autoscaling.judge).
    ("X - - - -", (INSUFFICIENT_DATA, RETAINED, ALARM, OK)),
]
TWO_OF_THREE = [
    ("0 - X - X", (ALARM, ALARM, ALARM, ALARM)),
    ("0 0 X 0 X", (ALARM, ALARM, ALARM, ALARM)),
    ("0 - X - -", (OK, OK, ALARM, OK)),
    ("- - - - 0", (OK, OK, ALARM, OK)),
    ("- - - - X", (INSUFFICIENT_DATA, RETAINED, ALARM, OK)),
]
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


@pytest.mark.parametrize(
    ("needed", "row", "expected"),
    [(3, row, states) for row, states in THREE_OF_THREE] + [(2, row, states) for row, states in TWO_OF_THREE],
)
def test_alarm_state_follows_the_cloudwatch_guide_tables(needed: int, row: str, expected: tuple[str, ...]) -> None:
    for treat, state in zip(TREATMENTS, expected, strict=True):
        verdict = judge(
            points(row),
            lambda value: value >= 1,
            evaluation_periods=3,
            datapoints_to_alarm=needed,
            treat_missing=treat,
            current_state=RETAINED,
        )
        assert verdict.state == state, (row, needed, treat)


def test_without_treat_missing_data_missing_datapoints_are_missing() -> None:
    verdict = judge(
        points("- - -"),
        lambda value: True,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing=None,
        current_state=OK,
    )
    assert verdict.state == INSUFFICIENT_DATA


def test_only_the_last_evaluation_periods_real_datapoints_are_evaluated() -> None:
    verdict = judge(
        points("X X - 0 -"),
        lambda value: value >= 1,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing="notBreaching",
        current_state=ALARM,
    )
    assert verdict.state == OK and [p.value for p in verdict.evaluated] == [0.0] and verdict.filled == 0


def test_each_period_has_its_statistic_and_the_current_period_counts() -> None:
    start = 1_000_020.0  # periods of 60 s align to the epoch
    now = start + 25

    def at(offset: float, value: float) -> Sample:
        return Sample(start + offset, value, value, value, 1.0, value)

    samples = [at(-120 + 1, 4.0), at(-120 + 30, 2.0), at(1, 3.0), at(2, 9.0), at(3, 6.0)]
    samples.append(Sample(start - 60 + 5, 1.0, 5.0, 12.0, 4.0, None))  # a statistic set
    expected = {
        "Maximum": [4.0, 5.0, 9.0],
        "Minimum": [2.0, 1.0, 3.0],
        "Sum": [6.0, 12.0, 18.0],
        "SampleCount": [2.0, 4.0, 3.0],
        "Average": [3.0, 3.0, 6.0],
        "p50": [2.0, None, 6.0],  # percentiles come from single values only
    }
    for stat, values in expected.items():
        found = datapoints(samples, stat, 60, 4, now)
        assert [p.start for p in found] == [start - 180, start - 120, start - 60, start]
        assert [p.value for p in found] == [None, *values], stat


# -- step policies ----------------------------------------------------------------------------------


@pytest.fixture
def shipped(load_library_module: Callable[[str], ModuleType]) -> ModuleType:
    """library/ecs_service_autoscaling.py, the policy and alarm the project deploys."""
    return load_library_module("ecs_service_autoscaling")


@pytest.mark.parametrize(
    ("bounds", "metric", "count"),
    [
        ((0, 3), 0.0, 0),
        ((0, 3), 0.5, 0),
        ((0, 3), 1.0, 1),
        ((0, 3), 2.0, 2),
        ((0, 3), 2.99, 2),
        ((0, 3), 3.0, 3),
        ((0, 3), 7.0, 3),
        ((1, 5), 0.0, 1),
        ((1, 5), 4.5, 4),
        ((2, 2), 9.0, 2),
    ],
)
def test_the_shipped_policy_sets_the_metric_value_clamped_to_the_bounds(
    shipped: ModuleType, bounds: tuple[int, int], metric: float, count: int
) -> None:
    configuration = shipped.policy_configuration(*bounds, 60)
    threshold = shipped.desired_alarm(
        {"service": SERVICE, "metric_name": METRIC, "min_capacity": bounds[0], "max_capacity": bounds[1],
         "metric_namespace": NAMESPACE, "metric_dimensions": {}, "period": 60},
        "demand",
        None,
    )["Threshold"]  # fmt: skip
    step = select_step(configuration["StepAdjustments"], metric - threshold)
    assert step is not None
    new, _, _ = plan_scaling(configuration, step, 99, bounds=bounds, suspended=None, last=None, now=0.0)
    assert new == count


def test_a_step_bound_is_inclusive_on_the_threshold_side_only() -> None:
    above = [
        {"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 10.0, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 10.0, "ScalingAdjustment": 2},
    ]
    below = [
        {"MetricIntervalLowerBound": -10.0, "MetricIntervalUpperBound": 0.0, "ScalingAdjustment": -1},
        {"MetricIntervalUpperBound": -10.0, "ScalingAdjustment": -2},
    ]
    steps = above + below
    assert select_step(steps, 0.0)["ScalingAdjustment"] == 1
    assert select_step(steps, 10.0)["ScalingAdjustment"] == 2
    assert select_step(steps, -10.0)["ScalingAdjustment"] == -2
    assert select_step(steps, -0.5)["ScalingAdjustment"] == -1
    assert select_step(above, -0.5) is None


@pytest.mark.parametrize(
    ("kind", "adjustment", "current", "magnitude", "expected"),
    [
        ("ExactCapacity", 7, 3, None, 7),
        ("ChangeInCapacity", 2, 3, None, 5),
        ("ChangeInCapacity", -2, 3, None, 1),
        ("PercentChangeInCapacity", 50, 3, None, 4),  # +1.5 rounded down
        ("PercentChangeInCapacity", 10, 3, None, 4),  # +0.3 rounded to 1
        ("PercentChangeInCapacity", -10, 3, None, 2),  # -0.3 rounded to -1
        ("PercentChangeInCapacity", -50, 5, None, 3),  # -2.5 rounded up to -2
        ("PercentChangeInCapacity", 10, 3, 2, 5),  # at least MinAdjustmentMagnitude
        ("PercentChangeInCapacity", 200, 3, 2, 9),
    ],
)
def test_adjustment_types(kind: str, adjustment: int, current: int, magnitude: int | None, expected: int) -> None:
    assert adjusted_capacity(kind, adjustment, current, magnitude) == expected


def plan(
    kind: str, adjustment: int, current: int, last: LastScaling | None, now: float, **extra: Any
) -> tuple[int | None, LastScaling | None, str]:
    configuration = {"AdjustmentType": kind, "Cooldown": 60}
    return plan_scaling(
        configuration,
        {"ScalingAdjustment": adjustment},
        current,
        bounds=extra.get("bounds", (0, 10)),
        suspended=extra.get("suspended"),
        last=last,
        now=now,
    )


def test_a_scale_in_waits_for_the_last_scale_in_cooldown() -> None:
    new, last, _ = plan("ExactCapacity", 4, 6, None, now=1000.0)
    assert new == 4 and last == LastScaling("in", 1000.0, 6)
    assert plan("ExactCapacity", 2, 4, last, now=1059.0)[0] is None
    assert plan("ExactCapacity", 2, 4, last, now=1060.0)[0] == 2


def test_a_scale_out_is_not_held_by_a_scale_in_cooldown_and_ends_it() -> None:
    _, scaled_in, _ = plan("ExactCapacity", 4, 6, None, now=1000.0)
    new, last, _ = plan("ExactCapacity", 5, 4, scaled_in, now=1010.0)
    assert new == 5 and last == LastScaling("out", 1010.0, 4)
    assert plan("ExactCapacity", 3, 5, last, now=1020.0)[0] == 3  # nor a scale-in by a scale-out cooldown


def test_during_a_scale_out_cooldown_the_capacity_it_added_counts() -> None:
    """The Application Auto Scaling example: +2, then +3 within the cooldown adds 1 more."""
    new, last, _ = plan("ChangeInCapacity", 2, 2, None, now=1000.0)
    assert new == 4
    again, kept, _ = plan("ChangeInCapacity", 3, 4, last, now=1030.0)
    assert again == 5 and kept == last  # the cooldown still runs from the first scale-out
    assert plan("ChangeInCapacity", 2, 5, kept, now=1040.0)[0] is None  # not more than that one added
    assert plan("ChangeInCapacity", 2, 5, kept, now=1061.0)[0] == 7  # after it


def test_a_suspended_direction_does_not_scale() -> None:
    suspended = {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": False}
    assert plan("ExactCapacity", 1, 3, None, now=0.0, suspended=suspended)[0] is None
    assert plan("ExactCapacity", 5, 3, None, now=0.0, suspended=suspended)[0] == 5
    assert plan("ExactCapacity", 5, 3, None, now=0.0, suspended={"DynamicScalingOutSuspended": True})[0] is None


def test_the_evaluation_interval_comes_from_the_environment() -> None:
    assert autoscaling.evaluation_seconds({}) == 60.0
    assert autoscaling.evaluation_seconds({autoscaling.EVALUATION_VARIABLE: "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ValueError, match=autoscaling.EVALUATION_VARIABLE):
            autoscaling.evaluation_seconds({autoscaling.EVALUATION_VARIABLE: bad})


# -- against moto's backends ------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto in this process with autoscaling.install() applied; moto's classes are restored afterwards."""
    monkeypatch.setattr(autoscaling, "_installed", [])
    monkeypatch.setattr(CloudWatchBackend, "put_metric_alarm", CloudWatchBackend.put_metric_alarm)
    monkeypatch.setattr(Alarm, "update_state", Alarm.update_state)
    monkeypatch.setattr(CloudWatchResponse, "describe_alarm_history", None, raising=False)
    monkeypatch.setattr(ApplicationAutoScalingResponse, "describe_scaling_activities", None, raising=False)
    autoscaling.install()
    with mock_aws():
        clients = {
            name: boto3.client(name, region_name=REGION) for name in ("ecs", "cloudwatch", "application-autoscaling")
        }
        clients["ecs"].create_cluster(clusterName=CLUSTER)
        clients["ecs"].register_task_definition(
            family=SERVICE, containerDefinitions=[{"name": "worker", "image": "apache/airflow:3.3.2", "memory": 512}]
        )
        clients["ecs"].create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=SERVICE, desiredCount=0)
        yield clients


def autoscale(aws: dict[str, Any], shipped: ModuleType, low: int = 0, high: int = 3, cooldown: int = 60) -> str:
    """The scalable target, step policy and alarm ecs_service_autoscaling makes; the policy ARN."""
    scaling = aws["application-autoscaling"]
    scaling.register_scalable_target(
        ServiceNamespace="ecs", ResourceId=RESOURCE, ScalableDimension=DIMENSION, MinCapacity=low, MaxCapacity=high
    )
    arn = scaling.put_scaling_policy(
        PolicyName="demand",
        ServiceNamespace="ecs",
        ResourceId=RESOURCE,
        ScalableDimension=DIMENSION,
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration=shipped.policy_configuration(low, high, cooldown),
    )["PolicyARN"]
    put_alarm(aws, shipped, arn, low, high)
    return arn


def put_alarm(aws: dict[str, Any], shipped: ModuleType, arn: str, low: int = 0, high: int = 3) -> None:
    params = {"service": SERVICE, "metric_name": METRIC, "metric_namespace": NAMESPACE, "metric_dimensions": {},
              "min_capacity": low, "max_capacity": high, "period": 60}  # fmt: skip
    aws["cloudwatch"].put_metric_alarm(**shipped.desired_alarm(params, "demand", arn))


def publish(aws: dict[str, Any], value: float, at: float, name: str = METRIC) -> None:
    stamp = datetime.fromtimestamp(at, UTC)
    aws["cloudwatch"].put_metric_data(Namespace=NAMESPACE, MetricData=[{"MetricName": name, "Value": value,
                                                                       "Timestamp": stamp}])  # fmt: skip


def desired(aws: dict[str, Any]) -> int:
    return aws["ecs"].describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["desiredCount"]


def alarm(aws: dict[str, Any], name: str = "demand") -> dict[str, Any]:
    return aws["cloudwatch"].describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def activities(aws: dict[str, Any]) -> list[dict[str, Any]]:
    scaling = aws["application-autoscaling"]
    return scaling.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=RESOURCE)["ScalingActivities"]


def test_the_shipped_alarm_and_policy_set_the_desired_count(aws: dict[str, Any], shipped: ModuleType) -> None:
    arn = autoscale(aws, shipped)
    assert alarm(aws)["StateValue"] == INSUFFICIENT_DATA  # as CloudWatch creates an alarm (moto says OK)
    evaluator = autoscaling.Evaluator()
    now = math.floor(time.time() / 60) * 60 + 30.0

    publish(aws, 2, now - 20)
    evaluator.evaluate(now)
    state = alarm(aws)
    assert state["StateValue"] == ALARM and desired(aws) == 2
    assert state["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [2.0 (") and state[
        "StateReason"
    ].endswith(
        "was greater than or equal to the threshold (0.0) (minimum 1 datapoint for INSUFFICIENT_DATA -> ALARM "
        "transition)."
    )
    assert json.loads(state["StateReasonData"])["recentDatapoints"] == [2.0]
    [activity] = activities(aws)
    assert activity["Description"] == "Setting desired count to 2."
    assert activity["Cause"] == "monitor alarm demand in state ALARM triggered policy demand"
    assert activity["StatusCode"] == "Successful"

    # An update of the alarm keeps its state, as in CloudWatch.
    put_alarm(aws, shipped, arn)
    assert alarm(aws)["StateValue"] == ALARM

    # The next period says 0: the alarm stays in ALARM (metric >= 0) and its action sets 0; the scale-out's
    # cooldown does not hold a scale-in.
    publish(aws, 0, now + 60 - 20)
    evaluator.evaluate(now + 60)
    assert desired(aws) == 0 and alarm(aws)["StateValue"] == ALARM
    evaluator.evaluate(now + 70)  # invoked again: already at 0, no activity
    assert [a["Description"] for a in activities(aws)] == ["Setting desired count to 0.", "Setting desired count to 2."]

    # The publisher stops: the last datapoint is evaluated until it leaves the evaluation range (3 periods),
    # then the alarm goes OK (missing data is not breaching) and the count stays.
    evaluator.evaluate(now + 180)
    assert alarm(aws)["StateValue"] == ALARM
    evaluator.evaluate(now + 240)
    state = alarm(aws)
    assert state["StateValue"] == OK and desired(aws) == 0
    assert state["StateReason"] == (
        "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as "
        "[NonBreaching]."
    )
    history = aws["cloudwatch"].describe_alarm_history(AlarmName="demand", HistoryItemType="StateUpdate")
    assert [item["HistorySummary"] for item in history["AlarmHistoryItems"]] == [
        "Alarm updated from ALARM to OK",
        "Alarm updated from INSUFFICIENT_DATA to ALARM",
    ]


def test_the_actions_repeat_at_each_evaluation_while_in_alarm(aws: dict[str, Any], shipped: ModuleType) -> None:
    """A ChangeInCapacity +1 policy adds one task per evaluation until the maximum; tick() keeps the clock."""
    autoscale(aws, shipped)
    scaling = aws["application-autoscaling"]
    arn = scaling.put_scaling_policy(
        PolicyName="plus-one",
        ServiceNamespace="ecs",
        ResourceId=RESOURCE,
        ScalableDimension=DIMENSION,
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            "Cooldown": 0,
        },
    )["PolicyARN"]
    aws["cloudwatch"].delete_alarms(AlarmNames=["demand"])
    aws["cloudwatch"].put_metric_alarm(
        AlarmName="busy", Namespace=NAMESPACE, MetricName="Busy", Statistic="Maximum", Period=60,
        EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold", AlarmActions=[arn],
    )  # fmt: skip
    publish(aws, 1, time.time(), name="Busy")
    evaluator = autoscaling.Evaluator(interval=3600)
    evaluator.tick()
    evaluator.tick()  # within the interval: nothing evaluated
    assert desired(aws) == 1
    now = time.time()
    for expected in (2, 3, 3):
        evaluator.evaluate(now)
        assert desired(aws) == expected


def test_a_broken_alarm_or_policy_leaves_the_others_working(aws: dict[str, Any], shipped: ModuleType) -> None:
    arn = autoscale(aws, shipped)
    backend = applicationautoscaling_backends[DEFAULT_ACCOUNT_ID][REGION]
    broken = backend.put_scaling_policy(
        "broken", "ecs", RESOURCE, DIMENSION, {"AdjustmentType": "Sideways", "StepAdjustments": [{}]}, "StepScaling"
    )
    cloudwatch = aws["cloudwatch"]
    common = {"Namespace": NAMESPACE, "MetricName": METRIC, "Period": 60, "EvaluationPeriods": 1, "Threshold": 0.0,
              "ComparisonOperator": "GreaterThanOrEqualToThreshold"}  # fmt: skip
    cloudwatch.put_metric_alarm(AlarmName="a-broken-policy", Statistic="Maximum", AlarmActions=[broken.policy_arn],
                                **common)  # fmt: skip
    cloudwatch.put_metric_alarm(AlarmName="b-no-policy", Statistic="Maximum", AlarmActions=[arn + "x"], **common)
    cloudwatch.put_metric_alarm(AlarmName="c-sns", Statistic="Maximum",
                                AlarmActions=["arn:aws:sns:us-east-1:123456789012:alarms"], **common)  # fmt: skip
    cloudwatch.put_metric_alarm(AlarmName="d-odd-statistic", ExtendedStatistic="p99.9x", **common)
    publish(aws, 2, time.time())
    autoscaling.Evaluator().evaluate(time.time())
    assert desired(aws) == 2 and alarm(aws)["StateValue"] == ALARM
    assert alarm(aws, "c-sns")["StateValue"] == ALARM  # evaluated; its SNS action is not run here


def test_a_target_tracking_policy_is_not_run(aws: dict[str, Any]) -> None:
    """moto makes its alarms on AWS/ECS CPUUtilization > 6 whatever the target value: breaching them moves nothing."""
    scaling = aws["application-autoscaling"]
    scaling.register_scalable_target(
        ServiceNamespace="ecs", ResourceId=RESOURCE, ScalableDimension=DIMENSION, MinCapacity=0, MaxCapacity=3
    )
    scaling.put_scaling_policy(
        PolicyName="cpu",
        ServiceNamespace="ecs",
        ResourceId=RESOURCE,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        },
    )
    now = time.time()
    for minutes in range(4):
        aws["cloudwatch"].put_metric_data(
            Namespace="AWS/ECS",
            MetricData=[{"MetricName": "CPUUtilization", "Value": 90.0, "Unit": "Percent",
                         "Timestamp": datetime.fromtimestamp(now - 60 * minutes, UTC),
                         "Dimensions": [{"Name": "ClusterName", "Value": CLUSTER},
                                        {"Name": "ServiceName", "Value": SERVICE}]}],
        )  # fmt: skip
    autoscaling.Evaluator().evaluate(now)
    alarms = aws["cloudwatch"].describe_alarms()["MetricAlarms"]
    states = {("high" if "-AlarmHigh-" in a["AlarmName"] else "low"): a["StateValue"] for a in alarms}
    assert states == {"high": ALARM, "low": OK}
    assert desired(aws) == 0 and activities(aws) == []
