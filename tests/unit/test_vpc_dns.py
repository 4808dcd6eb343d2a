"""embedded_aws.vpc_dns: the VPC's DNS server, asked over UDP and TCP, and by a program's own resolver
inside an ENI's namespace (that part needs root)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from embedded_aws import firewall, netns
from embedded_aws.vpc_dns import DnsServer, Resolver, ec2_private_name

NAMES = {"rabbitmq.airflow.internal": ["10.40.1.10"], "db.abc123.us-east-1.rds.amazonaws.com": ["10.40.2.20"]}


def answer(name: str) -> list[str] | None:
    if name == "boom.airflow.internal":
        raise RuntimeError("callback failed")
    return NAMES.get(name)


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    made = DnsServer(Resolver(answer, "10.40.0.0/16", zones=lambda: ["airflow.internal"]), "127.0.0.1", port=0)
    yield made
    made.close()


def ask(server: DnsServer, name: str, kind: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, kind)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.address[0], port=server.address[1], timeout=2)


def addresses(response: dns.message.Message) -> list[str]:
    return [item.address for rrset in response.answer for item in rrset]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_known_name_answers_its_addresses(server, tcp: bool) -> None:
    response = ask(server, "rabbitmq.airflow.internal", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == ["10.40.1.10"]


def test_a_known_name_asked_for_aaaa_has_no_records_but_exists(server) -> None:
    response = ask(server, "db.abc123.us-east-1.rds.amazonaws.com", "AAAA")
    assert (response.rcode(), response.answer) == (dns.rcode.NOERROR, [])


def test_an_unknown_name_in_a_private_zone_does_not_exist(server) -> None:
    response = ask(server, "flower.airflow.internal")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA


def test_a_name_outside_the_vpc_fails_as_there_is_no_internet(server) -> None:
    assert ask(server, "pypi.org").rcode() == dns.rcode.SERVFAIL


def test_ec2_private_names_answer_addresses_of_the_vpc_only(server) -> None:
    assert ec2_private_name("10.40.1.23", "us-east-1") == "ip-10-40-1-23.ec2.internal"
    assert addresses(ask(server, ec2_private_name("10.40.1.23", "eu-west-1"))) == ["10.40.1.23"]
    assert ask(server, "ip-10-99-1-23.ec2.internal").rcode() == dns.rcode.NXDOMAIN


def test_a_failing_callback_answers_servfail_and_the_server_goes_on(server) -> None:
    assert ask(server, "boom.airflow.internal").rcode() == dns.rcode.SERVFAIL
    assert addresses(ask(server, "rabbitmq.airflow.internal")) == ["10.40.1.10"]


def test_garbage_gets_formerr_with_the_querys_id() -> None:
    reply = Resolver(answer, "10.40.0.0/16").respond(b"\x12\x34\x01\x00" + b"\x00\x01" + b"\xff" * 10)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
def test_a_program_in_an_eni_namespace_resolves_vpc_names_at_the_vpc_resolver(tmp_path: Path) -> None:
    network = netns.Network(netns.prefix_for(tmp_path))
    try:
        vpc = network.add_vpc("vpc-1", "10.40.0.0/16", {"subnet-a": "10.40.1.0/24"}, ("airflow.internal",))
        eni = network.attach("task", "vpc-1", "subnet-a")
        # no rule at all: DNS to the VPC resolver is never filtered
        rules = {"sg-none": []}
        ruleset = firewall.compile(firewall.Interface(eni.address, ("sg-none",)), rules, {}, resolver=vpc.resolver)
        firewall.apply(eni.namespace, ruleset)
        dns_server = DnsServer(
            Resolver(answer, "10.40.0.0/16", zones=lambda: ["airflow.internal"]), vpc.resolver, namespace=vpc.namespace
        )
        try:
            code = (
                "import socket\n"
                "print(socket.gethostbyname('rabbitmq'))\n"  # the search domain
                "try: socket.gethostbyname('flower.airflow.internal')\n"
                "except socket.gaierror as e: print(e.errno == socket.EAI_NONAME)\n"
            )
            out = subprocess.run(
                eni.wrap([sys.executable, "-c", code]), capture_output=True, text=True, timeout=20, check=True
            ).stdout
            assert out.split() == ["10.40.1.10", "True"]
            with netns.entered(eni.namespace):
                over_tcp = dns.query.tcp(
                    dns.message.make_query("rabbitmq.airflow.internal", "A"), vpc.resolver, timeout=2
                )
            assert addresses(over_tcp) == ["10.40.1.10"]
        finally:
            dns_server.close()
    finally:
        network.close()
    assert netns.leftovers(network.prefix) == []
