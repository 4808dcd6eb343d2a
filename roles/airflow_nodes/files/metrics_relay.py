"""Relay Airflow's StatsD metrics to CloudWatch: the `metrics` sidecar of every Airflow node's task.

Airflow (AIRFLOW__METRICS__STATSD_ON, InfluxDB-style tags) sends datagrams such as
`airflow.pool.queued_slots,pool_name=default_pool:3|g` to localhost:AIRFLOW__METRICS__STATSD_PORT,
which this process, in the same task, receives. Every METRICS_INTERVAL seconds it puts one value per
metric name and kept dimensions into the CloudWatch namespace METRICS_NAMESPACE: counters summed,
gauges the last value of each tag set summed over the tags not kept (the queued slots of every
pool), timers as statistic sets. Only the tags named in METRICS_DIMENSIONS become dimensions: each
distinct dimension value is a billed custom metric, so dag_id or task_id are never kept by default.

With METRICS_BROKER_QUEUES and METRICS_WORKER_SERVICE (the scheduler's sidecar) it also samples what
Airflow does not emit: BrokerQueueDepth of each Celery queue (a passive declare on
AIRFLOW__CELERY__BROKER_URL, which RabbitMQ on Fargate and Amazon MQ both answer) and RunningWorkers
and WorkerShortfall (desired minus running tasks) of the worker service (ecs:DescribeServices).
On SIGTERM (the task stopping) it publishes what it holds, then exits.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import boto3
from kombu import Connection

PREFIX = "airflow."
MAX_METRICS_PER_CALL = 1000  # PutMetricData's limit per request
MAX_METRICS = 500  # a guard on cost: distinct metrics published per interval, the rest dropped and logged


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # c | g | ms (h is a timer too); sets are not relayed
    value: float
    tags: tuple[tuple[str, str], ...]
    delta: bool = False  # a gauge given as +N / -N


def parse(datagram: str) -> list[Sample]:
    """The samples of one StatsD datagram (lines `name[,tag=value...]:value|type[|@rate]`); junk skipped."""
    samples = []
    for line in datagram.splitlines():
        head, _, rest = line.strip().partition(":")
        fields = rest.split("|")
        if not head or len(fields) < 2:
            continue
        name, *pairs = head.split(",")
        kind = "ms" if fields[1] == "h" else fields[1]
        if kind not in ("c", "g", "ms"):
            continue
        try:
            value = float(fields[0])
            rate = next((float(f[1:]) for f in fields[2:] if f.startswith("@")), 1.0)
        except ValueError:
            continue
        if kind == "c" and 0 < rate < 1:
            value /= rate
        tags = tuple(sorted(tuple(p.split("=", 1)) for p in pairs if "=" in p))
        samples.append(Sample(name.removeprefix(PREFIX), kind, value, tags, kind == "g" and fields[0][:1] in "+-"))
    return samples


@dataclass
class Aggregate:
    """What arrived during one interval, keyed for publishing."""

    keep: frozenset[str]
    counters: dict[tuple, float] = field(default_factory=lambda: defaultdict(float))
    timers: dict[tuple, list[float]] = field(default_factory=lambda: defaultdict(list))
    gauges: dict[tuple, float] = field(default_factory=dict)  # full tag set -> last value (kept across intervals)

    def add(self, sample: Sample) -> None:
        if sample.kind == "c":
            self.counters[(sample.name, self._kept(sample.tags))] += sample.value
        elif sample.kind == "ms":
            self.timers[(sample.name, self._kept(sample.tags))].append(sample.value)
        else:
            key = (sample.name, sample.tags)
            self.gauges[key] = self.gauges.get(key, 0.0) + sample.value if sample.delta else sample.value

    def _kept(self, tags: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in tags if k in self.keep)

    def metric_data(self) -> list[dict]:
        """PutMetricData items for the interval; counters and timers start again, gauges keep their last value."""
        gauges: dict[tuple, float] = defaultdict(float)
        for (name, tags), value in self.gauges.items():
            gauges[(name, self._kept(tags))] += value
        data = [_datum(name, tags, {"Value": value, "Unit": "Count"}) for (name, tags), value in self.counters.items()]
        data += [_datum(name, tags, {"Value": value, "Unit": "None"}) for (name, tags), value in gauges.items()]
        data += [
            _datum(
                name,
                tags,
                {
                    "StatisticValues": {
                        "SampleCount": len(values),
                        "Sum": sum(values),
                        "Minimum": min(values),
                        "Maximum": max(values),
                    },
                    "Unit": "Milliseconds",
                },
            )
            for (name, tags), values in self.timers.items()
        ]
        self.counters.clear()
        self.timers.clear()
        return data


def _datum(name: str, tags: tuple[tuple[str, str], ...], value: dict) -> dict:
    return {"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in tags], **value}


def broker_queue_depths(broker_url: str, queues: list[str]) -> list[dict]:  # pragma: no cover - needs a broker
    """BrokerQueueDepth of each queue: messages ready in the broker (a passive declare creates nothing)."""
    data = []
    with Connection(broker_url, connect_timeout=10) as connection:
        channel = connection.default_channel
        for queue in queues:
            try:
                depth = channel.queue_declare(queue=queue, passive=True).message_count
            except Exception as error:  # a queue nobody declared yet holds nothing
                if "NOT_FOUND" not in str(error):
                    raise
                channel = connection.channel()
                depth = 0
            data.append(_datum("BrokerQueueDepth", (("Queue", queue),), {"Value": depth, "Unit": "Count"}))
    return data


def worker_counts(ecs, cluster: str, service: str) -> list[dict]:
    """RunningWorkers and WorkerShortfall (desired - running, never negative) of the worker service."""
    found = ecs.describe_services(cluster=cluster, services=[service])["services"]
    desired = running = 0
    for item in found:
        if item.get("status") == "ACTIVE":
            desired, running = item["desiredCount"], item["runningCount"]
    return [
        _datum("RunningWorkers", (), {"Value": running, "Unit": "Count"}),
        _datum("WorkerShortfall", (), {"Value": max(desired - running, 0), "Unit": "Count"}),
    ]


def publish(cloudwatch, namespace: str, data: list[dict]) -> int:
    if len(data) > MAX_METRICS:
        dropped = sorted({d["MetricName"] for d in data[MAX_METRICS:]})
        print(f"more than {MAX_METRICS} metrics in one interval; not published: {dropped}", flush=True)
        data = data[:MAX_METRICS]
    for start in range(0, len(data), MAX_METRICS_PER_CALL):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + MAX_METRICS_PER_CALL])
    return len(data)


def main() -> None:  # pragma: no cover - runs inside the container
    namespace = os.environ["METRICS_NAMESPACE"]
    interval = float(os.environ.get("METRICS_INTERVAL", "60"))
    aggregate = Aggregate(frozenset(filter(None, os.environ.get("METRICS_DIMENSIONS", "").split(","))))
    queues = [q for q in os.environ.get("METRICS_BROKER_QUEUES", "").split(",") if q]
    cluster, _, worker_service = os.environ.get("METRICS_WORKER_SERVICE", "").partition("/")
    cloudwatch = boto3.client("cloudwatch")
    ecs = boto3.client("ecs") if worker_service else None
    lock = threading.Lock()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", int(os.environ.get("AIRFLOW__METRICS__STATSD_PORT", "8125"))))

    def receive() -> None:
        while True:
            datagram = receiver.recv(65535).decode(errors="replace")
            with lock:
                for sample in parse(datagram):
                    aggregate.add(sample)

    threading.Thread(target=receive, daemon=True).start()
    print(f"relaying StatsD on {receiver.getsockname()} to CloudWatch {namespace} every {interval:g} s", flush=True)
    announced = False
    while True:
        stopped = stopping.wait(interval)
        with lock:
            data = aggregate.metric_data()
        try:
            if queues:
                data += broker_queue_depths(os.environ["AIRFLOW__CELERY__BROKER_URL"], queues)
            if ecs is not None:
                data += worker_counts(ecs, cluster, worker_service)
        except Exception as error:  # Airflow's own metrics are still published
            print(f"stack sample failed: {error}", flush=True)
        try:
            count = publish(cloudwatch, namespace, data)
            if count and not announced:
                print(f"publishing: {count} metrics in the first interval with any", flush=True)
                announced = True
        except Exception as error:  # the next interval retries with its own data
            print(f"metrics not published: {error}", flush=True)
        if stopped:
            return


if __name__ == "__main__":
    main()
