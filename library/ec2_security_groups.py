#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage several EC2 security groups of one VPC, with their ingress and egress rules and tags, in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_security_groups
short_description: Manage several security groups of one VPC, their ingress and egress rules and tags, in one run
description:
  - Creates, updates or deletes a set of EC2 security groups of one VPC in a single module run.
  - A run starts with one C(DescribeSecurityGroups) call for the whole set; when nothing differs that is
    the only API call.
  - With O(state=present) the missing groups are created first (with their tags), so that the rules of any
    group may name any group of the list, itself included, or an existing group of the VPC. The module then
    waits until the new groups can be read (the C(security_group_exists) waiter, which returns at the
    first successful read), then, for the ingress and egress rules of every group, authorizes the missing
    rules, updates the rule descriptions that differ and only then revokes the rules that are not listed
    (O(purge_rules)), so that a rule being replaced never leaves a window without one; last it syncs the tags.
  - A rule description is only ever changed with C(UpdateSecurityGroupRuleDescriptionsIngress) or
    C(UpdateSecurityGroupRuleDescriptionsEgress), for a CIDR, IPv6 or group rule, and to remove a
    description as well. A rule whose description changes is never revoked, so traffic is never dropped
    on a running stack.
  - With O(state=absent) the listed groups that exist are deleted. The rules of the listed groups that
    refer to listed groups (themselves included) are revoked first, so that mutual and self references
    never block the deletion. Groups that do not exist are ignored.
  - Egress rules are managed for the groups that give O(groups[].egress), in the same format and with the
    same purge as the ingress rules. AWS creates every group with an egress rule allowing all traffic to
    V(0.0.0.0/0). A group that gives O(groups[].egress) gets exactly those rules (the default rule is revoked
    when it is not listed). A group without O(groups[].egress) keeps the egress rules it has.
  - The description of a security group cannot be changed in place (AWS has no API for it). When the
    description of an existing group differs from O(groups[].description), the module leaves the group
    as it is and returns a warning saying that the group must be deleted and created again for the new
    description to apply. The run does not fail, because a group in use (by a load balancer, tasks, a
    database) cannot simply be replaced.
author:
  - airflow-ecs project
options:
  vpc_id:
    description:
      - ID of the VPC of the groups. Groups are found by name in this VPC.
    type: str
    required: true
  groups:
    description:
      - The security groups, in the order RV(groups) is returned.
      - Names must be unique in the list.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the group (C(GroupName)).
        type: str
        required: true
      description:
        description:
          - Description of the group. Required to create a group.
          - Cannot be changed on an existing group; a difference is reported as a warning.
        type: str
      rules:
        description:
          - Ingress rules of the group.
          - When not given, the ingress rules of the group are left alone. With O(purge_rules=true),
            V([]) removes every ingress rule.
          - Each rule expands to one AWS permission per port range and per source. A permission that
            exists with another description gets its description updated.
        type: list
        elements: dict
        suboptions: &rule_options
          proto:
            description:
              - IP protocol. V(all) and V(-1) mean every protocol (ports are ignored then).
              - Protocol numbers are accepted too; V(6), V(17), V(1) and V(58) are the same as
                V(tcp), V(udp), V(icmp) and V(icmpv6).
            type: str
            default: tcp
          ports:
            description:
              - Ports or port ranges, as integers or strings V(80) or V(8000-8100). Required for V(tcp)
                and V(udp).
              - For V(icmp) and V(icmpv6), an integer is an ICMP type (every code) and a string
                V(type-code) a type and code; without O(groups[].rules[].ports) every type and code is
                allowed.
            type: list
            elements: raw
          cidr_ip:
            description:
              - IPv4 CIDR blocks allowed in (ingress) or out to (egress). A block with host bits set is
                reduced to its network, with a warning.
            type: list
            elements: str
          cidr_ipv6:
            description:
              - IPv6 CIDR blocks allowed in (ingress) or out to (egress).
            type: list
            elements: str
          group_name:
            description:
              - Name of a security group of the same VPC allowed in (ingress) or out to (egress). It may be
                any group of O(groups), including the group the rule belongs to, or a group that already
                exists in the VPC.
              - A name that is neither fails the run before anything is changed.
            type: str
          rule_desc:
            description:
              - Description of the rule (of each permission it expands to). Not set means no description.
            type: str
      egress:
        description:
          - Egress rules of the group, in the format of O(groups[].rules); C(cidr_ip), C(cidr_ipv6) and
            C(group_name) name where traffic may go.
          - When not given, the egress rules of the group are left alone (a new group keeps the rule AWS
            creates it with, all traffic to V(0.0.0.0/0)). With O(purge_rules=true), V([]) removes every
            egress rule, so the group allows no outbound traffic.
        type: list
        elements: dict
        suboptions: *rule_options
      tags:
        description:
          - Tags of the group, as a dict. When not given, the tags of an existing group are left alone.
        type: dict
  purge_rules:
    description:
      - Revoke the ingress rules of a group that are not in its O(groups[].rules), and the egress rules
        that are not in its O(groups[].egress) (AWS's default egress rule included).
      - Has no effect on the ingress rules of a group whose O(groups[].rules) is not given, nor on the egress
        rules of a group whose O(groups[].egress) is not given.
    type: bool
    default: true
  purge_tags:
    description:
      - Remove the tags of a group that are not in its O(groups[].tags). Tags whose key starts with
        C(aws:) are never removed.
      - Has no effect on a group whose O(groups[].tags) is not given.
    type: bool
    default: true
  state:
    description:
      - Whether the groups should exist.
      - With V(absent) only O(groups[].name) is used.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode and diff mode. In check mode nothing is changed; RV(groups) shows the groups as
    they would be, with a null RV(groups[].group_id) for a group that would be created. The diff has one
    entry per group (name, description, ingress and egress rules as readable strings, tags).
  - AWS keys a rule by protocol, ports and source or destination, not by description. A rule cannot be
    authorized again with another description while it exists (C(InvalidPermission.Duplicate)), and
    C(UpdateSecurityGroupRuleDescriptionsIngress)/C(Egress) changes, adds or (with the description left out)
    removes the description of every kind of rule. So a description change never needs a revoke.
  - When EC2 accepts a description update but still reports the old description afterwards (the moto
    emulator ignores the update for rules that name a group, and for removing a description), the module
    warns and leaves the rule as it is; the run reports a change and the next run tries again.
  - Rules are authorized before the rules they replace are revoked. A group within a few rules of its
    rules-per-group quota may therefore need the replacement done in two runs (remove, then add).
  - Deleting a group that is still used by something else (a network interface, a rule of a group that
    is not in the list) fails with a message naming the group; the groups handled before stay deleted.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: amazon.aws.ec2_security_group
"""

EXAMPLES = r"""
- name: Create the tier security groups of a stack
  ec2_security_groups:
    vpc_id: "{{ vpc_id }}"
    groups:
      - name: airflow-alb
        description: Load balancer
        rules:
          - {proto: tcp, ports: [80, 443], cidr_ip: 0.0.0.0/0, rule_desc: Listeners}
        # Replaces AWS's default "all traffic to 0.0.0.0/0" (a forward reference: created in this run).
        egress:
          - {proto: tcp, ports: [8080], group_name: airflow-nodes, rule_desc: api-server targets}
        tags: {Name: airflow-alb, airflow-ecs:stack: airflow}
      - name: airflow-nodes
        description: Airflow nodes
        rules:
          - {proto: tcp, ports: [8080], group_name: airflow-alb, rule_desc: api-server from the ALB}
          - {proto: tcp, ports: [8080, 8793, "5555-5556"], group_name: airflow-nodes, rule_desc: between nodes}
        tags: {Name: airflow-nodes, airflow-ecs:stack: airflow}
  register: __sgs

- name: Use the id of a group
  ansible.builtin.debug:
    msg: "{{ __sgs.group_ids['airflow-nodes'] }}"

- name: Delete the groups, whatever rules they have between them
  ec2_security_groups:
    vpc_id: "{{ vpc_id }}"
    groups:
      - name: airflow-alb
      - name: airflow-nodes
    state: absent
"""

RETURN = r"""
groups:
  description:
    - The groups of O(groups) in the order given, as they are after the run (in check mode, as they would
      be). Empty with O(state=absent).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the group.
      type: str
      sample: airflow-alb
    group_id:
      description: ID of the group; null in check mode for a group that would be created.
      type: str
      sample: sg-0123456789abcdef0
    description:
      description: Description of the group.
      type: str
      sample: Load balancer
    ingress:
      description: Ingress permissions, one per port range and source.
      type: list
      elements: dict
      sample:
        - {proto: tcp, from_port: 443, to_port: 443, cidr_ip: 0.0.0.0/0, rule_desc: Listeners}
        - {proto: tcp, from_port: 8080, to_port: 8080, group_id: sg-0123456789abcdef0,
           group_name: airflow-alb, rule_desc: api-server from the ALB}
    egress:
      description:
        - Egress permissions, one per port range and destination, in the format of RV(groups[].ingress).
        - Also returned for a group without O(groups[].egress), whose egress rules were left alone.
      type: list
      elements: dict
      sample:
        - {proto: tcp, from_port: 8080, to_port: 8080, group_id: sg-0123456789abcdef1,
           group_name: airflow-nodes, rule_desc: api-server targets}
    tags:
      description: Tags of the group.
      type: dict
      sample: {"Name": "airflow-alb"}
group_ids:
  description: Group name to group ID (only groups that exist, or will in check mode have no id yet).
  returned: always
  type: dict
  sample: {"airflow-alb": "sg-0123456789abcdef0"}
diff:
  description: Per group name, its name, description, ingress and egress rules as strings and tags, before and after.
  returned: in diff mode
  type: dict
  sample:
    before: {}
    after:
      airflow-alb:
        name: airflow-alb
        description: Load balancer
        rules: ["tcp 443 from 0.0.0.0/0 (Listeners)"]
        egress: ["tcp 8080 to group airflow-nodes (api-server targets)"]
        tags: {Name: airflow-alb}
"""

import contextlib
import ipaddress
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    pass

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.batch_items import fail_on_repeats
from ansible.module_utils.ec2_batch import apply_tags, call, delete, describe_in_vpc, tags_of
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    compare_aws_tags,
)
from ansible_collections.amazon.aws.plugins.module_utils.waiters import wait_for_resource_state

PROTO_ALIASES = {"all": "-1", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
PORTED = ("tcp", "udp", "icmp", "icmpv6")
WARNED: set[str] = set()
NEW = "new:"  # prefix of the stand-in id of a group that does not exist yet (check mode, planning)

# A permission is (proto, from_port, to_port, kind, target); kind is cidr_ip, cidr_ipv6, group or
# prefix_list and target the CIDR, group id (or NEW + name) or prefix list id. Rules map it to its
# description ("" for none).
Permission = tuple[str, int | None, int | None, str, str]
Rules = dict[Permission, str]

# The rule directions: the option that lists a group's rules, the DescribeSecurityGroups key that holds
# them, the preposition of their readable form and the suffix of their EC2 operations.
DIRECTIONS = {
    "ingress": {"option": "rules", "key": "IpPermissions", "to": "from", "api": "ingress"},
    "egress": {"option": "egress", "key": "IpPermissionsEgress", "to": "to", "api": "egress"},
}
# The egress rule AWS creates every security group of a VPC with: all traffic to 0.0.0.0/0.
DEFAULT_EGRESS: Rules = {("-1", None, None, "cidr_ip", "0.0.0.0/0"): ""}


def argument_spec() -> dict[str, Any]:
    rule = dict(
        proto=dict(type="str", default="tcp"),
        ports=dict(type="list", elements="raw"),
        cidr_ip=dict(type="list", elements="str"),
        cidr_ipv6=dict(type="list", elements="str"),
        group_name=dict(type="str"),
        rule_desc=dict(type="str"),
    )
    group = dict(
        name=dict(type="str", required=True),
        description=dict(type="str"),
        rules=dict(type="list", elements="dict", options=rule),
        egress=dict(type="list", elements="dict", options=rule),
        tags=dict(type="dict"),
    )
    return dict(
        vpc_id=dict(type="str", required=True),
        groups=dict(type="list", elements="dict", options=group, default=[]),
        purge_rules=dict(type="bool", default=True),
        purge_tags=dict(type="bool", default=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


# --- Rules ---------------------------------------------------------------------------------------


def normalize_proto(proto: Any) -> str:
    proto = str(proto).strip().lower()
    return PROTO_ALIASES.get(proto, proto)


def port_ranges(module: AnsibleAWSModule, where: str, proto: str, ports: list | None) -> list[tuple]:
    """(from, to) pairs of a rule: ports for tcp/udp, (type, code) for icmp, (None, None) otherwise."""
    if proto not in PORTED:
        return [(None, None)]
    icmp = proto.startswith("icmp")
    if not ports:
        if icmp:
            return [(-1, -1)]
        module.fail_json(msg=f"{where}: a {proto} rule needs ports")
    ranges = []
    for port in ports:
        text = str(port).strip()
        try:
            if isinstance(port, bool):
                raise ValueError
            if "-" in text[1:]:
                cut = text.index("-", 1)
                low, high = int(text[:cut]), int(text[cut + 1 :])
            else:
                low = int(text)
                high = -1 if icmp else low
        except ValueError:
            module.fail_json(msg=f"{where}: port {port!r} is neither a number nor a 'from-to' range")
        if not icmp and not (0 <= low <= high <= 65535):
            module.fail_json(msg=f"{where}: port range {port!r} is not within 0-65535 (from <= to)")
        ranges.append((low, high))
    return ranges


def normalize_cidr(module: AnsibleAWSModule, where: str, cidr: str) -> tuple[str, str]:
    """(kind, network) of a CIDR block; a block with host bits set is reduced to its network."""
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        module.fail_json(msg=f"{where}: {cidr!r} is not a CIDR block")
    if str(network) != cidr.strip() and cidr not in WARNED:
        WARNED.add(cidr)  # rules are planned twice when groups are created
        module.warn(f"{where}: CIDR {cidr} has host bits set; using {network}")
    return ("cidr_ip" if network.version == 4 else "cidr_ipv6"), str(network)


def desired_rules(module: AnsibleAWSModule, group: dict, direction: str, resolve: dict[str, str], vpc_id: str) -> Rules:
    """The permissions a group's rules of one direction expand to; `resolve` maps group names to ids (or
    stand-ins)."""
    rules: Rules = {}
    label = "Rule" if direction == "ingress" else "Egress rule"
    for index, rule in enumerate(group[DIRECTIONS[direction]["option"]] or []):
        where = f"{label} {index + 1} of security group '{group['name']}'"
        proto = normalize_proto(rule["proto"])
        sources = []
        for cidr in (rule["cidr_ip"] or []) + (rule["cidr_ipv6"] or []):
            sources.append(normalize_cidr(module, where, cidr))
        if rule["group_name"]:
            name = rule["group_name"]
            if name not in resolve:
                module.fail_json(
                    msg=f"{where} names security group '{name}', which is neither in groups nor an existing "
                    f"group of VPC {vpc_id}; nothing was changed"
                )
            sources.append(("group", resolve[name]))
        if not sources:
            what = "source" if direction == "ingress" else "destination"
            module.fail_json(msg=f"{where} has no {what}: set cidr_ip, cidr_ipv6 or group_name")
        description = rule["rule_desc"] or ""
        for low, high in port_ranges(module, where, proto, rule["ports"]):
            for kind, target in sources:
                permission = (proto, low, high, kind, target)
                if rules.get(permission, description) != description:
                    module.fail_json(
                        msg=f"{where}: {readable(permission, '', {}, direction)} is also listed with description "
                        f"'{rules[permission]}'; a permission has one description"
                    )
                rules[permission] = description
    return rules


def current_rules(permissions: list[dict]) -> Rules:
    """The permissions of IpPermissions (as DescribeSecurityGroups returns them)."""
    rules: Rules = {}
    for perm in permissions:
        proto = normalize_proto(perm["IpProtocol"])
        low, high = (perm.get("FromPort"), perm.get("ToPort")) if proto in PORTED else (None, None)
        for kind, key, field in (
            ("cidr_ip", "IpRanges", "CidrIp"),
            ("cidr_ipv6", "Ipv6Ranges", "CidrIpv6"),
            ("group", "UserIdGroupPairs", "GroupId"),
            ("prefix_list", "PrefixListIds", "PrefixListId"),
        ):
            for item in perm.get(key) or []:
                rules[(proto, low, high, kind, item[field])] = item.get("Description") or ""
    return rules


def ip_permissions(rules: Rules) -> list[dict]:
    """IpPermissions for the API, one entry per (proto, from, to). Empty descriptions are left out."""
    merged: dict[tuple, dict] = {}
    fields = {
        "cidr_ip": ("IpRanges", "CidrIp"),
        "cidr_ipv6": ("Ipv6Ranges", "CidrIpv6"),
        "group": ("UserIdGroupPairs", "GroupId"),
        "prefix_list": ("PrefixListIds", "PrefixListId"),
    }
    for (proto, low, high, kind, target), description in sorted(rules.items(), key=sort_key):
        perm = merged.setdefault((proto, low, high), {"IpProtocol": proto})
        if low is not None:
            perm.update(FromPort=low, ToPort=high)
        key, field = fields[kind]
        item = {field: target}
        if description:  # UpdateSecurityGroupRuleDescriptionsIngress removes an omitted description
            item["Description"] = description
        perm.setdefault(key, []).append(item)
    return list(merged.values())


def sort_key(item: tuple) -> tuple:
    proto, low, high, kind, target = item[0]
    return (proto, -2 if low is None else low, -2 if high is None else high, kind, target)


def readable(permission: Permission, description: str, names: dict[str, str], direction: str = "ingress") -> str:
    """`tcp 8080 from group airflow-alb (api-server)`, `tcp 443 to 0.0.0.0/0` and the like, for the diff."""
    proto, low, high, kind, target = permission
    if proto == "-1":
        what = "all traffic"
    elif proto.startswith("icmp"):
        what = f"{proto} type {low} code {high}"
    elif proto in PORTED:
        what = f"{proto} {low}" if low == high else f"{proto} {low}-{high}"
    else:
        what = f"protocol {proto}"
    if kind == "group":
        source = f"group {names.get(target, target)}"
    elif kind == "prefix_list":
        source = f"prefix list {target}"
    else:
        source = target
    return f"{what} {DIRECTIONS[direction]['to']} {source}" + (f" ({description})" if description else "")


def rules_view(rules: Rules, names: dict[str, str]) -> list[dict]:
    """The permissions as returned in `groups[].ingress` and `groups[].egress`."""
    view = []
    for (proto, low, high, kind, target), description in sorted(rules.items(), key=sort_key):
        item: dict[str, Any] = {"proto": proto, "from_port": low, "to_port": high}
        if kind == "group":
            item["group_id"] = None if target.startswith(NEW) else target
            item["group_name"] = names.get(target)
        elif kind == "prefix_list":
            item["prefix_list_id"] = target
        else:
            item[kind] = target
        item["rule_desc"] = description
        view.append(item)
    return view


# --- AWS -----------------------------------------------------------------------------------------


def describe_groups(module: AnsibleAWSModule, client: Any, vpc_id: str, names: list[str]) -> dict[str, dict]:
    """The groups of the VPC with one of these names, by name (one DescribeSecurityGroups)."""
    if not names:
        return {}
    groups = describe_in_vpc(
        module,
        client,
        "describe_security_groups",
        "SecurityGroups",
        vpc_id,
        what="security groups",
        filters=[{"Name": "group-name", "Values": sorted(set(names))}],
    )
    return {group["GroupName"]: group for group in groups}


# --- present -------------------------------------------------------------------------------------


def group_view(name: str, description: str, rules: dict[str, Rules], tags: dict, names: dict[str, str]) -> dict:
    """A group in the diff; `rules` maps each direction to its permissions."""

    def lines(direction: str) -> list[str]:
        return [readable(p, d, names, direction) for p, d in sorted(rules[direction].items(), key=sort_key)]

    return {
        "name": name,
        "description": description,
        "rules": lines("ingress"),
        "egress": lines("egress"),
        "tags": tags,
    }


def rules_of(group: dict) -> dict[str, Rules]:
    """Per direction, the permissions of a group as DescribeSecurityGroups returns it."""
    return {direction: current_rules(group.get(spec["key"]) or []) for direction, spec in DIRECTIONS.items()}


def rule_changes(current: Rules, desired: Rules | None, purge: bool) -> dict[str, Rules]:
    """What to authorize, redescribe and revoke to go from `current` to `desired` (None: leave alone)."""
    if desired is None:
        return {"current": current, "add": {}, "redescribe": {}, "revoke": {}, "after": current}
    add = {p: d for p, d in desired.items() if p not in current}
    redescribe = {p: d for p, d in desired.items() if p in current and current[p] != d}
    revoke = {p: d for p, d in current.items() if p not in desired} if purge else {}
    after = {p: d for p, d in current.items() if p not in revoke} | add | redescribe
    return {"current": current, "add": add, "redescribe": redescribe, "revoke": revoke, "after": after}


def plan(
    module: AnsibleAWSModule, found: dict[str, dict], ids: dict[str, str], created: dict[str, dict] | None = None
) -> list[dict]:
    """What to do for each listed group, given the groups found, the name -> id (or stand-in) map and the
    groups created in this run as read back (a group still to create has no ingress and AWS's default egress)."""
    params = module.params
    steps = []
    for group in params["groups"]:
        existing = found.get(group["name"])
        read = existing or (created or {}).get(group["name"])
        current = rules_of(read) if read else {"ingress": {}, "egress": dict(DEFAULT_EGRESS)}
        rules = {}
        for direction, spec in DIRECTIONS.items():
            given = group[spec["option"]] is not None
            desired = desired_rules(module, group, direction, ids, params["vpc_id"]) if given else None
            rules[direction] = rule_changes(current[direction], desired, params["purge_rules"])
        tags_before = tags_of(existing) if existing else {}
        wanted = {k: str(v) for k, v in group["tags"].items()} if group["tags"] is not None else None
        to_set, to_unset = (
            compare_aws_tags(tags_before, wanted, params["purge_tags"]) if wanted is not None else ({}, [])
        )
        tags_after = {k: v for k, v in tags_before.items() if k not in to_unset} | to_set
        rules_changed = any(changes[key] for changes in rules.values() for key in ("add", "redescribe", "revoke"))
        steps.append(
            dict(
                group=group,
                existing=existing,
                description=existing["Description"] if existing else group["description"],
                rules=rules,
                to_set=to_set,
                to_unset=to_unset,
                tags_before=tags_before,
                tags_after=tags_after,
                changed=not existing or rules_changed or bool(to_set or to_unset),
            )
        )
    return steps


def create_groups(module: AnsibleAWSModule, client: Any, steps: list[dict]) -> dict[str, str]:
    """Create the missing groups with their tags and wait until they can be read; name -> id."""
    created = {}
    vpc_id = module.params["vpc_id"]
    for step in steps:
        if step["existing"]:
            continue
        group = step["group"]
        params: dict[str, Any] = {"GroupName": group["name"], "Description": group["description"], "VpcId": vpc_id}
        if step["tags_after"]:
            tags = ansible_dict_to_boto3_tag_list(step["tags_after"])
            params["TagSpecifications"] = [{"ResourceType": "security-group", "Tags": tags}]
        response = call(
            module, client, "create_security_group", f"Failed to create security group '{group['name']}'", **params
        )
        created[group["name"]] = response["GroupId"]
    if created:
        wait_for_resource_state(
            client, module, "security_group_exists", delay=1, max_attempts=60, GroupIds=list(created.values())
        )
    return created


# The rule changes of every group, in this order: every missing rule is authorized (all groups) before
# any description is updated and before any rule is revoked, so that a rule being replaced, even by a
# rule of another group of the same resource, never leaves a window without one. Descriptions are only
# updated in place: AWS has no case where a description change needs a revoke.
RULE_PHASES = (
    ("add", "authorize_security_group_{}", "authorize {} rules on"),
    ("redescribe", "update_security_group_rule_descriptions_{}", "update the {} rule descriptions of"),
    # With the current descriptions: moto only matches a group pair with them.
    ("revoke", "revoke_security_group_{}", "revoke {} rules of"),
)


def apply_rules(module: AnsibleAWSModule, client: Any, ids: dict[str, str], steps: list[dict]) -> None:
    for key, operation, what in RULE_PHASES:
        for step in steps:
            name = step["group"]["name"]
            for direction, spec in DIRECTIONS.items():
                permissions = step["rules"][direction][key]
                if permissions:
                    message = f"Failed to {what.format(direction)} security group '{name}' ({ids[name]})"
                    call(
                        module,
                        client,
                        operation.format(spec["api"]),
                        message,
                        GroupId=ids[name],
                        IpPermissions=ip_permissions(permissions),
                    )


def warn_unapplied(module: AnsibleAWSModule, after: dict[str, dict], steps: list[dict], names: dict[str, str]) -> None:
    """Warn about the description updates EC2 accepted but does not report (moto ignores some)."""
    for step in steps:
        group = after[step["group"]["name"]]
        now = rules_of(group)
        for direction in DIRECTIONS:
            stale = [
                readable(p, d, names, direction)
                for p, d in sorted(step["rules"][direction]["redescribe"].items(), key=sort_key)
                if p in now[direction] and now[direction][p] != d
            ]
            if stale:
                module.warn(
                    f"Security group '{group['GroupName']}' ({group['GroupId']}): EC2 accepted the new description of "
                    f"{len(stale)} {direction} rule(s) but still reports the old one: {'; '.join(stale)}. The rules "
                    "were left in place (a description change never revokes a rule); the next run tries again."
                )


def ensure_present(module: AnsibleAWSModule, client: Any) -> dict:
    params = module.params
    vpc_id = params["vpc_id"]
    listed = [group["name"] for group in params["groups"]]
    referenced = [
        rule["group_name"]
        for group in params["groups"]
        for option in ("rules", "egress")
        for rule in group[option] or []
        if rule["group_name"]
    ]
    found = describe_groups(module, client, vpc_id, listed + referenced)

    for group in params["groups"]:
        existing = found.get(group["name"])
        if not existing and not group["description"]:
            module.fail_json(
                msg=f"Security group '{group['name']}' does not exist: a description is needed to create it"
            )
        if existing and group["description"] is not None and group["description"] != existing["Description"]:
            module.warn(
                f"Security group '{group['name']}' ({existing['GroupId']}) has the description "
                f"'{existing['Description']}', not '{group['description']}'. AWS cannot change the description of "
                "a security group: delete the group and create it again to apply it. The group was left as it is."
            )

    # Plan with stand-in ids for the groups to create: validates every rule before any change.
    ids = {name: group["GroupId"] for name, group in found.items()}
    ids.update({name: NEW + name for name in listed if name not in found})
    steps = plan(module, found, ids)
    changed = any(step["changed"] for step in steps)
    names = {group_id: name for name, group_id in ids.items()}

    if changed and not module.check_mode:
        new_ids = create_groups(module, client, steps)
        ids.update(new_ids)
        names = {group_id: name for name, group_id in ids.items()}
        # A new group that lists its egress: read the egress rules AWS created it with, to revoke them.
        egress_given = [s["group"]["name"] for s in steps if not s["existing"] and s["group"]["egress"] is not None]
        created = describe_groups(module, client, vpc_id, egress_given)
        steps = plan(module, found, ids, created)
        apply_rules(module, client, ids, steps)
        for step in steps:
            if step["existing"]:
                name = step["group"]["name"]
                apply_tags(module, client, ids[name], f"security group '{name}'", step)
        after = describe_groups(module, client, vpc_id, listed)
        warn_unapplied(module, after, steps, names)
    else:
        after = None

    result_groups, diff_before, diff_after = [], {}, {}
    for step in steps:
        name = step["group"]["name"]
        if step["existing"]:
            before = {direction: changes["current"] for direction, changes in step["rules"].items()}
            diff_before[name] = group_view(name, step["description"], before, step["tags_before"], names)
        if after is not None:
            group = after[name]
            rules, tags, description = rules_of(group), tags_of(group), group["Description"]
        else:
            rules = {direction: changes["after"] for direction, changes in step["rules"].items()}
            tags, description = step["tags_after"], step["description"]
        diff_after[name] = group_view(name, description, rules, tags, names)
        group_id = ids[name]
        result_groups.append(
            {
                "name": name,
                "group_id": None if group_id.startswith(NEW) else group_id,
                "description": description,
                "ingress": rules_view(rules["ingress"], names),
                "egress": rules_view(rules["egress"], names),
                "tags": tags,
            }
        )
    result: dict[str, Any] = {
        "changed": changed,
        "groups": result_groups,
        "group_ids": {group["name"]: group["group_id"] for group in result_groups if group["group_id"]},
    }
    if module._diff:
        result["diff"] = {"before": diff_before, "after": diff_after}
    return result


# --- absent --------------------------------------------------------------------------------------


def group_references(permissions: list[dict], ids: set[str]) -> Rules:
    return {p: d for p, d in current_rules(permissions).items() if p[3] == "group" and p[4] in ids}


def ensure_absent(module: AnsibleAWSModule, client: Any) -> dict:
    vpc_id = module.params["vpc_id"]
    listed = [group["name"] for group in module.params["groups"]]
    found = describe_groups(module, client, vpc_id, listed)
    doomed = [found[name] for name in reversed(listed) if name in found]
    result: dict[str, Any] = {"changed": bool(doomed), "groups": [], "group_ids": {}}
    if module._diff:
        names = {group["GroupId"]: group["GroupName"] for group in doomed}
        result["diff"] = {
            "before": {
                g["GroupName"]: group_view(g["GroupName"], g["Description"], rules_of(g), tags_of(g), names)
                for g in reversed(doomed)
            },
            "after": {},
        }
    if not doomed or module.check_mode:
        return result

    ids = {group["GroupId"] for group in doomed}
    for group in doomed:  # first every reference between the groups, so that no deletion waits on another
        name, group_id = group["GroupName"], group["GroupId"]
        ingress = group_references(group["IpPermissions"], ids)
        egress = group_references(group.get("IpPermissionsEgress") or [], ids)
        if ingress:
            call(
                module,
                client,
                "revoke_security_group_ingress",
                f"Failed to revoke the ingress rules of security group '{name}' ({group_id}) that name listed groups",
                GroupId=group_id,
                IpPermissions=ip_permissions(ingress),
            )
        if egress:
            call(
                module,
                client,
                "revoke_security_group_egress",
                f"Failed to revoke the egress rules of security group '{name}' ({group_id}) that name listed groups",
                GroupId=group_id,
                IpPermissions=ip_permissions(egress),
            )
    for group in doomed:
        name, group_id = group["GroupName"], group["GroupId"]
        delete(
            module,
            client,
            "delete_security_group",
            f"security group '{name}' ({group_id}) of VPC {vpc_id}",
            not_found=["InvalidGroup.NotFound"],
            in_use="it is still in use, by a network interface (a task, load balancer or database still running) "
            "or by a rule of a group that is not in this list",
            changed=True,
            GroupId=group_id,
        )
    return result


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    fail_on_repeats(module, "groups", "security group", [group["name"] for group in module.params["groups"]])
    client = module.client("ec2", retry_decorator=jittered_backoff())
    ensure = ensure_present if module.params["state"] == "present" else ensure_absent
    module.exit_json(**ensure(module, client))


if __name__ == "__main__":
    main()
