"""The rules of plugins/action/validate_inputs.py on their own (the playbook runs are in test_bad_input.py)."""

from __future__ import annotations

import pytest
from ansible_runner import ROOT
from conftest import load_source

VALUES = {
    "network_vpc_cidr": "10.40.0.0/16",
    "network_az_count": 2,
    "cpu": 1024,
    "aws_region": "us-east-1",
    "dag_bucket": "airflow-dags-000000000000-us-east-1",
}


@pytest.fixture
def rules(monkeypatch):
    return load_source("validate_inputs", ROOT / "plugins" / "action" / "validate_inputs.py", monkeypatch)


@pytest.mark.parametrize(
    ("value", "rule", "problem"),
    [
        (True, {"type": "int"}, "must be a whole number"),
        ("2", {"type": "int"}, "on the command line pass it as JSON"),
        (17.1, {"type": "str"}, "must be a string"),
        ("false", {"type": "bool"}, "must be a boolean"),
        (["a"], {"type": "list", "elements": {"type": "int"}}, "item 'a' must be a whole number"),
        ([1, 1], {"type": "list", "unique": True, "elements": {"type": "int"}}, "the same item twice"),
        ("10.40.0.0/28", {"type": "str", "kind": "ipv4_network", "prefix": [16, 24]}, "prefix from /16 to /24"),
        ("240.0.0.0/16", {"type": "str", "kind": "ipv4_network"}, "reserved range"),
        (1536, {"type": "int", "kind": "fargate_memory", "cpu": "cpu"}, "allowed 2048 to 8192 MiB"),
        (
            ["10.40.0.0/24", "10.40.0.128/25"],
            {"type": "list", "kind": "subnets", "count": "network_az_count", "within": "network_vpc_cidr"},
            "overlaps",
        ),
        ("bucket.with.dots", {"type": "str", "kind": "bucket"}, "3-63 characters"),
        ("sthree-data", {"type": "str", "kind": "bucket"}, "S3 reserves"),
        (
            "airflow-dags-000000000000-us-east-1",
            {"type": "str", "kind": "bucket", "distinct_from": ["dag_bucket"]},
            "same bucket",
        ),
        ("us-east-9", {"type": "str", "kind": "region"}, "not a region this botocore knows"),
        ({"k": "v" * 257}, {"type": "dict", "kind": "tags"}, "at most 256"),
        ({"a": 1}, {"type": "dict", "kind": "environment"}, "key 'a' must be an upper-case"),
        ("health", {"type": "str", "kind": "url_path"}, "absolute path"),
        (10, {"type": "int", "kind": "retention_days"}, "retention periods"),
        (
            "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012",
            {"type": "str", "kind": "acm_arn", "region": "aws_region"},
            "in aws_region us-east-1",
        ),
        (5, {"type": "int", "ge_times": ["network_az_count", 3]}, "at least 3 x network_az_count (6)"),
        (12, {"type": "int", "min": 5, "multiple_of": 5}, "must be a multiple of 5"),
        ("rabbitmq:4@sha256:abc", {"type": "str", "kind": "image"}, "malformed digest 'sha256:abc'"),
        ("rabbitmq@md5:" + "a" * 32, {"type": "str", "kind": "image"}, "malformed digest"),
        ("rabbitmq:latest", {"type": "str", "kind": "image"}, "explicit tag or digest"),
    ],
)
def test_a_bad_value_is_named_with_what_is_allowed(rules, value, rule, problem):
    found = rules.check(value, rule, VALUES.get)
    assert found is not None and problem in found, found


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (2, {"type": "int", "min": 2, "max": 6}),
        (15, {"type": "int", "min": 5, "multiple_of": 5}),
        ("10.40.0.0/16", {"type": "str", "kind": "ipv4_network", "prefix": [16, 24]}),
        ("0.0.0.0/0", {"type": "str", "kind": "ipv4_source"}),
        (4096, {"type": "int", "kind": "fargate_memory", "cpu": "cpu"}),
        ([], {"type": "list", "kind": "subnets", "count": "network_az_count", "within": "network_vpc_cidr"}),
        ({"owner": "data-platform", "cost center": "42"}, {"type": "dict", "kind": "tags", "reserved": 3}),
        ("", {"type": "str", "kind": "acm_arn", "region": "aws_region"}),
        (None, {"type": "str", "nullable": True}),
        ("rabbitmq:4.1.4-management@sha256:" + "a" * 64, {"type": "str", "kind": "image"}),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow/airflow@sha256:" + "b" * 64,
            {"type": "str", "kind": "image"},
        ),
    ],
)
def test_a_good_value_passes(rules, value, rule):
    assert rules.check(value, rule, VALUES.get) is None


@pytest.mark.parametrize("value", ["10.0.0.0/16", "192.168.1.0/24", "10.40.128.0/20"])
def test_a_network_in_cidr_form_is_a_valid_source(rules, value):
    assert rules.check(value, {"type": "str", "kind": "ipv4_source"}, VALUES.get) is None


@pytest.mark.parametrize("value", ["10.0.0.1/16", "10.0.0.0/33", "10.0.0.0", "", None, 16, "fe80::/64", "x/24"])
def test_anything_else_is_not_a_source_network(rules, value):
    assert rules.check(value, {"type": "str", "kind": "ipv4_source"}, VALUES.get) is not None


def test_an_unknown_rule_key_is_a_programming_error(rules):
    with pytest.raises(Exception, match="unknown rule keys"):
        rules.check(1, {"type": "int", "minimum": 1}, VALUES.get)
