"""Stable local addresses for names whose backends come and go: ALB listeners and Cloud Map names.

A `Listener` accepts TCP connections on 127.0.0.1:<port> and forwards each one to a backend chosen
at connect time (round robin over what `backends()` returns then), as an ALB forwards to its healthy
targets and as a DNS lookup of a Cloud Map name returns the instances registered at that moment. A
connection with no backend is closed at once (the client sees a reset, as with no healthy target).
So a task started before its broker, or a client of a task that was replaced, reaches the current
backend without knowing its port.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections.abc import Callable

Backend = tuple[str, int]


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
