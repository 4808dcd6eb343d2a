"""embedded_aws.firewall: security groups compiled to an ENI's nftables ruleset (pure; no root needed).
The rules are enforced on real namespaces in test_netns.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from embedded_aws import firewall
from embedded_aws.firewall import FirewallError, Interface, Rule

RESOLVER = "10.40.0.2"
GROUPS = [
    {
        "GroupId": "sg-broker",
        "IpPermissions": [
            {
                "IpProtocol": "tcp",
                "FromPort": 5672,
                "ToPort": 5672,
                "UserIdGroupPairs": [{"GroupId": "sg-worker", "UserId": "123456789012"}],
            },
            {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "10.40.0.0/16"}]},
        ],
        "IpPermissionsEgress": [],
    },
    {
        "GroupId": "sg-worker",
        "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 8793, "ToPort": 8794, "IpRanges": [{"CidrIp": "10.40.1.0/24"}]}
        ],
        "IpPermissionsEgress": [
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
            {"IpProtocol": "udp", "FromPort": 8125, "ToPort": 8125, "PrefixListIds": [{"PrefixListId": "pl-1"}]},
        ],
    },
]
BROKER = Interface("10.40.1.10", ("sg-broker",))
WORKER = Interface("10.40.2.20", ("sg-worker",))


def ruleset(interface: Interface, rules=None, **kwargs) -> str:
    rules = rules if rules is not None else firewall.rules_from_security_groups(GROUPS)
    return firewall.compile(interface, rules, firewall.members([BROKER, WORKER]), resolver=RESOLVER, **kwargs)


def chain(text: str, name: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index(f"chain {name} {{")
    return lines[start + 1 : lines.index("}", start)]


def test_a_group_reference_becomes_a_set_of_its_members_addresses() -> None:
    text = ruleset(BROKER)
    assert "set members_sg_worker { type ipv4_addr; elements = { 10.40.2.20 }; }" in text
    assert "ip saddr @members_sg_worker tcp dport 5672 accept" in chain(text, "ingress")


def test_a_group_without_members_is_an_empty_set_that_matches_nothing() -> None:
    text = firewall.compile(BROKER, firewall.rules_from_security_groups(GROUPS), {}, resolver=RESOLVER)
    assert "set members_sg_worker { type ipv4_addr; }" in text


def test_both_directions_drop_by_default_and_pass_tracked_replies() -> None:
    text = ruleset(BROKER)
    for name, hook in (("ingress", "input"), ("egress", "output")):
        lines = chain(text, name)
        assert lines[0] == f"type filter hook {hook} priority filter; policy drop;"
        assert "ct state established,related accept" in lines


def test_a_group_without_egress_rules_allows_only_what_aws_never_filters() -> None:
    allowed = [line for line in chain(ruleset(BROKER), "egress") if line.endswith("accept")]
    assert allowed == [
        'oif "lo" accept',
        "ct state established,related accept",
        f"ip daddr {{ {RESOLVER}, 169.254.169.253 }} meta l4proto {{ tcp, udp }} th dport 53 accept",
        "ip daddr 169.254.170.2 accept",
    ]


@pytest.mark.parametrize(
    ("permission", "match"),
    [
        ({"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432}, "ip saddr 10.0.0.0/8 tcp dport 5432 accept"),
        ({"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 9000}, "ip saddr 10.0.0.0/8 tcp dport 8000-9000 accept"),
        ({"IpProtocol": "6", "FromPort": 0, "ToPort": 65535}, "ip saddr 10.0.0.0/8 meta l4proto tcp accept"),
        ({"IpProtocol": "udp", "FromPort": 53, "ToPort": 53}, "ip saddr 10.0.0.0/8 udp dport 53 accept"),
        ({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1}, "ip saddr 10.0.0.0/8 meta l4proto icmp accept"),
        (
            {"IpProtocol": "icmp", "FromPort": 3, "ToPort": 4},
            "ip saddr 10.0.0.0/8 meta l4proto icmp icmp type 3 icmp code 4 accept",
        ),
        ({"IpProtocol": "-1"}, "ip saddr 10.0.0.0/8 accept"),
        ({"IpProtocol": "50"}, "ip saddr 10.0.0.0/8 meta l4proto 50 accept"),
    ],
)
def test_protocols_and_port_ranges(permission: dict, match: str) -> None:
    group = {"GroupId": "sg-x", "IpPermissions": [{**permission, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]}
    text = firewall.compile(
        Interface("10.40.1.4", ("sg-x",)), firewall.rules_from_security_groups([group]), {}, resolver=RESOLVER
    )
    assert chain(text, "ingress")[-1] == match


def test_the_rules_of_all_an_enis_groups_add_up() -> None:
    both = Interface("10.40.1.11", ("sg-broker", "sg-worker"))
    ingress = chain(ruleset(both, prefix_lists={"pl-1": ["10.9.0.0/16"]}), "ingress")
    assert "ip saddr @members_sg_worker tcp dport 5672 accept" in ingress
    assert "ip saddr 10.40.1.0/24 tcp dport 8793-8794 accept" in ingress


def test_ipv6_ranges_and_prefix_lists_compile_per_address_family() -> None:
    egress = chain(ruleset(WORKER, prefix_lists={"pl-1": ["10.9.0.0/16", "10.8.0.0/16", "2001:db8::/32"]}), "egress")
    assert "meta nfproto ipv4 accept" in egress  # 0.0.0.0/0
    assert "meta nfproto ipv6 accept" in egress  # ::/0
    assert "ip daddr { 10.9.0.0/16, 10.8.0.0/16 } udp dport 8125 accept" in egress
    assert "ip6 daddr 2001:db8::/32 udp dport 8125 accept" in egress


def test_an_unknown_prefix_list_is_an_error_not_an_open_rule() -> None:
    with pytest.raises(FirewallError, match="prefix list pl-1 is not known"):
        ruleset(WORKER)


def test_a_group_whose_rules_are_unknown_is_an_error() -> None:
    with pytest.raises(FirewallError, match="sg-gone"):
        ruleset(Interface("10.40.1.12", ("sg-gone",)))


def test_describe_security_group_rules_gives_the_same_rules_as_describe_security_groups() -> None:
    entries = [
        {
            "GroupId": "sg-broker",
            "IsEgress": False,
            "IpProtocol": "tcp",
            "FromPort": 5672,
            "ToPort": 5672,
            "ReferencedGroupInfo": {"GroupId": "sg-worker"},
        },
        {
            "GroupId": "sg-broker",
            "IsEgress": False,
            "IpProtocol": "icmp",
            "FromPort": 8,
            "ToPort": -1,
            "CidrIpv4": "10.40.0.0/16",
        },
    ]
    from_rules = firewall.rules_from_security_group_rules(entries)
    assert from_rules["sg-broker"] == firewall.rules_from_security_groups(GROUPS[:1])["sg-broker"]
    assert from_rules["sg-broker"][0] == Rule(
        egress=False, protocol="6", from_port=5672, to_port=5672, group="sg-worker"
    )


def test_a_membership_change_recompiles_the_enis_whose_rules_name_the_group() -> None:
    rules = firewall.rules_from_security_groups(GROUPS)
    interfaces = {"broker": BROKER, "worker": WORKER}
    assert firewall.referencing(interfaces, rules, {"sg-worker"}) == ["broker"]
    assert firewall.referencing(interfaces, rules, {"sg-broker"}) == []
