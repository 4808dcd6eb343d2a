"""library/ec2_security_groups.py against a moto server, through the real `ansible` CLI.

The EC2 calls a run makes are read from a recording proxy between the module and moto (`ec2_calls`).

moto 5.2.5 quirks the module lives with: UpdateSecurityGroupRuleDescriptionsIngress/Egress ignore rules
that name a group and requests that remove a description (a permission without Description), both of which
AWS applies (the module warns, and never revokes a rule to change its description); a group pair is only
revoked when the request carries its description; DescribeSecurityGroupRules reports no description for
a rule that names a group (DescribeSecurityGroups does).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def permission_set(permissions: list[dict], names: dict[str, str]) -> set[tuple]:
    """IpPermissions as sortable (proto, from, to, CIDR or "sg:" + group name, description) tuples."""
    rules = set()
    for perm in permissions:
        ports = (perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort"))
        for item in perm["IpRanges"]:
            rules.add((*ports, item["CidrIp"], item.get("Description", "")))
        for item in perm["UserIdGroupPairs"]:
            rules.add((*ports, "sg:" + names[item["GroupId"]], item.get("Description", "")))
    return rules


def in_aws(emulator: Emulator, vpc_id: str) -> dict[str, dict]:
    """What EC2 says: per group name, its id, description, ingress and egress as sortable tuples (group
    ids replaced by names) and tags; the VPC's default group left out."""
    ec2 = emulator.client("ec2")
    found = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    names = {g["GroupId"]: g["GroupName"] for g in found}
    return {
        group["GroupName"]: {
            "id": group["GroupId"],
            "description": group["Description"],
            "ingress": permission_set(group["IpPermissions"], names),
            "egress": permission_set(group["IpPermissionsEgress"], names),
            "tags": {t["Key"]: t["Value"] for t in group.get("Tags", [])},
        }
        for group in found
        if group["GroupName"] != "default"
    }


def rule_ids(emulator: Emulator, group_id: str) -> dict[tuple, str]:
    """Each rule of a group, (egress?, proto, from, to, CIDR or group id) -> its SecurityGroupRuleId. A rule
    keeps its id while it exists; revoked and authorized again, it gets a new one (in AWS as in moto)."""
    ec2 = emulator.client("ec2")
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return {
        (
            rule["IsEgress"],
            rule["IpProtocol"],
            rule.get("FromPort"),
            rule.get("ToPort"),
            rule.get("CidrIpv4") or rule.get("ReferencedGroupInfo", {}).get("GroupId"),
        ): rule["SecurityGroupRuleId"]
        for rule in rules["SecurityGroupRules"]
    }


ALL_TRAFFIC_OUT = {("-1", None, None, "0.0.0.0/0", "")}  # the egress rule AWS creates a group with


@pytest.fixture
def ec2_calls(clean_emulator: Emulator) -> Iterator[tuple[dict[str, str], list[dict[str, str]]]]:
    """(env, calls): an environment whose AWS endpoint is a proxy to the emulator, and the parameters of
    every call made through it ({"Action": ..., "GroupId": ..., "IpPermissions.1.IpProtocol": ...}), in order."""
    calls: list[dict[str, str]] = []
    target = clean_emulator.url

    class Forward(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            calls.append({key: values[0] for key, values in urllib.parse.parse_qs(body.decode()).items()})
            skip = {"host", "content-length", "accept-encoding", "connection", "expect"}
            headers = {key: value for key, value in self.headers.items() if key.lower() not in skip}
            request = urllib.request.Request(target + self.path, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    status, content_type, payload = response.status, response.headers["Content-Type"], response.read()
            except urllib.error.HTTPError as error:  # an EC2 error: passed on as it is
                status, content_type, payload = error.code, error.headers["Content-Type"], error.read()
            self.send_response(status)
            self.send_header("Content-Type", content_type or "text/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {**clean_emulator.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}"}
    try:
        yield env, calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def actions(calls: list[dict[str, str]]) -> list[str]:
    return [call["Action"] for call in calls]


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
        "egress": ["all traffic to 0.0.0.0/0"],  # no `egress` given: AWS's default, left alone
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
        assert aws[name]["egress"] == ALL_TRAFFIC_OUT  # AWS's default egress rule, untouched
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
    assert nodes["egress"] == [
        {"proto": "-1", "from_port": None, "to_port": None, "cidr_ip": "0.0.0.0/0", "rule_desc": ""}
    ]
    assert created["diff"]["after"][DB]["rules"] == ["tcp 5432 from group t-nodes (postgres)"]

    again = run_module(MODULE, args, env=env, diff=True)
    assert again["changed"] is False, again
    assert again["group_ids"] == created["group_ids"]
    assert again["groups"] == created["groups"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert run_module(MODULE, args, env=env, check=True)["changed"] is False


def test_changed_rules_are_purged_and_tags_synced(
    clean_emulator: Emulator, vpc_id: str, ec2_calls: tuple[dict[str, str], list[dict[str, str]]]
) -> None:
    env, calls = ec2_calls
    created = run_module(MODULE, groups_args(vpc_id), env=env)
    aws = in_aws(clean_emulator, vpc_id)
    # Change a port, drop the forward reference (purged), rename a rule, change tags.
    changed_args = groups_args(vpc_id)
    alb, nodes_group, db = changed_args["groups"]
    alb["rules"] = [{"proto": "tcp", "ports": [443], "cidr_ip": "10.0.0.0/8", "rule_desc": "https"}]
    nodes_group["rules"][1]["cidr_ip"] = ["10.1.2.3/16"]  # host bits: reduced to 10.1.0.0/16
    db["rules"][0]["ports"] = [5433]
    db["tags"] = {"Name": DB, "owner": "me"}
    preview = run_module(MODULE, changed_args, env=env, check=True, diff=True)
    assert preview["changed"] is True
    assert in_aws(clean_emulator, vpc_id) == aws
    assert preview["diff"]["after"][DB]["rules"] == ["tcp 5433 from group t-nodes (postgres)"]
    assert preview["groups"][2]["tags"] == {"Name": DB, "owner": "me"}

    del calls[:]
    updated = run_module(MODULE, changed_args, env=env, diff=True)
    assert updated["changed"] is True, updated
    assert any("10.1.2.3/16 has host bits set" in w for w in updated.get("warnings", [])), updated
    # Every new rule (5433 replacing 5432) is authorized before any rule is revoked: no window without one.
    done = actions(calls)
    assert "RevokeSecurityGroupIngress" in done, done
    assert max(i for i, a in enumerate(done) if a.startswith("Authorize")) < done.index("RevokeSecurityGroupIngress")
    after = in_aws(clean_emulator, vpc_id)
    assert after[ALB]["ingress"] == {("tcp", 443, 443, "10.0.0.0/8", "https")}
    assert after[NODES]["ingress"] == {
        ("tcp", 8080, 8080, "sg:" + ALB, "from alb"),
        ("tcp", 8793, 8794, "sg:" + NODES, "between nodes"),
        ("tcp", 8793, 8794, "10.1.0.0/16", "between nodes"),
    }
    assert after[DB]["ingress"] == {("tcp", 5433, 5433, "sg:" + NODES, "postgres")}
    assert after[DB]["tags"] == {"Name": DB, "owner": "me"}
    assert {name: after[name]["id"] for name in after} == created["group_ids"]  # updated in place
    assert updated["diff"]["before"][DB]["tags"] == {"Name": DB, "stack": "t"}
    assert run_module(MODULE, changed_args, env=env)["changed"] is False


def update_request(*permissions: tuple[str, int, str, str, str | None]) -> dict[str, str]:
    """The IpPermissions.* parameters of an EC2 request, from (proto, port, "group" or "cidr", target,
    description) items; a description of None is left out (which AWS takes as "remove the description").
    On the wire UserIdGroupPairs travel as `Groups`."""
    fields = {"group": ("Groups", "GroupId"), "cidr": ("IpRanges", "CidrIp")}
    params = {}
    for index, (proto, port, kind, target, description) in enumerate(permissions, start=1):
        prefix = f"IpPermissions.{index}"
        params.update({f"{prefix}.IpProtocol": proto, f"{prefix}.FromPort": str(port), f"{prefix}.ToPort": str(port)})
        key, field = fields[kind]
        params[f"{prefix}.{key}.1.{field}"] = target
        if description is not None:
            params[f"{prefix}.{key}.1.Description"] = description
    return params


def test_description_changes_never_revoke_a_rule(
    clean_emulator: Emulator, vpc_id: str, ec2_calls: tuple[dict[str, str], list[dict[str, str]]]
) -> None:
    """New text and removed text, on group and CIDR rules: one UpdateSecurityGroupRuleDescriptionsIngress
    call, no revoke or authorize, and every rule keeps its id (a live rule is never dropped, even briefly)."""
    env, calls = ec2_calls
    rules = [
        {"proto": "tcp", "ports": [8080], "group_name": ALB, "rule_desc": "from alb"},
        {"proto": "tcp", "ports": [8793], "group_name": NODES, "rule_desc": "between nodes"},
        {"proto": "tcp", "ports": [9000], "cidr_ip": ["10.0.0.0/8"], "rule_desc": "old text"},
        {"proto": "tcp", "ports": [9001], "cidr_ip": ["10.0.0.0/8"], "rule_desc": "to remove"},
    ]
    groups = [{"name": ALB, "description": "alb"}, {"name": NODES, "description": "nodes", "rules": rules}]
    args = {"vpc_id": vpc_id, "groups": groups}
    created = run_module(MODULE, args, env=env)
    assert created["changed"] is True, created
    alb_id, nodes_id = created["group_ids"][ALB], created["group_ids"][NODES]
    ids_before = rule_ids(clean_emulator, nodes_id)

    rules[0]["rule_desc"] = "api-server from alb"
    del rules[1]["rule_desc"]
    rules[2]["rule_desc"] = "new text"
    del rules[3]["rule_desc"]
    del calls[:]
    updated = run_module(MODULE, args, env=env, diff=True)
    assert updated["changed"] is True, updated
    assert actions(calls) == [
        "DescribeSecurityGroups",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "DescribeSecurityGroups",
    ], calls
    update = calls[1]
    assert update["GroupId"] == nodes_id
    assert {k: v for k, v in update.items() if k.startswith("IpPermissions.")} == update_request(
        ("tcp", 8080, "group", alb_id, "api-server from alb"),
        ("tcp", 8793, "group", nodes_id, None),
        ("tcp", 9000, "cidr", "10.0.0.0/8", "new text"),
        ("tcp", 9001, "cidr", "10.0.0.0/8", None),
    )
    assert rule_ids(clean_emulator, nodes_id) == ids_before  # not one rule revoked, none added
    assert ("tcp", 9000, 9000, "10.0.0.0/8", "new text") in in_aws(clean_emulator, vpc_id)[NODES]["ingress"]
    # moto 5.2.5 ignores the three other updates, which AWS applies: the module says so, and leaves the rules be.
    warnings = " ".join(updated.get("warnings", []))
    assert "EC2 accepted the new description of 3 ingress rule(s)" in warnings, updated
    for rule in (
        "tcp 8080 from group t-alb (api-server from alb)",
        "tcp 8793 from group t-nodes;",
        "tcp 9001 from 10.0.0.0/8.",
    ):
        assert rule in warnings, updated


def test_egress_is_managed_only_where_given(
    clean_emulator: Emulator, vpc_id: str, ec2_calls: tuple[dict[str, str], list[dict[str, str]]]
) -> None:
    env, calls = ec2_calls
    to_nodes = {"proto": "tcp", "ports": [8080], "group_name": NODES, "rule_desc": "targets"}
    groups = [
        {"name": ALB, "description": "alb", "egress": [to_nodes]},  # names a group created later in the run
        {"name": NODES, "description": "nodes"},  # no `egress`: AWS's default rule is left alone
        {"name": DB, "description": "db", "egress": []},  # no outbound traffic at all
    ]
    args = {"vpc_id": vpc_id, "groups": groups}

    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert in_aws(clean_emulator, vpc_id) == {}
    everywhere = {"proto": "-1", "from_port": None, "to_port": None, "cidr_ip": "0.0.0.0/0", "rule_desc": ""}
    to_new_nodes = {"proto": "tcp", "from_port": 8080, "to_port": 8080, "group_id": None, "group_name": NODES}
    assert [g["egress"] for g in planned["groups"]] == [[{**to_new_nodes, "rule_desc": "targets"}], [everywhere], []]
    assert planned["diff"]["after"][ALB]["egress"] == ["tcp 8080 to group t-nodes (targets)"]

    del calls[:]
    created = run_module(MODULE, args, env=env)
    assert created["changed"] is True, created
    aws = in_aws(clean_emulator, vpc_id)
    assert aws[ALB]["egress"] == {("tcp", 8080, 8080, "sg:" + NODES, "targets")}
    assert aws[NODES]["egress"] == ALL_TRAFFIC_OUT
    assert aws[DB]["egress"] == set()
    assert created["groups"][0]["egress"] == [{**to_new_nodes, "group_id": aws[NODES]["id"], "rule_desc": "targets"}]
    assert created["groups"][2]["egress"] == []
    # The default rule of ALB and DB is revoked only once every listed rule is authorized.
    done = actions(calls)
    assert done.count("RevokeSecurityGroupEgress") == 2, done
    assert max(i for i, a in enumerate(done) if a.startswith("Authorize")) < done.index("RevokeSecurityGroupEgress")

    del calls[:]
    again = run_module(MODULE, args, env=env, diff=True)
    assert again["changed"] is False, again
    assert again["groups"] == created["groups"]
    assert actions(calls) == ["DescribeSecurityGroups"]

    # An existing group opts in: its rule is authorized before the default rule is revoked.
    groups[1]["egress"] = [{"proto": "tcp", "ports": [443], "cidr_ip": ["0.0.0.0/0"], "rule_desc": "https"}]
    del calls[:]
    opted = run_module(MODULE, args, env=env, diff=True)
    assert opted["changed"] is True, opted
    assert opted["diff"]["before"][NODES]["egress"] == ["all traffic to 0.0.0.0/0"]
    assert opted["diff"]["after"][NODES]["egress"] == ["tcp 443 to 0.0.0.0/0 (https)"]
    assert actions(calls) == [
        "DescribeSecurityGroups",
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupEgress",
        "DescribeSecurityGroups",
    ]
    assert in_aws(clean_emulator, vpc_id)[NODES]["egress"] == {("tcp", 443, 443, "0.0.0.0/0", "https")}

    # A new egress description is updated in place: the rule keeps its id.
    nodes_id = opted["group_ids"][NODES]
    ids_before = rule_ids(clean_emulator, nodes_id)
    groups[1]["egress"][0]["rule_desc"] = "AWS APIs and images"
    del calls[:]
    assert run_module(MODULE, args, env=env)["changed"] is True
    assert actions(calls) == [
        "DescribeSecurityGroups",
        "UpdateSecurityGroupRuleDescriptionsEgress",
        "DescribeSecurityGroups",
    ]
    assert rule_ids(clean_emulator, nodes_id) == ids_before
    assert in_aws(clean_emulator, vpc_id)[NODES]["egress"] == {("tcp", 443, 443, "0.0.0.0/0", "AWS APIs and images")}

    # Without `egress` again, the group's egress rules stay as they are.
    del groups[1]["egress"]
    assert run_module(MODULE, args, env=env)["changed"] is False
    assert in_aws(clean_emulator, vpc_id)[NODES]["egress"] == {("tcp", 443, 443, "0.0.0.0/0", "AWS APIs and images")}


def test_absent_revokes_egress_references_first(
    clean_emulator: Emulator, vpc_id: str, ec2_calls: tuple[dict[str, str], list[dict[str, str]]]
) -> None:
    """A group named by another group's egress rule cannot be deleted in AWS (moto deletes it anyway): the
    rule is revoked before any deletion."""
    env, calls = ec2_calls
    to_nodes = {"proto": "tcp", "ports": [8080], "group_name": NODES, "rule_desc": "targets"}
    groups = [{"name": ALB, "description": "alb", "egress": [to_nodes]}, {"name": NODES, "description": "nodes"}]
    created = run_module(MODULE, {"vpc_id": vpc_id, "groups": groups}, env=env)
    assert created["changed"] is True, created

    absent = {"vpc_id": vpc_id, "groups": [{"name": ALB}, {"name": NODES}], "state": "absent"}
    del calls[:]
    deleted = run_module(MODULE, absent, env=env, diff=True)
    assert deleted["changed"] is True, deleted
    assert deleted["diff"]["before"][ALB]["egress"] == ["tcp 8080 to group t-nodes (targets)"]
    revoked = [call["GroupId"] for call in calls if call["Action"] == "RevokeSecurityGroupEgress"]
    assert revoked == [created["group_ids"][ALB]], calls
    assert actions(calls).index("RevokeSecurityGroupEgress") < actions(calls).index("DeleteSecurityGroup")
    assert in_aws(clean_emulator, vpc_id) == {}


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


def test_bad_egress_rule_is_refused(clean_emulator: Emulator, vpc_id: str) -> None:
    egress = [{"ports": [443], "cidr_ip": ["0.0.0.0/0"]}, {"ports": [443]}]
    args = {"vpc_id": vpc_id, "groups": [{"name": "g", "description": "g", "egress": egress}]}
    result = run_module(MODULE, args, env=clean_emulator.env())
    assert result.get("failed") is True, result
    assert "Egress rule 2 of security group 'g' has no destination" in result["msg"]
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
