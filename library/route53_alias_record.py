#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Point a DNS name at an Application Load Balancer with Route 53 alias records (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: route53_alias_record
short_description: Route 53 alias records (A, and AAAA for a dualstack ALB) of a name to a load balancer
description:
  - Makes O(name) in the hosted zone O(hosted_zone_id) an alias of the load balancer O(load_balancer)
    (C(DescribeLoadBalancers) gives its DNS name, its canonical hosted zone and its IP address type), with an
    C(A) record, and an C(AAAA) record when the load balancer is C(dualstack).
  - One C(ListResourceRecordSets) reads the name's records; one C(ChangeResourceRecordSets) writes every
    change (C(UPSERT) of a missing or different alias, C(DELETE) of an C(AAAA) alias to the load balancer
    that is no longer dualstack), then C(GetChange) is polled until the change is C(INSYNC) (O(wait)).
  - A record of the name that is not an alias (an C(A) or C(AAAA) with addresses, or a C(CNAME)) belongs to
    someone else, so the run fails before any change and names it.
  - With O(state=absent) the C(A) and C(AAAA) aliases of the name to the load balancer are deleted (to its
    DNS name while it exists, else to a DNS name made from its name (C(<name>-<id>.<region>.elb.amazonaws.com))).
    Other records are left alone.
  - Supports check mode and diff mode. In check mode for a load balancer that does not exist yet, the plan
    shows its DNS name as null.
author:
  - airflow-ecs project
options:
  hosted_zone_id:
    description:
      - ID of the public hosted zone holding O(name) (without C(/hostedzone/)). Required with O(state=present).
      - Not given with O(state=absent), the value of the load balancer's tag O(zone_tag).
    type: str
  name:
    description:
      - The DNS name, without the trailing dot, in the zone (the zone's name or below it). Required with
        O(state=present).
      - Not given with O(state=absent), the value of the load balancer's tag O(name_tag) (a teardown that is not
        told the name finds it there; nothing to do when the load balancer or the tag is gone).
    type: str
  name_tag:
    description: Tag of the load balancer that holds the name, read with O(state=absent) when O(name) is not given.
    type: str
    default: airflow-ecs:dns-name
  zone_tag:
    description: Tag of the load balancer that holds the zone ID, read like O(name_tag).
    type: str
    default: airflow-ecs:dns-zone
  load_balancer:
    description: Name of the application load balancer the name points at.
    type: str
    required: true
  evaluate_target_health:
    description: Route 53 answers the alias only while the load balancer has healthy targets.
    type: bool
    default: true
  wait:
    description: Wait until Route 53 reports the change C(INSYNC) on its name servers.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 300
  state:
    description: V(present) or V(absent).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Point airflow.example.com at the ALB
  route53_alias_record:
    hosted_zone_id: Z0123456789ABCDEFGHIJ
    name: airflow.example.com
    load_balancer: airflow-alb
"""

RETURN = r"""
records:
  description: The alias records of the name after the run (in check mode, as they would be), by type.
  returned: always
  type: dict
  sample: {A: {dns_name: airflow-alb-1234567890.us-east-1.elb.amazonaws.com, hosted_zone_id: Z35SXDOTRQ7X7K}}
changes:
  description: What the run did (would do), one sentence per record.
  returned: always
  type: list
  elements: str
"""

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.ec2_batch import poll_until
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

TYPES = ("A", "AAAA")


def plain(dns_name: str | None) -> str:
    """A DNS name as compared: lower case, no trailing dot, without the `dualstack.` Route 53 may add."""
    return (dns_name or "").lower().rstrip(".").removeprefix("dualstack.")


def alias_view(record: dict[str, Any]) -> dict[str, Any]:
    target = record.get("AliasTarget")
    if not target:
        return {"values": [r["Value"] for r in record.get("ResourceRecords") or []]}
    return {
        "dns_name": plain(target["DNSName"]),
        "hosted_zone_id": target["HostedZoneId"],
        "evaluate_target_health": target.get("EvaluateTargetHealth", False),
    }


class Run:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.balancer_name = self.params["load_balancer"]
        self.route53 = module.client("route53", retry_decorator=jittered_backoff())
        elbv2 = module.client("elbv2", retry_decorator=jittered_backoff())
        self.balancer = self.find_balancer(elbv2)
        zone, name = self.params["hosted_zone_id"], self.params["name"]
        if not (zone and name) and self.balancer:
            tags = self.balancer_tags(elbv2)
            zone, name = zone or tags.get(self.params["zone_tag"]), name or tags.get(self.params["name_tag"])
        self.zone = (zone or "").removeprefix("/hostedzone/")
        self.name = (name or "").lower().rstrip(".")
        self.current = self.find_records() if self.zone and self.name else {}
        self.changes: list[dict[str, Any]] = []
        self.sentences: list[str] = []

    def find_balancer(self, elbv2: Any) -> dict[str, Any] | None:
        try:
            return elbv2.describe_load_balancers(Names=[self.balancer_name], aws_retry=True)["LoadBalancers"][0]
        except is_boto3_error_code("LoadBalancerNotFound"):
            return None
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe load balancer {self.balancer_name}")

    def balancer_tags(self, elbv2: Any) -> dict[str, str]:
        try:
            found = elbv2.describe_tags(ResourceArns=[self.balancer["LoadBalancerArn"]], aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to read the tags of load balancer {self.balancer_name}")
        return {t["Key"]: t["Value"] for d in found["TagDescriptions"] for t in d.get("Tags") or []}

    def find_records(self) -> dict[str, dict[str, Any]]:
        """The name's simple records by type (A, AAAA and CNAME sort together from StartRecordType A)."""
        try:
            found = self.route53.list_resource_record_sets(
                HostedZoneId=self.zone, StartRecordName=self.name, StartRecordType="A", MaxItems="10", aws_retry=True
            )["ResourceRecordSets"]
        except (BotoCoreError, ClientError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to read the records of {self.name} in hosted zone {self.zone}")
        return {r["Type"]: r for r in found if r["Name"].lower().rstrip(".") == self.name and "SetIdentifier" not in r}

    def ours(self, record: dict[str, Any]) -> bool:
        """An alias to this load balancer (its DNS name now, or one of its name when it is gone)."""
        target = plain((record.get("AliasTarget") or {}).get("DNSName"))
        if self.balancer:
            return target == plain(self.balancer["DNSName"])
        return target.startswith(f"{self.balancer_name.lower()}-") and ".elb." in target

    def refuse_foreign(self) -> None:
        foreign = [
            f"{kind} record {self.name} holds {', '.join(r['Value'] for r in record.get('ResourceRecords') or [])}"
            for kind, record in self.current.items()
            if kind in (*TYPES, "CNAME") and not record.get("AliasTarget")
        ]
        if foreign:
            self.module.fail_json(
                msg=f"Cannot point {self.name} at load balancer {self.balancer_name}: the {'; the '.join(foreign)}, "
                "which this stack did not make. Remove it, or choose another load_balancer_domain_name. "
                "Nothing was changed."
            )

    def plan_present(self) -> dict[str, Any]:
        self.refuse_foreign()
        balancer = self.balancer or {}
        wanted_types = ["A", "AAAA"] if balancer.get("IpAddressType", "ipv4").startswith("dualstack") else ["A"]
        after: dict[str, Any] = {}
        for kind in TYPES:
            record = self.current.get(kind)
            if kind in wanted_types:
                target = {
                    "HostedZoneId": balancer.get("CanonicalHostedZoneId"),
                    "DNSName": balancer.get("DNSName"),
                    "EvaluateTargetHealth": self.params["evaluate_target_health"],
                }
                wanted = {"Name": self.name, "Type": kind, "AliasTarget": target}
                after[kind] = alias_view(wanted) if balancer else {"dns_name": None}
                if record is None or alias_view(record) != after[kind]:
                    verb = "update" if record else "create"
                    self.change(
                        "UPSERT", wanted, f"{verb} the {kind} alias {self.name} to load balancer {self.balancer_name}"
                    )
            elif record is not None and self.ours(record):
                self.change(
                    "DELETE", record, f"delete the {kind} alias {self.name} (the load balancer is not dualstack)"
                )
        return after

    def plan_absent(self) -> dict[str, Any]:
        for kind in TYPES:
            record = self.current.get(kind)
            if record is not None and self.ours(record):
                self.change(
                    "DELETE", record, f"delete the {kind} alias {self.name} to load balancer {self.balancer_name}"
                )
        return {kind: alias_view(r) for kind, r in self.current.items() if kind in TYPES and not self.ours(r)}

    def change(self, action: str, record: dict[str, Any], sentence: str) -> None:
        self.changes.append({"Action": action, "ResourceRecordSet": record})
        self.sentences.append(sentence)

    def apply(self) -> None:
        """One ChangeResourceRecordSets for every change, then GetChange until INSYNC (with wait)."""
        try:
            change = self.route53.change_resource_record_sets(
                HostedZoneId=self.zone,
                ChangeBatch={"Comment": f"airflow-ecs: {self.name}", "Changes": self.changes},
                aws_retry=True,
            )["ChangeInfo"]
        except (BotoCoreError, ClientError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to change the records of {self.name} in hosted zone {self.zone}")
        if self.params["wait"] and change["Status"] != "INSYNC":
            poll_until(
                self.module,
                lambda: self.read_change(change["Id"]),
                lambda status: status != "INSYNC",
                self.params["wait_timeout"],
                lambda status, _: (
                    f"The change of {self.name} was still {status} after {self.params['wait_timeout']} s "
                    "(it was applied; Route 53 is still propagating it)."
                ),
                first_delay=2.0,
            )

    def read_change(self, change_id: str) -> str:
        try:
            return self.route53.get_change(Id=change_id, aws_retry=True)["ChangeInfo"]["Status"]
        except (BotoCoreError, ClientError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to read change {change_id} of {self.name}", changed=True)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "hosted_zone_id": {"type": "str"},
            "name": {"type": "str"},
            "name_tag": {"type": "str", "default": "airflow-ecs:dns-name"},
            "zone_tag": {"type": "str", "default": "airflow-ecs:dns-zone"},
            "load_balancer": {"type": "str", "required": True},
            "evaluate_target_health": {"type": "bool", "default": True},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 300},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        required_if=[("state", "present", ("hosted_zone_id", "name"))],
        supports_check_mode=True,
    )
    run = Run(module)
    after = run.plan_present() if module.params["state"] == "present" else run.plan_absent()
    if run.changes and not module.check_mode:
        run.apply()
    result: dict[str, Any] = {"changed": bool(run.changes), "changes": run.sentences, "records": after}
    if module._diff:
        before = {kind: alias_view(r) for kind, r in run.current.items() if kind in TYPES}
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
