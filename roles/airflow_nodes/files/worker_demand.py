"""Publish how many Celery workers the queue needs, for the worker service's autoscaling.

Runs as the `worker-demand` container of the scheduler's task (the Airflow image, `python -c <this file>`).
Every WORKER_DEMAND_INTERVAL seconds it counts the Celery task instances that are queued or running in the
metadata database and puts DesiredWorkers = ceil(count / WORKER_CONCURRENCY) — the rule of MWAA and of the
Helm chart's KEDA scaler — into CloudWatch (namespace WORKER_DEMAND_NAMESPACE). Scale-out is immediate;
scale-in waits: the value published is the largest of the last WORKER_DEMAND_SCALE_IN_SAMPLES ones.
The Application Auto Scaling policy of the worker service sets its desired count to that value.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Iterable

import boto3
from sqlalchemy import create_engine, text

ACTIVE_STATES = ("queued", "running")
# Task instances of the default executor (Celery: executor NULL) or naming Celery; those of another executor
# (a task with executor="AwsEcsExecutor" runs as its own Fargate task) need no worker.
QUERY = (
    f"SELECT count(*) FROM task_instance WHERE state IN ({', '.join(repr(s) for s in ACTIVE_STATES)})"
    " AND (executor IS NULL OR executor LIKE '%CeleryExecutor')"
)


def desired_workers(active_tasks: int, concurrency: int) -> int:
    """Workers needed for `active_tasks` queued + running task instances at `concurrency` slots each."""
    if concurrency < 1:
        raise ValueError(f"worker concurrency must be at least 1, got {concurrency}")
    return math.ceil(max(active_tasks, 0) / concurrency)


def smoothed(history: Iterable[int]) -> int:
    """The value to publish: the peak of the recent samples, so a short dip never scales workers in."""
    return max(history, default=0)


def count_active_tasks(connection) -> int:
    """Queued + running task instances, read through an open SQLAlchemy connection."""
    return int(connection.execute(text(QUERY)).scalar() or 0)


def main() -> None:  # pragma: no cover - runs inside the container
    namespace = os.environ["WORKER_DEMAND_NAMESPACE"]
    concurrency = int(os.environ["WORKER_CONCURRENCY"])
    interval = int(os.environ.get("WORKER_DEMAND_INTERVAL", "60"))
    history: deque[int] = deque(maxlen=int(os.environ.get("WORKER_DEMAND_SCALE_IN_SAMPLES", "5")))
    engine = create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], pool_pre_ping=True)
    cloudwatch = boto3.client("cloudwatch")
    while True:
        started = time.monotonic()
        try:
            with engine.connect() as connection:
                active = count_active_tasks(connection)
            history.append(desired_workers(active, concurrency))
            value = smoothed(history)
            cloudwatch.put_metric_data(
                Namespace=namespace,
                MetricData=[
                    {"MetricName": "DesiredWorkers", "Value": value, "Unit": "Count"},
                    {"MetricName": "ActiveTasks", "Value": active, "Unit": "Count"},
                ],
            )
            print(f"active task instances {active}, desired workers {value}", flush=True)
        except Exception as error:  # keep publishing; the next round retries
            print(f"worker demand not published: {error}", flush=True)
        time.sleep(max(1.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
