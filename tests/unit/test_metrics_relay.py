"""The metrics sidecar (roles/airflow_nodes/files/metrics_relay.py): StatsD in, CloudWatch metric data out.

Datagrams come from Airflow's own StatsD logger (the `statsd` client the image uses, with Airflow's
InfluxDB-style tags and allow list), so the names and tags are what a node really sends.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow._shared.observability.metrics.statsd_logger import get_statsd_logger
from emulator import Emulator
from statsd import StatsClient

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("metrics_relay", ROOT / "roles/airflow_nodes/files/metrics_relay.py")
relay = sys.modules["metrics_relay"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(relay)


def airflow_datagrams(send) -> list[str]:
    """What Airflow's StatsD logger (prefix airflow, InfluxDB tags, an allow list) sends while `send` runs."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    logger = get_statsd_logger(
        stats_class=StatsClient,
        host="127.0.0.1",
        port=receiver.getsockname()[1],
        prefix="airflow",
        influxdb_tags_enabled=True,
        statsd_influxdb_enabled=True,  # Airflow sets both from [metrics] statsd_influxdb_enabled
        metrics_allow_list="^scheduler_heartbeat\\b,^ti_failures\\b,^pool\\.queued_slots\\b,^dagrun\\.duration\\.success\\b",
    )
    send(logger)
    datagrams = []
    try:
        while True:
            datagrams.append(receiver.recv(65535).decode())
    except TimeoutError:
        return datagrams
    finally:
        receiver.close()


def by_name(data: list[dict]) -> dict[str, dict]:
    return {(d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"])): d for d in data}


def test_airflow_counters_gauges_and_timers_become_one_datum_each_without_dag_dimensions():
    def send(stats):
        stats.incr("scheduler_heartbeat", 1, 1)
        stats.incr("scheduler_heartbeat", 1, 1)
        stats.incr("ti_failures", tags={"dag_id": "books_etl", "task_id": "scrape"})
        stats.incr("ti_failures", tags={"dag_id": "fan_out", "task_id": "one"})
        stats.incr("executor.open_slots")  # not in the allow list: never sent
        stats.gauge("pool.queued_slots", 3, tags={"pool_name": "default_pool"})
        stats.gauge("pool.queued_slots", 2, tags={"pool_name": "etl"})
        stats.gauge("pool.queued_slots", 4, tags={"pool_name": "default_pool"})  # the last value of a pool counts
        stats.timing("dagrun.duration.success", 1500, tags={"dag_id": "books_etl"})
        stats.timing("dagrun.duration.success", 500, tags={"dag_id": "fan_out"})

    aggregate = relay.Aggregate(frozenset())
    for datagram in airflow_datagrams(send):
        for sample in relay.parse(datagram):
            aggregate.add(sample)
    data = by_name(aggregate.metric_data())

    assert set(data) == {
        ("scheduler_heartbeat", ()),
        ("ti_failures", ()),
        ("pool.queued_slots", ()),
        ("dagrun.duration.success", ()),
    }
    assert data[("scheduler_heartbeat", ())]["Value"] == 2
    assert data[("ti_failures", ())]["Value"] == 2
    assert data[("pool.queued_slots", ())]["Value"] == 6  # every pool's queued slots
    assert data[("dagrun.duration.success", ())]["StatisticValues"] == {
        "SampleCount": 2,
        "Sum": 2000,
        "Minimum": 500,
        "Maximum": 1500,
    }


def test_kept_tags_become_dimensions():
    aggregate = relay.Aggregate(frozenset({"pool_name"}))
    for line in ("airflow.pool.queued_slots,pool_name=default_pool:4|g", "airflow.pool.queued_slots,pool_name=etl:2|g"):
        for sample in relay.parse(line):
            aggregate.add(sample)
    data = by_name(aggregate.metric_data())
    assert data[("pool.queued_slots", (("pool_name", "default_pool"),))]["Value"] == 4
    assert data[("pool.queued_slots", (("pool_name", "etl"),))]["Value"] == 2


def test_counters_restart_every_interval_and_gauges_keep_their_last_value():
    aggregate = relay.Aggregate(frozenset())
    for sample in relay.parse("airflow.scheduler_heartbeat:1|c\nairflow.executor.open_slots:16|g"):
        aggregate.add(sample)
    assert len(aggregate.metric_data()) == 2
    assert by_name(aggregate.metric_data()) == {
        ("executor.open_slots", ()): {
            "MetricName": "executor.open_slots",
            "Dimensions": [],
            "Value": 16,
            "Unit": "None",
        }
    }


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("airflow.ti_successes:1|c|@0.5", 2.0),  # a sampled counter counts for 1/rate
        ("airflow.executor.open_slots:+2|g", 18.0),  # a gauge delta moves the last value
        ("airflow.executor.open_slots:-6|g", 10.0),
    ],
)
def test_sample_rates_and_gauge_deltas(line, value):
    aggregate = relay.Aggregate(frozenset())
    aggregate.add(relay.Sample("executor.open_slots", "g", 16.0, ()))
    for sample in relay.parse(line):
        aggregate.add(sample)
    data = by_name(aggregate.metric_data())
    name = line.split(":")[0].removeprefix("airflow.")
    assert data[(name, ())]["Value"] == value


@pytest.mark.parametrize("junk", ["", "no-colon", "a:1", "a:x|c", "a:1|s", "a:1|c|@x", ":1|c"])
def test_junk_lines_are_skipped(junk):
    assert relay.parse(junk) == []


def test_published_metrics_can_be_read_back_and_the_cost_guard_drops_the_excess(clean_emulator: Emulator, capsys):
    cloudwatch = clean_emulator.client("cloudwatch")
    data = [relay._datum(f"m{i}", (), {"Value": 1, "Unit": "Count"}) for i in range(relay.MAX_METRICS + 3)]
    data.insert(0, relay._datum("scheduler_heartbeat", (), {"Value": 12, "Unit": "Count"}))
    assert relay.publish(cloudwatch, "airflow-ecs/test", data) == relay.MAX_METRICS
    assert "not published: ['m499', 'm500', 'm501', 'm502']" in capsys.readouterr().out
    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace="airflow-ecs/test",
        MetricName="scheduler_heartbeat",
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    assert sum(p["Sum"] for p in stats) == 12


def test_worker_counts_report_the_shortfall_never_below_zero():
    class Ecs:
        def __init__(self, services):
            self.services = services

        def describe_services(self, cluster, services):
            assert (cluster, services) == ("airflow", ["airflow-worker"])
            return {"services": self.services}

    def counts(services):
        return {d["MetricName"]: d["Value"] for d in relay.worker_counts(Ecs(services), "airflow", "airflow-worker")}

    assert counts([{"status": "ACTIVE", "desiredCount": 3, "runningCount": 1}]) == {
        "RunningWorkers": 1,
        "WorkerShortfall": 2,
    }
    assert counts([{"status": "ACTIVE", "desiredCount": 1, "runningCount": 2}])["WorkerShortfall"] == 0  # mid-rollout
    assert counts([{"status": "INACTIVE", "desiredCount": 0, "runningCount": 0}]) == {
        "RunningWorkers": 0,
        "WorkerShortfall": 0,
    }
