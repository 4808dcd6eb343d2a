"""What an operator watches on the deployed stack: metrics sidecars, alarms, their topic and the dashboard.

An alarm or a dashboard line on a metric nobody publishes never fires and never shows anything, and
no AWS call refuses it: so every metric they name is checked against what publishes it — the
sidecar's relay (Airflow's allow list, the scheduler's stack samples), the worker-demand publisher,
or the AWS service with the stack's own ALB and database as dimensions. That the relay really
publishes Airflow's metrics from running nodes is proven end to end (tests/e2e).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.xdist_group("deployed_stack")

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "airflow-ecs/airflow"
ALLOW_LIST = yaml.safe_load((ROOT / "roles/airflow/defaults/main.yml").read_text())["airflow_metrics_allow_list"]
STACK_SAMPLES = {"BrokerQueueDepth", "RunningWorkers", "WorkerShortfall", "DesiredWorkers", "ActiveTasks"}
# The default stack's services with Airflow metrics; the dag-processor and the triggerer are containers of
# the scheduler's task and send to its sidecar (one StatsD port per task network).
NODES_WITH_METRICS = ["api-server", "scheduler", "worker"]
COLOCATED = ["dag-processor", "triggerer"]
ALARMS = {
    "scheduler-heartbeat",
    "queued-tasks",
    "failed-tasks",
    "alb-target-5xx",
    "alb-5xx",
    "database-cpu",
    "database-storage",
    "database-connections",
    "broker-queue-depth",
    "worker-shortfall",
}


def published_by_the_stack(name: str) -> bool:
    """A metric of the stack's namespace that something publishes: Airflow's (allowed) or a stack sample."""
    return name in STACK_SAMPLES or any(re.search(pattern, name) for pattern in ALLOW_LIST)


@pytest.fixture(scope="module")
def stack_dimensions(deployed) -> dict[str, dict[str, str]]:
    """The dimensions the AWS services publish the stack's own ALB and database under."""
    elb = deployed.emulator.client("elbv2")
    [balancer] = [b for b in elb.describe_load_balancers()["LoadBalancers"] if b["LoadBalancerName"] == "airflow-alb"]
    return {
        "AWS/ApplicationELB": {"LoadBalancer": balancer["LoadBalancerArn"].split(":loadbalancer/", 1)[1]},
        "AWS/RDS": {"DBInstanceIdentifier": "airflow-metadata"},
    }


def assert_published(namespace: str, name: str, dimensions: dict[str, str], stack_dimensions) -> None:
    if namespace == NAMESPACE:
        assert published_by_the_stack(name), f"nothing publishes {name}"
    else:
        assert dimensions == stack_dimensions[namespace], (namespace, name, dimensions)


def test_every_airflow_node_relays_its_metrics_through_a_sidecar(deployed):
    ecs = deployed.emulator.client("ecs")
    for node in [*NODES_WITH_METRICS, "rabbitmq"]:
        definition = ecs.describe_task_definition(taskDefinition=f"airflow-{node}")["taskDefinition"]
        containers = {c["name"]: c for c in definition["containerDefinitions"]}
        if node not in NODES_WITH_METRICS:  # RabbitMQ sends no Airflow metrics
            assert list(containers) == [node]
            continue
        main, sidecar = containers[node], containers["metrics"]
        assert main["essential"] is True and sidecar["essential"] is False
        # The scheduler's task also runs the worker-demand publisher (the workers are autoscaled by default).
        scheduler_only = [*COLOCATED, "worker-demand"] if node == "scheduler" else []
        assert set(containers) == {node, "metrics", *scheduler_only}
        # Fargate refuses reservations (hard limits count as such) adding up to more than the task.
        reserved = [c.get("memory") or c["memoryReservation"] for c in containers.values()]
        assert sum(reserved) == int(definition["memory"]), containers
        for name in COLOCATED if node == "scheduler" else []:
            env = {e["name"]: e["value"] for e in containers[name]["environment"]}
            assert containers[name]["essential"] is True and "memory" not in containers[name]
            assert (
                env["AIRFLOW__METRICS__STATSD_HOST"] == "localhost" and env["AIRFLOW__METRICS__STATSD_PORT"] == "8125"
            )
        assert sidecar["image"] == main["image"] and sidecar["command"][:2] == ["python", "-c"]
        main_env = {e["name"]: e["value"] for e in main["environment"]}
        sidecar_env = {e["name"]: e["value"] for e in sidecar["environment"]}
        assert main_env["AIRFLOW__METRICS__STATSD_HOST"] == "localhost"
        assert main_env["AIRFLOW__METRICS__STATSD_PORT"] == sidecar_env["AIRFLOW__METRICS__STATSD_PORT"] == "8125"
        assert main_env["AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED"] == "True"
        assert main_env["AIRFLOW__METRICS__METRICS_ALLOW_LIST"] == ",".join(ALLOW_LIST)
        assert sidecar_env["METRICS_NAMESPACE"] == NAMESPACE
        sidecar_secrets = {s["name"] for s in sidecar.get("secrets", [])}
        if node == "scheduler":  # samples the broker and the worker service
            assert sidecar_env["METRICS_BROKER_QUEUES"] == "default"
            assert sidecar_env["METRICS_WORKER_SERVICE"] == "airflow/airflow-worker"
            assert sidecar_secrets == {"AIRFLOW__CELERY__BROKER_URL"}
        else:
            assert "METRICS_BROKER_QUEUES" not in sidecar_env and not sidecar_secrets


def test_the_task_role_may_put_metrics_only_into_the_stack_namespace(deployed):
    iam = deployed.emulator.client("iam")
    [name] = iam.list_role_policies(RoleName="airflow-scheduler-task")["PolicyNames"]
    document = iam.get_role_policy(RoleName="airflow-scheduler-task", PolicyName=name)["PolicyDocument"]
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert statements["PutStackMetrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
    assert statements["ReadWorkerService"]["Resource"].endswith(":service/airflow/airflow-worker")


@pytest.fixture(scope="module")
def alarms(deployed) -> dict[str, dict]:
    """The monitoring role's alarms (not the worker scaling alarm, whose action is the scaling policy)."""
    cloudwatch = deployed.emulator.client("cloudwatch")
    found = cloudwatch.describe_alarms(AlarmNamePrefix="airflow-")["MetricAlarms"]
    scaling = [a for a in found if any(":autoscaling:" in action for action in a["AlarmActions"])]
    assert [a["AlarmName"] for a in scaling] == ["airflow-worker-demand"]  # the workers autoscale by default
    return {a["AlarmName"].removeprefix("airflow-"): a for a in found if a not in scaling}


def test_each_alarm_watches_a_published_metric_and_notifies_the_topic(deployed, alarms, stack_dimensions):
    assert set(alarms) == ALARMS
    [topic] = [
        t["TopicArn"]
        for t in deployed.emulator.client("sns").list_topics()["Topics"]
        if t["TopicArn"].endswith(":airflow-alarms")
    ]
    for name, alarm in alarms.items():
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert_published(alarm["Namespace"], alarm["MetricName"], dimensions, stack_dimensions)
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic], name
        assert alarm["Period"] == 300
    # A silent scheduler is a dead one; silence elsewhere is no alarm.
    assert alarms["scheduler-heartbeat"]["TreatMissingData"] == "breaching"
    assert {a["TreatMissingData"] for n, a in alarms.items() if n != "scheduler-heartbeat"} == {"notBreaching"}
    # db.t4g.small: max_connections 188 (plugins/filter/capacity.py); the alarm fires above 80 % of it.
    assert alarms["database-connections"]["Threshold"] == 150
    assert alarms["database-storage"]["Threshold"] == 20 * 1024**3 // 10


def test_no_email_subscription_unless_asked(deployed):
    sns = deployed.emulator.client("sns")
    [topic] = [t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(":airflow-alarms")]
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def test_the_dashboard_shows_published_metrics_and_every_alarm(deployed, alarms, stack_dimensions):
    cloudwatch = deployed.emulator.client("cloudwatch")
    body = json.loads(cloudwatch.get_dashboard(DashboardName="airflow-us-east-1")["DashboardBody"])
    shown = []
    for widget in body["widgets"]:
        if widget["type"] == "alarm":
            assert sorted(widget["properties"]["alarms"]) == sorted(a["AlarmArn"] for a in alarms.values())
            continue
        for line in widget["properties"]["metrics"]:
            fields = [f for f in line if not isinstance(f, dict)]
            namespace, name, dimensions = fields[0], fields[1], dict(zip(fields[2::2], fields[3::2], strict=True))
            if namespace == NAMESPACE and name == "BrokerQueueDepth":
                assert dimensions == {"Queue": "default"}
                dimensions = {}
            if namespace == NAMESPACE:
                assert not dimensions, line
            assert_published(namespace, name, dimensions, stack_dimensions)
            shown.append(name)
    assert {"scheduler_heartbeat", "pool.queued_slots", "ti_failures", "RunningWorkers", "CPUUtilization"} <= set(shown)
