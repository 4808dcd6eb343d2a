"""embedded_aws.netns and firewall on this machine's real network namespaces: a VPC's router namespace and
bridge, one namespace per ENI, and security groups enforced by nftables in each (root only)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from embedded_aws import firewall, netns
from embedded_aws.firewall import Interface

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
VPC = "vpc-0a1b2c3d"
SUBNETS = {"subnet-a": "10.40.1.0/24", "subnet-b": "10.40.2.0/24", "subnet-tiny": "10.40.3.0/28"}
DROPPED = 0.3  # seconds a connect waits before a dropped SYN counts as dropped


@pytest.fixture
def network(tmp_path: Path) -> Iterator[netns.Network]:
    made = netns.Network(netns.prefix_for(tmp_path))
    made.add_vpc(VPC, "10.40.0.0/16", SUBNETS, ("ec2.internal",))
    yield made
    made.close()
    assert netns.leftovers(made.prefix) == []


@contextlib.contextmanager
def tcp_listener(eni: netns.Eni, port: int) -> Iterator[None]:
    server = netns.socket_in(eni.namespace)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((eni.address, port))
    server.listen()

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                conn.sendall(b"hello")
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown(socket.SHUT_RDWR)
        server.close()


def reaches(client: netns.Eni, server: netns.Eni, port: int) -> bool:
    """A TCP connect from client to server:port that gets the server's greeting."""
    with netns.socket_in(client.namespace) as sock:
        sock.settimeout(DROPPED)
        try:
            sock.connect((server.address, port))
            return sock.recv(5) == b"hello"
        except OSError:
            return False


def udp_answered(client: netns.Eni, server: netns.Eni, port: int) -> bool:
    with (
        netns.socket_in(server.namespace, kind=socket.SOCK_DGRAM) as echo,
        netns.socket_in(client.namespace, kind=socket.SOCK_DGRAM) as sock,
    ):
        echo.bind((server.address, port))
        echo.settimeout(DROPPED)
        sock.settimeout(DROPPED)
        try:
            sock.sendto(b"ping", (server.address, port))
            data, peer = echo.recvfrom(16)
            echo.sendto(data, peer)
            return sock.recvfrom(16)[0] == b"ping"
        except OSError:
            return False


def protect(network: netns.Network, groups: list[dict], enis: dict[netns.Eni, tuple[str, ...]]) -> None:
    """Each ENI's table compiled from `groups` and applied."""
    rules = firewall.rules_from_security_groups(groups)
    interfaces = {eni: Interface(eni.address, sgs) for eni, sgs in enis.items()}
    members = firewall.members(interfaces.values())
    resolver = network.vpcs[VPC].resolver
    for eni, interface in interfaces.items():
        firewall.apply(eni.namespace, firewall.compile(interface, rules, members, resolver=resolver))


def broker_groups(*, worker_rule: bool) -> list[dict]:
    broker_in = [
        {"IpProtocol": "tcp", "FromPort": 5672, "ToPort": 5672, "UserIdGroupPairs": [{"GroupId": "sg-worker"}]}
    ]
    worker_out = [
        {"IpProtocol": "tcp", "FromPort": 5672, "ToPort": 5672, "UserIdGroupPairs": [{"GroupId": "sg-broker"}]}
    ]
    return [
        {"GroupId": "sg-broker", "IpPermissions": broker_in if worker_rule else [], "IpPermissionsEgress": []},
        {"GroupId": "sg-worker", "IpPermissions": [], "IpPermissionsEgress": worker_out},
    ]


def in_namespace(eni: netns.Eni, argv: list[str]) -> str:
    return subprocess.run(eni.wrap(argv), capture_output=True, text=True, check=True, timeout=10).stdout


def test_an_eni_gets_an_address_of_its_subnet_a_route_via_the_vpc_router_and_the_vpc_resolver(network) -> None:
    eni = network.attach("task-1", VPC, "subnet-b")
    assert eni.address == "10.40.2.4"  # .0-.3 are AWS's
    assert "10.40.2.4/24" in in_namespace(eni, ["ip", "-br", "addr", "show", "eth0"])
    assert in_namespace(eni, ["ip", "route", "show", "default"]).split()[:3] == ["default", "via", "10.40.2.1"]
    assert in_namespace(eni, ["cat", "/etc/resolv.conf"]) == "nameserver 10.40.0.2\nsearch ec2.internal\n"


def test_addresses_skip_the_first_four_and_the_last_of_the_subnet(network) -> None:
    with pytest.raises(netns.NetnsError, match="not an assignable address"):
        network.attach("reserved", VPC, "subnet-tiny", "10.40.3.2")
    with pytest.raises(netns.NetnsError, match="not an assignable address"):
        network.attach("broadcast", VPC, "subnet-tiny", "10.40.3.15")
    enis = [network.attach(f"t{n}", VPC, "subnet-tiny") for n in range(11)]
    assert [e.address for e in enis] == [f"10.40.3.{n}" for n in range(4, 15)]
    with pytest.raises(netns.NetnsError, match="no free address"):
        network.attach("one-too-many", VPC, "subnet-tiny")
    network.detach(enis[3])
    assert network.attach("again", VPC, "subnet-tiny").address == "10.40.3.7"


def test_enis_in_two_subnets_reach_each_other_through_the_vpc_router(network) -> None:
    a, b = network.attach("a", VPC, "subnet-a"), network.attach("b", VPC, "subnet-b")
    with tcp_listener(b, 8080):
        assert reaches(a, b, 8080)


def test_a_flow_the_groups_allow_passes_and_without_the_rule_it_is_dropped(network) -> None:
    broker, worker = network.attach("broker", VPC, "subnet-a"), network.attach("worker", VPC, "subnet-b")
    with tcp_listener(broker, 5672):
        protect(network, broker_groups(worker_rule=True), {broker: ("sg-broker",), worker: ("sg-worker",)})
        assert reaches(worker, broker, 5672)  # the reply passes: the broker has no egress rule at all
        protect(network, broker_groups(worker_rule=False), {broker: ("sg-broker",), worker: ("sg-worker",)})
        assert not reaches(worker, broker, 5672)


def test_a_group_reference_follows_membership(network) -> None:
    broker, worker = network.attach("broker", VPC, "subnet-a"), network.attach("worker", VPC, "subnet-b")
    other = network.attach("other", VPC, "subnet-b")
    groups = [
        *broker_groups(worker_rule=True),
        {
            "GroupId": "sg-other",
            "IpPermissions": [],
            "IpPermissionsEgress": broker_groups(worker_rule=True)[1]["IpPermissionsEgress"],
        },
    ]
    with tcp_listener(broker, 5672):
        protect(network, groups, {broker: ("sg-broker",), worker: ("sg-worker",), other: ("sg-other",)})
        assert not reaches(other, broker, 5672)
        protect(network, groups, {broker: ("sg-broker",), worker: ("sg-worker",), other: ("sg-other", "sg-worker")})
        assert reaches(other, broker, 5672)


def test_egress_is_enforced_too(network) -> None:
    broker, worker = network.attach("broker", VPC, "subnet-a"), network.attach("worker", VPC, "subnet-b")
    groups = broker_groups(worker_rule=True)
    groups[1]["IpPermissionsEgress"] = []
    with tcp_listener(broker, 5672):
        protect(network, groups, {broker: ("sg-broker",), worker: ("sg-worker",)})
        assert not reaches(worker, broker, 5672)


def test_udp_passes_by_its_rule_only(network) -> None:
    a, b = network.attach("a", VPC, "subnet-a"), network.attach("b", VPC, "subnet-a")
    all_udp = [{"IpProtocol": "udp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "10.40.0.0/16"}]}]
    statsd = [{"IpProtocol": "udp", "FromPort": 8125, "ToPort": 8125, "UserIdGroupPairs": [{"GroupId": "sg-a"}]}]
    groups = [
        {"GroupId": "sg-a", "IpPermissions": [], "IpPermissionsEgress": all_udp},
        {"GroupId": "sg-b", "IpPermissions": statsd, "IpPermissionsEgress": []},
    ]
    protect(network, groups, {a: ("sg-a",), b: ("sg-b",)})
    assert udp_answered(a, b, 8125)
    assert not udp_answered(a, b, 8126)


def test_two_runtimes_use_the_same_vpc_cidr_side_by_side(network, tmp_path: Path) -> None:
    other = netns.Network(netns.prefix_for(tmp_path / "other"))
    try:
        other.add_vpc(VPC, "10.40.0.0/16", SUBNETS)
        mine, theirs = network.attach("a", VPC, "subnet-a"), other.attach("a", VPC, "subnet-a")
        assert mine.address == theirs.address and mine.namespace != theirs.namespace
        peer = network.attach("b", VPC, "subnet-a")
        with tcp_listener(peer, 9000):
            assert reaches(mine, peer, 9000)
            assert not reaches(theirs, peer, 9000)  # the other runtime's VPC has no such ENI
    finally:
        other.close()
    assert netns.leftovers(other.prefix) == []


def test_cleanup_removes_what_a_killed_run_left_and_what_runs_in_it(tmp_path: Path) -> None:
    prefix = netns.prefix_for(tmp_path / "killed")
    code = (
        "import sys, subprocess; from embedded_aws import netns\n"
        f"n = netns.Network({prefix!r}); n.add_vpc({VPC!r}, '10.40.0.0/16', {SUBNETS!r})\n"
        "e = n.attach('task', 'vpc-0a1b2c3d', 'subnet-a')\n"
        "quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(subprocess.Popen(e.wrap(['sleep', '60']), **quiet).pid, flush=True)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=30
    )
    sleeper = int(done.stdout.split()[-1])
    assert netns.leftovers(prefix)
    netns.cleanup(prefix)
    assert netns.leftovers(prefix) == []
    deadline = time.monotonic() + 5
    while running(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(sleeper)


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_unavailable_says_nothing_where_namespaces_can_be_made() -> None:
    assert netns.unavailable() is None
