"""Jinja tests for CIDR checks: `x is cidr_valid`, `x is cidr_within(vpc_cidr)` (standard library only)."""

from __future__ import annotations

import ipaddress

DOCUMENTATION = """
name: network
short_description: CIDR tests for airflow-ecs
description: cidr_valid (an IPv4 network in CIDR form, no host bits) and cidr_within (inside another network).
"""


def cidr_valid(value: object) -> bool:
    """True when value is an IPv4 network in CIDR form with no host bits set (10.0.0.0/16)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return False
    return True


def cidr_within(inner: str, outer: str) -> bool:
    """True when the network `inner` lies entirely inside `outer`."""
    return cidr_valid(inner) and ipaddress.IPv4Network(inner).subnet_of(ipaddress.IPv4Network(outer))


class TestModule:
    def tests(self) -> dict:
        return {"cidr_valid": cidr_valid, "cidr_within": cidr_within}
