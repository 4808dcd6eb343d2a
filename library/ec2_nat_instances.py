#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage the NAT instances of a VPC (EC2 instances that forward and masquerade), each with its Elastic IP."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_nat_instances
short_description: Manage the NAT instances of a VPC, each with its own Elastic IP, in one run
description:
  - Creates, updates or terminates a set of NAT instances of one VPC in a single module run. A NAT
    instance is an EC2 instance in a public subnet with the source/destination check off, so that it may
    forward the traffic of private subnets whose default route points at its network interface; its boot
    script (O(user_data)) turns on IP forwarding and masquerading. Each instance has an Elastic IP of its
    own, its stable egress address.
  - An instance is found by its C(Name) tag (O(instances[].name)) together with every tag of O(owner_tags)
    among the live instances (C(pending), C(running), C(stopping), C(stopped)) of the VPC, with one
    C(DescribeInstances) call. Its Elastic IP is found by the same C(Name) and owner tags, with one
    C(DescribeAddresses) call; tags come in both answers. When nothing differs those are the only calls.
  - A missing instance (never made, or terminated out of band) is launched with C(RunInstances). The
    image is the one the public SSM parameter O(image_parameter) names at that moment (one
    C(ssm:GetParameters), then one C(DescribeImages) for its root device), IMDSv2 required, no key pair,
    no instance profile, an encrypted gp3 root volume of the image's size, the security groups and tags
    given (also on its volume and network interface). Once it runs, its source/destination check is turned
    off and its Elastic IP associated (the address the stack already holds under that name is reused, so
    the egress address stays the same; a new one is allocated only when there is none).
  - The image, user data and root volume are set at launch only. A later release of the image does not
    replace a running instance; terminate it and run again to launch it from the current image.
  - On an existing instance the run keeps, in place, the instance type (stop, change, start, so a short
    outage), a stopped instance running, the source/destination check off, IMDSv2 required, the security
    groups and the tags, and the Elastic IP associated with it.
  - With O(purge), the instances and addresses carrying the owner tags that O(instances) does not list
    are terminated and released, after the listed ones are in place; with O(state=absent), the listed
    ones (or with O(purge) every one of the VPC) are terminated, waited for until they are
    C(terminated), and their addresses disassociated and released.
author:
  - airflow-ecs project
options:
  vpc_id:
    description:
      - ID of the VPC of the instances.
    type: str
    required: true
  owner_tags:
    description:
      - The tags (key and value) that mark the caller's NAT instances and their Elastic IPs, for example
        C(airflow-ecs:stack=airflow) and C(airflow-ecs:tier=nat). Instances and addresses are found by
        O(instances[].name) and these tags, always carry them, and only those carrying them are ever
        terminated or released.
      - Must name at least one tag, and not C(Name).
    type: dict
    required: true
  instances:
    description:
      - The NAT instances, in the order RV(instances) is returned. Names must be unique in the list.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Value of the C(Name) tag of the instance and of its Elastic IP; with O(owner_tags), how both
            are found.
        type: str
        required: true
      subnet_id:
        description:
          - ID of the public subnet to launch the instance in. Required with O(state=present).
          - An existing instance in another subnet fails the run before any change (an instance cannot
            move; terminate it and run again).
        type: str
  instance_type:
    description:
      - The instance type, for an architecture the image of O(image_parameter) runs on. Required with
        O(state=present).
    type: str
  image_parameter:
    description:
      - The public SSM parameter whose value is the image (AMI) ID to launch new instances from. Read
        only when an instance is launched.
    type: str
    default: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64
  security_groups:
    description:
      - The security groups of the instances, by ID or by name in the VPC (a name costs one
        C(DescribeSecurityGroups); in check mode a group still to be created may be named). Required
        with O(state=present).
    type: list
    elements: str
  user_data:
    description:
      - The boot script of new instances (plain text; the SDK encodes it). Applied at launch only.
    type: str
  tags:
    description:
      - Tags of the instances and their addresses besides C(Name) and O(owner_tags); a key of those given
        here with another value fails the run.
    type: dict
    default: {}
  purge_tags:
    description:
      - Remove the tags of an instance or an address that are not given. Tags whose key starts with
        C(aws:) are never removed.
    type: bool
    default: true
  purge:
    description:
      - With O(state=present), terminate the instances and release the addresses carrying O(owner_tags)
        that O(instances) does not list (and addresses left over beside a listed instance's), after the
        listed instances are in place. With O(state=absent), terminate every instance of the VPC and
        release every address carrying O(owner_tags), listed or not.
      - Without it, RV(purgeable) says what it would remove.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for an instance to run (or to stop, for a type change) or to be terminated.
    type: int
    default: 600
  state:
    description:
      - Whether the instances should exist. With V(absent) only O(instances[].name) is used.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode and diff mode. In check mode nothing is changed and no image is resolved;
    RV(instances) shows the instances as they would be, with a null RV(instances[].id),
    RV(instances[].network_interface_id) and RV(instances[].public_ip) for an instance that would be
    launched. The diff has one entry per instance name (type, subnet, state, source/destination check,
    IMDS tokens, security groups, public IP, tags).
  - The Elastic IP is associated with the instance (its primary network interface and private address),
    with C(AllowReassociation), so an address still shown on a terminated instance is moved over.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: amazon.aws.ec2_instance
  - module: amazon.aws.ec2_eip
  - module: amazon.aws.ec2_vpc_nat_gateway
"""

EXAMPLES = r"""
- name: One NAT instance in the first public subnet, with its Elastic IP
  ec2_nat_instances:
    vpc_id: "{{ vpc_id }}"
    owner_tags:
      airflow-ecs:stack: airflow
      airflow-ecs:tier: nat
    instances:
      - name: airflow-nat-us-east-1a
        subnet_id: "{{ public_subnet_ids[0] }}"
    instance_type: t4g.nano
    security_groups: ["{{ nat_security_group_id }}"]
    user_data: "{{ lookup('ansible.builtin.file', 'nat-instance-user-data.sh') }}"
    tags:
      team: data
  register: __nat

- name: Route the private subnets through it
  ec2_vpc_route_tables:
    vpc_id: "{{ vpc_id }}"
    route_tables:
      - name: airflow-private-all
        subnets: "{{ private_subnet_ids }}"
        routes:
          - {dest: 0.0.0.0/0, network_interface_id: "{{ __nat.instances[0].network_interface_id }}"}

- name: Terminate every NAT instance of the VPC and release their addresses
  ec2_nat_instances:
    vpc_id: "{{ vpc_id }}"
    owner_tags:
      airflow-ecs:stack: airflow
      airflow-ecs:tier: nat
    purge: true
    state: absent
"""

RETURN = r"""
instances:
  description:
    - The instances of O(instances) in the order given, as they are after the run (in check mode, as they
      would be). Empty with O(state=absent).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The C(Name) tag of the instance and its address.
      type: str
      sample: airflow-nat-us-east-1a
    id:
      description: ID of the instance; null in check mode for an instance that would be launched.
      type: str
      sample: i-0123456789abcdef0
    subnet_id:
      description: Its subnet.
      type: str
      sample: subnet-0123456789abcdef0
    availability_zone:
      description: Its availability zone (null for an instance that would be launched).
      type: str
      sample: us-east-1a
    instance_type:
      description: Its instance type.
      type: str
      sample: t4g.nano
    image_id:
      description: The image it was launched from (null for an instance that would be launched).
      type: str
      sample: ami-0123456789abcdef0
    state:
      description: Its state (C(running) after a run that changed it; C(pending) in check mode for a new one).
      type: str
      sample: running
    source_dest_check:
      description: Whether the source/destination check is on (false for a NAT instance).
      type: bool
      sample: false
    http_tokens:
      description: The IMDS token setting (C(required) is IMDSv2 only).
      type: str
      sample: required
    security_groups:
      description: IDs of its security groups, sorted (names for groups still to be created, in check mode).
      type: list
      elements: str
      sample: [sg-0123456789abcdef0]
    network_interface_id:
      description: Its primary network interface, the target of the private subnets' default route.
      type: str
      sample: eni-0123456789abcdef0
    private_ip_address:
      description: Its primary private address.
      type: str
      sample: 10.40.0.12
    public_ip:
      description: Its Elastic IP (null in check mode for an address that would be allocated).
      type: str
      sample: 203.0.113.10
    allocation_id:
      description: The allocation ID of its Elastic IP.
      type: str
      sample: eipalloc-0123456789abcdef0
    tags:
      description: Its tags.
      type: dict
      sample: {Name: airflow-nat-us-east-1a, airflow-ecs:stack: airflow, airflow-ecs:tier: nat}
purgeable:
  description:
    - With O(state=present) and without O(purge), what O(purge) would remove; empty otherwise.
  returned: always
  type: dict
  contains:
    instances:
      description: IDs of the owned instances O(instances) does not list.
      type: list
      elements: str
      sample: [i-0123456789abcdef0]
    addresses:
      description: Allocation IDs of the owned addresses no listed instance uses.
      type: list
      elements: str
      sample: [eipalloc-0123456789abcdef0]
deleted:
  description:
    - What was terminated and released (in check mode, what would be).
  returned: always
  type: dict
  contains:
    instances:
      description: IDs of the instances terminated.
      type: list
      elements: str
      sample: [i-0123456789abcdef0]
    addresses:
      description: Allocation IDs of the addresses released.
      type: list
      elements: str
      sample: [eipalloc-0123456789abcdef0]
diff:
  description: Per instance name, its settings before and after; a terminated instance is only in C(before).
  returned: in diff mode
  type: dict
  sample:
    before: {}
    after:
      airflow-nat-us-east-1a: {id: null, instance_type: t4g.nano, subnet_id: subnet-1, state: pending}
"""

import contextlib
import uuid
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.batch_items import fail_on_repeats
from ansible.module_utils.ec2_batch import apply_tags, call, poll_until, tags_of
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    compare_aws_tags,
)

LIVE = ["pending", "running", "stopping", "stopped"]
# Calls on an instance launched in this run are retried while EC2 does not know it everywhere yet, or
# while it is not yet in a state the call accepts.
NEW_INSTANCE = ("InvalidInstanceID.NotFound", "IncorrectInstanceState")
ADDRESS_GONE = ("InvalidAllocationID.NotFound", "InvalidAddress.NotFound", "InvalidAddressID.NotFound")


def argument_spec() -> dict[str, Any]:
    instance = dict(name=dict(type="str", required=True), subnet_id=dict(type="str"))
    return dict(
        vpc_id=dict(type="str", required=True),
        owner_tags=dict(type="dict", required=True),
        instances=dict(type="list", elements="dict", options=instance, default=[]),
        instance_type=dict(type="str"),
        image_parameter=dict(
            type="str", default="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
        ),
        security_groups=dict(type="list", elements="str"),
        user_data=dict(type="str"),
        tags=dict(type="dict", default={}),
        purge_tags=dict(type="bool", default=True),
        purge=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


# --- input ---------------------------------------------------------------------------------------


def check_input(module: AnsibleAWSModule) -> None:
    """Refuse what cannot work, before any AWS call; tag values become strings."""
    params = module.params
    fail_on_repeats(module, "instances", "NAT instance", [spec["name"] for spec in params["instances"]])
    params["owner_tags"] = {str(k): str(v) for k, v in params["owner_tags"].items()}
    params["tags"] = {str(k): str(v) for k, v in (params["tags"] or {}).items()}
    problems = []
    if not params["owner_tags"]:
        problems.append(
            "owner_tags names no tag: give the tags that mark the caller's NAT instances (such as the stack tag "
            "airflow-ecs:stack)"
        )
    if "Name" in params["owner_tags"]:
        problems.append("owner_tags may not hold Name: each instance's Name comes from instances[].name")
    problems += [
        f"tags gives {key}={params['tags'][key]!r}, but {key} is {value!r} (from owner_tags)"
        for key, value in params["owner_tags"].items()
        if key in params["tags"] and params["tags"][key] != value
    ]
    if "Name" in params["tags"]:
        problems.append("tags may not hold Name: each instance's Name comes from instances[].name")
    if params["state"] == "present":
        if params["instances"] and not params["instance_type"]:
            problems.append("instance_type is needed with state=present")
        if params["instances"] and not params["security_groups"]:
            problems.append("security_groups is needed with state=present (the NAT instance's own group)")
        problems += [
            f"instances[{i}] ({spec['name']}) has no subnet_id, needed with state=present"
            for i, spec in enumerate(params["instances"])
            if not spec["subnet_id"]
        ]
    if params["wait_timeout"] < 1:
        problems.append("wait_timeout must be at least 1 second")
    if problems:
        module.fail_json(msg="Cannot manage the NAT instances: " + "; ".join(problems) + ". Nothing was changed.")


def owner_filters(module: AnsibleAWSModule) -> list[dict]:
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in module.params["owner_tags"].items()]


def carries(resource: dict, tags: dict[str, str]) -> bool:
    found = tags_of(resource)
    return all(found.get(key) == value for key, value in tags.items())


# --- reading -------------------------------------------------------------------------------------


def describe(module: AnsibleAWSModule, client: Any, operation: str, key: str, what: str, **params: Any) -> list:
    """A paginated or plain Describe* call, retried; a failure names `what` and changes nothing."""
    try:
        if client.can_paginate(operation):

            @jittered_backoff()
            def pages() -> dict:
                return client.get_paginator(operation).paginate(**params).build_full_result()

            return pages()[key]
        return getattr(client, operation)(aws_retry=True, **params)[key]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to describe {what}", changed=False)


def owned_instances(module: AnsibleAWSModule, client: Any, states: list[str]) -> list[dict]:
    """The instances of the VPC in `states` that carry every owner tag (one DescribeInstances)."""
    vpc_id = module.params["vpc_id"]
    reservations = describe(
        module,
        client,
        "describe_instances",
        "Reservations",
        f"the NAT instances of VPC {vpc_id}",
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "instance-state-name", "Values": states},
            *owner_filters(module),
        ],
    )
    found = [i for r in reservations for i in r["Instances"] if i.get("VpcId", vpc_id) == vpc_id]
    return sorted(
        (i for i in found if carries(i, module.params["owner_tags"])), key=lambda i: (i["LaunchTime"], i["InstanceId"])
    )


def owned_addresses(module: AnsibleAWSModule, client: Any) -> list[dict]:
    """The Elastic IPs that carry every owner tag (one DescribeAddresses, tags in its answer)."""
    found = describe(
        module,
        client,
        "describe_addresses",
        "Addresses",
        "the Elastic IPs of the NAT instances",
        Filters=[{"Name": "domain", "Values": ["vpc"]}, *owner_filters(module)],
    )
    return sorted((a for a in found if carries(a, module.params["owner_tags"])), key=lambda a: a["AllocationId"])


def resolve_groups(module: AnsibleAWSModule, client: Any) -> list[str]:
    """The security group IDs; names are looked up in the VPC (a group missing in check mode keeps its name)."""
    given = list(dict.fromkeys(module.params["security_groups"] or []))
    names = [g for g in given if not g.startswith("sg-")]
    if not names:
        return sorted(given)
    vpc_id = module.params["vpc_id"]
    groups = describe(
        module,
        client,
        "describe_security_groups",
        "SecurityGroups",
        f"the security groups {', '.join(names)} of VPC {vpc_id}",
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": names}],
    )
    ids = {g["GroupName"]: g["GroupId"] for g in groups}
    missing = [name for name in names if name not in ids]
    if missing and not module.check_mode:
        module.fail_json(
            msg=f"Security group {', '.join(missing)} does not exist in VPC {vpc_id}. Nothing was changed."
        )
    return sorted(ids.get(g, g) for g in given)


# --- planning ------------------------------------------------------------------------------------


def wanted_tags(module: AnsibleAWSModule, name: str) -> dict[str, str]:
    return {**module.params["tags"], **module.params["owner_tags"], "Name": name}


def tag_step(module: AnsibleAWSModule, current: dict[str, str], name: str) -> dict:
    to_set, to_unset = compare_aws_tags(current, wanted_tags(module, name), module.params["purge_tags"])
    after = {k: v for k, v in current.items() if k not in to_unset} | to_set
    return {"to_set": to_set, "to_unset": to_unset, "after": after}


def http_tokens(instance: dict) -> str:
    return (instance.get("MetadataOptions") or {}).get("HttpTokens", "optional")


def http_endpoint(instance: dict) -> str:
    # moto leaves HttpEndpoint out after ModifyInstanceMetadataOptions; AWS's default is enabled.
    return (instance.get("MetadataOptions") or {}).get("HttpEndpoint", "enabled")


def primary_interface(instance: dict) -> dict:
    interfaces = instance.get("NetworkInterfaces") or []
    return next((n for n in interfaces if n.get("Attachment", {}).get("DeviceIndex") == 0), {})


def plan_instance(module: AnsibleAWSModule, spec: dict, live: list[dict], groups: list[str]) -> dict:
    """What to do for one listed instance (no call)."""
    params = module.params
    name = spec["name"]
    if len(live) > 1:
        module.fail_json(
            msg=f"VPC {params['vpc_id']} has {len(live)} live NAT instances named {name} "
            f"({', '.join(i['InstanceId'] for i in live)}): a name must identify one instance. Terminate the "
            "extra ones. Nothing was changed."
        )
    instance = live[0] if live else None
    if instance is None:
        return {
            "spec": spec,
            "existing": None,
            "create": True,
            "settling": True,
            "tags": tag_step(module, {}, name),
            "changed": True,
        }
    if instance["SubnetId"] != spec["subnet_id"]:
        module.fail_json(
            msg=f"NAT instance {name} ({instance['InstanceId']}) is in subnet {instance['SubnetId']}, not "
            f"{spec['subnet_id']}: an instance cannot move. Terminate it and run again to launch it there. "
            "Nothing was changed."
        )
    current_groups = sorted(g["GroupId"] for g in instance.get("SecurityGroups") or [])
    step = {
        "spec": spec,
        "existing": instance,
        "create": False,
        "start": instance["State"]["Name"] in ("stopped", "stopping"),
        "resize": instance["InstanceType"] != params["instance_type"],
        "source_dest_check": bool(instance.get("SourceDestCheck", True)),
        "metadata": http_tokens(instance) != "required" or http_endpoint(instance) != "enabled",
        "groups": current_groups != groups,
        "tags": tag_step(module, tags_of(instance), name),
    }
    # Not (yet) running, or to be started in this run: calls that need a running instance are retried.
    step["settling"] = step["start"] or step["resize"] or instance["State"]["Name"] == "pending"
    step["changed"] = any(step[k] for k in ("start", "resize", "source_dest_check", "metadata", "groups")) or bool(
        step["tags"]["to_set"] or step["tags"]["to_unset"]
    )
    return step


def plan_address(module: AnsibleAWSModule, step: dict, candidates: list[dict]) -> dict:
    """Which of the owned addresses named like the instance to keep (the one on it, else the first)."""
    name = step["spec"]["name"]
    instance_id = step["existing"]["InstanceId"] if step["existing"] else None
    on_it = [a for a in candidates if instance_id and a.get("InstanceId") == instance_id]
    address = (on_it or candidates or [None])[0]
    tags = tag_step(module, tags_of(address) if address else {}, name)
    associate = address is None or instance_id is None or address.get("InstanceId") != instance_id
    return {
        "existing": address,
        "associate": associate,
        "tags": tags,
        "changed": associate or bool(tags["to_set"] or tags["to_unset"]),
    }


def plan_present(module: AnsibleAWSModule, client: Any) -> dict:
    params = module.params
    live = owned_instances(module, client, LIVE)
    addresses = owned_addresses(module, client)
    groups = resolve_groups(module, client) if params["instances"] else []
    by_name: dict[str, list[dict]] = {}
    for instance in live:
        by_name.setdefault(tags_of(instance).get("Name", ""), []).append(instance)
    addresses_by_name: dict[str, list[dict]] = {}
    for address in addresses:
        addresses_by_name.setdefault(tags_of(address).get("Name", ""), []).append(address)

    steps = []
    for spec in params["instances"]:
        step = plan_instance(module, spec, by_name.get(spec["name"], []), groups)
        step["address"] = plan_address(module, step, addresses_by_name.get(spec["name"], []))
        steps.append(step)
    listed = {spec["name"] for spec in params["instances"]}
    kept = {s["address"]["existing"]["AllocationId"] for s in steps if s["address"]["existing"]}
    unlisted = [i for i in live if tags_of(i).get("Name") not in listed]
    spare = [a for a in addresses if a["AllocationId"] not in kept]
    return {"steps": steps, "groups": groups, "unlisted": unlisted, "spare": spare}


# --- AWS writes ----------------------------------------------------------------------------------


def latest_image(module: AnsibleAWSModule, client: Any, ssm: Any) -> dict:
    """The image the SSM parameter names now, and its root device (one GetParameters, one DescribeImages)."""
    parameter = module.params["image_parameter"]
    try:
        answer = ssm.get_parameters(aws_retry=True, Names=[parameter])
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to read the SSM parameter {parameter} (the NAT instance's image)")
    if not answer.get("Parameters"):
        module.fail_json(
            msg=f"The SSM parameter {parameter} does not exist in this region: no image to launch the NAT "
            "instance from. Nothing was changed."
        )
    image_id = answer["Parameters"][0]["Value"]
    images = describe(module, client, "describe_images", "Images", f"image {image_id}", ImageIds=[image_id])
    if not images:
        module.fail_json(msg=f"Image {image_id} (from {parameter}) is not available. Nothing was changed.")
    image = images[0]
    root = image.get("RootDeviceName") or "/dev/xvda"
    mapping = next((m for m in image.get("BlockDeviceMappings") or [] if m.get("DeviceName") == root), {})
    return {"id": image_id, "root_device": root, "root_size": (mapping.get("Ebs") or {}).get("VolumeSize")}


def launch(module: AnsibleAWSModule, client: Any, step: dict, image: dict, groups: list[str]) -> str:
    """RunInstances for one NAT instance; its id."""
    params = module.params
    name = step["spec"]["name"]
    volume: dict[str, Any] = {"VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}
    if image["root_size"]:
        volume["VolumeSize"] = image["root_size"]
    tags = ansible_dict_to_boto3_tag_list(step["tags"]["after"])
    request: dict[str, Any] = {
        "ImageId": image["id"],
        "InstanceType": params["instance_type"],
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": step["spec"]["subnet_id"],
        "SecurityGroupIds": groups,
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [{"DeviceName": image["root_device"], "Ebs": volume}],
        "TagSpecifications": [
            {"ResourceType": kind, "Tags": tags} for kind in ("instance", "volume", "network-interface")
        ],
        # The same token on a retried request: EC2 launches one instance, not two.
        "ClientToken": f"{name[:31]}-{uuid.uuid4().hex}",
    }
    if params["user_data"]:
        request["UserData"] = params["user_data"]
    answer = call(
        module,
        client,
        "run_instances",
        f"Failed to launch NAT instance {name} in subnet {step['spec']['subnet_id']}",
        **request,
    )
    return answer["Instances"][0]["InstanceId"]


def wait_for(module: AnsibleAWSModule, client: Any, ids: list[str], state: str) -> dict[str, dict]:
    """Poll the instances (at once, then after a growing delay) until all are in `state`; id -> instance."""

    def read() -> dict[str, dict]:
        reservations = call(
            module,
            client,
            "describe_instances",
            f"Failed to read the NAT instances {', '.join(ids)}",
            retry_codes=NEW_INSTANCE,
            InstanceIds=ids,
        )["Reservations"]
        return {i["InstanceId"]: i for r in reservations for i in r["Instances"]}

    def waiting(found: dict[str, dict]) -> list[str]:
        if state == "running":
            dead = [i for i in found.values() if i["State"]["Name"] in ("shutting-down", "terminated")]
            if dead:
                reason = (dead[0].get("StateReason") or {}).get("Message", "no reason given")
                module.fail_json(
                    msg=f"NAT instance {dead[0]['InstanceId']} was terminated while starting: {reason}", changed=True
                )
        return [i for i in ids if found.get(i, {}).get("State", {}).get("Name") != state]

    def timed_out(found: dict[str, dict], _: list[str]) -> str:
        states = {i: found.get(i, {}).get("State", {}).get("Name") for i in ids}
        return f"Timed out after {module.params['wait_timeout']} s waiting for NAT instances to be {state}: {states}"

    return poll_until(module, read, waiting, module.params["wait_timeout"], timed_out, first_delay=1.0)


def modify(module: AnsibleAWSModule, client: Any, instance_id: str, what: str, new: bool, **params: Any) -> None:
    call(
        module,
        client,
        "modify_instance_attribute",
        f"Failed to set {what} of NAT instance {instance_id}",
        retry_codes=NEW_INSTANCE if new else (),
        InstanceId=instance_id,
        **params,
    )


def update(module: AnsibleAWSModule, client: Any, step: dict, groups: list[str]) -> None:
    """Apply the in-place changes of an existing instance."""
    instance = step["existing"]
    instance_id = instance["InstanceId"]
    if step["resize"] or step["start"]:
        if instance["State"]["Name"] in ("pending", "running") and step["resize"]:
            call(
                module,
                client,
                "stop_instances",
                f"Failed to stop NAT instance {instance_id}",
                InstanceIds=[instance_id],
            )
        if step["resize"] or instance["State"]["Name"] == "stopping":
            wait_for(module, client, [instance_id], "stopped")
        if step["resize"]:
            modify(
                module,
                client,
                instance_id,
                "the instance type",
                False,
                InstanceType={"Value": module.params["instance_type"]},
            )
        call(
            module, client, "start_instances", f"Failed to start NAT instance {instance_id}", InstanceIds=[instance_id]
        )
    settling = step["settling"]
    if step["source_dest_check"]:
        modify(module, client, instance_id, "the source/destination check", settling, SourceDestCheck={"Value": False})
    if step["metadata"]:
        call(
            module,
            client,
            "modify_instance_metadata_options",
            f"Failed to require IMDSv2 on NAT instance {instance_id}",
            retry_codes=NEW_INSTANCE if settling else (),
            InstanceId=instance_id,
            HttpTokens="required",
            HttpEndpoint="enabled",
        )
    if step["groups"]:
        modify(module, client, instance_id, "the security groups", settling, Groups=groups)
    apply_tags(module, client, instance_id, f"NAT instance {instance_id}", step["tags"])


def ensure_address(module: AnsibleAWSModule, client: Any, step: dict, instance_id: str, new: bool) -> dict:
    """Allocate, tag and associate the instance's Elastic IP; the address as it is now."""
    plan = step["address"]
    name = step["spec"]["name"]
    address = plan["existing"]
    if address is None:
        address = call(
            module,
            client,
            "allocate_address",
            f"Failed to allocate the Elastic IP of NAT instance {name}",
            Domain="vpc",
            TagSpecifications=[
                {"ResourceType": "elastic-ip", "Tags": ansible_dict_to_boto3_tag_list(plan["tags"]["after"])}
            ],
        )
        address = {**address, "Tags": ansible_dict_to_boto3_tag_list(plan["tags"]["after"])}
    else:
        apply_tags(module, client, address["AllocationId"], f"Elastic IP {address['PublicIp']}", plan["tags"])
    if plan["associate"]:
        association = call(
            module,
            client,
            "associate_address",
            f"Failed to associate Elastic IP {address['PublicIp']} with NAT instance {name} ({instance_id})",
            retry_codes=NEW_INSTANCE if new else (),
            AllocationId=address["AllocationId"],
            InstanceId=instance_id,
            AllowReassociation=True,
        )
        address = {**address, "InstanceId": instance_id, "AssociationId": association.get("AssociationId")}
    return address


def terminate(module: AnsibleAWSModule, client: Any, doomed: list[dict], waiting: list[dict]) -> None:
    """Terminate the instances and wait until they, and those already shutting down, are terminated."""
    if doomed:
        ids = [i["InstanceId"] for i in doomed]
        try:
            client.terminate_instances(aws_retry=True, InstanceIds=ids)
        except is_boto3_error_code("InvalidInstanceID.NotFound"):
            pass
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to terminate NAT instances {', '.join(ids)}", changed=False)
    ids = [i["InstanceId"] for i in doomed + waiting]
    if ids:
        wait_for(module, client, ids, "terminated")


def release(module: AnsibleAWSModule, client: Any, addresses: list[dict]) -> None:
    """Disassociate (EC2 keeps a terminated instance's association for a while; moto for good) and release."""
    for address in addresses:
        if address.get("AssociationId"):
            try:
                client.disassociate_address(aws_retry=True, AssociationId=address["AssociationId"])
            except is_boto3_error_code(["InvalidAssociationID.NotFound", *ADDRESS_GONE]):
                pass
            except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
                module.fail_json_aws(e, msg=f"Failed to disassociate Elastic IP {address['PublicIp']}", changed=True)
        try:
            client.release_address(aws_retry=True, AllocationId=address["AllocationId"])
        except is_boto3_error_code(list(ADDRESS_GONE)):
            continue
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to release Elastic IP {address['PublicIp']}", changed=True)


# --- views ---------------------------------------------------------------------------------------


def instance_view(module: AnsibleAWSModule, name: str, instance: dict | None, address: dict | None, plan: dict) -> dict:
    """What RV(instances) returns for one instance: as described, or (check mode) as planned."""
    params = module.params
    if instance is None:  # to be launched
        view = {
            "name": name,
            "id": None,
            "subnet_id": plan["spec"]["subnet_id"],
            "availability_zone": None,
            "instance_type": params["instance_type"],
            "image_id": None,
            "state": "pending",
            "source_dest_check": False,
            "http_tokens": "required",
            "security_groups": plan["groups"],
            "network_interface_id": None,
            "private_ip_address": None,
        }
    else:
        view = {
            "name": name,
            "id": instance["InstanceId"],
            "subnet_id": instance["SubnetId"],
            "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
            "instance_type": instance["InstanceType"],
            "image_id": instance.get("ImageId"),
            "state": instance["State"]["Name"],
            "source_dest_check": bool(instance.get("SourceDestCheck", True)),
            "http_tokens": http_tokens(instance),
            "security_groups": sorted(g["GroupId"] for g in instance.get("SecurityGroups") or []),
            "network_interface_id": primary_interface(instance).get("NetworkInterfaceId"),
            "private_ip_address": instance.get("PrivateIpAddress"),
        }
    view["public_ip"] = address.get("PublicIp") if address else None
    view["allocation_id"] = address.get("AllocationId") if address else None
    view["tags"] = tags_of(instance) if instance else {}
    return view


def planned_view(module: AnsibleAWSModule, step: dict, groups: list[str]) -> dict:
    """The instance as it would be after the run (check mode)."""
    existing, address = step["existing"], step["address"]
    view = instance_view(module, step["spec"]["name"], existing, address["existing"], {**step, "groups": groups})
    if existing is not None:
        if step["start"] or step["resize"]:
            view["state"] = "running"
        view["instance_type"] = module.params["instance_type"]
        view["source_dest_check"] = False
        view["http_tokens"] = "required"
        view["security_groups"] = groups
    view["tags"] = step["tags"]["after"]
    return view


DIFF_KEYS = (
    "id",
    "instance_type",
    "subnet_id",
    "state",
    "source_dest_check",
    "http_tokens",
    "security_groups",
    "public_ip",
    "tags",
)


def diff_entry(view: dict) -> dict:
    return {key: view[key] for key in DIFF_KEYS}


# --- present / absent ----------------------------------------------------------------------------


def ensure_present(module: AnsibleAWSModule, client: Any) -> dict:
    params = module.params
    planned = plan_present(module, client)
    steps, groups = planned["steps"], planned["groups"]
    purge = params["purge"]
    changed = any(s["changed"] or s["address"]["changed"] for s in steps) or (
        purge and bool(planned["unlisted"] or planned["spare"])
    )
    deleted = {"instances": [], "addresses": []}
    if purge:
        deleted = {
            "instances": [i["InstanceId"] for i in planned["unlisted"]],
            "addresses": [a["AllocationId"] for a in planned["spare"]],
        }
    purgeable = {"instances": [], "addresses": []}
    if not purge:
        purgeable = {
            "instances": [i["InstanceId"] for i in planned["unlisted"]],
            "addresses": [a["AllocationId"] for a in planned["spare"]],
        }

    before = {
        s["spec"]["name"]: diff_entry(
            instance_view(module, s["spec"]["name"], s["existing"], s["address"]["existing"], s)
        )
        for s in steps
        if s["existing"]
    }
    before |= {
        tags_of(i).get("Name") or i["InstanceId"]: diff_entry(instance_view(module, "", i, None, {}))
        for i in (planned["unlisted"] if purge else [])
    }

    if module.check_mode or not changed:
        views = [planned_view(module, s, groups) for s in steps]
    else:
        views = apply_present(module, client, steps, groups)
        if purge:
            terminate(module, client, planned["unlisted"], [])
            release(module, client, planned["spare"])

    result: dict[str, Any] = {"changed": changed, "instances": views, "purgeable": purgeable, "deleted": deleted}
    if module._diff:
        result["diff"] = {"before": before, "after": {view["name"]: diff_entry(view) for view in views}}
    return result


def apply_present(module: AnsibleAWSModule, client: Any, steps: list[dict], groups: list[str]) -> list[dict]:
    """Launch, update and address the listed instances; their views as described afterwards."""
    new_ids: dict[str, str] = {}
    to_launch = [s for s in steps if s["create"]]
    if to_launch:
        ssm = module.client("ssm", retry_decorator=jittered_backoff())
        image = latest_image(module, client, ssm)
        for step in to_launch:
            new_ids[step["spec"]["name"]] = launch(module, client, step, image, groups)
    for step in steps:
        if not step["create"] and step["changed"]:
            update(module, client, step, groups)
    ids = [new_ids.get(s["spec"]["name"]) or s["existing"]["InstanceId"] for s in steps]
    running = wait_for(module, client, ids, "running") if any(s["changed"] for s in steps) else {}
    for step in to_launch:
        modify(
            module,
            client,
            new_ids[step["spec"]["name"]],
            "the source/destination check",
            True,
            SourceDestCheck={"Value": False},
        )
    addresses = {}
    for step, instance_id in zip(steps, ids, strict=True):
        if step["address"]["changed"]:
            addresses[instance_id] = ensure_address(module, client, step, instance_id, step["settling"])
        else:
            addresses[instance_id] = step["address"]["existing"]
    # Read back what changed: the new instances' interfaces, the source/destination check just turned off.
    if running:
        running = wait_for(module, client, ids, "running")
    views = []
    for step, instance_id in zip(steps, ids, strict=True):
        instance = running.get(instance_id) or step["existing"]
        views.append(instance_view(module, step["spec"]["name"], instance, addresses[instance_id], step))
    return views


def ensure_absent(module: AnsibleAWSModule, client: Any) -> dict:
    params = module.params
    names = {spec["name"] for spec in params["instances"]}
    found = owned_instances(module, client, [*LIVE, "shutting-down"])
    chosen = [i for i in found if params["purge"] or tags_of(i).get("Name") in names]
    doomed = [i for i in chosen if i["State"]["Name"] != "shutting-down"]
    waiting = [i for i in chosen if i["State"]["Name"] == "shutting-down"]
    addresses = [a for a in owned_addresses(module, client) if params["purge"] or tags_of(a).get("Name") in names]
    result: dict[str, Any] = {
        "changed": bool(doomed or addresses),
        "instances": [],
        "purgeable": {"instances": [], "addresses": []},
        "deleted": {
            "instances": [i["InstanceId"] for i in doomed],
            "addresses": [a["AllocationId"] for a in addresses],
        },
    }
    if module._diff:
        by_instance = {a.get("InstanceId"): a for a in addresses}
        result["diff"] = {
            "before": {
                tags_of(i).get("Name") or i["InstanceId"]: diff_entry(
                    instance_view(module, "", i, by_instance.get(i["InstanceId"]), {})
                )
                for i in doomed
            },
            "after": {},
        }
    if not module.check_mode:
        terminate(module, client, doomed, waiting)
        release(module, client, addresses)
    return result


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_input(module)
    client = module.client("ec2", retry_decorator=jittered_backoff())
    ensure = ensure_present if module.params["state"] == "present" else ensure_absent
    module.exit_json(**ensure(module, client))


if __name__ == "__main__":
    main()
