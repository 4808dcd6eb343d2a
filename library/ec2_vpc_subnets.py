#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage several subnets of one VPC, with their public IP setting and tags, in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_vpc_subnets
short_description: Manage several subnets of one VPC, their public IP setting and tags, in one run
description:
  - Creates, updates or deletes a set of IPv4 subnets of one VPC in a single module run.
  - Subnets are identified by their VPC and CIDR block, as M(amazon.aws.ec2_vpc_subnet) does.
  - A run starts with one C(DescribeSubnets) call for the whole VPC; when nothing differs that is the
    only API call.
  - With O(state=present) the missing subnets are created with their tags (C(CreateSubnet) with
    C(TagSpecifications)). When AWS answers that a new subnet is still C(pending), the module then waits
    once for all the new subnets to be C(available) (one C(DescribeSubnets) per poll, first poll at once,
    then after a growing delay). C(MapPublicIpOnLaunch) is set where it differs
    (C(ModifySubnetAttribute)) and the tags are synced (C(CreateTags), C(DeleteTags)).
  - A subnet cannot move to another availability zone. When a subnet with the CIDR block exists in another
    zone than O(subnets[].az), the run fails before anything is changed.
  - With O(state=absent) the listed subnets that exist are deleted. Subnets that do not exist are ignored.
  - With O(purge_owned_by), the subnets of the VPC that carry all its tags (the caller's ownership tags, such
    as the stack tag) and that O(subnets) does not list are deleted too, with either state; with
    O(state=present) before the missing listed subnets are created (so that a new CIDR block may overlap a
    purged one), with O(state=absent) along with the listed ones. A subnet without those tags is never
    deleted that way.
author:
  - airflow-ecs project
options:
  vpc_id:
    description:
      - ID of the VPC of the subnets.
    type: str
    required: true
  subnets:
    description:
      - The subnets, in the order RV(subnets) is returned.
      - CIDR blocks must be unique in the list.
    type: list
    elements: dict
    default: []
    suboptions:
      cidr:
        description:
          - IPv4 CIDR block of the subnet; it identifies the subnet in the VPC.
        type: str
        required: true
      az:
        description:
          - Availability zone of the subnet (name such as V(us-east-1a), or zone ID such as V(use1-az1)).
          - Required to create a subnet. An existing subnet in another zone fails the run.
        type: str
      map_public:
        description:
          - Whether instances and tasks launched in the subnet get a public IPv4 address
            (C(MapPublicIpOnLaunch)).
        type: bool
        default: false
      tags:
        description:
          - Tags of the subnet, as a dict. When not given, the tags of an existing subnet are left alone.
        type: dict
  purge_tags:
    description:
      - Remove the tags of a subnet that are not in its O(subnets[].tags). Tags whose key starts with
        C(aws:) are never removed.
      - Has no effect on a subnet whose O(subnets[].tags) is not given.
    type: bool
    default: true
  purge_owned_by:
    description:
      - The tags (key and value) that mark the subnets of the VPC the caller owns, for example the stack tag
        C(airflow-ecs:stack=airflow). Every subnet of the VPC that has all these tags and is not listed in
        O(subnets) (by CIDR block) is deleted.
      - A subnet that lacks one of these tags (made by another tool or by hand) is never deleted this way.
      - Must name at least one tag; V({}) fails the run, as it would own every subnet of the VPC.
      - When not given, no subnet is deleted besides, with O(state=absent), the listed ones.
    type: dict
  state:
    description:
      - Whether the subnets should exist.
      - With V(absent) only O(subnets[].cidr) is used.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode and diff mode. In check mode nothing is changed; RV(subnets) shows the subnets as
    they would be, with a null RV(subnets[].id) for a subnet that would be created, and RV(deleted) the
    subnets that would be deleted. The diff has one entry per CIDR block (id, zone, public IP setting, tags).
  - Deleting a subnet that still holds network interfaces (tasks, NAT gateways, load balancers, databases)
    fails with a message naming the subnet; the subnets deleted before stay deleted (with O(state=present),
    no listed subnet has been created or changed yet).
  - IPv6 blocks and the other subnet attributes are not managed.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: amazon.aws.ec2_vpc_subnet
"""

EXAMPLES = r"""
- name: Create a public and a private subnet in each of two zones
  ec2_vpc_subnets:
    vpc_id: "{{ vpc_id }}"
    subnets:
      - {cidr: 10.0.0.0/24, az: us-east-1a, map_public: true, tags: {Name: public-a}}
      - {cidr: 10.0.1.0/24, az: us-east-1b, map_public: true, tags: {Name: public-b}}
      - {cidr: 10.0.10.0/24, az: us-east-1a, tags: {Name: private-a}}
      - {cidr: 10.0.11.0/24, az: us-east-1b, tags: {Name: private-b}}
  register: __subnets

- name: Use the ids, in the order given
  ansible.builtin.debug:
    msg: "{{ __subnets.subnets | map(attribute='id') }}"

- name: Keep only the public subnets of the stack (its other subnets, such as private-a, go)
  ec2_vpc_subnets:
    vpc_id: "{{ vpc_id }}"
    subnets:
      - {cidr: 10.0.0.0/24, az: us-east-1a, map_public: true, tags: {Name: public-a, airflow-ecs:stack: airflow}}
      - {cidr: 10.0.1.0/24, az: us-east-1b, map_public: true, tags: {Name: public-b, airflow-ecs:stack: airflow}}
    purge_owned_by:
      airflow-ecs:stack: airflow

- name: Delete every subnet of the stack, even after a half-finished deploy (other subnets stay)
  ec2_vpc_subnets:
    vpc_id: "{{ vpc_id }}"
    purge_owned_by:
      airflow-ecs:stack: airflow
    state: absent
"""

RETURN = r"""
subnets:
  description:
    - The subnets of O(subnets) in the order given, as they are after the run (in check mode, as they would
      be). Empty with O(state=absent).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: ID of the subnet; null in check mode for a subnet that would be created.
      type: str
      sample: subnet-0123456789abcdef0
    cidr:
      description: CIDR block of the subnet.
      type: str
      sample: 10.0.0.0/24
    az:
      description: Availability zone name of the subnet.
      type: str
      sample: us-east-1a
    map_public:
      description: Whether the subnet gives a public IPv4 address on launch.
      type: bool
      sample: false
    tags:
      description: Tags of the subnet.
      type: dict
      sample: {"Name": "public-a"}
deleted:
  description:
    - The subnets deleted (in check mode, that would be), as C(id) and C(cidr); with O(state=absent) the
      listed ones, and with O(purge_owned_by) the owned ones not listed.
  returned: always
  type: list
  elements: dict
  sample: [{id: subnet-0123456789abcdef0, cidr: 10.0.10.0/24}]
diff:
  description:
    - Per CIDR block, the subnet's id, zone, public IP setting and tags, before and after. A deleted subnet is
      only in C(before).
  returned: in diff mode
  type: dict
  sample:
    before: {}
    after:
      10.0.0.0/24: {id: null, az: us-east-1a, map_public: true, tags: {Name: public-a}}
"""

import contextlib
import ipaddress
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    pass

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.batch_items import fail_on_repeats
from ansible.module_utils.ec2_batch import apply_tags, call, delete, describe_in_vpc, poll_until, tags_of
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    compare_aws_tags,
)

WAIT_SECONDS = 300  # for new subnets to become available


def argument_spec() -> dict[str, Any]:
    subnet = dict(
        cidr=dict(type="str", required=True),
        az=dict(type="str"),
        map_public=dict(type="bool", default=False),
        tags=dict(type="dict"),
    )
    return dict(
        vpc_id=dict(type="str", required=True),
        subnets=dict(type="list", elements="dict", options=subnet, default=[]),
        purge_tags=dict(type="bool", default=True),
        purge_owned_by=dict(type="dict"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


# --- AWS -----------------------------------------------------------------------------------------


def describe_subnets(module: AnsibleAWSModule, client: Any, vpc_id: str, changed: bool = False) -> dict[str, dict]:
    """The subnets of the VPC by IPv4 CIDR block (one DescribeSubnets)."""
    subnets = describe_in_vpc(module, client, "describe_subnets", "Subnets", vpc_id, what="subnets", changed=changed)
    return {subnet["CidrBlock"]: subnet for subnet in subnets}


# Calls on a subnet created in this run are retried while EC2 does not know it everywhere yet.
NEW_SUBNET = ("InvalidSubnetID.NotFound",)


def subnet_view(subnet: dict) -> dict[str, Any]:
    """What the diff shows of an existing subnet."""
    return {
        "id": subnet["SubnetId"],
        "az": subnet["AvailabilityZone"],
        "map_public": bool(subnet.get("MapPublicIpOnLaunch")),
        "tags": tags_of(subnet),
    }


def owner_tags(module: AnsibleAWSModule) -> dict[str, str] | None:
    """The tags that mark the caller's subnets (purge_owned_by), values as strings; None when not given."""
    tags = module.params["purge_owned_by"]
    return None if tags is None else {key: str(value) for key, value in tags.items()}


def is_owned(subnet: dict, owner: dict[str, str]) -> bool:
    """Whether the subnet carries every owner tag; no subnet is owned by an empty set of tags."""
    tags = tags_of(subnet)
    return bool(owner) and all(tags.get(key) == value for key, value in owner.items())


def owned_unlisted(module: AnsibleAWSModule, found: dict[str, dict]) -> list[dict]:
    """The subnets purge_owned_by deletes, by CIDR block: carrying every owner tag, not in `subnets`."""
    owner = owner_tags(module)
    if owner is None:
        return []
    listed = {subnet["cidr"] for subnet in module.params["subnets"]}
    return [
        found[cidr]
        for cidr in sorted(found, key=ipaddress.ip_network)
        if cidr not in listed and is_owned(found[cidr], owner)
    ]


def normalize_cidr(module: AnsibleAWSModule, cidr: str) -> str:
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        module.fail_json(msg=f"Subnet {cidr!r} is not a CIDR block; nothing was changed")
    if network.version != 4:
        module.fail_json(msg=f"Subnet {cidr}: only IPv4 CIDR blocks are supported; nothing was changed")
    if str(network) != cidr.strip():
        module.fail_json(msg=f"Subnet {cidr} has host bits set; did you mean {network}? Nothing was changed")
    return str(network)


# --- present -------------------------------------------------------------------------------------


def plan(module: AnsibleAWSModule, found: dict[str, dict]) -> list[dict]:
    """What to do for each listed subnet; fails before any change on a subnet that cannot be made."""
    params = module.params
    vpc_id = params["vpc_id"]
    steps, problems = [], []
    for subnet in params["subnets"]:
        cidr = subnet["cidr"]
        existing = found.get(cidr)
        az = subnet["az"]
        if existing is None and not az:
            problems.append(f"subnet {cidr} does not exist in VPC {vpc_id}: az is needed to create it")
        if existing is not None and az and az not in (existing["AvailabilityZone"], existing.get("AvailabilityZoneId")):
            problems.append(
                f"subnet {cidr} ({existing['SubnetId']}) exists in availability zone {existing['AvailabilityZone']}, "
                f"not {az}: a subnet cannot move to another zone. Delete it (and what is inside) to create it in "
                f"{az}, or ask for {existing['AvailabilityZone']}"
            )
        tags_before = tags_of(existing) if existing else {}
        wanted = {k: str(v) for k, v in subnet["tags"].items()} if subnet["tags"] is not None else None
        to_set, to_unset = (
            compare_aws_tags(tags_before, wanted, params["purge_tags"]) if wanted is not None else ({}, [])
        )
        map_public_before = bool(existing.get("MapPublicIpOnLaunch")) if existing else False
        set_map_public = subnet["map_public"] != map_public_before
        steps.append(
            dict(
                cidr=cidr,
                az=existing["AvailabilityZone"] if existing else az,
                existing=existing,
                map_public=subnet["map_public"],
                set_map_public=set_map_public,
                to_set=to_set,
                to_unset=to_unset,
                tags_after={k: v for k, v in tags_before.items() if k not in to_unset} | to_set,
                changed=existing is None or bool(set_map_public or to_set or to_unset),
            )
        )
    if problems:
        module.fail_json(msg="Cannot manage the subnets: " + "; ".join(problems) + ". Nothing was changed.")
    return steps


def wait_available(module: AnsibleAWSModule, client: Any, vpc_id: str, ids: set[str]) -> dict[str, dict]:
    """Poll the VPC's subnets (first at once, then after a growing delay) until all `ids` are available."""

    def waiting(found: dict[str, dict]) -> list[str]:
        states = {s["SubnetId"]: s.get("State") for s in found.values() if s["SubnetId"] in ids}
        return sorted(i for i in ids if states.get(i) != "available")

    return poll_until(
        module,
        lambda: describe_subnets(module, client, vpc_id, changed=True),
        waiting,
        WAIT_SECONDS,
        lambda _, left: (
            f"Timed out after {WAIT_SECONDS} s waiting for the new subnets {', '.join(left)} of VPC "
            f"{vpc_id} to be available"
        ),
    )


def create_subnets(module: AnsibleAWSModule, client: Any, steps: list[dict]) -> dict[str, dict]:
    """Create the missing subnets with their tags, wait until they are available; CIDR -> subnet."""
    vpc_id = module.params["vpc_id"]
    created: dict[str, dict] = {}
    for step in steps:
        if step["existing"]:
            continue
        params: dict[str, Any] = {"VpcId": vpc_id, "CidrBlock": step["cidr"]}
        params["AvailabilityZoneId" if "-az" in step["az"] else "AvailabilityZone"] = step["az"]
        if step["tags_after"]:
            tags = ansible_dict_to_boto3_tag_list(step["tags_after"])
            params["TagSpecifications"] = [{"ResourceType": "subnet", "Tags": tags}]
        response = call(
            module,
            client,
            "create_subnet",
            f"Failed to create subnet {step['cidr']} in availability zone {step['az']} of VPC {vpc_id}",
            **params,
        )
        created[step["cidr"]] = response["Subnet"]
    pending = {s["SubnetId"] for s in created.values() if s.get("State") != "available"}
    if pending:
        found = wait_available(module, client, vpc_id, pending)
        created.update({cidr: found[cidr] for cidr in created if cidr in found})
    return created


def apply_changes(module: AnsibleAWSModule, client: Any, step: dict, subnet_id: str, new: bool) -> None:
    what = f"subnet {step['cidr']} ({subnet_id})"
    if step["set_map_public"]:
        call(
            module,
            client,
            "modify_subnet_attribute",
            f"Failed to set MapPublicIpOnLaunch to {step['map_public']} on {what}",
            retry_codes=NEW_SUBNET if new else (),
            SubnetId=subnet_id,
            MapPublicIpOnLaunch={"Value": step["map_public"]},
        )
    if not new:  # a new subnet is tagged at creation
        apply_tags(module, client, subnet_id, what, step)


def ensure_present(module: AnsibleAWSModule, client: Any) -> dict:
    found = describe_subnets(module, client, module.params["vpc_id"])
    steps = plan(module, found)
    purged = owned_unlisted(module, found)
    changed = any(step["changed"] for step in steps) or bool(purged)

    created: dict[str, dict] = {}
    if changed and not module.check_mode:
        # First, so that a new CIDR block may overlap a purged one; the subnets gone already do not count.
        purged = delete_subnets(module, client, purged)
        changed = any(step["changed"] for step in steps) or bool(purged)
        created = create_subnets(module, client, steps)
        for step in steps:
            if not step["changed"]:
                continue
            new = step["cidr"] in created
            subnet_id = (created[step["cidr"]] if new else step["existing"])["SubnetId"]
            apply_changes(module, client, step, subnet_id, new)

    result_subnets, diff_before, diff_after = [], {}, {}
    for step in steps:
        cidr, existing = step["cidr"], step["existing"]
        if existing:
            diff_before[cidr] = subnet_view(existing)
            subnet_id, az = existing["SubnetId"], existing["AvailabilityZone"]
        elif cidr in created:
            subnet_id, az = created[cidr]["SubnetId"], created[cidr]["AvailabilityZone"]
        else:
            subnet_id, az = None, step["az"]
        view = {"id": subnet_id, "az": az, "map_public": step["map_public"], "tags": step["tags_after"]}
        diff_after[cidr] = view
        result_subnets.append({"id": subnet_id, "cidr": cidr, **{k: v for k, v in view.items() if k != "id"}})
    result: dict[str, Any] = {"changed": changed, "subnets": result_subnets, "deleted": deleted_view(purged)}
    if module._diff:
        result["diff"] = {"before": diff_before | deleted_diff(purged), "after": diff_after}
    return result


# --- deleting: state=absent and purge_owned_by ---------------------------------------------------


def deleted_view(subnets: list[dict]) -> list[dict]:
    return [{"id": s["SubnetId"], "cidr": s["CidrBlock"]} for s in subnets]


def deleted_diff(subnets: list[dict]) -> dict[str, dict]:
    """The diff's `before` entries of deleted subnets, by CIDR block."""
    return {s["CidrBlock"]: subnet_view(s) for s in subnets}


def delete_subnets(module: AnsibleAWSModule, client: Any, doomed: list[dict]) -> list[dict]:
    """Delete the subnets in order; returns those deleted (not those gone already). Stops at the first failure."""
    vpc_id = module.params["vpc_id"]
    deleted: list[dict] = []
    for subnet in doomed:
        subnet_id, cidr = subnet["SubnetId"], subnet["CidrBlock"]
        if delete(
            module,
            client,
            "delete_subnet",
            f"subnet {subnet_id} ({cidr}) of VPC {vpc_id}",
            not_found=["InvalidSubnetID.NotFound"],
            in_use="it still holds network interfaces (a task, NAT gateway, load balancer, database or endpoint "
            "still running in it)",
            changed=bool(deleted),
            SubnetId=subnet_id,
        ):
            deleted.append(subnet)
    return deleted


def ensure_absent(module: AnsibleAWSModule, client: Any) -> dict:
    found = describe_subnets(module, client, module.params["vpc_id"])
    doomed = [found[s["cidr"]] for s in module.params["subnets"] if s["cidr"] in found]
    doomed += owned_unlisted(module, found)
    result: dict[str, Any] = {"changed": bool(doomed), "subnets": [], "deleted": deleted_view(doomed)}
    if module._diff:
        result["diff"] = {"before": deleted_diff(doomed), "after": {}}
    if not doomed or module.check_mode:
        return result
    deleted = delete_subnets(module, client, doomed)
    result["changed"], result["deleted"] = bool(deleted), deleted_view(deleted)
    return result


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["purge_owned_by"] == {}:
        module.fail_json(
            msg="purge_owned_by names no tag: give the tags that mark the subnets this run owns (such as the "
            "stack tag airflow-ecs:stack); with none, every subnet of the VPC would count as owned. "
            "Nothing was changed."
        )
    for subnet in params["subnets"]:
        subnet["cidr"] = normalize_cidr(module, subnet["cidr"])
    fail_on_repeats(module, "subnets", "CIDR block", [subnet["cidr"] for subnet in params["subnets"]])
    client = module.client("ec2", retry_decorator=jittered_backoff())
    ensure = ensure_present if params["state"] == "present" else ensure_absent
    module.exit_json(**ensure(module, client))


if __name__ == "__main__":
    main()
