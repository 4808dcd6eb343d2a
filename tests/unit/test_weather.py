"""The AWS-weather proxy (embedded_aws/weather.py) in front of a moto server, through boto3 as modules use it."""

from __future__ import annotations

import json
import time
from urllib.request import Request, urlopen

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from emulator import CREDENTIALS, REGION, Emulator

from embedded_aws.weather import Weather, WeatherProxy


def client(proxy: WeatherProxy, service: str, attempts: int = 1):
    return boto3.client(
        service,
        endpoint_url=proxy.url,
        region_name=REGION,
        **CREDENTIALS,
        config=Config(retries={"mode": "standard", "max_attempts": attempts}),
    )


@pytest.fixture
def proxy(clean_emulator: Emulator):
    found = WeatherProxy(clean_emulator.url, Weather(latency_ms=0, fault_rate=0, seed=7))
    yield found
    found.close()


def test_calls_are_forwarded_and_counted_per_service_and_operation(proxy: WeatherProxy) -> None:
    client(proxy, "ec2").describe_vpcs()
    client(proxy, "ecs").list_clusters()
    client(proxy, "cloudwatch").list_metrics()  # smithy-rpc-v2-cbor
    s3 = client(proxy, "s3")
    s3.create_bucket(Bucket="weather")
    s3.put_object(Bucket="weather", Key="dags/a.py", Body=b"x" * 2048)
    assert s3.head_object(Bucket="weather", Key="dags/a.py")["ContentLength"] == 2048
    assert s3.get_object(Bucket="weather", Key="dags/a.py")["Body"].read() == b"x" * 2048
    s3.list_objects_v2(Bucket="weather")
    s3.get_bucket_versioning(Bucket="weather")  # a sub-resource without a value: ?versioning
    calls = proxy.weather.stats()["calls"]
    assert calls == {
        "ec2 DescribeVpcs": 1,
        "ecs ListClusters": 1,
        "monitoring ListMetrics": 1,
        "s3 PUT Bucket": 1,
        "s3 PUT Object": 1,
        "s3 HEAD Object": 1,
        "s3 GET Object": 1,
        "s3 GET Bucket?encoding-type,list-type": 1,
        "s3 GET Bucket?versioning": 1,
    }


def test_each_call_waits_the_configured_latency(proxy: WeatherProxy) -> None:
    ecs = client(proxy, "ecs")
    for _ in range(3):  # the connection and the emulator's ECS backend set up
        ecs.list_clusters()
    began = time.monotonic()
    ecs.list_clusters()
    fast = time.monotonic() - began
    proxy.weather.latency_ms = 80
    began = time.monotonic()
    ecs.list_clusters()
    slow = time.monotonic() - began
    assert fast < 0.08 <= slow, (fast, slow)


@pytest.mark.parametrize(
    ("service", "call", "throttled", "status"),
    [
        ("ec2", lambda c: c.describe_vpcs(), "RequestLimitExceeded", 503),
        ("iam", lambda c: c.list_roles(), "Throttling", 400),
        ("elbv2", lambda c: c.describe_load_balancers(), "Throttling", 400),
        ("ecs", lambda c: c.list_clusters(), "ThrottlingException", 400),
        ("secretsmanager", lambda c: c.list_secrets(), "ThrottlingException", 400),
        ("s3", lambda c: c.list_buckets(), "SlowDown", 503),
        ("cloudwatch", lambda c: c.list_metrics(), "ThrottlingException", 400),
    ],
)
def test_a_shed_call_reads_as_that_services_throttling_and_the_sdk_retries_it(proxy, service, call, throttled, status):
    proxy.weather.fault_rate = 1.0
    codes = []
    for _ in range(8):
        with pytest.raises(ClientError) as failure:
            call(client(proxy, service))
        codes.append(
            (failure.value.response["Error"]["Code"], failure.value.response["ResponseMetadata"]["HTTPStatusCode"])
        )
    assert (throttled, status) in codes
    assert {code for code, _ in codes} - {throttled} <= {"InternalError", "InternalFailure"}
    # With the SDK's retries, 30 % weather costs attempts, not failures.
    proxy.weather.fault_rate = 0.3
    for _ in range(10):
        call(client(proxy, service, attempts=10))
    stats = proxy.weather.stats()
    assert sum(stats["faults"].values()) > 8


def test_the_stats_can_be_read_and_reset_over_http(proxy: WeatherProxy) -> None:
    client(proxy, "ecs").list_clusters()
    assert json.load(urlopen(f"{proxy.url}/_weather/stats"))["calls"] == {"ecs ListClusters": 1}
    json.load(urlopen(Request(f"{proxy.url}/_weather/reset", method="POST")))
    assert proxy.weather.stats() == {"calls": {}, "faults": {}}
