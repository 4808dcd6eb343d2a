"""library/elbv2_application_lb.py against a moto server, through the real `ansible` CLI.

The module talks to moto through embedded_aws/weather.py (no latency, no faults), which counts every call
it forwards by operation: the counts below are what the module sent, on the wire. What the ALB, target
group and listeners hold is read with boto3 straight from the emulator (not counted).

moto 5.2.5 does not report `idle_timeout.timeout_seconds` for a new ALB (AWS reports 60): its
DescribeLoadBalancerAttributes returns only the attributes moto sets at creation plus those written
since. ModifyLoadBalancerAttributes stores the value, which is then reported. The module counts an
attribute that is not reported as different, so it writes the idle timeout when it creates the ALB, and
from then on reads it back like AWS's.

One network (VPC, two public subnets, a security group) for the whole file; each test starts without ALB
and target groups (`fresh`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from ansible_runner import CountedModule
from certificates import import_self_signed_certificate
from emulator import Emulator

MODULE = "elbv2_application_lb"
ALB = "airflow-alb"
TG = "airflow-api-server"
TAGS = {"airflow-ecs:stack": "airflow"}
HEALTH = "/api/v2/monitor/health"
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def elb(operation: str) -> str:
    return f"elasticloadbalancing {operation}"


# What a re-run that changes nothing sends: one read of each kind (no listener's rules given).
NO_OP = {
    elb(name): 1
    for name in (
        "DescribeLoadBalancers",
        "DescribeTargetGroups",
        "DescribeLoadBalancerAttributes",
        "DescribeTargetGroupAttributes",
        "DescribeListeners",
        "DescribeTags",
    )
}
FIRST_READS = {elb("DescribeLoadBalancers"): 1, elb("DescribeTargetGroups"): 1}


@pytest.fixture(scope="module")
def network(emulator: Emulator) -> dict[str, Any]:
    """A VPC with two subnets in two zones and the ALB's security group, once for the file."""
    emulator.reset()
    ec2 = emulator.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{index}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"][
            "SubnetId"
        ]
        for index, zone in enumerate("ab")
    ]
    group = ec2.create_security_group(GroupName="airflow-alb", Description="ALB", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnets": subnets, "group": group}


@pytest.fixture(scope="module")
def counted(emulator: Emulator, network: dict[str, Any]) -> Iterator[CountedModule]:
    proxy = CountedModule(MODULE, emulator.url)
    yield proxy
    proxy.close()


@pytest.fixture
def fresh(emulator: Emulator, network: dict[str, Any]) -> dict[str, Any]:
    """No load balancer and no target group (deleted with boto3, not counted)."""
    client = emulator.client("elbv2")
    for balancer in client.describe_load_balancers()["LoadBalancers"]:
        client.delete_load_balancer(LoadBalancerArn=balancer["LoadBalancerArn"])
    for group in client.describe_target_groups()["TargetGroups"]:
        client.delete_target_group(TargetGroupArn=group["TargetGroupArn"])
    return network


def args(network: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The module's arguments as roles/load_balancer passes them (HTTP only), with `changes`."""
    base = {
        "name": ALB,
        "scheme": "internet-facing",
        "subnets": network["subnets"],
        "security_groups": [network["group"]],
        "idle_timeout": 60,
        "target_groups": [
            {
                "name": TG,
                "protocol": "HTTP",
                "port": 8080,
                "target_type": "ip",
                "vpc_id": network["vpc"],
                "health_check": {
                    "protocol": "HTTP",
                    "path": HEALTH,
                    "port": "traffic-port",
                    "interval": 30,
                    "timeout": 10,
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 3,
                    "success_codes": "200",
                },
                "deregistration_delay": 30,
                "tags": TAGS,
            }
        ],
        "listeners": [
            {"port": 80, "protocol": "HTTP", "default_action": {"type": "forward", "target_group": TG}, "tags": TAGS}
        ],
        "purge_listeners": True,
        "tags": TAGS,
    }
    return copy.deepcopy(base | changes)


def https_listeners(certificate: str) -> list[dict[str, Any]]:
    """The role's listeners with a certificate: 80 redirects to 443, which forwards."""
    redirect = {
        "protocol": "HTTPS",
        "port": "443",
        "host": "#{host}",
        "path": "/#{path}",
        "query": "#{query}",
        "status_code": "HTTP_301",
    }
    return [
        {"port": 80, "protocol": "HTTP", "default_action": {"type": "redirect", "redirect": redirect}, "tags": TAGS},
        {
            "port": 443,
            "protocol": "HTTPS",
            "ssl_policy": SSL_POLICY,
            "certificate_arn": certificate,
            "default_action": {"type": "forward", "target_group": TG},
            "tags": TAGS,
        },
    ]


def writes(calls: dict[str, int]) -> dict[str, int]:
    return {operation: n for operation, n in calls.items() if not operation.startswith(elb("Describe"))}


class Stored:
    """What the emulator holds, read with boto3 (not through the proxy)."""

    def __init__(self, emulator: Emulator) -> None:
        self.client = emulator.client("elbv2")

    def balancers(self) -> list[dict[str, Any]]:
        return self.client.describe_load_balancers()["LoadBalancers"]

    def balancer(self) -> dict[str, Any]:
        return self.client.describe_load_balancers(Names=[ALB])["LoadBalancers"][0]

    def group(self) -> dict[str, Any]:
        return self.client.describe_target_groups(Names=[TG])["TargetGroups"][0]

    def groups(self) -> list[dict[str, Any]]:
        return self.client.describe_target_groups()["TargetGroups"]

    def attributes(self) -> dict[str, str]:
        found = self.client.describe_load_balancer_attributes(LoadBalancerArn=self.balancer()["LoadBalancerArn"])
        return {a["Key"]: a["Value"] for a in found["Attributes"]}

    def delay(self) -> str:
        found = self.client.describe_target_group_attributes(TargetGroupArn=self.group()["TargetGroupArn"])
        return {a["Key"]: a["Value"] for a in found["Attributes"]}["deregistration_delay.timeout_seconds"]

    def listeners(self) -> dict[int, dict[str, Any]]:
        found = self.client.describe_listeners(LoadBalancerArn=self.balancer()["LoadBalancerArn"])["Listeners"]
        return {listener["Port"]: listener for listener in found}

    def tags(self, arn: str) -> dict[str, str]:
        found = self.client.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]
        return {tag["Key"]: tag["Value"] for tag in found}


@pytest.fixture
def stored(emulator: Emulator) -> Stored:
    return Stored(emulator)


def deploy(emulator: Emulator, network: dict[str, Any]) -> None:
    """What the module makes of args(network), made with boto3 (faster than a module run; not counted).

    test_check_mode_create_and_a_no_op_rerun checks the module makes the same: the tests that start from
    here expect a no-op re-run on it.
    """
    client = emulator.client("elbv2")
    tags = [{"Key": key, "Value": value} for key, value in TAGS.items()]
    group = client.create_target_group(
        Name=TG,
        Protocol="HTTP",
        Port=8080,
        VpcId=network["vpc"],
        TargetType="ip",
        HealthCheckProtocol="HTTP",
        HealthCheckPath=HEALTH,
        HealthCheckPort="traffic-port",
        HealthCheckIntervalSeconds=30,
        HealthCheckTimeoutSeconds=10,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=3,
        Matcher={"HttpCode": "200"},
        Tags=tags,
    )["TargetGroups"][0]["TargetGroupArn"]
    client.modify_target_group_attributes(
        TargetGroupArn=group, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]
    )
    balancer = client.create_load_balancer(
        Name=ALB, Subnets=network["subnets"], SecurityGroups=[network["group"]], Scheme="internet-facing", Tags=tags
    )["LoadBalancers"][0]["LoadBalancerArn"]
    client.modify_load_balancer_attributes(
        LoadBalancerArn=balancer, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "60"}]
    )
    client.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
        Tags=tags,
    )


def test_check_mode_create_and_a_no_op_rerun(fresh: dict, counted: CountedModule, stored: Stored) -> None:
    planned, calls = counted.run(args(fresh), check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["changes"] == [
        f"create target group {TG}",
        f"set the deregistration delay of target group {TG} to 30",
        f"create load balancer {ALB}",
        f"set idle_timeout.timeout_seconds to 60 on load balancer {ALB}",
        f"create listener 80 of load balancer {ALB}",
    ]
    assert planned["load_balancer"]["arn"] is None and planned["target_groups"][TG]["arn"] is None
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"]["load_balancer"]["attributes"] == {"idle_timeout.timeout_seconds": "60"}
    assert calls == FIRST_READS  # nothing written
    assert stored.balancers() == [] and stored.groups() == []

    created, calls = counted.run(args(fresh))
    assert created["changed"] is True, created
    assert created["changes"] == planned["changes"]
    assert calls == {
        **FIRST_READS,
        elb("CreateTargetGroup"): 1,
        elb("ModifyTargetGroupAttributes"): 1,
        elb("CreateLoadBalancer"): 1,
        elb("ModifyLoadBalancerAttributes"): 1,
        elb("CreateListener"): 1,
    }
    balancer, group = stored.balancer(), stored.group()
    assert created["load_balancer"]["arn"] == balancer["LoadBalancerArn"]
    assert created["load_balancer"]["dns_name"] == balancer["DNSName"]
    assert created["load_balancer"]["arn_suffix"] == balancer["LoadBalancerArn"].split(":loadbalancer/")[1]
    assert created["load_balancer"]["arn_suffix"].startswith(f"app/{ALB}/")
    assert created["target_groups"][TG]["arn"] == group["TargetGroupArn"]
    assert (balancer["Scheme"], balancer["SecurityGroups"]) == ("internet-facing", [fresh["group"]])
    assert sorted(zone["SubnetId"] for zone in balancer["AvailabilityZones"]) == sorted(fresh["subnets"])
    assert stored.attributes()["idle_timeout.timeout_seconds"] == "60"
    assert (group["Port"], group["TargetType"], group["HealthCheckPath"]) == (8080, "ip", HEALTH)
    assert (group["HealthCheckTimeoutSeconds"], group["HealthyThresholdCount"]) == (10, 2)
    assert (group["UnhealthyThresholdCount"], group["Matcher"]["HttpCode"]) == (3, "200")
    assert stored.delay() == "30"
    listener = stored.listeners()[80]
    assert listener["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
    for arn in (balancer["LoadBalancerArn"], group["TargetGroupArn"], listener["ListenerArn"]):
        assert stored.tags(arn) == TAGS
    assert created["listeners"] == [{"port": 80, "protocol": "HTTP", "arn": listener["ListenerArn"], "rules": []}]

    again, calls = counted.run(args(fresh), diff=True)
    assert again["changed"] is False, again
    assert again["changes"] == []
    assert calls == NO_OP  # DescribeTags once for the ALB, the target group and the listener together
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["load_balancer"] == created["load_balancer"]
    assert again["target_groups"] == created["target_groups"]

    # Check mode on the existing stack reports its ARNs and DNS name, and writes nothing.
    checked, calls = counted.run(args(fresh, idle_timeout=120), check=True)
    assert checked["changes"] == [f"set idle_timeout.timeout_seconds to 120 on load balancer {ALB}"]
    assert checked["target_groups"][TG]["arn"] == group["TargetGroupArn"]
    assert checked["load_balancer"]["dns_name"] == balancer["DNSName"]
    assert calls == NO_OP
    assert stored.attributes()["idle_timeout.timeout_seconds"] == "60"


def test_drift_is_repaired_and_a_deleted_listener_recreated(
    fresh: dict, counted: CountedModule, stored: Stored, emulator: Emulator
) -> None:
    deploy(emulator, fresh)
    client = emulator.client("elbv2")
    balancer, group = stored.balancer(), stored.group()
    client.modify_load_balancer_attributes(
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "300"}],
    )
    client.modify_target_group(
        TargetGroupArn=group["TargetGroupArn"], HealthCheckPath="/", HealthCheckIntervalSeconds=60
    )
    client.delete_listener(ListenerArn=stored.listeners()[80]["ListenerArn"])
    client.create_listener(  # a listener nobody asked for: purged
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Protocol="HTTP",
        Port=8081,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )
    client.remove_tags(ResourceArns=[group["TargetGroupArn"]], TagKeys=["airflow-ecs:stack"])

    repaired, calls = counted.run(args(fresh), diff=True)
    assert repaired["changes"] == [
        f"update the health check of target group {TG} (interval, path)",
        f"set tags airflow-ecs:stack on target group {TG}",
        f"set idle_timeout.timeout_seconds to 60 on load balancer {ALB}",
        f"delete listener 8081 of load balancer {ALB}",
        f"create listener 80 of load balancer {ALB}",
    ]
    assert writes(calls) == {
        elb("ModifyTargetGroup"): 1,
        elb("AddTags"): 1,
        elb("ModifyLoadBalancerAttributes"): 1,
        elb("DeleteListener"): 1,
        elb("CreateListener"): 1,
    }
    assert repaired["diff"]["before"]["load_balancer"]["attributes"] == {"idle_timeout.timeout_seconds": "300"}
    assert repaired["diff"]["before"]["target_groups"][TG]["health_check"]["path"] == "/"
    assert sorted(repaired["diff"]["before"]["listeners"]) == ["8081"]
    assert stored.attributes()["idle_timeout.timeout_seconds"] == "60"
    assert (stored.group()["HealthCheckPath"], stored.group()["HealthCheckIntervalSeconds"]) == (HEALTH, 30)
    assert sorted(stored.listeners()) == [80]
    assert stored.tags(group["TargetGroupArn"]) == TAGS
    assert stored.group()["TargetGroupArn"] == group["TargetGroupArn"]  # updated in place, never replaced

    again, calls = counted.run(args(fresh))
    assert again["changed"] is False, again
    assert calls == NO_OP


def test_immutable_changes_are_refused_before_any_write(
    fresh: dict, counted: CountedModule, stored: Stored, emulator: Emulator
) -> None:
    deploy(emulator, fresh)
    changed = args(fresh, scheme="internal")
    changed["target_groups"][0]["port"] = 8081
    changed["idle_timeout"] = 120  # would be written, were the rest possible

    refused, calls = counted.run(changed)
    assert refused.get("failed") is True, refused
    assert refused["msg"] == (
        f"Cannot manage load balancer '{ALB}': target group {TG} has port 8080, not 8081: the port of a target "
        "group cannot change (give the new one another name, move the listeners to it, then delete this one); "
        f"load balancer {ALB} is internet-facing, not internal: the scheme of a load balancer cannot change "
        "(delete it, or create another one under another name). Nothing was changed."
    )
    assert writes(calls) == {}
    assert stored.balancer()["Scheme"] == "internet-facing" and stored.group()["Port"] == 8080
    assert stored.attributes()["idle_timeout.timeout_seconds"] == "60"


def test_https_listener_with_an_imported_certificate(
    fresh: dict, counted: CountedModule, stored: Stored, emulator: Emulator
) -> None:
    deploy(emulator, fresh)
    certificate = import_self_signed_certificate(emulator)
    https = args(fresh, listeners=https_listeners(certificate))

    switched, calls = counted.run(https)
    assert switched["changes"] == [
        f"update listener 80 of load balancer {ALB}",
        f"create listener 443 of load balancer {ALB}",
    ]
    assert writes(calls) == {elb("ModifyListener"): 1, elb("CreateListener"): 1}
    listeners = stored.listeners()
    assert listeners[80]["DefaultActions"][0]["Type"] == "redirect"
    assert listeners[80]["DefaultActions"][0]["RedirectConfig"]["StatusCode"] == "HTTP_301"
    assert listeners[443]["Protocol"] == "HTTPS" and listeners[443]["SslPolicy"] == SSL_POLICY
    assert listeners[443]["Certificates"] == [{"CertificateArn": certificate}]
    assert listeners[443]["DefaultActions"][0]["TargetGroupArn"] == stored.group()["TargetGroupArn"]
    assert stored.tags(listeners[443]["ListenerArn"]) == TAGS

    again, calls = counted.run(https)
    assert again["changed"] is False, again
    assert calls == NO_OP  # two listeners, still one DescribeListeners and one DescribeTags

    back, calls = counted.run(args(fresh))  # the certificate removed: HTTP only again
    assert back["changes"] == [
        f"delete listener 443 of load balancer {ALB}",
        f"update listener 80 of load balancer {ALB}",
    ]
    assert sorted(stored.listeners()) == [80]


REFUSE_EXECUTION = {
    "priority": 1,
    "path_patterns": ["/execution", "/execution/*"],
    "action": {"type": "fixed-response", "fixed_response": {"status_code": "404", "content_type": "text/plain"}},
}


def test_listener_rules_are_created_kept_repaired_and_purged(
    fresh: dict, counted: CountedModule, stored: Stored, emulator: Emulator
) -> None:
    deploy(emulator, fresh)
    ruled = args(fresh)
    ruled["listeners"][0]["rules"] = [REFUSE_EXECUTION]
    rule_name = f"rule 1 of listener 80 of load balancer {ALB}"

    planned, calls = counted.run(ruled, check=True, diff=True)
    assert planned["changes"] == [f"create {rule_name}"], planned
    assert calls == {**NO_OP, elb("DescribeRules"): 1}
    assert planned["diff"]["before"]["listeners"]["80"]["rules"] == {}
    assert planned["diff"]["after"]["listeners"]["80"]["rules"]["1"]["path_patterns"] == ["/execution", "/execution/*"]

    created, calls = counted.run(ruled)
    assert writes(calls) == {elb("CreateRule"): 1}
    listener = stored.listeners()[80]
    [rule] = [
        r for r in stored.client.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]
    ]
    assert rule["Priority"] == "1"
    assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == ["/execution", "/execution/*"]
    assert rule["Actions"] == [
        {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"}}
    ]
    assert stored.tags(rule["RuleArn"]) == TAGS
    assert created["listeners"][0]["rules"] == [{"priority": 1, "arn": rule["RuleArn"]}]

    again, calls = counted.run(ruled)
    assert again["changed"] is False, again
    assert calls == {**NO_OP, elb("DescribeRules"): 1}  # the rule's tags read in the same DescribeTags

    # Drift: the rule narrowed to one pattern and answering 200, another rule added by hand.
    stored.client.modify_rule(
        RuleArn=rule["RuleArn"],
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/execution/*"]}}],
        Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}],
    )
    stored.client.create_rule(
        ListenerArn=listener["ListenerArn"],
        Priority=7,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/other"]}}],
        Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}],
    )
    repaired, calls = counted.run(ruled, diff=True)
    assert repaired["changes"] == [
        f"delete rule 7 of listener 80 of load balancer {ALB}",
        f"update {rule_name}",
    ]
    assert writes(calls) == {elb("DeleteRule"): 1, elb("ModifyRule"): 1}
    assert repaired["diff"]["before"]["listeners"]["80"]["rules"]["1"]["path_patterns"] == ["/execution/*"]
    [rule] = [
        r for r in stored.client.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]
    ]
    assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == ["/execution", "/execution/*"]
    assert rule["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"

    # rules not given: not read; rules: [] deletes them.
    unmanaged, calls = counted.run(args(fresh))
    assert unmanaged["changed"] is False and calls == NO_OP
    ruled["listeners"][0]["rules"] = []
    purged, calls = counted.run(ruled)
    assert purged["changes"] == [f"delete {rule_name}"]
    assert [r["IsDefault"] for r in stored.client.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]] == [
        True
    ]


def test_rules_of_a_new_listener_are_created_after_it(fresh: dict, counted: CountedModule, stored: Stored) -> None:
    ruled = args(fresh)
    ruled["listeners"][0]["rules"] = [REFUSE_EXECUTION]
    planned, _ = counted.run(ruled, check=True)
    assert planned["changes"][-2:] == [
        f"create listener 80 of load balancer {ALB}",
        f"create rule 1 of listener 80 of load balancer {ALB}",
    ]
    created, calls = counted.run(ruled)
    assert created["changes"] == planned["changes"] and calls[elb("CreateRule")] == 1
    again, calls = counted.run(ruled)
    assert again["changed"] is False, again


def test_absent_deletes_the_alb_then_its_target_group(
    fresh: dict, counted: CountedModule, stored: Stored, emulator: Emulator
) -> None:
    deploy(emulator, fresh)
    absent = {"name": ALB, "target_groups": [{"name": TG}], "state": "absent"}

    planned, calls = counted.run(absent, check=True)
    assert planned["changes"] == [f"delete load balancer {ALB}", f"delete target group {TG}"], planned
    assert calls == FIRST_READS
    assert len(stored.balancers()) == 1 and len(stored.groups()) == 1

    deleted, calls = counted.run(absent)
    assert deleted["changed"] is True, deleted
    # The second DescribeLoadBalancers is the wait: it no longer lists the ALB.
    assert calls == {
        elb("DescribeLoadBalancers"): 2,
        elb("DescribeTargetGroups"): 1,
        elb("DeleteLoadBalancer"): 1,
        elb("DeleteTargetGroup"): 1,
    }
    assert stored.balancers() == [] and stored.groups() == []

    again, calls = counted.run(absent)
    assert again["changed"] is False, again
    assert calls == FIRST_READS


def test_bad_input_fails_before_any_call_with_every_problem(fresh: dict, counted: CountedModule) -> None:
    bad = args(fresh, security_groups=["airflow-alb"], idle_timeout=5000)
    bad["target_groups"][0]["health_check"]["timeout"] = 30
    bad["listeners"] = [
        {"port": 443, "protocol": "HTTPS", "default_action": {"type": "forward", "target_group": TG}},
        {"port": 80, "protocol": "HTTP", "default_action": {"type": "forward", "target_group": "other"}},
    ]
    refused, calls = counted.run(bad)
    assert refused.get("failed") is True, refused
    assert refused["msg"] == (
        f"Cannot manage load balancer '{ALB}': "
        "security_groups: 'airflow-alb' is not a security group ID (sg-...); give IDs, not names; "
        "idle_timeout must be 1 to 4000, not 5000; "
        "target_groups[0].health_check.timeout (30) must be less than target_groups[0].health_check.interval (30); "
        "listeners[0].certificate_arn is required with protocol HTTPS; "
        "listeners[1].default_action.target_group 'other' is not one of target_groups (airflow-api-server): "
        "a listener forwards only to a target group of this run. Nothing was changed."
    )
    assert calls == {}


def test_bad_rules_are_refused_before_any_call(fresh: dict, counted: CountedModule) -> None:
    bad = args(fresh)
    bad["listeners"][0]["rules"] = [
        {**REFUSE_EXECUTION, "priority": 0, "path_patterns": ["/a b", "/*/*/*", "/*?*"]},
        {**REFUSE_EXECUTION, "path_patterns": []},
        {**REFUSE_EXECUTION, "action": {"type": "forward", "target_group": "other"}},
    ]
    refused, calls = counted.run(bad)
    assert refused.get("failed") is True, refused
    field = "listeners[0].rules"
    assert refused["msg"] == (
        f"Cannot manage load balancer '{ALB}': "
        f"{field}[0].priority must be 1 to 50000, not 0; "
        f"{field}[0].path_patterns: '/a b' must be 1 to 128 of A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ?; "
        f"{field}[0].path_patterns hold 6 wildcards; a rule takes at most 5; "
        f"{field}[1].path_patterns must hold 1 to 5 patterns, not 0; "
        f"{field}[2].action.target_group 'other' is not one of target_groups (airflow-api-server): "
        "a listener forwards only to a target group of this run; "
        f"{field}: priority 1 is given more than once (a listener's rules have distinct priorities). "
        "Nothing was changed."
    )
    assert calls == {}


def test_an_unsupported_action_shape_is_refused(fresh: dict, counted: CountedModule) -> None:
    weighted = args(fresh)
    weighted["listeners"][0]["default_action"] = {"type": "forward", "target_groups": [TG, TG]}
    refused, calls = counted.run(weighted)
    assert refused.get("failed") is True, refused
    assert "target_groups" in refused["msg"] and "Unsupported parameters" in refused["msg"], refused["msg"]
    assert calls == {}
