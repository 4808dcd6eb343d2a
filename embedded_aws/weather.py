"""AWS weather between a client and the emulator: latency per call, throttling and 5xx, calls counted.

    python -m embedded_aws.weather --upstream http://127.0.0.1:5000 --port 5001 --latency-ms 80 --fault-rate 0.1

Every request is held `latency_ms` before it is forwarded (a call to a real AWS endpoint costs
50-150 ms; the emulator answers in about one), and with probability `fault_rate` it is answered here
instead, never reaching the emulator, with what AWS answers when it sheds load. The error is in the
request's own protocol, so the SDK reads the code a real endpoint would send and retries as it would:

- EC2 (query): 503 RequestLimitExceeded; the other query services (IAM, STS, ELB, RDS, SNS): 400 Throttling;
- JSON services (X-Amz-Target, CloudWatch's CBOR too): 400 ThrottlingException;
- S3: 503 SlowDown;
- REST-JSON services: 429 with x-amzn-ErrorType ThrottlingException;
- and, as often as throttling, a 500 (InternalError or InternalFailure) in the same protocol.

Calls are counted per service and operation (from the SigV4 credential scope and the X-Amz-Target
header, the query Action, the CBOR operation path, or the method and path shape for REST APIs):
GET /_weather/stats returns {"calls": {"ecs DescribeServices": n, ...}, "faults": {...}} and
POST /_weather/reset starts the counts again. Only the client that points at the proxy sees the
weather: the local runtime's tasks call the emulator directly.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request")
CBOR_OPERATION = re.compile(r"/service/[^/]+/operation/(?P<operation>[A-Za-z0-9]+)")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "expect"}
QUERY_SERVICES = {"iam", "sts", "elasticloadbalancing", "rds", "sns", "autoscaling", "cloudformation"}


@dataclass
class Weather:
    latency_ms: float = 80.0
    fault_rate: float = 0.0
    seed: int | None = None
    calls: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def draw(self) -> str | None:
        """None (forward), "throttle" or "error", for one call."""
        with self.lock:
            roll = self.random.random()
        if roll >= self.fault_rate:
            return None
        return "throttle" if roll < self.fault_rate / 2 else "error"

    def count(self, operation: str, fault: str | None) -> None:
        with self.lock:
            self.calls[operation] += 1
            if fault:
                self.faults[f"{operation} {fault}"] += 1

    def stats(self) -> dict:
        with self.lock:
            return {"calls": dict(self.calls), "faults": dict(self.faults)}

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.faults.clear()


def service_of(headers: dict[str, str]) -> str:
    match = SCOPE.search(headers.get("authorization", ""))
    return match["service"] if match else "unknown"


def operation_of(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, str]:
    """(service, operation) of one AWS API request."""
    service = service_of(headers)
    if target := headers.get("x-amz-target"):
        return service, target.rsplit(".", 1)[-1]
    if match := CBOR_OPERATION.search(path):
        return service, match["operation"]
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return service, action[0]
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)  # S3 sub-resources: ?versioning
    if service == "s3":
        depth = len([p for p in urlsplit(path).path.split("/") if p])
        what = "Object" if depth > 1 else ("Bucket" if depth == 1 else "Service")
        sub = "?" + ",".join(sorted(query)) if query and depth <= 1 else ""
        return service, f"{method} {what}{sub}"
    if action := query.get("Action"):
        return service, action[0]
    shape = re.sub(r"/[^/]*\d[^/]*", "/{id}", urlsplit(path).path)  # REST: ids out of the path
    return service, f"{method} {shape}"


def fault_response(service: str, headers: dict[str, str], kind: str) -> tuple[int, dict[str, str], bytes]:
    """What AWS answers when it sheds this request (`kind` throttle) or fails it (error), in its protocol."""
    request_id = "weather-" + format(random.getrandbits(48), "x")
    throttle = kind == "throttle"
    if headers.get("x-amz-target"):  # JSON protocols (and CloudWatch's CBOR, whose SDK reads JSON errors too)
        code, status = ("ThrottlingException", 400) if throttle else ("InternalFailure", 500)
        body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.1"}, body
    if service == "s3":
        code, status = ("SlowDown", 503) if throttle else ("InternalError", 500)
        xml = f"<Error><Code>{code}</Code><Message>injected {code}</Message><RequestId>{request_id}</RequestId></Error>"
        return status, {"Content-Type": "application/xml"}, xml.encode()
    if service == "ec2":
        code, status = ("RequestLimitExceeded", 503) if throttle else ("InternalError", 500)
        xml = f"<Response><Errors><Error><Code>{code}</Code><Message>injected {code}</Message></Error></Errors>"
        xml += f"<RequestID>{request_id}</RequestID></Response>"
        return status, {"Content-Type": "text/xml"}, xml.encode()
    if service in QUERY_SERVICES or headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        code, status, side = ("Throttling", 400, "Sender") if throttle else ("InternalFailure", 500, "Receiver")
        xml = f"<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code><Message>injected {code}</Message></Error>"
        xml += f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        return status, {"Content-Type": "text/xml"}, xml.encode()
    code, status = ("ThrottlingException", 429) if throttle else ("InternalFailure", 500)  # REST-JSON
    return status, {"x-amzn-ErrorType": code, "Content-Type": "application/json"}, b"{}"


def make_handler(weather: Weather, upstream: str) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)
    local = threading.local()

    def connection() -> http.client.HTTPConnection:
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
        return local.connection

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:  # quiet
            return

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in separate writes: without this, Nagle and the client's delayed
            # ACK add 40 ms to every answer.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            # A HEAD answer has no body but the length of the one a GET would return.
            length = headers.get("Content-Length", headers.get("content-length")) if self.command == "HEAD" else None
            self.send_header("Content-Length", str(length if length is not None else len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            body = self._body()
            if self.path.startswith("/_weather/"):
                if self.path == "/_weather/reset":
                    weather.reset()
                self._reply(200, {"Content-Type": "application/json"}, json.dumps(weather.stats()).encode())
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path.startswith("/moto-api"):  # the emulator's own API: no weather, not counted
                fault = None
            else:
                service, operation = operation_of(self.command, self.path, headers, body)
                fault = weather.draw()
                weather.count(f"{service} {operation}", fault)
                time.sleep(weather.latency_ms / 1000)
                if fault:
                    self._reply(*fault_response(service, headers, fault))
                    return
            forward = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                forward["Content-Length"] = str(len(body))
            for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
                try:
                    conn = connection()
                    conn.request(self.command, self.path, body=body, headers=forward)
                    response = conn.getresponse()
                    data = response.read()
                    break
                except (http.client.HTTPException, OSError):
                    local.connection = None
                    if attempt == 2:
                        raise
            self._reply(response.status, dict(response.getheaders()), data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

    return Handler


class WeatherProxy:
    """The proxy in a thread of this process (tests, bench): `url` is what clients use as their endpoint."""

    def __init__(self, upstream: str, weather: Weather, port: int = 0) -> None:
        self.weather = weather
        self.server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(weather, upstream))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="weather", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="the emulator's URL")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=80.0)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of calls throttled or 5xx (0-1)")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    proxy = WeatherProxy(args.upstream, Weather(args.latency_ms, args.fault_rate, args.seed), args.port)
    print(f"weather proxy on {proxy.url} -> {args.upstream}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
