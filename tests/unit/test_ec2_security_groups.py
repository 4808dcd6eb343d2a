"""library/ec2_security_groups.py against a moto server, through the real `ansible` CLI.

moto 5.2.5 quirks the module lives with: UpdateSecurityGroupRuleDescriptionsIngress ignores rules that
name a group (the module then revokes and authorizes them again), and a group pair is only revoked when
the request carries its description.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator
from in_use import InUseClient, ModuleFailed, StubModule

MODULE = "ec2_security_groups"
ALB, NODES, DB = "t-alb", "t-nodes", "t-db"


def groups_args(vpc_id: str, **overrides: Any) -> dict[str, Any]:
    """Three groups: a CIDR rule, a cross reference to a later group, a self reference, tags."""
    groups = [
        {
            "name": ALB,
            "description": "load balancer",
            "rules": [
                {"proto": "tcp", "ports": [80, "443"], "cidr_ip": ["10.0.0.0/8", "192.168.1.0/24"], "rule_desc": "web"}
            ],
            "tags": {"Name": ALB, "stack": "t"},
        },
        {
            "name": NODES,
            "description": "nodes",
            "rules": [
                {"proto": "tcp", "ports": [8080], "group_name": ALB, "rule_desc": "from alb"},
                {"proto": "tcp", "ports": ["8793-8794"], "group_name": NODES, "rule_desc": "between nodes"},
            ],
            "tags": {"Name": NODES, "stack": "t"},
        },
        {
            "name": DB,
            "description": "database",
            "rules": [{"proto": "tcp", "ports": [5432], "group_name": NODES, "rule_desc": "postgres"}],
            "tags": {"Name": DB, "stack": "t"},
        },
    ]
    # ALB also admits the database group, created after it in this run: a forward reference.
    groups[0]["rules"].append({"proto": "all", "group_name": DB})
    return {"vpc_id": vpc_id, "groups": groups, **overrides}


def in_aws(emulator: Emulator, vpc_id: str) -> dict[str, dict]:
    """What EC2 says: per group name, its id, description, ingress as sortable tuples (group ids
    replaced by names) and tags; the VPC's default group left out."""
    ec2 = emulator.client("ec2")
    found = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    names = {g["GroupId"]: g["GroupName"] for g in found}
    view = {}
    for group in found:
        if group["GroupName"] == "default":
            continue
        rules = set()
        for perm in group["IpPermissions"]:
            ports = (perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort"))
            for item in perm["IpRanges"]:
                rules.add((*ports, item["CidrIp"], item.get("Description", "")))
            for item in perm["UserIdGroupPairs"]:
                rules.add((*ports, "sg:" + names[item["GroupId"]], item.get("Description", "")))
        view[group["GroupName"]] = {
            "id": group["GroupId"],
            "description": group["Description"],
            "ingress": rules,
            "egress": len(group["IpPermissionsEgress"]),
            "tags": {t["Key"]: t["Value"] for t in group.get("Tags", [])},
        }
    return view


EXPECTED_INGRESS = {
    ALB: {
        ("tcp", 80, 80, "10.0.0.0/8", "web"),
        ("tcp", 80, 80, "192.168.1.0/24", "web"),
        ("tcp", 443, 443, "10.0.0.0/8", "web"),
        ("tcp", 443, 443, "192.168.1.0/24", "web"),
        ("-1", None, None, "sg:" + DB, ""),
    },
    NODES: {("tcp", 8080, 8080, "sg:" + ALB, "from alb"), ("tcp", 8793, 8794, "sg:" + NODES, "between nodes")},
    DB: {("tcp", 5432, 5432, "sg:" + NODES, "postgres")},
}


def test_groups_story(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    args = groups_args(vpc_id)

    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert in_aws(clean_emulator, vpc_id) == {}
    assert [g["name"] for g in planned["groups"]] == [ALB, NODES, DB]
    assert all(g["group_id"] is None for g in planned["groups"])
    assert planned["group_ids"] == {}
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"][NODES] == {
        "name": NODES,
        "description": "nodes",
        "rules": ["tcp 8080 from group t-alb (from alb)", "tcp 8793-8794 from group t-nodes (between nodes)"],
        "tags": {"Name": NODES, "stack": "t"},
    }

    created = run_module(MODULE, args, env=env, diff=True)
    assert created["changed"] is True, created
    aws = in_aws(clean_emulator, vpc_id)
    assert set(aws) == {ALB, NODES, DB}
    for name, description in ((ALB, "load balancer"), (NODES, "nodes"), (DB, "database")):
        assert aws[name]["description"] == description
        assert aws[name]["ingress"] == EXPECTED_INGRESS[name], name
        assert aws[name]["tags"] == {"Name": name, "stack": "t"}
        assert aws[name]["egress"] == 1  # AWS's default egress rule, untouched
    assert created["group_ids"] == {name: aws[name]["id"] for name in aws}
    assert [g["group_id"] for g in created["groups"]] == [aws[ALB]["id"], aws[NODES]["id"], aws[DB]["id"]]
    nodes = created["groups"][1]
    assert nodes["ingress"][0] == {
        "proto": "tcp",
        "from_port": 8080,
        "to_port": 8080,
        "group_id": aws[ALB]["id"],
        "group_name": ALB,
        "rule_desc": "from alb",
    }
    assert created["diff"]["after"][DB]["rules"] == ["tcp 5432 from group t-nodes (postgres)"]

    again = run_module(MODULE, args, env=env, diff=True)
    assert again["changed"] is False, again
    assert again["group_ids"] == created["group_ids"]
    assert again["groups"] == created["groups"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert run_module(MODULE, args, env=env, check=True)["changed"] is False


def test_changed_rules_are_purged_and_tags_synced(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, groups_args(vpc_id), env=env)
    aws = in_aws(clean_emulator, vpc_id)
    # Change a port, drop the forward reference (purged), rename a rule, change tags.
    changed_args = groups_args(vpc_id)
    alb, nodes_group, db = changed_args["groups"]
    alb["rules"] = [{"proto": "tcp", "ports": [443], "cidr_ip": "10.0.0.0/8", "rule_desc": "web"}]
    nodes_group["rules"][0]["rule_desc"] = "api from alb"
    nodes_group["rules"][1]["cidr_ip"] = ["10.1.2.3/16"]  # host bits: reduced to 10.1.0.0/16
    db["rules"][0]["ports"] = [5433]
    db["tags"] = {"Name": DB, "owner": "me"}
    preview = run_module(MODULE, changed_args, env=env, check=True, diff=True)
    assert preview["changed"] is True
    assert in_aws(clean_emulator, vpc_id) == aws
    assert preview["diff"]["after"][DB]["rules"] == ["tcp 5433 from group t-nodes (postgres)"]
    assert preview["groups"][2]["tags"] == {"Name": DB, "owner": "me"}

    updated = run_module(MODULE, changed_args, env=env, diff=True)
    assert updated["changed"] is True, updated
    assert any("10.1.2.3/16 has host bits set" in w for w in updated.get("warnings", [])), updated
    after = in_aws(clean_emulator, vpc_id)
    assert after[ALB]["ingress"] == {("tcp", 443, 443, "10.0.0.0/8", "web")}
    assert after[NODES]["ingress"] == {
        ("tcp", 8080, 8080, "sg:" + ALB, "api from alb"),
        ("tcp", 8793, 8794, "sg:" + NODES, "between nodes"),
        ("tcp", 8793, 8794, "10.1.0.0/16", "between nodes"),
    }
    assert after[DB]["ingress"] == {("tcp", 5433, 5433, "sg:" + NODES, "postgres")}
    assert after[DB]["tags"] == {"Name": DB, "owner": "me"}
    assert {name: after[name]["id"] for name in after} == created["group_ids"]  # updated in place
    assert updated["diff"]["before"][DB]["tags"] == {"Name": DB, "stack": "t"}
    assert run_module(MODULE, changed_args, env=env)["changed"] is False


def test_description_is_not_changed_and_absent_deletes_despite_references(
    clean_emulator: Emulator, vpc_id: str
) -> None:
    env = clean_emulator.env()
    changed_args = groups_args(vpc_id)
    alb = changed_args["groups"][0]
    assert run_module(MODULE, changed_args, env=env)["changed"] is True
    # A description cannot change in place: warned, left alone, not a change.
    alb["description"] = "new text"
    warned = run_module(MODULE, changed_args, env=env)
    assert warned["changed"] is False, warned
    assert any("cannot change the description" in w for w in warned.get("warnings", [])), warned
    assert in_aws(clean_emulator, vpc_id)[ALB]["description"] == "load balancer"

    # absent: the mutual and self references between the groups must not block the deletion.
    absent = {"vpc_id": vpc_id, "groups": [{"name": ALB}, {"name": NODES}, {"name": DB}], "state": "absent"}
    plan = run_module(MODULE, absent, env=env, check=True, diff=True)
    assert plan["changed"] is True
    assert set(plan["diff"]["before"]) == {ALB, NODES, DB} and plan["diff"]["after"] == {}
    assert set(in_aws(clean_emulator, vpc_id)) == {ALB, NODES, DB}
    deleted = run_module(MODULE, absent, env=env)
    assert deleted["changed"] is True, deleted
    assert in_aws(clean_emulator, vpc_id) == {}
    assert run_module(MODULE, absent, env=env)["changed"] is False


def test_unknown_group_fails_before_any_change(clean_emulator: Emulator, vpc_id: str) -> None:
    args = groups_args(vpc_id)
    args["groups"][2]["rules"].append({"proto": "tcp", "ports": [1], "group_name": "nope"})
    result = run_module(MODULE, args, env=clean_emulator.env())
    assert result.get("failed") is True, result
    assert "Rule 2 of security group 't-db' names security group 'nope'" in result["msg"]
    assert "nothing was changed" in result["msg"]
    assert in_aws(clean_emulator, vpc_id) == {}


def test_existing_group_of_the_vpc_may_be_named(clean_emulator: Emulator, vpc_id: str) -> None:
    ec2 = clean_emulator.client("ec2")
    other = ec2.create_security_group(GroupName="bastion", Description="made elsewhere", VpcId=vpc_id)["GroupId"]
    args = {
        "vpc_id": vpc_id,
        "groups": [{"name": "ssh", "description": "ssh", "rules": [{"ports": [22], "group_name": "bastion"}]}],
    }
    result = run_module(MODULE, args, env=clean_emulator.env())
    assert result["changed"] is True, result
    assert in_aws(clean_emulator, vpc_id)["ssh"]["ingress"] == {("tcp", 22, 22, "sg:bastion", "")}
    assert result["groups"][0]["ingress"][0]["group_id"] == other
    assert result["groups"][0]["tags"] == {}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"proto": "tcp", "cidr_ip": "10.0.0.0/8"}, "a tcp rule needs ports"),
        ({"ports": ["80-x"], "cidr_ip": "10.0.0.0/8"}, "port '80-x' is neither a number nor"),
        ({"ports": ["90-80"], "cidr_ip": "10.0.0.0/8"}, "is not within 0-65535"),
        ({"ports": [80]}, "has no source"),
        ({"ports": [80], "cidr_ip": "10.0.0/8x"}, "is not a CIDR block"),
    ],
)
def test_bad_rule_is_refused(clean_emulator: Emulator, vpc_id: str, rule: dict, message: str) -> None:
    args = {"vpc_id": vpc_id, "groups": [{"name": "g", "description": "g", "rules": [rule]}]}
    result = run_module(MODULE, args, env=clean_emulator.env())
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert in_aws(clean_emulator, vpc_id) == {}


# --- A group still in use: moto deletes it anyway, so a stub client gives AWS's DependencyViolation ----


def test_absent_fails_clearly_when_a_group_is_still_in_use(
    clean_emulator: Emulator, vpc_id: str, load_library_module: Callable[[str], ModuleType]
) -> None:
    ec2 = clean_emulator.client("ec2")
    busy = ec2.create_security_group(GroupName="busy", Description="busy", VpcId=vpc_id)["GroupId"]
    idle = ec2.create_security_group(GroupName="idle", Description="idle", VpcId=vpc_id)["GroupId"]
    for group_id, source in ((busy, idle), (idle, busy), (busy, busy)):
        pair = {"GroupId": source, "Description": "ref"}
        ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [pair]}],
        )
    library = load_library_module(MODULE)
    module = StubModule({"vpc_id": vpc_id, "groups": [{"name": "busy"}, {"name": "idle"}], "state": "absent"})
    with pytest.raises(ModuleFailed) as failed:
        library.ensure_absent(module, InUseClient(ec2, "delete_security_group", "GroupId", busy))
    message, extra = failed.value.args
    assert f"Cannot delete security group 'busy' ({busy}) of VPC {vpc_id}: it is still in use" in message
    assert "DependencyViolation" in message
    assert extra == {"changed": True}
    left = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    assert {g["GroupName"]: g["IpPermissions"] for g in left if g["GroupName"] != "default"} == {"busy": []}
