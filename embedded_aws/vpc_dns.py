"""The Amazon DNS server of a local VPC: UDP and TCP port 53 at the VPC's base + 2, in its router namespace.

`answer(name)` (the runtime's: Cloud Map instances, the RDS endpoint, the ALB's DNS name) returns the
IPv4 addresses of a name, or None when it does not know it. An EC2 private DNS name
(`ip-10-40-1-23.ec2.internal`, `ip-10-40-1-23.<region>.compute.internal`) answers its own address when
it lies in the VPC, as with enableDnsHostnames. A name nobody knows is NXDOMAIN (authoritative) inside
the private zones (the Cloud Map namespaces, ec2.internal, compute.internal, ...) and SERVFAIL
elsewhere: the Amazon server would recurse to the internet, which this machine does not have. A known
name asked for another type (AAAA, ...) answers NOERROR with no records, so a resolver that asks for A
and AAAA at once still gets its A record. Messages are dnspython's (dns.message).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterable

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from embedded_aws.netns import entered

log = logging.getLogger("embedded_aws.vpc_dns")
EC2_NAME = re.compile(r"^ip-(\d+)-(\d+)-(\d+)-(\d+)\.(?:ec2\.internal|[a-z0-9-]+\.compute\.internal)$")
PRIVATE_ZONES = ("ec2.internal", "compute.internal")
Answer = Callable[[str], "list[str] | None"]


def ec2_private_name(address: str, region: str) -> str:
    """The private DNS name EC2 gives an address: us-east-1 uses ec2.internal, other regions
    <region>.compute.internal."""
    domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    return f"ip-{address.replace('.', '-')}.{domain}"


class Resolver:
    """Answers one query message (wire format) with a response message."""

    def __init__(
        self, answer: Answer, vpc_cidr: str, zones: Callable[[], Iterable[str]] = tuple, ttl: int = 10
    ) -> None:
        self.answer = answer
        self.vpc = ipaddress.IPv4Network(vpc_cidr)
        self.zones = zones  # the private zones besides EC2's (Cloud Map namespaces), asked at each query
        self.ttl = ttl

    def respond(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if query.opcode() != 0 or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != 0 else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        addresses = self.lookup(name)
        if addresses is None:
            private = any(name == z or name.endswith("." + z) for z in (*PRIVATE_ZONES, *self.zones()))
            response.set_rcode(dns.rcode.NXDOMAIN if private else dns.rcode.SERVFAIL)
            if private:
                response.flags |= dns.flags.AA
        elif question.rdtype == dns.rdatatype.A and question.rdclass == dns.rdataclass.IN and addresses:
            response.answer.append(dns.rrset.from_text_list(question.name, self.ttl, "IN", "A", addresses))
        return response.to_wire()

    def lookup(self, name: str) -> list[str] | None:
        found = self.answer(name)
        if found is not None:
            return found
        match = EC2_NAME.match(name)
        address = ".".join(match.groups()) if match else None
        return [address] if address and ipaddress.IPv4Address(address) in self.vpc else None


class DnsServer:
    """Serves a Resolver on UDP and TCP `address`:`port`, in network namespace `namespace` when given."""

    def __init__(self, resolver: Resolver, address: str, port: int = 53, namespace: str | None = None) -> None:
        self.resolver = resolver
        with entered(namespace) if namespace else contextlib.nullcontext():
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((address, port))
        self.address = self.tcp.getsockname()  # port 0: the one the kernel chose, for UDP too
        self.udp.bind(self.address)
        self.tcp.listen(64)
        self._threads = [
            threading.Thread(target=self._serve_udp, name="vpc-dns-udp", daemon=True),
            threading.Thread(target=self._serve_tcp, name="vpc-dns-tcp", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        for sock in (self.udp, self.tcp):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _serve_udp(self) -> None:
        while True:
            try:
                wire, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            reply = self._respond(wire)
            if reply is not None:
                with contextlib.suppress(OSError):
                    # a UDP answer over 512 bytes without EDNS is truncated: the client retries over TCP
                    self.udp.sendto(reply if len(reply) <= 512 else _truncated(reply), peer)

    def _serve_tcp(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn, contextlib.suppress(OSError):
            while head := _read(conn, 2):
                wire = _read(conn, struct.unpack("!H", head)[0])
                reply = self._respond(wire or b"")
                if reply is None:
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def _respond(self, wire: bytes) -> bytes | None:
        try:
            return self.resolver.respond(wire)
        except Exception:  # a bad answer callback must not end the server
            log.exception("DNS query failed")
            return _servfail(wire)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR echoing the query's id, when at least its header is there."""
    if len(wire) < 12:
        return None
    return wire[:2] + bytes([0x80 | (wire[2] & 0x79), 0x80 | dns.rcode.FORMERR]) + bytes(8)


def _servfail(wire: bytes) -> bytes | None:
    try:
        response = dns.message.make_response(dns.message.from_wire(wire))
    except dns.exception.DNSException:
        return _formerr(wire)
    response.set_rcode(dns.rcode.SERVFAIL)
    return response.to_wire()


def _truncated(reply: bytes) -> bytes:
    response = dns.message.from_wire(reply)
    response.answer.clear()
    response.flags |= dns.flags.TC
    return response.to_wire()
