"""Jinja filters for subnet planning, on the standard library (no netaddr)."""

from __future__ import annotations

import ipaddress

DOCUMENTATION = """
name: network
short_description: Subnet planning for airflow-ecs
description: subnet_plan and subnet_layout filters (CIDR checks are validate_inputs rules).
"""


def subnet_plan(vpc_cidr: str, az_count: int) -> dict[str, list[str]]:
    """Split the VPC into 16 equal blocks: public subnets take blocks 0.., private subnets blocks 8..

    A /16 VPC gives /20 subnets (4,091 usable addresses each); up to 8 AZs fit.
    """
    vpc = ipaddress.IPv4Network(vpc_cidr)
    blocks = list(vpc.subnets(prefixlen_diff=4))
    return {
        "public": [str(b) for b in blocks[:az_count]],
        "private": [str(b) for b in blocks[8 : 8 + az_count]],
    }


def subnet_layout(azs: list[str], public_cidrs: list[str], private_cidrs: list[str]) -> list[dict[str, str]]:
    """One {tier, az, cidr} entry per subnet: the public subnets first, then the private ones, in AZ order."""
    return [
        {"tier": tier, "az": az, "cidr": cidr}
        for tier, cidrs in (("public", public_cidrs), ("private", private_cidrs))
        for az, cidr in zip(azs, cidrs, strict=False)
    ]


class FilterModule:
    def filters(self) -> dict:
        return {
            "subnet_plan": subnet_plan,
            "subnet_layout": subnet_layout,
        }
