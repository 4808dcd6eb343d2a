"""embedded_aws.forwarder.HttpListener, the local runtime's ALB listener, and the agent's reading of ELB's rules.

The backend is a real HTTP server (http.server in a thread) that echoes what it received; the rules are
either written by hand or created with boto3 in moto's backends (mock_aws, in this process) and read by
the agent as it reads them for every request.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.elbv2.models import elbv2_backends

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from embedded_aws.agent import Agent, Settings
from embedded_aws.forwarder import Action, HttpListener, Rule

NOT_FOUND = Action(
    "fixed-response", config={"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not Found"}
)
EXECUTION = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/execution", "/execution/*"]}}]


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it got: method, path, forwarded headers and body (streamed, chunked)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = {
            "method": self.command,
            "path": self.path,
            "body": body.decode(),
            **{key: value for key, value in self.headers.items() if key.startswith("X-Forwarded")},
        }
        data = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path.startswith("/stream"):  # no length: the proxy must re-chunk it
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (data[:5], data[5:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = answer


@pytest.fixture
def backend() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


def request(listener: HttpListener, method: str, path: str, body: bytes | None = None, **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=10)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_rules_act_by_priority_before_the_default_forward_on_one_keep_alive_connection(backend) -> None:
    forward = Action("forward", targets=lambda: [backend])
    rules = [Rule(1, EXECUTION, NOT_FOUND), Rule(50001, [], forward)]
    listener = HttpListener("alb:80", lambda: rules, protocol="HTTPS", listener_port=443)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=10)
        answers = []
        for path in ("/api/v2/version", "/execution/", "/", "/execution", "/auth/token", "/execution/task-instances/x"):
            connection.request("GET", path)
            response = connection.getresponse()
            answers.append((path, response.status, response.read()))
        refused = [path for path, status, body in answers if status == 404 and body == b"Not Found"]
        assert refused == ["/execution/", "/execution", "/execution/task-instances/x"]
        forwarded = [json.loads(body) for _, status, body in answers if status == 200]
        assert [seen["path"] for seen in forwarded] == ["/api/v2/version", "/", "/auth/token"]
        assert forwarded[0]["X-Forwarded-Proto"] == "https" and forwarded[0]["X-Forwarded-Port"] == "443"
        assert forwarded[0]["X-Forwarded-For"] == "127.0.0.1"

        # Case-sensitive, the path only: neither the query string nor another case matches.
        assert request(listener, "GET", "/Execution/")[0] == 200
        assert request(listener, "GET", "/ui/x?next=/execution/")[0] == 200
        status, headers, body = request(listener, "POST", "/execution/x", body=b"{}")
        assert (status, headers["Server"], body) == (404, "awselb/2.0", b"Not Found")

        # A body goes through; a response without a length comes back whole (re-chunked).
        status, _, body = request(listener, "POST", "/auth/token", body=b'{"username": "admin"}')
        assert status == 200 and json.loads(body)["body"] == '{"username": "admin"}'
        status, _, body = request(listener, "GET", "/stream/logs")
        assert status == 200 and json.loads(body)["path"] == "/stream/logs"
    finally:
        listener.close()


def test_no_healthy_target_is_503_and_a_redirect_keeps_host_path_and_query() -> None:
    redirect = {"Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}", "Query": "#{query}"}
    rules = [
        Rule(1, EXECUTION, NOT_FOUND),
        Rule(50001, [], Action("redirect", config={**redirect, "StatusCode": "HTTP_301"})),
    ]
    listener = HttpListener("alb:80", lambda: rules)
    empty = HttpListener("alb:443", lambda: [Rule(50001, [], Action("forward", targets=list))])
    try:
        status, headers, _ = request(listener, "GET", "/dags/etl?tab=runs", Host="airflow.example.com")
        assert (status, headers["Location"]) == (301, "https://airflow.example.com/dags/etl?tab=runs")
        assert request(listener, "GET", "/execution/")[0] == 404  # rules come before the redirect too
        assert request(empty, "GET", "/")[0] == 503
        assert listener.backends() == [] and empty.backends() == []
    finally:
        listener.close()
        empty.close()


def test_the_agent_serves_the_rules_elb_holds_and_follows_their_changes(tmp_path: Path) -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
                "SubnetId"
            ]
            for i, z in enumerate("ab")
        ]
        elb = boto3.client("elbv2", region_name="us-east-1")
        balancer = elb.create_load_balancer(Name="alb", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        group = elb.create_target_group(Name="api", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")
        listener_arn = elb.create_listener(
            LoadBalancerArn=balancer,
            Port=80,
            Protocol="HTTP",
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroups"][0]["TargetGroupArn"]}],
        )["Listeners"][0]["ListenerArn"]
        fixed = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "MessageBody": "Not Found"}}
        rule = elb.create_rule(ListenerArn=listener_arn, Priority=5, Conditions=EXECUTION, Actions=[fixed])
        elb.create_rule(
            ListenerArn=listener_arn,
            Priority=2,
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/execution/health"]}}],
            Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}],
        )
        [moto_listener] = [
            item
            for backend in elbv2_backends.values()
            for region in backend.values()
            for lb in region.load_balancers.values()
            for item in lb.listeners.values()
        ]
        agent = Agent(Settings(tmp_path / "runtime", "http://127.0.0.1:1", "http://127.0.0.1:1/v2/credentials/", "t"))
        listener = HttpListener("alb:80", lambda: agent.listener_rules(moto_listener))
        try:
            assert request(listener, "GET", "/execution/health")[0] == 200  # priority 2 before 5
            assert request(listener, "GET", "/execution/x")[:1] == (404,)
            assert request(listener, "GET", "/api/v2/version")[0] == 503  # forward, no healthy target yet
            elb.delete_rule(RuleArn=rule["Rules"][0]["RuleArn"])  # read again for the next request
            assert request(listener, "GET", "/execution/x")[0] == 503
        finally:
            listener.close()
