"""Stable local addresses for names whose backends come and go: ALB listeners and Cloud Map names.

A `Listener` accepts TCP connections on 127.0.0.1:<port> and forwards each one to a backend chosen
at connect time (round robin over what `backends()` returns then), as a DNS lookup of a Cloud Map name
returns the instances registered at that moment. A connection with no backend is closed at once. So a
task started before its broker, or a client of a task that was replaced, reaches the current backend
without knowing its port.

An `HttpListener` is an ALB listener: it reads each HTTP request (of every keep-alive connection) and
acts as the listener's rules say, evaluated as ELB does: from the lowest priority up, the first rule
whose conditions all match (path patterns compared case-sensitively with the path, without the query
string, `*` and `?` wildcards; host names case-insensitively), else the default action. `forward`
proxies the request to a healthy target (round robin; 503 without one, 502 when it does not answer),
adding X-Forwarded-For/-Proto/-Port; `fixed-response` and `redirect` are answered by the listener
itself. An HTTPS listener is served as plain HTTP here (no certificate's key is at hand).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Backend = tuple[str, int]
log = logging.getLogger("embedded_aws.forwarder")


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A local port free for TCP and UDP alike that this process has not handed out before.

    The task binds it later, so two calls must never return the same port (the kernel may offer a port
    again while it is unbound), and a StatsD port is UDP, which a TCP bind does not see in use."""
    with _handed_out_lock:
        for _ in range(1000):
            with socket.socket() as tcp:
                tcp.bind(("127.0.0.1", 0))
                port = tcp.getsockname()[1]
                if port in _handed_out:
                    continue
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                        udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise OSError("no local port is free for both TCP and UDP")


class Listener:
    def __init__(self, name: str, backends: Callable[[], list[Backend]], port: int = 0) -> None:
        self.name = name
        self.backends = backends
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        self._turn = itertools.count()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"listener-{name}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        backends = self.backends()
        if not backends:
            client.close()
            return
        target = backends[next(self._turn) % len(backends)]
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.server.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            source.shutdown(socket.SHUT_RD)


# --- ALB listeners -----------------------------------------------------------------------------------

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
}
REASONS = {
    301: "Moved Permanently",
    302: "Found",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def wildcard(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """An ELB pattern: `*` any characters (also none), `?` exactly one, the rest literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), flags)


@dataclass
class Action:
    """One ELB action: `forward` to `targets()`, or a `fixed-response` / `redirect` with its ELB config."""

    type: str
    targets: Callable[[], list[Backend]] = list
    config: dict[str, Any] = field(default_factory=dict)  # FixedResponseConfig or RedirectConfig


@dataclass
class Rule:
    """A listener rule: its conditions as ELB holds them (Field + Values or <Field>Config), its first action."""

    priority: int
    conditions: list[dict[str, Any]]
    action: Action

    def matches(self, method: str, path: str, host: str) -> bool:
        for condition in self.conditions:
            kind = condition.get("Field")
            config_key = {
                "path-pattern": "PathPatternConfig",
                "host-header": "HostHeaderConfig",
                "http-request-method": "HttpRequestMethodConfig",
            }.get(kind or "")
            values = (condition.get(config_key) or {}).get("Values") if config_key else None
            values = values or condition.get("Values") or []
            if kind == "path-pattern":
                ok = any(wildcard(v).fullmatch(path) for v in values)
            elif kind == "host-header":
                ok = any(wildcard(v, re.IGNORECASE).fullmatch(host) for v in values)
            elif kind == "http-request-method":
                ok = method in values
            else:  # a condition this emulator does not evaluate never matches (logged, not guessed)
                log.warning(
                    "listener rule %s: condition %s is not evaluated here; the rule is skipped", self.priority, kind
                )
                ok = False
            if not ok:
                return False
        return True


class HttpListener:
    """An ALB listener on 127.0.0.1:<port>; `rules()` returns its rules now, the default one last."""

    def __init__(
        self,
        name: str,
        rules: Callable[[], list[Rule]],
        *,
        port: int = 0,
        protocol: str = "HTTP",
        listener_port: int = 80,
        idle_timeout: float = 60,
    ) -> None:
        self.name = name
        self.rules = rules
        self.protocol = protocol
        self.listener_port = listener_port
        self._turn = itertools.count()
        owner = self

        class Handler(_ProxyHandler):
            listener = owner
            timeout = idle_timeout

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.2,), name=f"alb-{name}", daemon=True).start()

    def backends(self) -> list[Backend]:
        """Where the default action forwards now (none for a redirect or a fixed response)."""
        rules = self.rules()
        default = rules[-1].action if rules else None
        return default.targets() if default is not None and default.type == "forward" else []

    def pick(self, method: str, path: str, host: str) -> Action | None:
        for rule in sorted(self.rules(), key=lambda r: r.priority):
            if rule.matches(method, path, host):
                return rule.action
        return None

    def next_target(self, targets: list[Backend]) -> Backend:
        return targets[next(self._turn) % len(targets)]

    def close(self) -> None:
        threading.Thread(target=self.server.shutdown, daemon=True).start()
        with contextlib.suppress(OSError):
            self.server.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    listener: HttpListener

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.listener.name, *args)

    def handle_one_request(self) -> None:
        """Every method goes through `act` (the base class would answer 501 for a method without do_*)."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.act()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def act(self) -> None:
        target = urlsplit(self.path)
        path, query = target.path or "/", target.query
        host = urlsplit(f"//{self.headers.get('Host') or ''}").hostname or ""
        action = self.listener.pick(self.command, path, host)
        body = self.read_body()
        if action is None or action.type not in ("forward", "fixed-response", "redirect"):
            self.answer(503, "text/plain; charset=utf-8", b"")
        elif action.type == "fixed-response":
            config = action.config
            content_type = config.get("ContentType") or "text/plain"
            self.answer(
                int(config["StatusCode"]), f"{content_type}; charset=utf-8", (config.get("MessageBody") or "").encode()
            )
        elif action.type == "redirect":
            self.redirect(action.config, path, query, host)
        else:
            self.forward(action, body)
        if self.headers.get("Connection", "").lower() == "close" or self.request_version == "HTTP/1.0":
            self.close_connection = True

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response_only(status, REASONS.get(status))
        self.send_header("Server", "awselb/2.0")
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def redirect(self, config: dict[str, Any], path: str, query: str, host: str) -> None:
        """RedirectConfig with its #{protocol}, #{host}, #{port}, #{path}, #{query} placeholders."""
        values = {
            "protocol": self.listener.protocol,
            "host": host,
            "port": str(self.listener.listener_port),
            "path": path.removeprefix("/"),
            "query": query,
        }

        def fill(text: str) -> str:
            return re.sub(r"#\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)

        protocol = fill(config.get("Protocol") or "#{protocol}").lower()
        port = fill(config.get("Port") or "#{port}")
        location = f"{protocol}://{fill(config.get('Host') or '#{host}')}"
        if (protocol, port) not in (("http", "80"), ("https", "443")):
            location += f":{port}"
        location += fill(config.get("Path") or "/#{path}")
        if wanted_query := fill(config.get("Query") or "#{query}"):
            location += f"?{wanted_query}"
        status = 301 if config.get("StatusCode") == "HTTP_301" else 302
        self.answer(status, "text/html", b"", {"Location": location})

    def forward(self, action: Action, body: bytes) -> None:
        targets = action.targets()
        if not targets:
            self.answer(503, "text/html", b"")
            return
        upstream = http.client.HTTPConnection(*self.listener.next_target(targets), timeout=self.timeout)
        headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
        client = self.client_address[0]
        forwarded_for = self.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded_for}, {client}" if forwarded_for else client
        headers["X-Forwarded-Proto"] = self.listener.protocol.lower()
        headers["X-Forwarded-Port"] = str(self.listener.listener_port)
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
        except OSError as err:  # as ELB: no answer within the idle timeout 504, a refused connection 502
            upstream.close()
            self.answer(504 if isinstance(err, TimeoutError) else 502, "text/html", b"")
            return
        try:
            self.relay(response)
        finally:
            upstream.close()

    def relay(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        length = response.getheader("Content-Length")
        chunked = not bodiless and length is None and self.request_version != "HTTP/1.0"
        if length is not None:
            self.send_header("Content-Length", length)
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not bodiless:
            self.close_connection = True  # an HTTP/1.0 client reads to the end of the connection
        self.end_headers()
        if bodiless:
            return
        while data := response.read1(65536):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
