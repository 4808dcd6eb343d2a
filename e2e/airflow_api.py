"""A small client of the Airflow 3 REST API (/api/v2) with a token from the auth manager's /auth/token."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests

FINISHED = {"success", "failed"}


class ApiError(RuntimeError):
    pass


class AirflowApi:
    def __init__(self, base_url: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy settings: everything is on loopback

    def login(self, username: str, password: str) -> None:
        response = self.session.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=self.timeout
        )
        if response.status_code not in (200, 201):
            raise ApiError(f"POST /auth/token: HTTP {response.status_code} {response.text[:500]}")
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs) -> Any:
        response = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            raise ApiError(f"{method} {path}: HTTP {response.status_code} {response.text[:1000]}")
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params=params)

    def dag(self, dag_id: str) -> dict:
        return self.get(f"/api/v2/dags/{quote(dag_id)}")

    def wait_for_dag(self, dag_id: str, timeout: float) -> dict:
        """Until the DAG processor has parsed the DAG (it appears in the API without import errors)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                return self.dag(dag_id)
            except ApiError as exc:
                last = str(exc)
            time.sleep(2)
        errors = self.get("/api/v2/importErrors")
        raise TimeoutError(f"DAG {dag_id} not parsed within {timeout:.0f} s ({last}); import errors: {errors}")

    def set_paused(self, dag_id: str, paused: bool) -> dict:
        return self.request("PATCH", f"/api/v2/dags/{quote(dag_id)}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict, logical_date: str | None = None, run_id: str | None = None) -> dict:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{quote(dag_id)}/dagRuns", json=body)

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns", limit=100)["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> dict:
        return self.request("PATCH", f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}", json={"state": state})

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, on_poll=None) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if on_poll:
                on_poll(run)
            if run["state"] in FINISHED:
                return run
            time.sleep(1)
        raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances"
        return self.get(path, limit=1000)["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The whole log of one try, as text (the API answers JSON with structured lines)."""
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}/logs/{try_number}"
        data = self.request(
            "GET",
            path,
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        content = data.get("content", data) if isinstance(data, dict) else data
        if isinstance(content, list):
            lines = []
            for item in content:
                if isinstance(item, dict):
                    event = item.get("event", "")
                    lines.append(" ".join(str(x) for x in (item.get("timestamp", ""), item.get("level", ""), event)))
                    # An exception is structured too: what the UI shows under the line (type: message).
                    for error in item.get("error_detail") or []:
                        if isinstance(error, dict):
                            lines.append(f"  {error.get('exc_type', '')}: {error.get('exc_value', '')}")
                else:
                    lines.append(str(item))
            return "\n".join(lines)
        return str(content)
