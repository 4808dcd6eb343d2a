"""Test support for the books ETL: the fixture site on a local HTTP server, an in-memory bucket, the facts."""

# Airflow is imported inside the helpers that need it, after conftest.py has configured it.
# ruff: noqa: PLC0415

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock, Thread
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
DAGS = HERE.parents[1] / "dags"  # the DAG bundle: books_etl.py and the etl package
SITE = HERE / "fixtures" / "site"  # a copy of books.toscrape.com in its real markup
BUCKET = "books-etl-test"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# What the fixture site (fixtures/site) holds: 3 catalogue pages, 12 book pages, 9 of them valid.
# Worked out by hand from the pages, not by running the code under test.
EXPECTED_INVALID = {"bad price": 1, "bad rating": 1, "missing price": 1}
EXPECTED_SUMMARY = {
    "rows": 9,
    "currencies": ["GBP"],
    "price": {"min": 17.93, "median": 50.10, "mean": 41.22, "max": 54.23},
    "in_stock_share": 0.8889,
    "copies_available": 159,
    "by_category": [
        {"category": "Poetry", "books": 3, "min": 20.66, "median": 51.77, "mean": 41.53, "max": 52.15,
         "in_stock_share": 1.0},
        {"category": "Default", "books": 2, "min": 17.93, "median": 20.27, "mean": 20.27, "max": 22.61,
         "in_stock_share": 0.5},
        {"category": "Fiction", "books": 1, "min": 50.10, "median": 50.10, "mean": 50.10, "max": 50.10,
         "in_stock_share": 1.0},
        {"category": "Historical Fiction", "books": 1, "min": 53.74, "median": 53.74, "mean": 53.74, "max": 53.74,
         "in_stock_share": 1.0},
        {"category": "History", "books": 1, "min": 54.23, "median": 54.23, "mean": 54.23, "max": 54.23,
         "in_stock_share": 1.0},
        {"category": "Mystery", "books": 1, "min": 47.82, "median": 47.82, "mean": 47.82, "max": 47.82,
         "in_stock_share": 1.0},
    ],
    "by_rating": [
        {"rating": 1, "books": 3, "min": 50.10, "median": 52.15, "mean": 52.00, "max": 53.74, "in_stock_share": 1.0},
        {"rating": 3, "books": 2, "min": 17.93, "median": 34.85, "mean": 34.85, "max": 51.77, "in_stock_share": 1.0},
        {"rating": 4, "books": 3, "min": 20.66, "median": 22.61, "mean": 30.36, "max": 47.82,
         "in_stock_share": 0.6667},
        {"rating": 5, "books": 1, "min": 54.23, "median": 54.23, "mean": 54.23, "max": 54.23, "in_stock_share": 1.0},
    ],
}  # fmt: skip
# Lines of the report that carry the numbers above.
EXPECTED_REPORT_LINES = [
    "- Valid rows: 9",
    "- Invalid rows: 3 (bad price: 1, bad rating: 1, missing price: 1)",
    "- Price (GBP): min 17.93, median 50.10, mean 41.22, max 54.23",
    "- In stock: 88.9 % of books, 159 copies available",
    "| Poetry | 3 | 20.66 | 51.77 | 41.53 | 52.15 | 100.0 % |",
    "| Default | 2 | 17.93 | 20.27 | 20.27 | 22.61 | 50.0 % |",
    "| Mystery | 1 | 47.82 | 47.82 | 47.82 | 47.82 | 100.0 % |",
    "| 1 | 3 | 50.10 | 52.15 | 52.00 | 53.74 | 100.0 % |",
    "| 4 | 3 | 20.66 | 22.61 | 30.36 | 47.82 | 66.7 % |",
]

SLOW = "slow"  # a fault: answer only after SiteServer.slow_seconds


class _Handler(SimpleHTTPRequestHandler):
    server: SiteServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        action = self.server.record(path, self.headers.get("User-Agent", ""))
        if action == SLOW:
            time.sleep(self.server.slow_seconds)
        elif isinstance(action, int):
            self.send_response(action)
            if action in (429, 503):
                self.send_header("Retry-After", str(self.server.retry_after))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:
        pass


class SiteServer(ThreadingHTTPServer):
    """Serves a directory on a free loopback port; counts hits and injects faults per path.

    `fail(path, 500, 500, "ok")` answers the next requests to `path` with 500, 500, then normally;
    the last action repeats. `SLOW` delays the answer past a short client timeout; 429 and 503
    come with a Retry-After header.
    """

    daemon_threads = True

    def __init__(self, root: Path, slow_seconds: float = 1.0, retry_after: int = 3) -> None:
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.hits: Counter[str] = Counter()
        self.user_agents: set[str] = set()
        self._faults: dict[str, list[object]] = {}
        self._lock = Lock()
        self._thread = Thread(target=self.serve_forever, name="books-site", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def start(self) -> SiteServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self.hits.clear()
            self.user_agents.clear()
            self._faults.clear()

    def fail(self, path: str, *actions: object) -> None:
        with self._lock:
            self._faults[path] = list(actions)

    def record(self, path: str, user_agent: str) -> object:
        with self._lock:
            self.hits[path] += 1
            self.user_agents.add(user_agent)
            actions = self._faults.get(path)
            if not actions:
                return "ok"
            return actions.pop(0) if len(actions) > 1 else actions[0]

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out closed the socket under a slow answer: expected here


class MemoryStore:
    """The Store interface of etl.storage on a dict, for unit tests of the steps."""

    def __init__(self, objects: Mapping[str, bytes] | None = None) -> None:
        self.objects: dict[str, bytes] = dict(objects or {})

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def list(self, prefix: str) -> list[str]:
        return sorted(key for key in self.objects if key.startswith(prefix))

    def replace_prefix(self, prefix: str, objects: Mapping[str, bytes]) -> list[str]:
        for key, data in objects.items():
            assert key.startswith(prefix), key
            self.put(key, data)
        stale = [key for key in self.list(prefix) if key not in objects]
        for key in stale:
            del self.objects[key]
        return stale


def load_dagbag(dags: Path):
    """Parse a DAG folder the way the DAG processor does (a fresh DagBag on each call)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=dags, safe_mode=True)


def xcom_value(dag_run, task_id: str, map_index: int = -1):
    """The return value a task pushed in a dag.test() run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, map_indexes=map_index, key="return_value"
        )
        row = session.scalars(query).one()
        return XComModel.deserialize_value(row)
