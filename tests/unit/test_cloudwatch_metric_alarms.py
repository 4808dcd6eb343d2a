"""library/cloudwatch_metric_alarms.py against a moto server, through the real `ansible` CLI.

The module's AWS calls go through the weather proxy (embedded_aws/weather.py, no latency, no faults), which
counts every request it forwards by operation: that count is what the module really sent, measured on the
wire. What the alarms hold is read with boto3 straight from the emulator (not counted).

moto 5.2.5 stores what PutMetricAlarm is given and returns it as given: no TreatMissingData,
DatapointsToAlarm or AlarmDescription when they were left out, ActionsEnabled true by default, actions and
dimensions in the order they were put; it never pages DescribeAlarms. Tags given to PutMetricAlarm are
stored, as in AWS.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible_runner import run_counted, run_module
from emulator import Emulator, endpoint_env, free_port

from embedded_aws.weather import WeatherProxy

MODULE = "cloudwatch_metric_alarms"
STACK = "airflow"
TOPIC = f"arn:aws:sns:us-east-1:123456789012:{STACK}-alarms"
COMMON = {"period": 300, "treat_missing_data": "notBreaching", "alarm_actions": [TOPIC], "ok_actions": [TOPIC]}
# Ten alarms shaped like roles/monitoring's (vars/main.yml __monitoring_alarms), as the role passes them.
SPECS = [
    {"name": "scheduler-heartbeat", "namespace": "airflow-ecs/airflow", "metric": "scheduler_heartbeat",
     "statistic": "Sum", "comparison": "LessThanThreshold", "threshold": 1, "evaluation_periods": 1,
     "treat_missing_data": "breaching"},
    {"name": "queued-tasks", "namespace": "airflow-ecs/airflow", "metric": "pool.queued_slots",
     "statistic": "Minimum", "comparison": "GreaterThanThreshold", "threshold": "0", "evaluation_periods": "3"},
    {"name": "failed-tasks", "namespace": "airflow-ecs/airflow", "metric": "ti_failures", "statistic": "Sum",
     "comparison": "GreaterThanOrEqualToThreshold", "threshold": 1, "evaluation_periods": 1},
    {"name": "alb-target-5xx", "namespace": "AWS/ApplicationELB", "metric": "HTTPCode_Target_5XX_Count",
     "dimensions": {"LoadBalancer": "app/airflow/0123456789abcdef"}, "statistic": "Sum",
     "comparison": "GreaterThanThreshold", "threshold": 10, "evaluation_periods": 1},
    {"name": "alb-5xx", "namespace": "AWS/ApplicationELB", "metric": "HTTPCode_ELB_5XX_Count",
     "dimensions": {"LoadBalancer": "app/airflow/0123456789abcdef"}, "statistic": "Sum",
     "comparison": "GreaterThanThreshold", "threshold": 10, "evaluation_periods": 1},
    {"name": "database-cpu", "namespace": "AWS/RDS", "metric": "CPUUtilization",
     "dimensions": {"DBInstanceIdentifier": STACK}, "statistic": "Average", "comparison": "GreaterThanThreshold",
     "threshold": 80, "evaluation_periods": 3},
    {"name": "database-storage", "namespace": "AWS/RDS", "metric": "FreeStorageSpace",
     "dimensions": {"DBInstanceIdentifier": STACK}, "statistic": "Minimum", "comparison": "LessThanThreshold",
     "threshold": 2147483648, "evaluation_periods": 1},
    {"name": "database-connections", "namespace": "AWS/RDS", "metric": "DatabaseConnections",
     "dimensions": {"DBInstanceIdentifier": STACK}, "statistic": "Maximum", "comparison": "GreaterThanThreshold",
     "threshold": 86, "evaluation_periods": 1},
    {"name": "broker-queue-depth", "namespace": "airflow-ecs/airflow", "metric": "BrokerQueueDepth",
     "dimensions": {"Queue": "default"}, "statistic": "Minimum", "comparison": "GreaterThanThreshold",
     "threshold": 100, "evaluation_periods": 3},
    {"name": "worker-shortfall", "namespace": "airflow-ecs/airflow", "metric": "WorkerShortfall",
     "statistic": "Minimum", "comparison": "GreaterThanThreshold", "threshold": 0, "evaluation_periods": 3},
]  # fmt: skip
ALARMS = [
    {**COMMON, **spec, "name": f"{STACK}-{spec['name']}", "description": f"{STACK}: {spec['name']}"} for spec in SPECS
]
NAMES = [alarm["name"] for alarm in ALARMS]
DESCRIBE = "monitoring DescribeAlarms"
PUT = "monitoring PutMetricAlarm"


def run(proxy: WeatherProxy, args: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """One module run through the proxy: its result and the AWS calls it made, by operation."""
    return run_counted(MODULE, proxy, args, **kwargs)


def in_aws(emulator: Emulator) -> dict[str, dict[str, Any]]:
    """Every metric alarm the emulator holds, by name, as DescribeAlarms returns it."""
    return {alarm["AlarmName"]: alarm for alarm in emulator.client("cloudwatch").describe_alarms()["MetricAlarms"]}


def arn(name: str) -> str:
    return f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"


def with_changes(index: int, **changes: Any) -> list[dict[str, Any]]:
    alarms = copy.deepcopy(ALARMS)
    alarms[index].update(changes)
    return alarms


def test_create_then_a_rerun_makes_one_call(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    created, calls = run(proxy, {"alarms": ALARMS})
    assert created["changed"] is True, created
    assert created["changed_alarms"] == NAMES
    assert created["alarms"] == {name: arn(name) for name in NAMES}
    assert calls == {DESCRIBE: 2, PUT: 10}  # read all, put each, read the new ARNs
    stored = in_aws(clean_emulator)
    assert sorted(stored) == sorted(NAMES)
    cpu = stored[f"{STACK}-database-cpu"]
    assert cpu["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": STACK}]
    assert (cpu["Threshold"], cpu["EvaluationPeriods"], cpu["Period"]) == (80.0, 3, 300)
    assert (cpu["AlarmActions"], cpu["OKActions"], cpu["TreatMissingData"]) == ([TOPIC], [TOPIC], "notBreaching")
    assert stored[f"{STACK}-queued-tasks"]["EvaluationPeriods"] == 3  # "3" from a template, sent as a number
    assert stored[f"{STACK}-scheduler-heartbeat"]["TreatMissingData"] == "breaching"

    again, calls = run(proxy, {"alarms": ALARMS}, diff=True)
    assert again["changed"] is False, again
    assert again["changed_alarms"] == []
    assert again["alarms"] == created["alarms"]
    assert calls == {DESCRIBE: 1}
    assert again["diff"]["before"] == again["diff"]["after"]
    assert sorted(again["diff"]["after"]) == sorted(NAMES)


def test_cloudwatch_defaults_equal_omitted_fields(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    """An alarm stored with the defaults spelled out, actions and dimensions in another order, is the same."""
    spec = {
        "name": f"{STACK}-api",
        "namespace": "AWS/ApplicationELB",
        "metric": "HTTPCode_Target_5XX_Count",
        "dimensions": {"LoadBalancer": "app/airflow/1", "TargetGroup": "targetgroup/api/2"},
        "statistic": "Sum",
        "comparison": "GreaterThanThreshold",
        "threshold": 10,
        "period": 60,
        "evaluation_periods": 2,
        "alarm_actions": [TOPIC, f"{TOPIC}-2"],
    }
    clean_emulator.client("cloudwatch").put_metric_alarm(
        AlarmName=spec["name"],
        AlarmDescription="",
        Namespace=spec["namespace"],
        MetricName=spec["metric"],
        Dimensions=[
            {"Name": "TargetGroup", "Value": "targetgroup/api/2"},
            {"Name": "LoadBalancer", "Value": "app/airflow/1"},
        ],
        Statistic="Sum",
        ComparisonOperator="GreaterThanThreshold",
        Threshold=10.0,
        Period=60,
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        TreatMissingData="missing",
        ActionsEnabled=True,
        AlarmActions=[f"{TOPIC}-2", TOPIC],
        OKActions=[],
        InsufficientDataActions=[],
    )
    same, calls = run(proxy, {"alarms": [spec]})
    assert same["changed"] is False, same
    assert calls == {DESCRIBE: 1}

    disabled, calls = run(proxy, {"alarms": [{**spec, "actions_enabled": False}]})
    assert disabled["changed_alarms"] == [spec["name"]], disabled
    assert calls == {DESCRIBE: 1, PUT: 1}
    assert in_aws(clean_emulator)[spec["name"]]["ActionsEnabled"] is False


def test_one_changed_field_updates_only_that_alarm(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    run(proxy, {"alarms": ALARMS})
    before = in_aws(clean_emulator)
    name = f"{STACK}-database-cpu"

    changed, calls = run(proxy, {"alarms": with_changes(5, threshold=90)}, diff=True)
    assert changed["changed"] is True, changed
    assert changed["changed_alarms"] == [name]
    assert calls == {DESCRIBE: 1, PUT: 1}
    assert changed["alarms"][name] == arn(name)
    assert changed["diff"]["before"][name]["threshold"] == 80.0
    assert changed["diff"]["after"][name]["threshold"] == 90.0
    others = [other for other in NAMES if other != name]
    assert {n: changed["diff"]["before"][n] for n in others} == {n: changed["diff"]["after"][n] for n in others}
    after = in_aws(clean_emulator)
    assert after[name]["Threshold"] == 90.0
    for other in others:  # not put again: CloudWatch would have stamped a new configuration time
        assert after[other]["AlarmConfigurationUpdatedTimestamp"] == before[other]["AlarmConfigurationUpdatedTimestamp"]

    # A field left out goes back to CloudWatch's default: the alarm is put without it.
    no_dimension = with_changes(5, threshold=90)
    del no_dimension[5]["dimensions"]
    dropped, calls = run(proxy, {"alarms": no_dimension})
    assert dropped["changed_alarms"] == [name], dropped
    assert calls == {DESCRIBE: 1, PUT: 1}
    assert in_aws(clean_emulator)[name]["Dimensions"] == []


def test_a_removed_alarm_is_recreated(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    run(proxy, {"alarms": ALARMS})
    name = f"{STACK}-worker-shortfall"
    clean_emulator.client("cloudwatch").delete_alarms(AlarmNames=[name])

    recreated, calls = run(proxy, {"alarms": ALARMS})
    assert recreated["changed"] is True, recreated
    assert recreated["changed_alarms"] == [name]
    assert recreated["alarms"][name] == arn(name)
    assert calls == {DESCRIBE: 2, PUT: 1}
    assert sorted(in_aws(clean_emulator)) == sorted(NAMES)


def test_check_mode_changes_nothing(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    planned, calls = run(proxy, {"alarms": ALARMS}, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["changed_alarms"] == NAMES
    assert planned["alarms"] == dict.fromkeys(NAMES)
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"][f"{STACK}-database-cpu"]["dimensions"] == {"DBInstanceIdentifier": STACK}
    assert calls == {DESCRIBE: 1}
    assert in_aws(clean_emulator) == {}

    run(proxy, {"alarms": ALARMS})
    name = f"{STACK}-failed-tasks"
    kept = [alarm for alarm in with_changes(2, threshold=5) if alarm["name"] != f"{STACK}-alb-5xx"]
    planned, calls = run(proxy, {"alarms": kept, "absent": [f"{STACK}-alb-5xx"]}, check=True)
    assert planned["changed_alarms"] == [name, f"{STACK}-alb-5xx"], planned
    assert planned["alarms"][name] == arn(name)
    assert calls == {DESCRIBE: 1}
    stored = in_aws(clean_emulator)
    assert stored[name]["Threshold"] == 1.0
    assert f"{STACK}-alb-5xx" in stored


def test_absent_deletes_only_the_named_alarms(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    run(proxy, {"alarms": ALARMS})
    cloudwatch = clean_emulator.client("cloudwatch")
    # Same prefix, not named: ecs_service_autoscaling's alarm of the stack, and someone else's.
    neighbours = [f"{STACK}-worker-demand", "other-scheduler-heartbeat"]
    for neighbour in neighbours:
        cloudwatch.put_metric_alarm(
            AlarmName=neighbour, Namespace="x", MetricName="y", Statistic="Sum", Period=60, EvaluationPeriods=1,
            Threshold=0, ComparisonOperator="GreaterThanThreshold",
        )  # fmt: skip
    absent = {"alarms": ALARMS, "state": "absent"}

    planned, calls = run(proxy, absent, check=True, diff=True)
    assert planned["changed_alarms"] == NAMES, planned
    assert sorted(planned["diff"]["before"]) == sorted(NAMES)
    assert planned["diff"]["after"] == {}
    assert calls == {DESCRIBE: 1}
    assert len(in_aws(clean_emulator)) == 12

    deleted, calls = run(proxy, absent)
    assert deleted["changed"] is True, deleted
    assert deleted["changed_alarms"] == NAMES
    assert deleted["alarms"] == {}
    assert calls == {DESCRIBE: 1, "monitoring DeleteAlarms": 1}
    assert sorted(in_aws(clean_emulator)) == sorted(neighbours)

    again, calls = run(proxy, {"absent": NAMES})  # by name only, as roles/monitoring's absent.yml does
    assert again["changed"] is False, again
    assert calls == {DESCRIBE: 1}
    assert sorted(in_aws(clean_emulator)) == sorted(neighbours)


def test_absent_names_go_while_the_alarms_are_put(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    """An alarm renamed: the new name is created, the old one (listed in absent) deleted, nothing else."""
    run(proxy, {"alarms": ALARMS})
    renamed = with_changes(0, name=f"{STACK}-scheduler-down")
    old = NAMES[0]

    result, calls = run(proxy, {"alarms": renamed, "absent": [old]}, diff=True)
    assert result["changed_alarms"] == [f"{STACK}-scheduler-down", old], result
    assert calls == {DESCRIBE: 2, PUT: 1, "monitoring DeleteAlarms": 1}
    assert old in result["diff"]["before"]
    assert old not in result["diff"]["after"]
    assert sorted(in_aws(clean_emulator)) == sorted([f"{STACK}-scheduler-down", *NAMES[1:]])


def test_tags_are_read_and_synced_only_where_asked(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    cloudwatch = clean_emulator.client("cloudwatch")
    tagged = with_changes(0, tags={"airflow-ecs:stack": STACK, "team": "data"})
    created, calls = run(proxy, {"alarms": tagged})
    assert created["changed"] is True, created
    assert calls == {DESCRIBE: 2, PUT: 10}  # the tags go with PutMetricAlarm
    tags = cloudwatch.list_tags_for_resource(ResourceARN=arn(NAMES[0]))["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("airflow-ecs:stack", STACK), ("team", "data")]
    assert cloudwatch.list_tags_for_resource(ResourceARN=arn(NAMES[1]))["Tags"] == []

    same, calls = run(proxy, {"alarms": tagged})
    assert same["changed"] is False, same
    assert calls == {DESCRIBE: 1, "monitoring ListTagsForResource": 1}  # only the alarm whose tags are asked for

    retagged, calls = run(
        proxy, {"alarms": with_changes(0, tags={"airflow-ecs:stack": STACK, "owner": "ops"})}, diff=True
    )
    assert retagged["changed_alarms"] == [NAMES[0]], retagged
    assert calls == {
        DESCRIBE: 1,
        "monitoring ListTagsForResource": 1,
        "monitoring UntagResource": 1,
        "monitoring TagResource": 1,
    }
    assert retagged["diff"]["after"][NAMES[0]]["tags"] == {"airflow-ecs:stack": STACK, "owner": "ops"}
    tags = cloudwatch.list_tags_for_resource(ResourceARN=arn(NAMES[0]))["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("airflow-ecs:stack", STACK), ("owner", "ops")]

    untouched, calls = run(proxy, {"alarms": ALARMS})  # tags not given: left alone, not even read
    assert untouched["changed"] is False, untouched
    assert calls == {DESCRIBE: 1}
    assert len(cloudwatch.list_tags_for_resource(ResourceARN=arn(NAMES[0]))["Tags"]) == 2


def missing(field: str) -> list[dict[str, Any]]:
    alarms = copy.deepcopy(ALARMS)
    alarms[2].pop(field)
    return alarms


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"alarms": missing("metric")}, f"alarms[2] ({STACK}-failed-tasks): metric_name is required"),
        ({"alarms": missing("namespace")}, f"alarms[2] ({STACK}-failed-tasks): namespace is required"),
        (
            {"alarms": missing("statistic")},
            f"alarms[2] ({STACK}-failed-tasks): exactly one of statistic and extended_statistic is required",
        ),
        ({"alarms": with_changes(1, period=90)}, "period must be 10, 30 or a multiple of 60 seconds, not 90"),
        (
            {"alarms": with_changes(1, datapoints_to_alarm=4)},
            f"alarms[1] ({STACK}-queued-tasks): datapoints_to_alarm must be 1 to evaluation_periods (3), not 4",
        ),
        ({"alarms": [*ALARMS, ALARMS[3]]}, f"alarms names the same alarm twice: {STACK}-alb-target-5xx"),
        ({"alarms": ALARMS, "absent": [NAMES[4]]}, f"alarms and absent both name {STACK}-alb-5xx"),
        ({"absent": ["x", "y", "x"]}, "absent names the same alarm twice: x"),
        (
            {"alarms": [{**ALARMS[0], "name": f"a{i}"} for i in range(101)]},
            "alarms and absent name 101 alarms; at most 100 per run",
        ),
        ({"absent": [f"a{i}" for i in range(101)], "state": "absent"}, "name 101 alarms; at most 100 per run"),
        ({"alarms": with_changes(0, name="")}, "alarms[0] (): name must be 1 to 255 characters, not 0"),
        ({"alarms": with_changes(0, threshold="high")}, "argument 'threshold' is of type"),
        ({"alarms": with_changes(0, statistic="Median")}, "value of statistic must be one of"),
    ],
)
def test_bad_input_is_refused_before_any_call(emulator: Emulator, args: dict[str, Any], message: str) -> None:
    """Pointed at a port nothing listens on: any AWS call would fail with a connection error instead."""
    dead = endpoint_env(f"http://127.0.0.1:{free_port()}")
    result = run_module(MODULE, args, env=dead)
    assert result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert "Could not connect" not in result["msg"]
    assert result.get("changed", False) is False


def test_bad_input_lists_every_problem_in_one_message(emulator: Emulator) -> None:
    alarms = missing("namespace")
    alarms[4].pop("comparison")
    result = run_module(MODULE, {"alarms": alarms}, env=endpoint_env(f"http://127.0.0.1:{free_port()}"))
    assert result["msg"] == (
        f"Cannot manage the alarms: alarms[2] ({STACK}-failed-tasks): namespace is required; "
        f"alarms[4] ({STACK}-alb-5xx): comparison is required. Nothing was changed."
    )
