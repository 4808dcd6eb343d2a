"""The local runtime applies the autoscaling the project ships (embedded_aws/autoscaling.py): the alarm and
step policy library/ecs_service_autoscaling.py makes move an ECS service's desired count, and the agent
starts and stops its tasks, as CloudWatch and Application Auto Scaling would on AWS.

One emulator with the runtime on, its alarm clock at 1 s (EMBEDDED_AWS_ALARM_EVALUATION_SECONDS) and the
alarm's period at 10 s (a high-resolution alarm, the shortest the module allows); the service's tasks run
`sleep` in the stock apache/airflow environment, as in test_local_agent.py.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator, start_emulator

pytestmark = pytest.mark.xdist_group("local_agent")

CLUSTER, SERVICE = "scaling", "worker"
IMAGE = "apache/airflow:3.3.2"
NAMESPACE, METRIC = "airflow-ecs/airflow", "DesiredWorkers"
DIMENSIONS = {"Service": SERVICE}
PERIOD = 10


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    state = Path(tempfile.mkdtemp(prefix="airflow-autoscaling-"))
    state.chmod(0o755)  # the postgres user must reach the runtime directory
    emulator = start_emulator(state / "moto.log", env={"EMBEDDED_AWS_ALARM_EVALUATION_SECONDS": "1"}, runtime=True)
    try:
        ec2 = emulator.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # moto's task ENIs need it
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
        ecs = emulator.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        definition = ecs.register_task_definition(
            family=SERVICE,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": "main",
                    "image": IMAGE,
                    "memory": 512,
                    "essential": True,
                    "command": ["bash", "-c", "sleep 600"],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=CLUSTER,
            serviceName=SERVICE,
            taskDefinition=definition,
            desiredCount=0,
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
        )
        yield emulator
    finally:
        emulator.stop()
        shutil.rmtree(state, ignore_errors=True)


class Publisher:
    """Publishes `value` to the metric every second, as the project's demand publisher does each period;
    None publishes nothing."""

    def __init__(self, emulator: Emulator) -> None:
        self.cloudwatch = emulator.client("cloudwatch")
        self.value: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        dimensions = [{"Name": k, "Value": v} for k, v in DIMENSIONS.items()]
        while not self.done.is_set():
            value = self.value
            if value is not None:
                metric = {"MetricName": METRIC, "Dimensions": dimensions, "Value": value}
                self.cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[metric])
            self.done.wait(1)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)


def wait_for(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_the_shipped_autoscaling_moves_the_service_and_its_tasks(emulator: Emulator) -> None:
    ecs, cloudwatch = emulator.client("ecs"), emulator.client("cloudwatch")
    scaling = emulator.client("application-autoscaling")
    applied = run_module(
        "ecs_service_autoscaling",
        {"cluster": CLUSTER, "service": SERVICE, "min_capacity": 0, "max_capacity": 3, "metric_namespace": NAMESPACE,
         "metric_name": METRIC, "metric_dimensions": DIMENSIONS, "period": PERIOD, "name": "demand"},
        env=emulator.env(),
    )  # fmt: skip
    assert applied["changed"] is True, applied

    def service() -> dict:
        return ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]

    def running() -> int:
        arns = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE, desiredStatus="RUNNING")["taskArns"]
        tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
        return len([t for t in tasks if t["lastStatus"] == "RUNNING"])

    def alarm() -> dict:
        return cloudwatch.describe_alarms(AlarmNames=["demand"])["MetricAlarms"][0]

    publisher = Publisher(emulator)
    try:
        # The metric says 2: the alarm (metric >= 0) goes to ALARM and its policy sets the count to 2.
        publisher.value = 2
        assert wait_for(lambda: service()["desiredCount"] == 2, 15), (service(), alarm())
        assert wait_for(lambda: running() == 2, 40), service()
        assert alarm()["StateValue"] == "ALARM"
        [activity] = scaling.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]
        assert activity["Description"] == "Setting desired count to 2." and activity["StatusCode"] == "Successful"
        assert activity["Cause"] == "monitor alarm demand in state ALARM triggered policy demand"

        # The publisher stops: once its last datapoint has left the evaluation range (3 periods) the alarm
        # leaves ALARM (missing data is not breaching); the count and the tasks stay.
        publisher.value = None
        assert wait_for(lambda: alarm()["StateValue"] == "OK", 3 * PERIOD + 10), alarm()
        assert alarm()["StateReason"].startswith("Threshold Crossed: no datapoints were received for 1 period")
        assert service()["desiredCount"] == 2 and running() == 2

        # The metric says 0: back in ALARM, the policy sets 0 and the tasks stop.
        publisher.value = 0
        assert wait_for(lambda: service()["desiredCount"] == 0, 15), (service(), alarm())
        assert wait_for(lambda: running() == 0, 30), service()
        history = cloudwatch.describe_alarm_history(AlarmName="demand", HistoryItemType="StateUpdate")
        summaries = [item["HistorySummary"] for item in history["AlarmHistoryItems"]]
        assert summaries == [  # newest first; before any data the new alarm went OK (missing: not breaching)
            "Alarm updated from OK to ALARM",
            "Alarm updated from ALARM to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from INSUFFICIENT_DATA to OK",
        ]

        # Without the alarm nothing invokes the policy: the metric says 2 and nothing moves.
        cloudwatch.delete_alarms(AlarmNames=["demand"])
        publisher.value = 2
        time.sleep(4)
        assert service()["desiredCount"] == 0 and running() == 0
        assert len(scaling.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]) == 2
    finally:
        publisher.close()
