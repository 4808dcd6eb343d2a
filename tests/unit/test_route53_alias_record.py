"""library/route53_alias_record.py against a moto server, through the real `ansible` CLI (calls counted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ansible_runner import CountedModule
from emulator import Emulator

MODULE = "route53_alias_record"
ALB = "airflow-alb"
NAME = "airflow.example.com"
# The counting proxy names a REST call by method and path (ids out): ListResourceRecordSets, ChangeResourceRecordSets.
READS = {"route53 GET /{id}/hostedzone/{id}/rrset": 1, "elasticloadbalancing DescribeLoadBalancers": 1}
CHANGE = "route53 POST /{id}/hostedzone/{id}/rrset/"


@pytest.fixture
def setup(emulator: Emulator) -> dict[str, Any]:
    """A public zone example.com and an ALB, made with boto3 (not counted)."""
    emulator.reset()
    ec2 = emulator.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.31.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in enumerate("ab")
    ]
    balancer = emulator.client("elbv2").create_load_balancer(Name=ALB, Subnets=subnets)["LoadBalancers"][0]
    zone = emulator.client("route53").create_hosted_zone(Name="example.com", CallerReference="test")["HostedZone"]
    return {"zone": zone["Id"].rsplit("/", 1)[-1], "balancer": balancer}


@pytest.fixture
def counted(emulator: Emulator) -> Iterator[CountedModule]:
    proxy = CountedModule(MODULE, emulator.url)
    yield proxy
    proxy.close()


def records(emulator: Emulator, zone: str) -> dict[str, dict]:
    found = emulator.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {f"{r['Name']} {r['Type']}": r for r in found if r["Type"] not in ("NS", "SOA")}


def test_alias_is_created_kept_and_deleted(emulator: Emulator, setup: dict, counted: CountedModule) -> None:
    args = {"hosted_zone_id": setup["zone"], "name": NAME, "load_balancer": ALB}
    planned, calls = counted.run(args, check=True, diff=True)
    assert planned["changes"] == [f"create the A alias {NAME} to load balancer {ALB}"], planned
    assert calls == READS and records(emulator, setup["zone"]) == {}

    created, calls = counted.run(args)
    assert created["changed"] is True
    assert calls == {**READS, CHANGE: 1}  # moto answers INSYNC at once
    [record] = records(emulator, setup["zone"]).values()
    assert (record["Name"], record["Type"]) == (f"{NAME}.", "A")
    assert record["AliasTarget"]["DNSName"].rstrip(".").lower() == setup["balancer"]["DNSName"].lower()
    assert record["AliasTarget"]["HostedZoneId"] == setup["balancer"]["CanonicalHostedZoneId"]

    again, calls = counted.run(args)
    assert again["changed"] is False and calls == READS

    # A teardown not told the name finds it in the ALB's tags.
    emulator.client("elbv2").add_tags(
        ResourceArns=[setup["balancer"]["LoadBalancerArn"]],
        Tags=[{"Key": "airflow-ecs:dns-name", "Value": NAME}, {"Key": "airflow-ecs:dns-zone", "Value": setup["zone"]}],
    )
    absent = {"load_balancer": ALB, "state": "absent"}
    deleted, _ = counted.run(absent)
    assert deleted["changes"] == [f"delete the A alias {NAME} to load balancer {ALB}"]
    assert records(emulator, setup["zone"]) == {}
    assert counted.run(absent)[0]["changed"] is False


def test_a_foreign_record_is_refused_and_a_gone_alb_alias_is_still_deleted(
    emulator: Emulator, setup: dict, counted: CountedModule
) -> None:
    route53 = emulator.client("route53")
    mine = {"Name": NAME, "Type": "A", "ResourceRecords": [{"Value": "192.0.2.1"}], "TTL": 60}
    route53.change_resource_record_sets(
        HostedZoneId=setup["zone"], ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": mine}]}
    )
    args = {"hosted_zone_id": setup["zone"], "name": NAME, "load_balancer": ALB}
    refused, calls = counted.run(args)
    assert refused.get("failed") is True
    assert "the A record airflow.example.com holds 192.0.2.1, which this stack did not make" in refused["msg"]
    assert calls == READS
    assert counted.run({**args, "state": "absent"})[0]["changed"] is False  # never deleted either

    route53.change_resource_record_sets(
        HostedZoneId=setup["zone"], ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": mine}]}
    )
    assert counted.run(args)[0]["changed"] is True
    emulator.client("elbv2").delete_load_balancer(LoadBalancerArn=setup["balancer"]["LoadBalancerArn"])
    deleted, _ = counted.run({**args, "state": "absent"})  # the ALB is gone: matched by its name
    assert deleted["changed"] is True and records(emulator, setup["zone"]) == {}
