#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage one VPC, found by its Name and owner tags, with its DNS attributes, tags and internet gateway."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_vpc_network
short_description: Manage a VPC found by its Name and owner tags, its DNS attributes and its internet gateway
description:
  - Creates, updates or deletes one IPv4 VPC and, optionally, its internet gateway, in one module run.
    It does the job of M(amazon.aws.ec2_vpc_net) and M(amazon.aws.ec2_vpc_igw) together, with fewer API
    calls.
  - The VPC is found by its C(Name) tag (O(name)) together with every tag of O(owner_tags), with one
    C(DescribeVpcs) call; the tags come back in its answer. More than one VPC with that name and those
    tags fails the run, naming their ids, before anything is changed.
  - Its IPv4 range (O(cidr_block)) cannot change. When the VPC found has another range the run fails
    before anything is changed; a VPC is never deleted and made again by this module (M(amazon.aws.ec2_vpc_net)
    finds a VPC by its name and range, so a changed range makes a second VPC).
  - With O(state=present) and an existing VPC, a run reads the two DNS attributes (two
    C(DescribeVpcAttribute) calls) and, with O(internet_gateway), the gateway attached to the VPC (one
    C(DescribeInternetGateways) call, tags in its answer), four calls when nothing differs. Then the tags
    are synced (C(CreateTags), C(DeleteTags)), each DNS attribute that differs is set
    (C(ModifyVpcAttribute)) and the gateway is tagged, attached or created.
  - A missing VPC is created with its tags (C(CreateVpc) with C(TagSpecifications)) and waited for until
    it is C(available) (when AWS does not answer C(available) at once); a new VPC has DNS support on and
    DNS hostnames off (AWS's defaults), so only an attribute that differs from those is set.
  - With O(state=absent) the VPC is deleted after its internet gateway is detached and deleted, and only
    when both carry O(owner_tags). Everything else inside the VPC (subnets, route tables, security groups,
    NAT gateways, network interfaces) must be gone already, or AWS refuses with C(DependencyViolation),
    which the run reports naming the VPC.
author:
  - airflow-ecs project
options:
  name:
    description:
      - Value of the VPC's C(Name) tag; with O(owner_tags), how the VPC is found.
    type: str
    required: true
  owner_tags:
    description:
      - The tags (key and value) that mark the caller's resources, for example the stack tag
        C(airflow-ecs:stack=airflow). The VPC is found by O(name) and these tags, the VPC and its internet
        gateway always carry them, and O(state=absent) deletes only a VPC and a gateway that carry them.
      - Must name at least one tag, and not C(Name).
    type: dict
    required: true
  vpc_id:
    description:
      - Only with O(state=absent), the ID of the VPC to delete (for example one of those
        M(amazon.aws.ec2_vpc_net_info) found). It must carry O(name) and O(owner_tags), or the run fails
        before anything is changed. Without it the VPC is found by O(name) and O(owner_tags).
    type: str
  cidr_block:
    description:
      - The IPv4 range of the VPC, C(/16) to C(/28). Required with O(state=present).
      - The range of an existing VPC cannot change; another range fails the run before any change.
    type: str
  dns_support:
    description:
      - Whether the VPC's resolver answers DNS queries (C(enableDnsSupport)).
    type: bool
    default: true
  dns_hostnames:
    description:
      - Whether instances and tasks with a public IP address get public DNS hostnames (C(enableDnsHostnames)).
      - Requires O(dns_support).
    type: bool
    default: true
  tags:
    description:
      - Tags of the VPC, as a dict. C(Name) (O(name)) and O(owner_tags) are added to them; a key of either
        with another value here fails the run.
      - When not given, the VPC's other tags are left alone.
    type: dict
  purge_tags:
    description:
      - Remove the tags of the VPC, and of the gateway, that are not given. Tags whose key starts with
        C(aws:) are never removed.
      - Has no effect on the VPC when O(tags) is not given, nor on the gateway when O(internet_gateway.tags)
        is not given.
    type: bool
    default: true
  internet_gateway:
    description:
      - The VPC's internet gateway. When given with O(state=present), the VPC has one gateway attached,
        with the C(Name) tag O(internet_gateway.name), O(owner_tags) and O(internet_gateway.tags). The
        gateway attached to the VPC is the one managed, whoever made it; when none is, a detached gateway
        with that name and the owner tags (left by an interrupted run) is attached, else one is created
        with its tags (C(CreateInternetGateway) with C(TagSpecifications), then C(AttachInternetGateway)).
      - When not given with O(state=present), the gateways are left alone.
      - With O(state=absent) the gateway attached to the VPC is deleted in any case; when this is given,
        detached gateways with its name and the owner tags are deleted as well.
    type: dict
    suboptions:
      name:
        description:
          - Value of the gateway's C(Name) tag.
        type: str
        required: true
      tags:
        description:
          - Tags of the gateway besides C(Name) and O(owner_tags). When not given, its other tags are left
            alone.
        type: dict
  state:
    description:
      - Whether the VPC (and its gateway) should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode and diff mode. In check mode nothing is changed; RV(vpc) and RV(internet_gateway)
    show what would be, with a null RV(vpc.id) for a VPC that would be created and a null
    RV(internet_gateway.id) for a gateway that would be created. The diff shows the VPC (id, range, DNS
    attributes, tags) and the gateway (id, tags) before and after.
  - IPv6 ranges, secondary IPv4 ranges, tenancy and DHCP options are not managed.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: amazon.aws.ec2_vpc_net
  - module: amazon.aws.ec2_vpc_igw
"""

EXAMPLES = r"""
- name: Create the stack's VPC with its internet gateway
  ec2_vpc_network:
    name: airflow-vpc
    owner_tags:
      airflow-ecs:stack: airflow
    cidr_block: 10.40.0.0/16
    tags:
      airflow-ecs:stack: airflow
      team: data
    internet_gateway:
      name: airflow-igw
      tags:
        team: data
  register: __vpc

- name: Use the ids
  ansible.builtin.debug:
    msg: "{{ __vpc.vpc.id }} {{ __vpc.internet_gateway.id }}"

- name: Delete the gateway and the VPC, once everything inside is gone
  ec2_vpc_network:
    name: airflow-vpc
    owner_tags:
      airflow-ecs:stack: airflow
    internet_gateway:
      name: airflow-igw
    state: absent
"""

RETURN = r"""
vpc:
  description:
    - The VPC as it is after the run (in check mode, as it would be). Empty with O(state=absent).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the VPC; null in check mode for a VPC that would be created.
      type: str
      sample: vpc-0123456789abcdef0
    name:
      description: Its C(Name) tag.
      type: str
      sample: airflow-vpc
    cidr_block:
      description: Its IPv4 range.
      type: str
      sample: 10.40.0.0/16
    dns_support:
      description: Whether DNS resolution is on (C(enableDnsSupport)).
      type: bool
      sample: true
    dns_hostnames:
      description: Whether DNS hostnames are on (C(enableDnsHostnames)).
      type: bool
      sample: true
    tags:
      description: Its tags.
      type: dict
      sample: {"Name": "airflow-vpc", "airflow-ecs:stack": "airflow"}
internet_gateway:
  description:
    - The internet gateway attached to the VPC after the run (in check mode, as it would be). Empty with
      O(state=absent) or without O(internet_gateway).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the gateway; null in check mode for a gateway that would be created.
      type: str
      sample: igw-0123456789abcdef0
    vpc_id:
      description: ID of the VPC it is attached to (null in check mode with a VPC to create).
      type: str
      sample: vpc-0123456789abcdef0
    tags:
      description: Its tags.
      type: dict
      sample: {"Name": "airflow-igw", "airflow-ecs:stack": "airflow"}
deleted:
  description:
    - With O(state=absent), what was deleted (in check mode, what would be); empty otherwise.
  returned: always
  type: dict
  contains:
    vpc:
      description: ID of the VPC deleted, or null.
      type: str
      sample: vpc-0123456789abcdef0
    internet_gateways:
      description: IDs of the gateways deleted.
      type: list
      elements: str
      sample: [igw-0123456789abcdef0]
diff:
  description: The VPC and its gateway before and after; a resource that does not exist is left out.
  returned: in diff mode
  type: dict
  sample:
    before: {}
    after:
      vpc: {id: null, cidr_block: 10.40.0.0/16, dns_support: true, dns_hostnames: true, tags: {Name: airflow-vpc}}
      internet_gateway: {id: null, tags: {Name: airflow-igw}}
"""

import contextlib
import ipaddress
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.ec2_batch import apply_tags, delete, poll_until, tags_of
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    compare_aws_tags,
)

WAIT_SECONDS = 300  # for a new VPC to become available
# Calls on a VPC or a gateway created in this run are retried while EC2 does not know it everywhere yet.
NEW_RESOURCE = ("InvalidVpcID.NotFound", "InvalidInternetGatewayID.NotFound")
DNS_ATTRIBUTES = {"dns_support": "EnableDnsSupport", "dns_hostnames": "EnableDnsHostnames"}
# What AWS gives a VPC it creates (not the default VPC): DNS resolution on, DNS hostnames off.
NEW_VPC_DNS = {"dns_support": True, "dns_hostnames": False}


def argument_spec() -> dict[str, Any]:
    gateway = dict(name=dict(type="str", required=True), tags=dict(type="dict"))
    return dict(
        name=dict(type="str", required=True),
        owner_tags=dict(type="dict", required=True),
        vpc_id=dict(type="str"),
        cidr_block=dict(type="str"),
        dns_support=dict(type="bool", default=True),
        dns_hostnames=dict(type="bool", default=True),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=True),
        internet_gateway=dict(type="dict", options=gateway),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


# --- input ---------------------------------------------------------------------------------------


def strings(tags: dict | None) -> dict[str, str] | None:
    return None if tags is None else {str(key): str(value) for key, value in tags.items()}


def check_input(module: AnsibleAWSModule) -> None:
    """Refuse what cannot work, before any AWS call; normalizes cidr_block and the tag values."""
    params = module.params
    problems = []
    params["owner_tags"] = strings(params["owner_tags"])
    if not params["owner_tags"]:
        problems.append(
            "owner_tags names no tag: give the tags that mark the caller's resources (such as the stack tag "
            "airflow-ecs:stack)"
        )
    if "Name" in (params["owner_tags"] or {}):
        problems.append("owner_tags may not hold Name: the VPC's and the gateway's Name tags come from name options")
    if params["state"] == "present":
        if params["vpc_id"]:
            problems.append(
                "vpc_id is only for state=absent; with state=present the VPC is found by name and owner_tags"
            )
        if not params["cidr_block"]:
            problems.append("cidr_block is needed with state=present")
        else:
            problem = normalize_cidr(module)
            if problem:
                problems.append(problem)
        if params["dns_hostnames"] and not params["dns_support"]:
            problems.append("dns_hostnames needs dns_support: AWS gives DNS hostnames only in a VPC that resolves DNS")
    fixed = {"Name": params["name"], **(params["owner_tags"] or {})}
    params["tags"] = strings(params["tags"])
    problems += clashes("tags", params["tags"], fixed)
    gateway = params["internet_gateway"]
    if gateway is not None:
        gateway["tags"] = strings(gateway["tags"])
        problems += clashes(
            "internet_gateway.tags", gateway["tags"], {"Name": gateway["name"], **(params["owner_tags"] or {})}
        )
    if problems:
        module.fail_json(msg="Cannot manage the VPC: " + "; ".join(problems) + ". Nothing was changed.")


def normalize_cidr(module: AnsibleAWSModule) -> str | None:
    """Set cidr_block to its canonical form; a problem, or None."""
    cidr = module.params["cidr_block"].strip()
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return f"cidr_block {cidr!r} is not a CIDR block"
    if network.version != 4:
        return f"cidr_block {cidr}: only an IPv4 range is supported"
    if str(network) != cidr:
        return f"cidr_block {cidr} has host bits set (did you mean {network}?)"
    if not 16 <= network.prefixlen <= 28:
        return f"cidr_block {cidr}: a VPC's range is /16 to /28"
    module.params["cidr_block"] = str(network)
    return None


def clashes(option: str, tags: dict[str, str] | None, fixed: dict[str, str]) -> list[str]:
    """The keys of `tags` that name or owner_tags set, given here with another value."""
    return [
        f"{option} gives {key}={tags[key]!r}, but {key} is {value!r} (from name or owner_tags)"
        for key, value in fixed.items()
        if tags and key in tags and tags[key] != value
    ]


def wanted_tags(current: dict[str, str], given: dict[str, str] | None, fixed: dict[str, str], purge: bool) -> dict:
    """What to set and unset for the tags to be `given` plus `fixed` (only `fixed` ensured when not given)."""
    desired = {**(given or {}), **fixed}
    to_set, to_unset = compare_aws_tags(current, desired, purge and given is not None)
    after = {key: value for key, value in current.items() if key not in to_unset} | to_set
    return {"to_set": to_set, "to_unset": to_unset, "after": after}


# --- AWS -----------------------------------------------------------------------------------------


def aws(module: AnsibleAWSModule, client: Any, method: str, msg: str, *, changed: bool, retry: tuple = (), **params):
    """One EC2 call, retried (also while EC2 answers one of `retry`, for a resource made in this run)."""
    operation = getattr(client, method)
    try:
        if retry:
            return jittered_backoff(*retry, retries=10, delay=1)(operation)(**params)
        return operation(aws_retry=True, **params)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=msg, changed=changed)


def describe(module: AnsibleAWSModule, client: Any, operation: str, key: str, msg: str, **params: Any) -> list[dict]:
    """Every `key` item of a paginated Describe* call, retried."""

    @jittered_backoff()
    def pages() -> list[dict]:
        return client.get_paginator(operation).paginate(**params).build_full_result()[key]

    try:
        return pages()
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=msg, changed=False)


def tag_filters(tags: dict[str, str]) -> list[dict]:
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]


def carries(resource: dict, tags: dict[str, str]) -> bool:
    """Whether the resource has every one of `tags` (EC2 filters take * and ? as wildcards: checked again here)."""
    found = tags_of(resource)
    return all(found.get(key) == value for key, value in tags.items())


def identity(module: AnsibleAWSModule) -> dict[str, str]:
    return {"Name": module.params["name"], **module.params["owner_tags"]}


def find_vpc(module: AnsibleAWSModule, client: Any) -> dict | None:
    """The VPC with the name and the owner tags (one DescribeVpcs); fails on more than one."""
    wanted = identity(module)
    found = describe(
        module,
        client,
        "describe_vpcs",
        "Vpcs",
        f"Failed to look up the VPC named {module.params['name']}",
        Filters=tag_filters(wanted),
    )
    vpcs = sorted((vpc for vpc in found if carries(vpc, wanted)), key=lambda vpc: vpc["VpcId"])
    if len(vpcs) > 1:
        module.fail_json(
            msg=f"{len(vpcs)} VPCs carry the name {module.params['name']} and the owner tags "
            f"{module.params['owner_tags']}: {', '.join(vpc['VpcId'] for vpc in vpcs)}. Which one is the "
            "stack's cannot be told; delete or rename the others. Nothing was changed."
        )
    return vpcs[0] if vpcs else None


def vpc_by_id(module: AnsibleAWSModule, client: Any, vpc_id: str) -> dict | None:
    """The VPC `vpc_id` (one DescribeVpcs), None when it is gone; fails when it lacks the name or owner tags."""
    try:
        vpcs = client.describe_vpcs(aws_retry=True, VpcIds=[vpc_id])["Vpcs"]
    except is_boto3_error_code("InvalidVpcID.NotFound"):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to describe VPC {vpc_id}", changed=False)
    if not vpcs:
        return None
    if not carries(vpcs[0], identity(module)):
        module.fail_json(
            msg=f"VPC {vpc_id} does not carry the name {module.params['name']} and the owner tags "
            f"{module.params['owner_tags']} (it has {tags_of(vpcs[0])}): it is not the caller's to delete. "
            "Nothing was changed."
        )
    return vpcs[0]


def dns_of(module: AnsibleAWSModule, client: Any, vpc_id: str) -> dict[str, bool]:
    """The VPC's two DNS attributes (two DescribeVpcAttribute calls)."""
    values = {}
    for option, key in DNS_ATTRIBUTES.items():
        attribute = key[0].lower() + key[1:]
        answer = aws(
            module,
            client,
            "describe_vpc_attribute",
            f"Failed to read {attribute} of VPC {vpc_id}",
            changed=False,
            VpcId=vpc_id,
            Attribute=attribute,
        )
        values[option] = bool(answer[key]["Value"])
    return values


def attached_gateways(module: AnsibleAWSModule, client: Any, vpc_id: str) -> list[dict]:
    """The internet gateways attached to the VPC (one DescribeInternetGateways, tags in its answer)."""
    found = describe(
        module,
        client,
        "describe_internet_gateways",
        "InternetGateways",
        f"Failed to look up the internet gateway of VPC {vpc_id}",
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}],
    )
    return sorted(found, key=lambda gateway: gateway["InternetGatewayId"])


def detached_gateways(module: AnsibleAWSModule, client: Any) -> list[dict]:
    """The detached gateways with internet_gateway.name and the owner tags (one DescribeInternetGateways)."""
    wanted = {"Name": module.params["internet_gateway"]["name"], **module.params["owner_tags"]}
    found = describe(
        module,
        client,
        "describe_internet_gateways",
        "InternetGateways",
        f"Failed to look up the internet gateways named {wanted['Name']}",
        Filters=tag_filters(wanted),
    )
    return sorted(
        (g for g in found if carries(g, wanted) and not attachments(g)),
        key=lambda gateway: gateway["InternetGatewayId"],
    )


def attachments(gateway: dict) -> list[str]:
    """The VPCs the gateway is attached to (or being attached to or detached from)."""
    return [a["VpcId"] for a in gateway.get("Attachments") or [] if a.get("State") != "detached"]


# --- present -------------------------------------------------------------------------------------


def plan_gateway(module: AnsibleAWSModule, client: Any, vpc: dict | None) -> dict | None:
    """What to do for the internet gateway (reads only); None when internet_gateway is not given."""
    params = module.params
    spec = params["internet_gateway"]
    if spec is None:
        return None
    attached = attached_gateways(module, client, vpc["VpcId"]) if vpc else []
    if len(attached) > 1:
        module.fail_json(
            msg=f"VPC {vpc['VpcId']} has {len(attached)} internet gateways attached "
            f"({', '.join(g['InternetGatewayId'] for g in attached)}); AWS allows one. Nothing was changed."
        )
    gateway, attach = (attached[0], False) if attached else (None, True)
    if gateway is None:
        leftovers = detached_gateways(module, client)
        gateway = leftovers[0] if leftovers else None
    fixed = {"Name": spec["name"], **params["owner_tags"]}
    tags = wanted_tags(tags_of(gateway) if gateway else {}, spec["tags"], fixed, params["purge_tags"])
    return {
        "existing": gateway,
        "attach": attach,
        **tags,
        "changed": attach or bool(tags["to_set"] or tags["to_unset"]),
    }


def plan(module: AnsibleAWSModule, client: Any) -> dict:
    """Everything a present run reads (1 + 2 + 1 calls for an existing VPC) and what it would change."""
    params = module.params
    vpc = find_vpc(module, client)
    if vpc and vpc["CidrBlock"] != params["cidr_block"]:
        module.fail_json(
            msg=f"VPC {vpc['VpcId']} ({params['name']}) has the range {vpc['CidrBlock']}, not {params['cidr_block']}: "
            "a VPC's range cannot change, and this module never deletes a VPC to make it again (the subnets, "
            f"database and services inside would go with it). Keep cidr_block {vpc['CidrBlock']}, or make a new "
            "VPC under another name. Nothing was changed."
        )
    dns_before = dns_of(module, client, vpc["VpcId"]) if vpc else dict(NEW_VPC_DNS)
    dns_after = {option: params[option] for option in DNS_ATTRIBUTES}
    tags = wanted_tags(tags_of(vpc) if vpc else {}, params["tags"], identity(module), params["purge_tags"])
    gateway = plan_gateway(module, client, vpc)
    vpc_changed = vpc is None or dns_before != dns_after or bool(tags["to_set"] or tags["to_unset"])
    return {
        "vpc": vpc,
        "dns_before": dns_before,
        "dns_after": dns_after,
        **tags,
        "gateway": gateway,
        "changed": vpc_changed or bool(gateway and gateway["changed"]),
    }


def wait_available(module: AnsibleAWSModule, client: Any, vpc_id: str) -> dict:
    """Poll the new VPC (first at once, then after a growing delay) until it is available."""
    return poll_until(
        module,
        lambda: aws(
            module,
            client,
            "describe_vpcs",
            f"Failed to describe the new VPC {vpc_id}",
            changed=True,
            retry=NEW_RESOURCE,
            VpcIds=[vpc_id],
        )["Vpcs"][0],
        lambda vpc: vpc.get("State") != "available",
        WAIT_SECONDS,
        lambda *_: f"Timed out after {WAIT_SECONDS} s waiting for the new VPC {vpc_id} to be available",
    )


def create_vpc(module: AnsibleAWSModule, client: Any, steps: dict) -> str:
    params = module.params
    vpc = aws(
        module,
        client,
        "create_vpc",
        f"Failed to create VPC {params['name']} ({params['cidr_block']})",
        changed=False,
        CidrBlock=params["cidr_block"],
        TagSpecifications=[{"ResourceType": "vpc", "Tags": ansible_dict_to_boto3_tag_list(steps["after"])}],
    )["Vpc"]
    if vpc.get("State") != "available":
        vpc = wait_available(module, client, vpc["VpcId"])
    return vpc["VpcId"]


def set_dns(module: AnsibleAWSModule, client: Any, vpc_id: str, steps: dict, new: bool) -> None:
    """Set the DNS attributes that differ: support on before hostnames on, hostnames off before support off."""
    order = ["dns_support", "dns_hostnames"] if steps["dns_after"]["dns_support"] else ["dns_hostnames", "dns_support"]
    for option in order:
        value = steps["dns_after"][option]
        if value == steps["dns_before"][option]:
            continue
        key = DNS_ATTRIBUTES[option]
        aws(
            module,
            client,
            "modify_vpc_attribute",
            f"Failed to set {key[0].lower() + key[1:]} to {value} on VPC {vpc_id}",
            changed=True,
            retry=NEW_RESOURCE if new else (),
            VpcId=vpc_id,
            **{key: {"Value": value}},
        )


def ensure_gateway(module: AnsibleAWSModule, client: Any, vpc_id: str, step: dict, new_vpc: bool) -> str:
    """Tag, attach or create the VPC's internet gateway; its id."""
    gateway = step["existing"]
    if gateway is None:
        gateway = aws(
            module,
            client,
            "create_internet_gateway",
            f"Failed to create the internet gateway {module.params['internet_gateway']['name']}",
            changed=True,
            TagSpecifications=[
                {"ResourceType": "internet-gateway", "Tags": ansible_dict_to_boto3_tag_list(step["after"])}
            ],
        )["InternetGateway"]
        gateway_id = gateway["InternetGatewayId"]
    else:
        gateway_id = gateway["InternetGatewayId"]
        apply_tags(module, client, gateway_id, f"internet gateway {gateway_id}", step)
    if step["attach"]:
        aws(
            module,
            client,
            "attach_internet_gateway",
            f"Failed to attach internet gateway {gateway_id} to VPC {vpc_id}",
            changed=True,
            retry=NEW_RESOURCE if (new_vpc or step["existing"] is None) else (),
            InternetGatewayId=gateway_id,
            VpcId=vpc_id,
        )
    return gateway_id


def vpc_view(vpc_id: str | None, cidr: str, dns: dict[str, bool], tags: dict[str, str]) -> dict:
    return {"id": vpc_id, "cidr_block": cidr, **dns, "tags": tags}


def gateway_view(gateway_id: str | None, tags: dict[str, str]) -> dict:
    return {"id": gateway_id, "tags": tags}


def ensure_present(module: AnsibleAWSModule, client: Any) -> dict:
    params = module.params
    steps = plan(module, client)
    vpc, gateway = steps["vpc"], steps["gateway"]
    vpc_id = vpc["VpcId"] if vpc else None
    gateway_id = gateway["existing"]["InternetGatewayId"] if gateway and gateway["existing"] else None

    if steps["changed"] and not module.check_mode:
        new_vpc = vpc is None
        if new_vpc:
            vpc_id = create_vpc(module, client, steps)
        else:
            apply_tags(module, client, vpc_id, f"VPC {vpc_id} ({params['name']})", steps)
        set_dns(module, client, vpc_id, steps, new_vpc)
        if gateway and gateway["changed"]:
            gateway_id = ensure_gateway(module, client, vpc_id, gateway, new_vpc)

    after_vpc = vpc_view(vpc_id, params["cidr_block"], steps["dns_after"], steps["after"])
    result: dict[str, Any] = {
        "changed": steps["changed"],
        "vpc": {**after_vpc, "name": params["name"]},
        "internet_gateway": {},
        "deleted": {},
    }
    before: dict[str, Any] = {}
    after: dict[str, Any] = {"vpc": after_vpc}
    if vpc:
        before["vpc"] = vpc_view(vpc_id, vpc["CidrBlock"], steps["dns_before"], tags_of(vpc))
    if gateway:
        after["internet_gateway"] = gateway_view(gateway_id, gateway["after"])
        result["internet_gateway"] = {**after["internet_gateway"], "vpc_id": vpc_id}
        if gateway["existing"] and not gateway["attach"]:
            before["internet_gateway"] = gateway_view(gateway_id, tags_of(gateway["existing"]))
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    return result


# --- absent --------------------------------------------------------------------------------------


def detach(module: AnsibleAWSModule, client: Any, gateway_id: str, vpc_id: str, changed: bool) -> None:
    try:
        client.detach_internet_gateway(aws_retry=True, InternetGatewayId=gateway_id, VpcId=vpc_id)
    except is_boto3_error_code(["Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"]):
        return
    except is_boto3_error_code("DependencyViolation") as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(
            e,
            msg=f"Cannot detach internet gateway {gateway_id} from VPC {vpc_id}: the VPC still has public addresses "
            "mapped (NAT gateways' Elastic IPs, load balancers, tasks with a public IP). Remove them first.",
            changed=changed,
        )
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(
            e, msg=f"Failed to detach internet gateway {gateway_id} from VPC {vpc_id}", changed=changed
        )


def ensure_absent(module: AnsibleAWSModule, client: Any) -> dict:
    params = module.params
    vpc = vpc_by_id(module, client, params["vpc_id"]) if params["vpc_id"] else find_vpc(module, client)
    attached = attached_gateways(module, client, vpc["VpcId"]) if vpc else []
    foreign = [g["InternetGatewayId"] for g in attached if not carries(g, params["owner_tags"])]
    if foreign:
        module.fail_json(
            msg=f"Internet gateway {', '.join(foreign)} attached to VPC {vpc['VpcId']} does not carry the owner tags "
            f"{params['owner_tags']}: it is not the caller's to delete, and the VPC cannot be deleted while it is "
            "attached. Detach it, or tag it, first. Nothing was changed."
        )
    leftovers = detached_gateways(module, client) if params["internet_gateway"] else []
    doomed = [g["InternetGatewayId"] for g in attached + leftovers]
    result: dict[str, Any] = {
        "changed": bool(vpc or doomed),
        "vpc": {},
        "internet_gateway": {},
        "deleted": {"vpc": vpc["VpcId"] if vpc else None, "internet_gateways": doomed},
    }
    if module._diff:
        before: dict[str, Any] = {}
        if vpc:
            before["vpc"] = {"id": vpc["VpcId"], "cidr_block": vpc["CidrBlock"], "tags": tags_of(vpc)}
        if attached:
            before["internet_gateway"] = gateway_view(attached[0]["InternetGatewayId"], tags_of(attached[0]))
        result["diff"] = {"before": before, "after": {}}
    if module.check_mode or not result["changed"]:
        return result

    changed = False
    for gateway in attached:
        detach(module, client, gateway["InternetGatewayId"], vpc["VpcId"], changed)
        changed = True
    deleted: dict[str, Any] = {"vpc": None, "internet_gateways": []}
    for gateway_id in doomed:
        if delete(
            module,
            client,
            "delete_internet_gateway",
            f"internet gateway {gateway_id}",
            not_found=["InvalidInternetGatewayID.NotFound"],
            in_use="it is attached to a VPC again",
            changed=changed,
            InternetGatewayId=gateway_id,
        ):
            deleted["internet_gateways"].append(gateway_id)
            changed = True
    if vpc and delete(
        module,
        client,
        "delete_vpc",
        f"VPC {vpc['VpcId']} ({params['name']})",
        not_found=["InvalidVpcID.NotFound"],
        in_use="it still holds subnets, security groups, route tables, gateways or network interfaces (made "
        "outside the stack, or not deleted yet)",
        changed=changed,
        VpcId=vpc["VpcId"],
    ):
        deleted["vpc"] = vpc["VpcId"]
        changed = True
    result["changed"], result["deleted"] = changed, deleted
    return result


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_input(module)
    client = module.client("ec2", retry_decorator=jittered_backoff())
    ensure = ensure_present if module.params["state"] == "present" else ensure_absent
    module.exit_json(**ensure(module, client))


if __name__ == "__main__":
    main()
