"""Security groups compiled to nftables, evaluated as AWS evaluates them for an ENI.

- Stateful: the reply traffic of a flow allowed in either direction passes (ct state
  established,related), whatever the other direction's rules say.
- Only allows: a packet that no rule of any of the ENI's groups allows is dropped, inbound and outbound.
- A rule's peer is an IPv4 CIDR, an IPv6 CIDR (compiled as given; the local namespaces carry no IPv6),
  a managed prefix list (its CIDRs, which the caller passes: an unknown list is an error, never an
  allow-all) or a security group: the private addresses of every ENI in that group, held in an nft set
  (`members`), so a change of membership recompiles the tables that reference the group (`referencing`).
- Protocols: `-1` (all; ports ignored), `tcp`/`udp` with a port range, `icmp`/`icmpv6` with FromPort
  the ICMP type and ToPort the code (-1: any), any other protocol number as a whole.
- Not filtered, as on AWS: traffic to the Amazon DNS server (VPC base + 2, 169.254.169.253) and to the
  ECS task endpoint 169.254.170.2, and the ENI's own loopback.

Each ENI's table lives in its own network namespace (`inet security_groups`, hooks input and output):
conntrack is then the ENI's own, as AWS tracks each ENI's flows, the same rules hold whether the peer
is on the ENI's subnet (bridged) or another (routed by the VPC's router namespace), and nothing depends
on the host's br_netfilter settings. `compile()` is pure; `apply()` loads the text with one `nft -f`
(one transaction: the table is replaced atomically and tracked flows carry on).
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from embedded_aws.netns import DNS_LINK_LOCAL, ECS_ENDPOINT, entered

TABLE = "security_groups"
PROTOCOLS = {"tcp": "6", "udp": "17", "icmp": "1", "icmpv6": "58"}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}


class FirewallError(Exception):
    pass


@dataclass(frozen=True)
class Rule:
    """One permission of a group, one peer each (EC2's IpPermission expands into several)."""

    egress: bool
    protocol: str  # "-1" or a protocol number, as a string
    from_port: int | None = None
    to_port: int | None = None
    cidr: str | None = None  # IPv4 or IPv6
    group: str | None = None
    prefix_list: str | None = None


@dataclass(frozen=True)
class Interface:
    """An ENI: its private address and its groups."""

    address: str
    groups: tuple[str, ...]


def rules_from_security_groups(groups: Iterable[Mapping]) -> dict[str, list[Rule]]:
    """Rules per group id from EC2 DescribeSecurityGroups' SecurityGroups."""
    rules: dict[str, list[Rule]] = {}
    for group in groups:
        found = rules.setdefault(group["GroupId"], [])
        for key, egress in (("IpPermissions", False), ("IpPermissionsEgress", True)):
            for perm in group.get(key, []):
                base = dict(
                    egress=egress,
                    protocol=_protocol(perm["IpProtocol"]),
                    from_port=perm.get("FromPort"),
                    to_port=perm.get("ToPort"),
                )
                found += [Rule(**base, cidr=r["CidrIp"]) for r in perm.get("IpRanges", [])]
                found += [Rule(**base, cidr=r["CidrIpv6"]) for r in perm.get("Ipv6Ranges", [])]
                found += [Rule(**base, prefix_list=r["PrefixListId"]) for r in perm.get("PrefixListIds", [])]
                found += [Rule(**base, group=r["GroupId"]) for r in perm.get("UserIdGroupPairs", [])]
    return rules


def rules_from_security_group_rules(entries: Iterable[Mapping]) -> dict[str, list[Rule]]:
    """Rules per group id from EC2 DescribeSecurityGroupRules' SecurityGroupRules."""
    rules: dict[str, list[Rule]] = {}
    for entry in entries:
        rules.setdefault(entry["GroupId"], []).append(
            Rule(
                egress=entry["IsEgress"],
                protocol=_protocol(entry["IpProtocol"]),
                from_port=entry.get("FromPort"),
                to_port=entry.get("ToPort"),
                cidr=entry.get("CidrIpv4") or entry.get("CidrIpv6"),
                group=(entry.get("ReferencedGroupInfo") or {}).get("GroupId"),
                prefix_list=entry.get("PrefixListId"),
            )
        )
    return rules


def members(interfaces: Iterable[Interface]) -> dict[str, set[str]]:
    """Group id -> the private addresses of its ENIs."""
    found: dict[str, set[str]] = {}
    for interface in interfaces:
        for group in interface.groups:
            found.setdefault(group, set()).add(interface.address)
    return found


def referencing(
    interfaces: Mapping[str, Interface], rules: Mapping[str, Sequence[Rule]], changed: set[str]
) -> list[str]:
    """The ENIs (keys of `interfaces`) whose rules name a group in `changed`: those to recompile."""
    return [
        key
        for key, interface in interfaces.items()
        if any(rule.group in changed for group in interface.groups for rule in rules.get(group, ()))
    ]


def compile(
    interface: Interface,
    rules: Mapping[str, Sequence[Rule]],
    group_members: Mapping[str, set[str]],
    *,
    resolver: str,
    prefix_lists: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The nft ruleset (replacing the table) of one ENI; `resolver`: the VPC's DNS server (base + 2)."""
    own = [rule for group in interface.groups for rule in rules.get(group, ())]
    missing = sorted(g for g in interface.groups if g not in rules)
    if missing:
        raise FirewallError(f"no rules known for security group(s) {', '.join(missing)}")
    referenced = sorted({rule.group for rule in own if rule.group})
    lines = [f"table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{"]
    for group in referenced:
        addresses = sorted(group_members.get(group, ()), key=ipaddress.IPv4Address)
        elements = f" elements = {{ {', '.join(addresses)} }};" if addresses else ""
        lines.append(f"\tset {_set_name(group)} {{ type ipv4_addr;{elements} }}")
    exempt = f"{{ {resolver}, {DNS_LINK_LOCAL} }}"
    for chain, hook, device, egress in (("ingress", "input", "iif", False), ("egress", "output", "oif", True)):
        lines += [
            f"\tchain {chain} {{",
            f"\t\ttype filter hook {hook} priority filter; policy drop;",
            f'\t\t{device} "lo" accept',
            "\t\tct state established,related accept",
        ]
        if egress:  # AWS does not filter these
            lines += [
                f"\t\tip daddr {exempt} meta l4proto {{ tcp, udp }} th dport 53 accept",
                f"\t\tip daddr {ECS_ENDPOINT} accept",
            ]
        lines += [
            f"\t\t{match} accept"
            for rule in own
            if rule.egress == egress
            for match in _matches(rule, prefix_lists or {})
        ]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def apply(namespace: str, ruleset: str) -> None:
    """Load `ruleset` in the namespace in one transaction."""
    with entered(namespace):
        done = subprocess.run(["nft", "-f", "-"], input=ruleset, capture_output=True, text=True, check=False)
    if done.returncode:
        raise FirewallError(f"nft -f in {namespace}: {done.stderr.strip()}")


def _matches(rule: Rule, prefix_lists: Mapping[str, Sequence[str]]) -> list[str]:
    """The nft matches of one rule (one per address family it covers)."""
    direction = "daddr" if rule.egress else "saddr"
    if rule.group:
        peers = [("ip", f"@{_set_name(rule.group)}")]
    elif rule.prefix_list:
        if rule.prefix_list not in prefix_lists:
            raise FirewallError(f"prefix list {rule.prefix_list} is not known (pass its CIDRs in prefix_lists)")
        peers = _by_family(prefix_lists[rule.prefix_list])
    else:
        peers = _by_family([rule.cidr or "0.0.0.0/0"])
    service = _service(rule)
    return [" ".join(part for part in (_peer(family, direction, peer), service) if part) for family, peer in peers]


def _peer(family: str, direction: str, peer: str) -> str:
    if peer in ("0.0.0.0/0", "::/0"):
        return "meta nfproto ipv4" if family == "ip" else "meta nfproto ipv6"
    return f"{family} {direction} {peer}"


def _by_family(cidrs: Sequence[str]) -> list[tuple[str, str]]:
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    found = []
    for family, version in (("ip", 4), ("ip6", 6)):
        chosen = [str(n) for n in nets if n.version == version]
        if len(chosen) == 1:
            found.append((family, chosen[0]))
        elif chosen:
            found.append((family, "{ " + ", ".join(chosen) + " }"))
    return found


def _service(rule: Rule) -> str:
    """Protocol and ports (or ICMP type and code) of a rule; '' for all traffic."""
    number = rule.protocol
    if number == "-1":
        return ""
    name = PROTOCOL_NAMES.get(number)
    if name in ("tcp", "udp"):
        low, high = rule.from_port, rule.to_port
        if low in (None, -1) or (low, high) == (0, 65535):
            return f"meta l4proto {name}"
        return f"{name} dport {low}" if low == high else f"{name} dport {low}-{high}"
    if name in ("icmp", "icmpv6"):
        parts = [f"meta l4proto {name}"]
        if rule.from_port not in (None, -1):
            parts.append(f"{name} type {rule.from_port}")
            if rule.to_port not in (None, -1):
                parts.append(f"{name} code {rule.to_port}")
        return " ".join(parts)
    return f"meta l4proto {number}"


def _protocol(value: str | int) -> str:
    """EC2's IpProtocol (a name, a number, or -1) as a number."""
    text = str(value).lower()
    return PROTOCOLS.get(text, text)


def _set_name(group: str) -> str:
    return "members_" + group.replace("-", "_")
