"""library/rds_subnet_groups.py against a moto server of its own, through the real `ansible` CLI.

The module's AWS calls go through the weather proxy (embedded_aws/weather.py, no latency, no faults), which
counts every request it forwards by operation: that count is what the module really sent, measured on the
wire. What the groups hold is read with boto3 straight from the emulator (not counted).

moto's DeleteDBSubnetGroup deletes a group whatever uses it; AWS's InvalidDBSubnetGroupStateFault is driven
in this process (test_a_group_in_use_*). (moto 5.2.5's ModifyDBSubnetGroup dropped the group from its store;
the embedded emulator puts it back, so a repaired group is read back here.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from ansible_runner import run_counted, run_module
from botocore.exceptions import ClientError
from emulator import Emulator, endpoint_env, free_port, start_emulator

from embedded_aws.weather import Weather, WeatherProxy

MODULE = "rds_subnet_groups"
NAME = "airflow-metadata"
DESCRIPTION = "airflow Airflow metadata database"
TAGS = {"airflow-ecs:stack": "airflow", "owner": "data"}
DESCRIBE = "rds DescribeDBSubnetGroups"
LIST_TAGS = "rds ListTagsForResource"
READS = {DESCRIBE: 1, LIST_TAGS: 1}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """This module's moto server (overrides the session one)."""
    server = start_emulator(tmp_path_factory.mktemp("moto_rds_subnet_groups") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(emulator: Emulator) -> Iterator[WeatherProxy]:
    """The weather proxy in front of the emulator, counting the module's calls (no latency, no faults)."""
    counting = WeatherProxy(emulator.url, Weather(latency_ms=0))
    yield counting
    counting.close()


@pytest.fixture
def subnets(clean_emulator: Emulator) -> list[str]:
    """Three subnets of one VPC in a blank account: two in us-east-1a and 1b (the group's), a spare in 1c."""
    ec2 = clean_emulator.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    return [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{10 + index}.0/24", AvailabilityZone=f"us-east-1{zone}")[
            "Subnet"
        ]["SubnetId"]
        for index, zone in enumerate("abc")
    ]


def run(proxy: WeatherProxy, args: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """One module run through the proxy: its result and the AWS calls it made, by operation."""
    return run_counted(MODULE, proxy, args, **kwargs)


def group(subnet_ids: list[str], **changes: Any) -> dict[str, Any]:
    """The database role's group, as it passes it."""
    return {"name": NAME, "description": DESCRIPTION, "subnet_ids": subnet_ids, "tags": TAGS} | changes


def in_aws(emulator: Emulator) -> dict[str, dict[str, Any]]:
    """Every group the emulator holds, by name: description, subnets and tags (read uncounted)."""
    rds = emulator.client("rds")
    return {
        found["DBSubnetGroupName"]: {
            "description": found["DBSubnetGroupDescription"],
            "subnet_ids": sorted(s["SubnetIdentifier"] for s in found["Subnets"]),
            "tags": {
                t["Key"]: t["Value"]
                for t in rds.list_tags_for_resource(ResourceName=found["DBSubnetGroupArn"])["TagList"]
            },
        }
        for found in rds.describe_db_subnet_groups()["DBSubnetGroups"]
    }


def make_group(emulator: Emulator, subnet_ids: list[str], tags: dict[str, str] = TAGS) -> dict[str, Any]:
    """The group as a deploy leaves it, made with boto3."""
    return emulator.client("rds").create_db_subnet_group(
        DBSubnetGroupName=NAME,
        DBSubnetGroupDescription=DESCRIPTION,
        SubnetIds=subnet_ids,
        Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
    )["DBSubnetGroup"]


def unchanged(**fields: Any) -> dict[str, Any]:
    return {"created": False, "deleted": False, "changed": False, "changes": []} | fields


def test_create_in_check_mode_then_create_then_a_rerun_only_reads(
    proxy: WeatherProxy, clean_emulator: Emulator, subnets: list[str]
) -> None:
    args = {"subnet_groups": [group(subnets[:2])]}
    wanted = {"description": DESCRIPTION, "subnet_ids": sorted(subnets[:2]), "tags": TAGS}

    planned, calls = run(proxy, args, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["subnet_groups"] == {
        NAME: unchanged(arn=None, vpc_id=None, subnet_ids=sorted(subnets[:2]), created=True, changed=True)
    }
    assert planned["diff"] == {"before": {}, "after": {NAME: wanted}}
    assert calls == {DESCRIBE: 1}
    assert in_aws(clean_emulator) == {}

    created, calls = run(proxy, args)
    assert created["changed"] is True, created
    entry = created["subnet_groups"][NAME]
    assert entry["arn"] == f"arn:aws:rds:us-east-1:123456789012:subgrp:{NAME}", entry
    assert entry["vpc_id"].startswith("vpc-")
    assert entry == unchanged(
        arn=entry["arn"], vpc_id=entry["vpc_id"], subnet_ids=sorted(subnets[:2]), created=True, changed=True
    )
    assert calls == {DESCRIBE: 1, "rds CreateDBSubnetGroup": 1}  # the tags go with CreateDBSubnetGroup
    assert in_aws(clean_emulator) == {NAME: wanted}

    again, calls = run(proxy, args, diff=True)
    assert again["changed"] is False, again
    assert again["subnet_groups"] == {
        NAME: unchanged(arn=entry["arn"], vpc_id=entry["vpc_id"], subnet_ids=sorted(subnets[:2]))
    }
    assert calls == READS  # upstream rds_subnet_group: both twice
    assert again["diff"]["before"] == again["diff"]["after"] == {NAME: wanted}


def test_drifted_tags_are_repaired(proxy: WeatherProxy, clean_emulator: Emulator, subnets: list[str]) -> None:
    make_group(clean_emulator, subnets[:2], tags={"airflow-ecs:stack": "airflow", "added": "by hand"})
    args = {"subnet_groups": [group(subnets[:2])]}

    repaired, calls = run(proxy, args, diff=True)
    assert repaired["subnet_groups"][NAME]["changes"] == ["tags"], repaired
    assert calls == {**READS, "rds AddTagsToResource": 1, "rds RemoveTagsFromResource": 1}
    assert repaired["diff"]["before"][NAME]["tags"] == {"airflow-ecs:stack": "airflow", "added": "by hand"}
    assert repaired["diff"]["after"][NAME]["tags"] == TAGS
    assert in_aws(clean_emulator)[NAME]["tags"] == TAGS

    # purge_tags false keeps the tags not listed.
    kept, calls = run(proxy, {"subnet_groups": [group(subnets[:2], tags={"owner": "data"}, purge_tags=False)]})
    assert kept["changed"] is False, kept
    assert calls == READS

    # Tags not given are neither read nor changed: one call.
    untouched, calls = run(proxy, {"subnet_groups": [group(subnets[:2], tags=None)]})
    assert untouched["changed"] is False, untouched
    assert calls == {DESCRIBE: 1}


def test_drifted_subnets_and_description_are_repaired_and_check_mode_writes_nothing(
    proxy: WeatherProxy, clean_emulator: Emulator, subnets: list[str]
) -> None:
    made = make_group(clean_emulator, subnets[1:])  # moved by hand to 1b and 1c
    clean_emulator.client("rds").remove_tags_from_resource(ResourceName=made["DBSubnetGroupArn"], TagKeys=["owner"])
    args = {"subnet_groups": [group(subnets[:2])]}
    expected = unchanged(
        arn=made["DBSubnetGroupArn"],
        vpc_id=made["VpcId"],
        subnet_ids=sorted(subnets[:2]),
        changed=True,
        changes=["subnet_ids", "tags"],
    )

    planned, calls = run(proxy, args, check=True, diff=True)
    assert planned["subnet_groups"] == {NAME: expected}, planned
    assert planned["diff"]["before"][NAME]["subnet_ids"] == sorted(subnets[1:])
    assert planned["diff"]["after"][NAME]["subnet_ids"] == sorted(subnets[:2])
    assert calls == READS
    assert in_aws(clean_emulator)[NAME]["subnet_ids"] == sorted(subnets[1:])

    changed = {"subnet_groups": [group(subnets[:2], description="renamed")]}
    repaired, calls = run(proxy, changed)
    assert repaired["subnet_groups"] == {NAME: expected | {"changes": ["description", "subnet_ids", "tags"]}}, repaired
    assert calls == {**READS, "rds ModifyDBSubnetGroup": 1, "rds AddTagsToResource": 1}
    held = in_aws(clean_emulator)[NAME]
    assert (held["description"], held["subnet_ids"]) == ("renamed", sorted(subnets[:2])), held
    assert run(proxy, changed)[1] == READS  # and the next run has nothing to do


def test_absent_deletes_only_the_named_group(proxy: WeatherProxy, clean_emulator: Emulator, subnets: list[str]) -> None:
    make_group(clean_emulator, subnets[:2])
    clean_emulator.client("rds").create_db_subnet_group(
        DBSubnetGroupName=f"{NAME}-old", DBSubnetGroupDescription="another", SubnetIds=subnets[:2]
    )
    absent = {"subnet_groups": [{"name": NAME}], "state": "absent"}

    planned, calls = run(proxy, absent, check=True, diff=True)
    assert planned["subnet_groups"] == {
        NAME: unchanged(arn=None, vpc_id=None, subnet_ids=[], changed=True, deleted=True)
    }
    assert planned["diff"] == {
        "before": {NAME: {"description": DESCRIPTION, "subnet_ids": sorted(subnets[:2])}},
        "after": {},
    }
    assert calls == {DESCRIBE: 1}
    assert sorted(in_aws(clean_emulator)) == [NAME, f"{NAME}-old"]

    deleted, calls = run(proxy, absent)
    assert deleted["changed"] is True, deleted
    assert calls == {"rds DeleteDBSubnetGroup": 1}
    assert sorted(in_aws(clean_emulator)) == [f"{NAME}-old"]

    again, calls = run(proxy, absent)
    assert again["changed"] is False, again
    assert again["subnet_groups"][NAME]["deleted"] is False
    assert calls == {"rds DeleteDBSubnetGroup": 1}  # DBSubnetGroupNotFoundFault: nothing to do


def test_bad_input_lists_every_problem_in_one_message_before_any_call(emulator: Emulator) -> None:
    """Pointed at a port nothing listens on: any AWS call would fail with a connection error instead."""
    args = {
        "subnet_groups": [
            group(["subnet-0123456789abcdef0", "subnet-0123456789abcdef0"], tags={"aws:owner": "x", "n": None}),
            {"name": "default", "description": None, "subnet_ids": ["sn-1"]},
            {"name": "Airflow-Metadata", "subnet_ids": []},
            {"name": "a/b", "description": "x", "subnet_ids": ["subnet-0123456789abcdef0"]},
        ]
    }
    result = run_module(MODULE, args, env=endpoint_env(f"http://127.0.0.1:{free_port()}"))
    assert result.get("failed") is True, result
    assert result["msg"] == (
        f"Cannot manage the DB subnet groups: subnet_groups[0] ({NAME}): subnet_ids lists subnet-0123456789abcdef0 "
        f"twice; subnet_groups[0] ({NAME}): tags: key 'aws:owner' starts with aws:, which AWS reserves; "
        f"subnet_groups[0] ({NAME}): tags.n must be a string; "
        "subnet_groups[1] (default): name must not be 'default', which RDS reserves; "
        "subnet_groups[1] (default): description is required with state present; "
        "subnet_groups[1] (default): subnet_ids: 'sn-1' is not a subnet id (subnet-...); "
        "subnet_groups[2] (Airflow-Metadata): description is required with state present; "
        "subnet_groups[2] (Airflow-Metadata): subnet_ids must list at least one subnet with state present; "
        "subnet_groups[3] (a/b): name must be 1 to 255 letters, digits, '.', '_', '-' or spaces; "
        f"subnet_groups names the same group twice: {NAME}. Nothing was changed."
    )
    assert result.get("changed", False) is False


# --- A group still in use, as AWS answers (moto deletes it whatever uses it) ---------------------------


class ModuleFailed(Exception):
    pass


class StubModule:
    """Just enough of AnsibleAWSModule to call ensure_absent in this process."""

    check_mode = False
    _diff = False

    def fail_json(self, **kwargs: Any) -> None:
        raise ModuleFailed(kwargs)

    def fail_json_aws(self, exception: Exception, msg: str, **kwargs: Any) -> None:
        raise ModuleFailed({"msg": f"{msg}: {exception}", **kwargs})


class InUseRds:
    """An RDS client answering DeleteDBSubnetGroup as AWS does for a group a DB instance uses."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def delete_db_subnet_group(self, **_: Any) -> None:
        self.calls.append("DeleteDBSubnetGroup")
        message = (
            f"Cannot delete the subnet group '{NAME}' because at least one database instance: airflow is still "
            "using it."
        )
        raise ClientError(
            {"Error": {"Code": "InvalidDBSubnetGroupStateFault", "Message": message}}, "DeleteDBSubnetGroup"
        )


@pytest.fixture
def rds_subnet_groups(load_library_module: Callable[[str], ModuleType]) -> ModuleType:
    return load_library_module(MODULE)


def test_a_group_in_use_is_reported_as_such(rds_subnet_groups: ModuleType) -> None:
    client = InUseRds()
    with pytest.raises(ModuleFailed) as failed:
        rds_subnet_groups.ensure_absent(StubModule(), client, NAME)
    [reported] = failed.value.args
    assert reported["msg"] == (
        f"Cannot delete DB subnet group '{NAME}': it is still used by a DB instance or cluster; delete or move "
        f"those first (AWS: InvalidDBSubnetGroupStateFault: Cannot delete the subnet group '{NAME}' because at "
        "least one database instance: airflow is still using it.)"
    )
    assert client.calls == ["DeleteDBSubnetGroup"]
