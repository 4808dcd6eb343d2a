#!/usr/bin/env python3
"""The private subnets' way out in the network scenario's endpoint: describe it, or break it as an operator would.

    egress.py describe STATE STACK     the NAT instances, their Elastic IPs and security group, the NAT
                                       gateways and the private route tables' default routes, as JSON
    egress.py terminate STATE STACK    terminate the stack's live NAT instances out of band (their ids)

STATE is the scenario's endpoint file (molecule/shared/endpoint.py writes it); one process answers each check.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))
from endpoint import client, read_state

LIVE = ["pending", "running", "stopping", "stopped"]


def tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or resource.get("TagSet") or []}


def nat_instances(ec2: Any, stack: str, states: list[str]) -> list[dict[str, Any]]:
    filters = [
        {"Name": "tag:airflow-ecs:stack", "Values": [stack]},
        {"Name": "tag:airflow-ecs:tier", "Values": ["nat"]},
        {"Name": "instance-state-name", "Values": states},
    ]
    return [i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]


def user_data(ec2: Any, instance_id: str) -> dict[str, bool]:
    """What the boot script sets up: IPv4 forwarding and masquerading, both kept across reboots."""
    encoded = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData").get("UserData", {})
    script = base64.b64decode(encoded.get("Value") or "").decode()
    return {
        "forwards": "net.ipv4.ip_forward = 1" in script and "/etc/sysctl.d/" in script,
        "masquerades": "masquerade" in script and "oifname" in script,
        "persists": "systemctl enable nftables" in script and "/etc/sysconfig/nftables.conf" in script,
    }


def describe(state_file: Path, stack: str) -> dict[str, Any]:
    state = read_state(state_file)
    ec2, ssm = client(state, "ec2"), client(state, "ssm")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:airflow-ecs:stack", "Values": [stack]}])["Vpcs"]
    in_vpc = [{"Name": "vpc-id", "Values": [v["VpcId"] for v in vpcs] or ["vpc-none"]}]
    tier_of = {s["SubnetId"]: tags(s).get("airflow-ecs:tier") for s in ec2.describe_subnets(Filters=in_vpc)["Subnets"]}

    instances = []
    for instance in nat_instances(ec2, stack, LIVE):
        image = ec2.describe_images(ImageIds=[instance["ImageId"]])["Images"][0]
        [root] = [m for m in instance["BlockDeviceMappings"] if m["DeviceName"] == instance["RootDeviceName"]]
        volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
        [primary] = [n for n in instance["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0]
        instances.append(
            {
                "id": instance["InstanceId"],
                "name": tags(instance).get("Name"),
                "tags": tags(instance),
                "state": instance["State"]["Name"],
                "type": instance["InstanceType"],
                "subnet_tier": tier_of.get(instance["SubnetId"]),
                "source_dest_check": instance["SourceDestCheck"],
                "http_tokens": instance["MetadataOptions"]["HttpTokens"],
                "key_name": instance.get("KeyName"),
                "instance_profile": instance.get("IamInstanceProfile"),
                "user_data": user_data(ec2, instance["InstanceId"]),
                "network_interface_id": primary["NetworkInterfaceId"],
                "image_id": instance["ImageId"],
                "image_architecture": image["Architecture"],
                "image_name": image["Name"],
                "root_volume": {"encrypted": volume["Encrypted"], "type": volume["VolumeType"], "tags": tags(volume)},
                "security_groups": sorted(g["GroupName"] for g in instance["SecurityGroups"]),
            }
        )
    parameter = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    addresses = ec2.describe_addresses(Filters=[{"Name": "tag:airflow-ecs:stack", "Values": [stack]}])["Addresses"]
    groups = ec2.describe_security_groups(Filters=[*in_vpc, {"Name": "group-name", "Values": [f"{stack}-nat"]}])
    nat_group = None
    for group in groups["SecurityGroups"]:
        nat_group = {
            direction: sorted(f"{p['IpProtocol']} {r['CidrIp']}" for p in group[key] for r in p.get("IpRanges", []))
            + sorted(f"{p['IpProtocol']} {g['GroupId']}" for p in group[key] for g in p.get("UserIdGroupPairs", []))
            for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress"))
        }
    routes = {}
    for table in ec2.describe_route_tables(Filters=in_vpc)["RouteTables"]:
        name = tags(table).get("Name", "")
        for route in table["Routes"]:
            if name.startswith(f"{stack}-private") and route.get("DestinationCidrBlock") == "0.0.0.0/0":
                routes[name] = route.get("NetworkInterfaceId") or route.get("NatGatewayId") or route.get("GatewayId")
    gateways = [
        {"id": n["NatGatewayId"], "subnet_tier": tier_of.get(n["SubnetId"])}
        for n in ec2.describe_nat_gateways(Filters=in_vpc)["NatGateways"]
        if n["State"] in ("pending", "available")
    ]
    return {
        "nat_instances": instances,
        "image_parameter": ssm.get_parameters(Names=[parameter])["Parameters"][0]["Value"],
        "addresses": [
            {
                "public_ip": a["PublicIp"],
                "name": tags(a).get("Name"),
                "tags": tags(a),
                "instance_id": a.get("InstanceId"),
            }
            for a in addresses
        ],
        "nat_security_group": nat_group,
        "private_routes": routes,
        "nat_gateways": gateways,
    }


def terminate(state_file: Path, stack: str) -> dict[str, Any]:
    ec2 = client(read_state(state_file), "ec2")
    ids = [i["InstanceId"] for i in nat_instances(ec2, stack, LIVE)]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
    return {"terminated": ids, "changed": bool(ids)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["describe", "terminate"])
    parser.add_argument("state", type=Path)
    parser.add_argument("stack")
    args = parser.parse_args(argv)
    command = describe if args.command == "describe" else terminate
    print(json.dumps(command(args.state, args.stack), default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
