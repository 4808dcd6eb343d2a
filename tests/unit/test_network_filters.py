"""The CIDR filters and tests the network preflight relies on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(path: str):
    spec = importlib.util.spec_from_file_location(path.replace("/", "_"), ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


filters = _load("plugins/filter/network.py")
checks = _load("plugins/test/network.py")


@pytest.mark.parametrize("value", ["10.0.0.0/16", "192.168.1.0/24", "10.40.128.0/20"])
def test_valid_cidrs(value):
    assert checks.cidr_valid(value)


@pytest.mark.parametrize("value", ["10.0.0.1/16", "10.0.0.0/33", "10.0.0.0", "", None, 16, "fe80::/64", "x/24"])
def test_invalid_cidrs(value):
    assert not checks.cidr_valid(value)


def test_cidr_within():
    assert checks.cidr_within("10.40.1.0/24", "10.40.0.0/16")
    assert not checks.cidr_within("10.41.0.0/24", "10.40.0.0/16")
    assert not checks.cidr_within("not-a-cidr", "10.40.0.0/16")


def test_overlapping_pairs_are_listed():
    assert filters.cidr_overlaps(["10.0.0.0/24", "10.0.1.0/24"]) == []
    assert filters.cidr_overlaps(["10.0.0.0/16", "10.0.5.0/24", "10.1.0.0/24"]) == [["10.0.0.0/16", "10.0.5.0/24"]]


def test_subnet_plan_carves_public_then_private_blocks():
    plan = filters.subnet_plan("10.40.0.0/16", 3)
    assert plan == {
        "public": ["10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20"],
        "private": ["10.40.128.0/20", "10.40.144.0/20", "10.40.160.0/20"],
    }
    assert filters.cidr_overlaps(plan["public"] + plan["private"]) == []


def test_subnet_layout_pairs_zones_with_ranges():
    layout = filters.subnet_layout(["a", "b"], ["p1", "p2"], ["q1", "q2"])
    assert layout[0] == {"tier": "public", "az": "a", "cidr": "p1"}
    assert layout[-1] == {"tier": "private", "az": "b", "cidr": "q2"}
