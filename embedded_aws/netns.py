"""A VPC's network for the local runtime: one network namespace per ENI, joined by a bridge per VPC.

Layout (every name starts with the runtime's `prefix`, a hash of its directory, so runtimes on one
machine never meet and `cleanup(prefix)` finds what a killed run left):

- per VPC, a *router namespace* `<prefix>-<vpc id>` holding the bridge, each subnet's router address
  (subnet base + 1, the task's default gateway), the Amazon DNS server's address (VPC base + 2, where
  `vpc_dns` answers) and the ECS task endpoint 169.254.170.2 (credentials, as ECS serves them). It
  forwards between the subnets (ip_forward in that namespace only) and has no route out of the machine:
  the host namespace never holds a VPC address, so two runtimes may use the same VPC CIDR;
- per ENI (a task, the RDS instance, the broker, the ALB), a namespace `<prefix>-<name>` with loopback
  up, `eth0` (one end of a veth pair whose other end is a port of the VPC's bridge, MTU 9001 as in a
  VPC, MAC derived from the address so a reused address never meets a stale ARP entry), an address of
  its subnet (AWS reserves the first four and the last one), a default route via the subnet's router
  and `/etc/netns/<namespace>/resolv.conf` naming the VPC's DNS server. IPv4 only: IPv6 is disabled in
  every namespace (the project's VPC has no IPv6 CIDR).

A program runs inside with `Eni.wrap(argv)`: `ip netns exec`, which also bind-mounts the namespace's
resolv.conf over /etc/resolv.conf and mounts a /sys of the namespace (setns in a preexec_fn would do
neither, and preexec_fn is unsafe in this threaded agent). That fresh /sys hides /sys/fs/cgroup, so a
cgroup wrapper must run *outside* it: `cgroup.wrap(eni.wrap(argv), env)`. The runtime's own threads
reach the network with `socket_in(namespace)` (a socket made after setns of the calling thread only).
Security groups are enforced in each ENI's namespace: see firewall.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

NETNS_RUN = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
ECS_ENDPOINT = "169.254.170.2"  # the task metadata and credentials endpoint
DNS_LINK_LOCAL = "169.254.169.253"  # the Amazon DNS server's link-local address
MTU = 9001  # a VPC's MTU
ENI_DEVICE = "eth0"
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
NAME = re.compile(r"[^A-Za-z0-9_.-]")


class NetnsError(Exception):
    pass


def prefix_for(runtime_dir: Path) -> str:
    """The runtime's prefix: 8 characters, so an interface name (15 at most) still has 7 for itself."""
    return "ae" + hashlib.sha256(str(Path(runtime_dir).resolve()).encode()).hexdigest()[:6]


def unavailable() -> str | None:
    """None when namespaces can be made here, else why not, in one line."""
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian package {package})"
    effective = _capabilities()
    missing = [
        name
        for name, bit in (("CAP_NET_ADMIN", CAP_NET_ADMIN), ("CAP_SYS_ADMIN", CAP_SYS_ADMIN))
        if not effective >> bit & 1
    ]
    if missing:
        return f"this process lacks {' and '.join(missing)} (run the emulator as root)"
    probe = f"aeprobe-{os.getpid()}-{threading.get_ident()}"
    try:
        _ip("netns", "add", probe)
    except NetnsError as exc:
        return f"cannot create a network namespace: {exc}"
    with contextlib.suppress(NetnsError):
        _ip("netns", "del", probe)
    return None


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """The calling thread (only) in `namespace`; sockets made and programs started meanwhile stay there."""
    with open(NETNS_RUN / namespace) as target, open("/proc/thread-self/ns/net") as own:
        os.setns(target.fileno(), os.CLONE_NEWNET)
        try:
            yield
        finally:
            os.setns(own.fileno(), os.CLONE_NEWNET)


def socket_in(namespace: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    with entered(namespace):
        return socket.socket(family, kind)


@dataclass
class Vpc:
    vpc_id: str
    cidr: ipaddress.IPv4Network
    subnets: dict[str, ipaddress.IPv4Network]
    namespace: str  # the router namespace
    bridge: str
    search: tuple[str, ...] = ()  # resolv.conf's search domains (the DHCP options' domain name)

    @property
    def resolver(self) -> str:
        """The Amazon DNS server: the VPC's base + 2."""
        return str(self.cidr.network_address + 2)

    def gateway(self, subnet_id: str) -> str:
        """The VPC router's address in a subnet: its base + 1."""
        return str(self.subnets[subnet_id].network_address + 1)


@dataclass(frozen=True)
class Eni:
    name: str
    namespace: str
    vpc_id: str
    subnet_id: str
    address: str
    prefixlen: int
    veth: str  # the bridge's end, in the router namespace

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run inside this ENI's namespace (with its resolv.conf)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Network:
    """The runtime's VPC networks; `cleanup()` at start and at stop removes everything under `prefix`."""

    prefix: str
    vpcs: dict[str, Vpc] = field(default_factory=dict)
    enis: dict[str, Eni] = field(default_factory=dict)
    _veths: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_vpc(self, vpc_id: str, cidr: str, subnets: dict[str, str], search: tuple[str, ...] = ()) -> Vpc:
        """The router namespace and bridge of a VPC (subnets: id -> CIDR); again for a known VPC: no-op."""
        with self._lock:
            if vpc_id in self.vpcs:
                return self.vpcs[vpc_id]
            network = ipaddress.IPv4Network(cidr)
            nets = {sid: ipaddress.IPv4Network(c) for sid, c in subnets.items()}
            for sid, net in nets.items():
                if not net.subnet_of(network):
                    raise NetnsError(f"subnet {sid} ({net}) is not inside VPC {vpc_id} ({network})")
            vpc = Vpc(vpc_id, network, nets, f"{self.prefix}-{_clean(vpc_id)}", self._short("b", vpc_id), search)
            _ip("netns", "add", vpc.namespace)
            try:
                _sysctls(vpc.namespace, {"net/ipv4/ip_forward": 1, **_NO_IPV6})
                lines = ["link set lo up", f"link add {vpc.bridge} mtu {MTU} type bridge", f"link set {vpc.bridge} up"]
                lines += [f"addr add {vpc.gateway(s)}/{n.prefixlen} dev {vpc.bridge}" for s, n in nets.items()]
                lines += [f"addr add {a}/32 dev {vpc.bridge}" for a in (vpc.resolver, DNS_LINK_LOCAL, ECS_ENDPOINT)]
                _batch(vpc.namespace, lines)
            except Exception:
                _remove_namespace(vpc.namespace)
                raise
            self.vpcs[vpc_id] = vpc
            return vpc

    def attach(self, name: str, vpc_id: str, subnet_id: str, address: str | None = None) -> Eni:
        """An ENI's namespace in a subnet, with `address` (as EC2 assigned it) or the lowest free one."""
        with self._lock:
            vpc = self.vpcs[vpc_id]
            subnet = vpc.subnets[subnet_id]
            address = self._address(subnet, address)
            self._veths += 1
            eni = Eni(
                name,
                f"{self.prefix}-{_clean(name)}",
                vpc_id,
                subnet_id,
                address,
                subnet.prefixlen,
                f"{self.prefix}e{self._veths}",
            )
            if eni.namespace in {e.namespace for e in self.enis.values()}:
                raise NetnsError(f"an ENI named {name} is attached already")
            self.enis[eni.namespace] = eni
        try:
            _ip("netns", "add", eni.namespace)
            _sysctls(eni.namespace, _NO_IPV6)
            mac = "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)
            _ip("link", "add", ENI_DEVICE, "netns", eni.namespace, "address", mac, "mtu", str(MTU), "type", "veth",
                "peer", "name", eni.veth, "netns", vpc.namespace, "mtu", str(MTU))  # fmt: skip
            _batch(vpc.namespace, [f"link set {eni.veth} master {vpc.bridge} up"])
            _batch(
                eni.namespace,
                [
                    "link set lo up",
                    f"addr add {address}/{subnet.prefixlen} dev {ENI_DEVICE}",
                    f"link set {ENI_DEVICE} up",
                    f"route add default via {vpc.gateway(subnet_id)} dev {ENI_DEVICE}",
                ],
            )
            etc = ETC_NETNS / eni.namespace
            etc.mkdir(parents=True, exist_ok=True)
            search = f"search {' '.join(vpc.search)}\n" if vpc.search else ""
            (etc / "resolv.conf").write_text(f"nameserver {vpc.resolver}\n{search}")
        except Exception:
            self.detach(eni)
            raise
        return eni

    def detach(self, eni: Eni) -> None:
        """Kill what runs in the ENI's namespace, remove it (its veth pair goes with it) and free its address."""
        _remove_namespace(eni.namespace)
        with self._lock:
            self.enis.pop(eni.namespace, None)

    def close(self) -> None:
        cleanup(self.prefix)
        self.vpcs.clear()
        self.enis.clear()

    def _address(self, subnet: ipaddress.IPv4Network, wanted: str | None) -> str:
        used = {e.address for e in self.enis.values()}
        usable = range(int(subnet.network_address) + 4, int(subnet.broadcast_address))
        if wanted is not None:
            if int(ipaddress.IPv4Address(wanted)) not in usable:
                reserved = "AWS reserves the first four and the last"
                raise NetnsError(f"{wanted} is not an assignable address of subnet {subnet} ({reserved})")
            if wanted in used:
                raise NetnsError(f"{wanted} is in use")
            return wanted
        for number in usable:
            candidate = str(ipaddress.IPv4Address(number))
            if candidate not in used:
                return candidate
        raise NetnsError(f"subnet {subnet} has no free address")

    def _short(self, kind: str, key: str) -> str:
        """An interface name: prefix + kind + 6 hex of key: 15 characters."""
        return self.prefix + kind + hashlib.sha256(key.encode()).hexdigest()[:6]


def cleanup(prefix: str) -> list[str]:
    """Remove what a runtime with `prefix` made (also after it was killed); returns what was removed."""
    removed = []
    for namespace in _namespaces(prefix):
        _remove_namespace(namespace)
        removed.append(f"netns {namespace}")
    for directory in sorted(ETC_NETNS.glob(f"{prefix}-*")) if ETC_NETNS.is_dir() else []:
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(str(directory))
    for link in _host_links(prefix):
        with contextlib.suppress(NetnsError):
            _ip("link", "del", link)
        removed.append(f"link {link}")
    return removed


def leftovers(prefix: str) -> list[str]:
    """What is left of a runtime with `prefix`: namespaces, /etc/netns dirs, links and nft tables of the host."""
    left = [f"netns {n}" for n in _namespaces(prefix)]
    left += [str(d) for d in sorted(ETC_NETNS.glob(f"{prefix}-*"))] if ETC_NETNS.is_dir() else []
    left += [f"link {link}" for link in _host_links(prefix)]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout.split("\n")
    left += [f"nft {t.strip()}" for t in tables if prefix in t]
    return left


_NO_IPV6 = {"net/ipv6/conf/all/disable_ipv6": 1, "net/ipv6/conf/default/disable_ipv6": 1}


def _remove_namespace(namespace: str) -> None:
    if not (NETNS_RUN / namespace).exists():
        shutil.rmtree(ETC_NETNS / namespace, ignore_errors=True)
        return
    pids = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    with contextlib.suppress(NetnsError):
        _ip("netns", "del", namespace)
    shutil.rmtree(ETC_NETNS / namespace, ignore_errors=True)


def _namespaces(prefix: str) -> list[str]:
    return sorted(p.name for p in NETNS_RUN.glob(f"{prefix}-*")) if NETNS_RUN.is_dir() else []


def _host_links(prefix: str) -> list[str]:
    """Links of the host namespace named with the prefix (none are made there; a check for strays)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n.startswith(prefix)]


def _sysctls(namespace: str, values: dict[str, int]) -> None:
    """/proc/sys/net shows the namespace of the thread that opens it."""
    with entered(namespace):
        for key, value in values.items():
            Path("/proc/sys", key).write_text(str(value))


def _batch(namespace: str, lines: list[str]) -> None:
    _run(["ip", "-n", namespace, "-batch", "-"], "\n".join(lines) + "\n")


def _ip(*args: str) -> None:
    _run(["ip", *args])


def _run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode:
        raise NetnsError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip()}")


def _capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def _clean(name: str) -> str:
    return NAME.sub("_", name)
