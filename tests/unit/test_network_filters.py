"""The subnet planning filters of the network role."""

from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load(path: str):
    spec = importlib.util.spec_from_file_location(path.replace("/", "_"), ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


filters = _load("plugins/filter/network.py")


def test_subnet_plan_carves_public_then_private_blocks():
    plan = filters.subnet_plan("10.40.0.0/16", 3)
    assert plan == {
        "public": ["10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20"],
        "private": ["10.40.128.0/20", "10.40.144.0/20", "10.40.160.0/20"],
    }
    blocks = [ipaddress.IPv4Network(cidr) for cidr in plan["public"] + plan["private"]]
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])


def test_subnet_layout_pairs_zones_with_ranges():
    layout = filters.subnet_layout(["a", "b"], ["p1", "p2"], ["q1", "q2"])
    assert layout[0] == {"tier": "public", "az": "a", "cidr": "p1"}
    assert layout[-1] == {"tier": "private", "az": "b", "cidr": "q2"}
